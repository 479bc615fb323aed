/**
 * Property tests for every core/relay decoder (docs/protocol/relay.md): client frames, commands,
 * server frames, padding and the server→recipient layer get garbage, damaged valid frames,
 * wrong-typed fields and oversized input (FUZZ_RUNS each). Only typed errors may come back, and a
 * frame that decodes re-encodes to exactly its own bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { openFromRelay, sealForRecipient } from "../../core/relay/crypto.ts";
import { MAX_REORDER, PieceOrder } from "../../core/relay/live-link.ts";
import {
  type Command,
  decodeClientFrame,
  decodeCommand,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  padBlock,
  RCV_CIPHERTEXT_LENGTH,
  type ServerFrame,
  unpadBlock,
} from "../../core/relay/protocol.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { expectTyped, fieldSwapArb, mutate, mutationArb } from "./mutations.ts";

const b = (n: number, fill = 1) => new Uint8Array(n).fill(fill);
const LIMIT = 65_535;

const commands: Command[] = [
  { k: "PING", i: 1 },
  { k: "NEW", i: 2, rk: b(32), dk: b(32, 2), sub: true },
  { k: "KEY", i: 3, q: b(24), sk: b(32) },
  { k: "SKEY", i: 4, q: b(24), sk: b(32) },
  { k: "SEND", i: 5, q: b(24), n: b(16), b: b(40) },
  { k: "SUB", i: 6, q: b(24), w: 8 },
  { k: "GET", i: 7, q: b(24) },
  { k: "ACK", i: 8, q: b(24), m: b(24) },
  { k: "OFF", i: 9, q: b(24) },
  { k: "DEL", i: 10, q: b(24) },
  { k: "PKSET", i: 11, q: b(24), pb: b(50), po: [b(10)], pr: false },
  { k: "PKGET", i: 12, q: b(24) },
];
const serverFrames: ServerFrame[] = [
  { k: "HELLO", s: b(32), fl: 65535, qq: 128, mi: 128 },
  { k: "OK", i: 1 },
  { k: "IDS", i: 2, r: b(24), s: b(24, 2), d: b(32) },
  { k: "MSG", i: 3, q: b(24), m: b(24), b: b(RCV_CIPHERTEXT_LENGTH) },
  { k: "END", q: b(24) },
  { k: "PK", i: 4, pb: b(10), po: b(5) },
  { k: "ERR", i: 5, e: "AUTH" },
];
const transmissions = commands.map(encodeCommand);
// Unauthorized, signed (1.0, 64 bytes) and authenticated (1.1, 32 bytes) frames.
const clientFrames = transmissions.map((t, i) =>
  encodeClientFrame(t, i % 3 === 1 ? b(64, 7) : i % 3 === 2 ? b(32, 9) : undefined),
);
const encodedServer = serverFrames.map(encodeServerFrame);
const pool = [...transmissions, ...clientFrames, ...encodedServer];

const CODES = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_UNKNOWN_TYPE",
  "LOFT_ERR_FRAME_TOO_LARGE",
] as const;

function decodeAll(bytes: Uint8Array): void {
  const outer = expectTyped(() => decodeClientFrame(bytes, LIMIT), CODES);
  if (outer.ok) expect(encodeClientFrame(outer.value.t, outer.value.a)).toEqual(bytes);
  const cmd = expectTyped(() => decodeCommand(bytes, LIMIT), CODES);
  if (cmd.ok) expect(encodeCommand(cmd.value)).toEqual(bytes);
  const srv = expectTyped(() => decodeServerFrame(bytes), CODES);
  if (srv.ok) expect(encodeServerFrame(srv.value)).toEqual(bytes);
}

const inputs: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.tuple(fc.constantFrom(...pool), mutationArb).map(([f, m]) => mutate(f, m, pool)),
  fc
    .tuple(fc.constantFrom(...pool), fc.array(mutationArb, { minLength: 2, maxLength: 5 }))
    .map(([f, ms]) => ms.reduce((acc, m) => mutate(acc, m, pool), f)),
  fieldSwapArb(commands as unknown as Record<string, unknown>[]),
  fieldSwapArb(serverFrames as unknown as Record<string, unknown>[]),
  fc.anything().map((v) => {
    try {
      return encodeCanonical(v);
    } catch {
      return new Uint8Array([0xc1]);
    }
  }),
);

describe("relay decoders under fuzz", () => {
  it(`client frames, commands and server frames: typed errors only (${FUZZ_RUNS} cases)`, () => {
    fc.assert(
      fc.property(inputs, (bytes) => decodeAll(bytes)),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("oversized input is refused before parsing", () => {
    const big = new Uint8Array(LIMIT + 1);
    expect(decodeClientFrame(big, LIMIT).ok ? "ok" : "err").toBe("err");
    const r = decodeCommand(big, LIMIT);
    expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const s = decodeServerFrame(big, LIMIT);
    expect(s.ok ? "ok" : s.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it(`padding: typed errors only (${FUZZ_RUNS} cases)`, () => {
    // unpadBlock is size-generic; a 64-byte block exercises the same checks as a 16 KiB one.
    const block = padBlock(b(20), 64);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 60, maxLength: 68 }),
          mutationArb.map((m) => mutate(block, m, [block])),
        ),
        (bytes) => {
          const unpadded = expectTyped(() => unpadBlock(bytes, 64), ["LOFT_ERR_PADDING"]);
          if (unpadded.ok) expect(padBlock(unpadded.value, 64)).toEqual(bytes);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it(`server→recipient layer: typed errors only (${FUZZ_RUNS} cases)`, () => {
    const key = b(32, 3);
    const msgId = b(24, 4);
    const sealed = sealForRecipient(key, msgId, 1234, padBlock(b(33)));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          mutationArb.map((m) => mutate(sealed, m, [sealed])),
        ),
        fc.uint8Array({ minLength: 0, maxLength: 30 }),
        (bytes, id) => {
          const opened = expectTyped(
            () => openFromRelay(key, id.length === 24 ? id : msgId, bytes),
            ["LOFT_ERR_DECRYPT", "LOFT_ERR_PADDING"],
          );
          if (opened.ok) expect(bytes).toEqual(sealed);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

/** A numbered live-link piece: `flags | 4 ‖ seq u32 ‖ bytes` (docs/protocol/relay.md §Live links). */
function numbered(seq: number, flags: number, bytes: Uint8Array): Uint8Array {
  const body = new Uint8Array(5 + bytes.length);
  body[0] = flags | 4;
  new DataView(body.buffer).setUint32(1, seq);
  body.set(bytes, 5);
  return body;
}

