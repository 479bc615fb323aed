/**
 * The CLI's inputs: `loft send`'s hand-over requests (cli/duplex.ts `parseSendRequest`: only a
 * reason or a well-formed request, never an exception), and the CLI's state files as input (cli/state-file.ts: the sealed snapshot and the append-only
 * sealed log): garbage, mutated, truncated and extended logs and snapshots (FUZZ_RUNS each). Only
 * a StateFileError may come out — never another exception — and a log that opens yields no more
 * than what was written: each message it holds is one that was put.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_LINE_BYTES, parseSendRequest } from "../../cli/duplex.ts";
import { StateFile, StateFileError } from "../../cli/state-file.ts";
import { utf8 } from "../../core/bytes.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { mutate, mutationArb } from "./mutations.ts";

const key = new Uint8Array(32).fill(7);
let dir: string;
let snapshot: Uint8Array;
let log: Uint8Array;
const written = new Set(["m0", "m1", "m2", "m3"]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loft-state-fuzz-"));
  const path = join(dir, "s.state");
  const s = await StateFile.open(path, key);
  await s.lock();
  for (const id of written)
    await s.putMessage({
      id,
      contactId: "c".repeat(64),
      direction: "in",
      text: id,
      at: 1,
      state: "delivered",
    });
  await s.saveSecret("k", Uint8Array.of(1, 2));
  await s.close();
  snapshot = await readFile(path);
  log = await readFile(`${path}.log`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function opens(snap: Uint8Array | undefined, l: Uint8Array | undefined): StateFile | undefined {
  try {
    return StateFile.fromBytes(join(dir, "x.state"), key, snap, l);
  } catch (e) {
    if (e instanceof StateFileError) return undefined;
    throw e;
  }
}

describe("CLI state files under fuzz", () => {
  it("the valid pair opens with what was written", () => {
    const s = opens(snapshot, log);
    expect(s?.messages().map((m) => m.id)).toEqual([...written]);
  });

  it(`mutated, truncated or foreign logs: StateFileError or a subset of what was written (${FUZZ_RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          mutationArb.map((m) => mutate(log, m, [log, snapshot])),
          fc.nat(log.length).map((n) => log.subarray(0, n)),
        ),
        (bytes) => {
          const s = opens(snapshot, bytes);
          if (s) for (const m of s.messages()) expect(written.has(m.id)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it(`mutated or garbage snapshots: StateFileError or the state (${FUZZ_RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          mutationArb.map((m) => mutate(snapshot, m, [log, snapshot])),
        ),
        (bytes) => {
          opens(bytes, log);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("loft send's hand-over requests under fuzz", () => {
  const valid = { type: "send", to: "Alice", text: "hi", wait: "left", timeout: 60, mac: "ab".repeat(32) };
  it(`garbage, mutated and wrong-typed requests: a reason or a request whose fields are in bounds (${FUZZ_RUNS} cases)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.json({ maxDepth: 2 }),
          mutationArb.map((m) =>
            new TextDecoder().decode(
              mutate(new TextEncoder().encode(JSON.stringify(valid)), m, [utf8("{}")]),
            ),
          ),
          fc
            .record({
              type: fc.oneof(fc.constant("send"), fc.string()),
              to: fc.oneof(fc.string({ maxLength: 300 }), fc.integer()),
              text: fc.oneof(fc.string({ maxLength: 50 }), fc.constant("")),
              wait: fc.oneof(fc.constantFrom("left", "delivered"), fc.string()),
              timeout: fc.oneof(fc.integer({ min: -5, max: 100_000 }), fc.double()),
              mac: fc.oneof(fc.constant(valid.mac), fc.string()),
            })
            .map((r) => JSON.stringify(r)),
        ),
        (line) => {
          expect(Buffer.byteLength(line)).toBeLessThan(MAX_LINE_BYTES);
          const r = parseSendRequest(line);
          if (!r.ok) {
            expect(typeof r.error).toBe("string");
            return;
          }
          expect(r.request.to.length).toBeGreaterThan(0);
          expect(r.request.to).not.toMatch(/[\n\r]/);
          expect(["left", "delivered"]).toContain(r.request.wait);
          expect(
            Number.isInteger(r.request.timeout) && r.request.timeout >= 1 && r.request.timeout <= 86_400,
          ).toBe(true);
          expect(r.mac).toMatch(/^[0-9a-f]{64}$/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    expect(parseSendRequest(JSON.stringify(valid))).toMatchObject({ ok: true });
  });
});
