/**
 * The relay's byte-level fast paths (wire-fast.ts) against the generic codec
 * (core/relay/protocol.ts): whatever the fast decoder accepts, the generic one accepts with the same
 * value; every valid SEND and ACK frame (and 1.3 SENDS and ACKS) is taken by the fast path; damaged and non-canonical frames
 * never are (the generic path then gives the typed error); the fast encoders write the bytes
 * `encodeServerFrame` writes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../core/codec/codec.ts";
import {
  type Command,
  decodeClientFrame,
  decodeCommand,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  MAX_BATCH,
  MAX_BODY,
  RCV_CIPHERTEXT_LENGTH,
} from "../core/relay/protocol.ts";
import { mutate, mutationArb } from "../test/fuzz/mutations.ts";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { encodeMsg, encodeOk, fastDecode } from "./wire-fast.ts";

const LIMIT = 65_535;
const corrArb = fc.oneof(
  fc.constantFrom(0, 127, 128, 255, 256, 65_535, 65_536, 0xffff_ffff),
  fc.integer({ min: 0, max: 0xffff_ffff }),
);
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const bodyArb = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(0, 255, 256, 1024, MAX_BODY).map((n) => new Uint8Array(n).fill(7)),
);
const sendArb: fc.Arbitrary<Command> = fc.record({
  k: fc.constant("SEND" as const),
  i: corrArb,
  q: bytes(24),
  n: bytes(16),
  b: bodyArb,
});
const ackArb: fc.Arbitrary<Command> = fc.record({
  k: fc.constant("ACK" as const),
  i: corrArb,
  q: bytes(24),
  m: bytes(24),
});
/** 1.3 batches (docs/protocol/relay.md §Batches), read by the fast path too. */
const batchArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    k: fc.constant("SENDS" as const),
    i: corrArb,
    q: bytes(24),
    ms: fc.array(fc.tuple(bytes(16), fc.oneof(fc.uint8Array({ maxLength: 40 }), bodyArb)), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
  fc.record({
    k: fc.constant("SENDS" as const),
    i: corrArb,
    q: bytes(24),
    // 16..32 entries: the array16 header.
    ms: fc.array(fc.tuple(bytes(16), fc.uint8Array({ maxLength: 4 })), {
      minLength: 16,
      maxLength: MAX_BATCH,
    }),
  }),
  fc.record({
    k: fc.constant("ACKS" as const),
    i: corrArb,
    q: bytes(24),
    ms: fc.array(bytes(24), { minLength: 1, maxLength: MAX_BATCH }),
  }),
);
const otherArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ k: fc.constant("PING" as const), i: corrArb }),
  fc.record({ k: fc.constant("GET" as const), i: corrArb, q: bytes(24) }),
  fc.record({
    k: fc.constant("SUB" as const),
    i: corrArb,
    q: bytes(24),
    w: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ k: fc.constant("SKEY" as const), i: corrArb, q: bytes(24), sk: bytes(32) }),
);
const frameArb = (cmd: fc.Arbitrary<Command>) =>
  fc
    // No authorization, a 1.0 signature or a 1.1 authenticator.
    .tuple(cmd, fc.option(fc.oneof(bytes(64), bytes(32)), { nil: undefined }))
    .map(([c, a]) => encodeClientFrame(encodeCommand(c), a));

/** The generic decoders' answer: the frame and command, or undefined when either refuses. */
function generic(b: Uint8Array) {
  const frame = decodeClientFrame(b, LIMIT);
  if (!frame.ok) return undefined;
  const cmd = decodeCommand(frame.value.t, LIMIT);
  return cmd.ok ? { frame: frame.value, command: cmd.value } : undefined;
}

/** Deep equality with byte strings compared as bytes (fields left undefined count as absent). */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array)
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    return (
      ka.length === kb.length &&
      ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    );
  }
  return a === b;
}