describe("live-link piece order under fuzz (core/relay/live-link.ts PieceOrder)", () => {
  it(`garbage, replayed and far-ahead bodies: typed errors only, never more pieces out than in (${FUZZ_RUNS} cases)`, () => {
    const valid = [numbered(0, 1, b(3)), numbered(1, 0, b(2)), numbered(2, 1, b(1)), Uint8Array.of(2)];
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 12 }),
            fc.constantFrom(...valid),
            mutationArb.map((m) => mutate(valid[0]!, m, valid)),
            fc.tuple(fc.nat(0xffff_ffff), fc.nat(7)).map(([seq, flags]) => numbered(seq, flags, b(2))),
          ),
          { maxLength: 12 },
        ),
        (bodies) => {
          const order = new PieceOrder();
          let out = 0;
          for (const body of bodies) {
            const r = expectTyped(() => order.take(body), ["LOFT_ERR_MALFORMED", "LOFT_ERR_SCHEMA"]);
            if (!r.ok) return;
            out += r.value.length;
            expect(order.held).toBeLessThanOrEqual(MAX_REORDER);
          }
          expect(out).toBeLessThanOrEqual(bodies.length);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  // A state-machine property over well-formed input (the decoder's 10⁴ cases are above).
  it(`pieces stored in any order within the window, some twice, come out in sending order, each once (${FUZZ_RUNS / 10} cases)`, () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 40 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
              fc.array(fc.nat(n - 1), { maxLength: 5 }),
            ),
          ),
        ([n, shuffled, again]) => {
          const order = new PieceOrder();
          const got: number[] = [];
          for (const seq of [...shuffled, ...again]) {
            const r = order.take(numbered(seq, 1, Uint8Array.of(seq)));
            if (!r.ok) throw r.error;
            for (const p of r.value) got.push(p.piece[0]!);
          }
          expect(got).toEqual([...Array(n).keys()]);
          expect(order.held).toBe(0);
        },
      ),
      { numRuns: FUZZ_RUNS / 10 },
    );
  });
});
