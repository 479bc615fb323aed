/**
 * The record of live relay queues a stop could not delete (live-leftovers.ts): round trip,
 * malformed and oversized records read as no entries (or only their valid ones), never a throw.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LoftError } from "../../../core/errors.ts";
import type { RecipientQueue } from "../../../core/relay/client.ts";
import { mutate, mutationArb } from "../../../test/fuzz/mutations.ts";
import { MemoryStorage } from "../../../test/support/engine.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import {
  decodeLeftovers,
  encodeLeftovers,
  LIVE_LEFTOVERS_SECRET,
  type LiveLeftover,
  LiveLeftovers,
  MAX_LIVE_LEFTOVERS,
} from "./live-leftovers.ts";
import type { RelayConnections } from "./transport.ts";

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const entry = (k: number, url = "wss://relay.example/"): LiveLeftover => ({
  url,
  queue: {
    recipientId: bytes(24, k),
    senderId: bytes(24, k + 1),
    recipientAuthSecret: bytes(64, k + 2),
    rcvKey: bytes(32, k + 3),
  },
});
const text = (s: string) => new TextEncoder().encode(s);

describe("live-leftovers record", () => {
  it("round-trips, keeping at most MAX_LIVE_LEFTOVERS (the newest)", () => {
    expect(decodeLeftovers(encodeLeftovers([entry(1), entry(9, "ws://127.0.0.1:1/")]))).toEqual([
      entry(1),
      entry(9, "ws://127.0.0.1:1/"),
    ]);
    const many = Array.from({ length: MAX_LIVE_LEFTOVERS + 5 }, (_, k) => entry(k % 200));
    const back = decodeLeftovers(encodeLeftovers(many));
    expect(back.length).toBe(MAX_LIVE_LEFTOVERS);
    expect(back[0]).toEqual(many[5]);
  });

  it("malformed records read as nothing; malformed entries are skipped", () => {
    for (const bad of ["", "{", "null", "{}", '"x"', "[1]", '[{"u":""}]', "\xff"])
      expect(decodeLeftovers(text(bad))).toEqual([]);
    expect(decodeLeftovers(new Uint8Array([0xff, 0xfe]))).toEqual([]);
    const good = JSON.parse(new TextDecoder().decode(encodeLeftovers([entry(3)])))[0];
    const rows = [
      { ...good, r: "ABCD" }, // upper case
      { ...good, s: "abc" }, // odd length
      { ...good, a: "00".repeat(200) }, // oversized
      { ...good, u: 7 },
      { ...good, u: "x".repeat(3_000) },
      { ...good, k: undefined },
      good,
    ];
    expect(decodeLeftovers(text(JSON.stringify(rows)))).toEqual([entry(3)]);
  });

  it("fuzz: never throws, every entry it yields is well formed", () => {
    const valid = encodeLeftovers([entry(5)]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          // A valid record damaged as test/fuzz/mutations.ts damages any (a byte set among them).
          mutationArb.map((m) => mutate(valid, m, [valid])),
        ),
        (input) => {
          for (const l of decodeLeftovers(input)) {
            expect(typeof l.url).toBe("string");
            expect(l.queue.recipientId).toBeInstanceOf(Uint8Array);
          }
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("add merges without duplicates, one write after another", async () => {
    const storage = new MemoryStorage("");
    const kept = new LiveLeftovers(storage, () => {});
    await Promise.all([kept.add([entry(1)]), kept.add([entry(1), entry(2)])]);
    expect(decodeLeftovers(storage.secrets.get(LIVE_LEFTOVERS_SECRET))).toEqual([entry(1), entry(2)]);
  });

  it("clean: deleted and AUTH entries leave the record, whatever the others' DEL rejects with (undefined, null too)", async () => {
    const storage = new MemoryStorage("");
    const logs: string[] = [];
    const kept = new LiveLeftovers(storage, (m) => logs.push(m));
    // Entry k's DEL: 1 answered, 2 AUTH (the relay no longer has it), 3–5 rejected with undefined,
    // null and a LoftError that is not AUTH (unreachable): those stay for the next start.
    const outcome = new Map<number, () => Promise<void>>([
      [1, () => Promise.resolve()],
      [2, () => Promise.reject(new LoftError("LOFT_ERR_RELAY_AUTH", "DEL refused"))],
      [3, () => Promise.reject(undefined)],
      [4, () => Promise.reject(null)],
      [5, () => Promise.reject(new LoftError("LOFT_ERR_TIMEOUT", "DEL got no answer"))],
    ]);
    await kept.add([...outcome.keys()].map((k) => entry(k * 10)));
    // Only `client` is used by `clean`: each queue's DEL answers as its entry says.
    const pool = {
      client: async () => ({
        deleteQueue: (q: RecipientQueue) => outcome.get(q.recipientId[0]! / 10)!(),
      }),
    } as unknown as RelayConnections;
    await kept.clean(pool, () => true);
    // Before, `undefined` and `null` threw inside the catch: clean rejected and the answered
    // entries stayed in the record.
    expect(decodeLeftovers(storage.secrets.get(LIVE_LEFTOVERS_SECRET))).toEqual(
      [30, 40, 50].map((k) => entry(k)),
    );
    expect(logs).toEqual([
      "deleting a live link's old queue on wss://relay.example/ failed: undefined",
      "deleting a live link's old queue on wss://relay.example/ failed: null",
      "deleting a live link's old queue on wss://relay.example/ failed: LOFT_ERR_TIMEOUT: DEL got no answer",
    ]);
  });

  it("clean: an entry on a relay no longer in the list is dropped and logged, never connected to", async () => {
    const storage = new MemoryStorage("");
    const logs: string[] = [];
    const kept = new LiveLeftovers(storage, (m) => logs.push(m));
    const removed = "wss://removed.example/";
    await kept.add([entry(1), entry(2, removed), entry(3)]);
    const asked: string[] = [];
    const pool = {
      client: async (url: string) => {
        asked.push(url);
        return { deleteQueue: () => Promise.reject(new LoftError("LOFT_ERR_TIMEOUT", "no answer")) };
      },
    } as unknown as RelayConnections;
    await kept.clean(pool, (url) => url !== removed);
    expect(asked).toEqual(["wss://relay.example/", "wss://relay.example/"]);
    // The unreachable ones on a relay still listed stay for the next start; the removed relay's goes.
    expect(decodeLeftovers(storage.secrets.get(LIVE_LEFTOVERS_SECRET))).toEqual([entry(1), entry(3)]);
    expect(logs[0]).toBe(
      "dropping a live link's old queue on wss://removed.example/: that relay is no longer in the list",
    );
    // With nothing left to drop or delete, the record goes entirely.
    await kept.clean(pool, () => false);
    expect(storage.secrets.has(LIVE_LEFTOVERS_SECRET)).toBe(false);
    expect(asked.length).toBe(2);
  });
});