describe("fast SEND/ACK (and 1.3 SENDS/ACKS) decoding", () => {
  it("takes every valid SEND and ACK frame and answers what the generic decoders answer", () => {
    fc.assert(
      fc.property(frameArb(fc.oneof(sendArb, ackArb, batchArb)), (b) => {
        const fast = fastDecode(b, LIMIT);
        expect(fast).toBeDefined();
        expect(same(fast, generic(b))).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("leaves every other command to the generic path", () => {
    fc.assert(
      fc.property(frameArb(otherArb), (b) => {
        expect(fastDecode(b, LIMIT)).toBeUndefined();
        expect(generic(b)).toBeDefined();
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("damaged frames: whatever the fast path accepts, the generic path accepts identically", () => {
    const pool = [
      encodeClientFrame(
        encodeCommand({
          k: "SEND",
          i: 1,
          q: new Uint8Array(24),
          n: new Uint8Array(16),
          b: new Uint8Array(3),
        }),
      ),
      encodeClientFrame(
        encodeCommand({ k: "ACK", i: 300, q: new Uint8Array(24), m: new Uint8Array(24) }),
        new Uint8Array(64),
      ),
      encodeClientFrame(
        encodeCommand({
          k: "ACKS",
          i: 7,
          q: new Uint8Array(24),
          ms: [new Uint8Array(24), new Uint8Array(24)],
        }),
        new Uint8Array(32),
      ),
    ];
    fc.assert(
      fc.property(
        frameArb(fc.oneof(sendArb, ackArb, batchArb)),
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        (b, ms) => {
          const damaged = ms.reduce((x, m) => mutate(x, m, pool), b);
          const fast = fastDecode(damaged, LIMIT);
          if (fast) expect(same(fast, generic(damaged))).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("arbitrary bytes: never throws; anything accepted is accepted by the generic path too", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const fast = fastDecode(b, LIMIT);
        if (fast) expect(same(fast, generic(b))).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("refuses batches over MAX_BATCH, empty ones, and a short array in the array16 form", () => {
    const q = new Uint8Array(24);
    for (const n of [0, MAX_BATCH + 1]) {
      const frame = encodeClientFrame(encodeCanonical({ i: 1, k: "ACKS", ms: Array(n).fill(q), q }));
      expect(fastDecode(frame, LIMIT)).toBeUndefined();
      expect(generic(frame)).toBeUndefined();
    }
    const t = encodeCommand({ k: "ACKS", i: 1, q, ms: [q, q] });
    const at = t.indexOf(0x92);
    const wide = encodeClientFrame(
      Uint8Array.from([...t.subarray(0, at), 0xdc, 0, 2, ...t.subarray(at + 1)]),
    );
    expect(fastDecode(wide, LIMIT)).toBeUndefined();
    expect(generic(wide)).toBeUndefined();
  });

  it("refuses non-canonical encodings of a valid SEND (wide integer, wide bin header) and oversized frames", () => {
    const cmd: Command = { k: "ACK", i: 5, q: new Uint8Array(24).fill(1), m: new Uint8Array(24).fill(2) };
    const t = encodeCommand(cmd);
    // i = 5 as uint16 (cd 00 05) instead of the fixint 05.
    const at = t.indexOf(0x05);
    const wideInt = Uint8Array.from([...t.subarray(0, at), 0xcd, 0x00, 0x05, ...t.subarray(at + 1)]);
    // q's bin8 header (c4 18) as bin16 (c5 00 18).
    const q = t.lastIndexOf(0xc4);
    const wideBin = Uint8Array.from([...t.subarray(0, q), 0xc5, 0x00, 0x18, ...t.subarray(q + 2)]);
    for (const bad of [wideInt, wideBin]) {
      const frame = encodeClientFrame(bad);
      expect(fastDecode(frame, LIMIT)).toBeUndefined();
      expect(generic(frame)).toBeUndefined();
    }
    const ok = encodeClientFrame(t);
    expect(fastDecode(ok, LIMIT)).toBeDefined();
    expect(fastDecode(ok, ok.length - 1)).toBeUndefined();
  });
});

describe("fast OK and MSG encoding", () => {
  it("writes exactly what encodeServerFrame writes", () => {
    fc.assert(
      fc.property(corrArb, bytes(24), bytes(24), fc.option(corrArb, { nil: undefined }), (i, q, m, corr) => {
        expect([...encodeOk(i)]).toEqual([...encodeServerFrame({ k: "OK", i })]);
        const b = new Uint8Array(RCV_CIPHERTEXT_LENGTH).fill(i & 0xff);
        const generic =
          corr === undefined
            ? encodeServerFrame({ k: "MSG", q, m, b })
            : encodeServerFrame({ k: "MSG", i: corr, q, m, b });
        expect(Buffer.from(encodeMsg(q, m, b, corr)).equals(Buffer.from(generic))).toBe(true);
      }),
      { numRuns: Math.min(FUZZ_RUNS, 300) },
    );
  });
});
