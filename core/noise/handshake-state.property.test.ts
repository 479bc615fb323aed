/**
 * Property tests: the Noise handshake state machine (Noise §5.3; XX and XXhfs) and transport
 * decryption (§5.1) fed garbage, truncated, extended, bit-flipped, replayed and reordered
 * messages. Nothing but a typed Result error may come out; a handshake that saw a changed
 * message fails, zeroes itself and never yields a transport; a changed, replayed or reordered
 * transport frame never decrypts.
 *
 * Valid transcripts are computed once with fixed entropy: a fresh HandshakeState given the same
 * keys and entropy retraces the same state, so the stored messages stay valid for it. The
 * expensive positions (reading message 2 or 3 costs several X25519 operations) share the budget
 * with the cheap one; together they exceed FUZZ_RUNS mutated inputs (test/support/fuzz.ts).
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import type { LoftErrorCode, Result } from "../errors.ts";
import { CipherState } from "./cipher-state.ts";
import { HandshakeState } from "./handshake-state.ts";
import { type HandshakePattern, XX, XX_HFS } from "./patterns.ts";
import { keyPairFromPrivate, type NoiseEntropy } from "./primitives.ts";

/** `npm run fuzz` raises FUZZ_RUNS twentyfold: give each property time in proportion. */
const PROPERTY_TIMEOUT = Math.max(60_000, FUZZ_RUNS * 5);

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const INPUT_ERRORS: LoftErrorCode[] = ["LOFT_ERR_DECRYPT", "LOFT_ERR_MALFORMED", "LOFT_ERR_FRAME_TOO_LARGE"];

function entropy(tag: number): NoiseEntropy {
  return {
    ephemeralPrivateKey: () => fill(32, tag),
    kemKeySeed: () => fill(64, tag + 1),
    kemEncapsulationRandomness: () => fill(32, tag + 2),
  };
}

const prologue = utf8("property");
const keys = {
  init: await keyPairFromPrivate(fill(32, 0x11)),
  resp: await keyPairFromPrivate(fill(32, 0x22)),
};

function initiator(pattern: HandshakePattern): Promise<HandshakeState> {
  return HandshakeState.create({
    pattern,
    role: "initiator",
    prologue,
    staticKeyPair: keys.init,
    entropy: entropy(1),
  });
}
function responder(pattern: HandshakePattern): Promise<HandshakeState> {
  return HandshakeState.create({
    pattern,
    role: "responder",
    prologue,
    staticKeyPair: keys.resp,
    entropy: entropy(5),
  });
}

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

interface Transcript {
  pattern: HandshakePattern;
  messages: [Uint8Array, Uint8Array, Uint8Array];
}

async function transcript(pattern: HandshakePattern): Promise<Transcript> {
  const i = await initiator(pattern);
  const r = await responder(pattern);
  const m1 = must(await i.writeMessage(utf8("m1")));
  must(await r.readMessage(m1));
  const m2 = must(await r.writeMessage(utf8("m2")));
  must(await i.readMessage(m2));
  const m3 = must(await i.writeMessage(utf8("m3")));
  must(await r.readMessage(m3));
  return { pattern, messages: [m1, m2, m3] };
}

const transcripts = [await transcript(XX), await transcript(XX_HFS)];
const allMessages = transcripts.flatMap((t) => t.messages);

/** A message derived from `valid`: garbage, truncated, extended, bit-flipped, spliced, or another valid one. */
const mutation = (valid: Uint8Array) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 2000 }),
    fc.integer({ min: 65_536, max: 70_000 }).map((n) => new Uint8Array(n)),
    fc.nat({ max: Math.max(0, valid.length - 1) }).map((n) => valid.subarray(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => new Uint8Array([...valid, ...extra])),
    fc.tuple(fc.nat(valid.length * 8 - 1)).map(([bit]) => {
      const m = valid.slice();
      m[bit >> 3]! ^= 1 << (bit & 7);
      return m;
    }),
    fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 40 })).map(([at, junk]) => {
      const m = valid.slice();
      m.set(junk.subarray(0, m.length - at), at);
      return m;
    }),
    fc.constantFrom(...allMessages), // replayed / reordered: any message of any transcript
  );

/** Every typed outcome is acceptable; only a throw, or an untyped value, fails the property. */
async function expectTypedFailureOrOk(r: Result<Uint8Array>, hs: HandshakeState): Promise<void> {
  if (r.ok) return;
  expect(INPUT_ERRORS).toContain(r.error.code);
  expect(hs.status).toBe("failed");
  expect(hs.handshakeHash).toEqual(new Uint8Array(32)); // zeroed
  const fin = await hs.finish();
  expect(!fin.ok && fin.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
}

describe("handshake state machine under mutated input", () => {
  it("the stored transcripts are valid for fresh states (the properties below are not vacuous)", async () => {
    for (const t of transcripts) {
      const i = await initiator(t.pattern);
      must(await i.writeMessage(utf8("m1")));
      expect(must(await i.readMessage(t.messages[1]))).toEqual(utf8("m2"));
      const r = await responder(t.pattern);
      must(await r.readMessage(t.messages[0]));
      must(await r.writeMessage(utf8("m2")));
      expect(must(await r.readMessage(t.messages[2]))).toEqual(utf8("m3"));
    }
  });

  it(
    "message 1 (responder): garbage, truncation, extension, replays — typed results only",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...transcripts).chain((t) => fc.tuple(fc.constant(t), mutation(t.messages[0]))),
          async ([t, m]) => {
            const r = await responder(t.pattern);
            const read = await r.readMessage(m);
            await expectTypedFailureOrOk(read, r);
            // Message 1 is not authenticated by itself: what is accepted is only hashed (§5.3).
            if (read.ok) expect(r.status).toBe("write");
            else expect(m.length < t.pattern.overhead[0]! || m.length > 65535).toBe(true);
          },
        ),
        { numRuns: FUZZ_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );

  it(
    "messages 2 and 3: any change, replay or reordering fails, zeroes the state, yields no transport",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc
            .tuple(fc.constantFrom(...transcripts), fc.constantFrom(1, 2))
            .chain(([t, k]) => fc.tuple(fc.constant(t), fc.constant(k), mutation(t.messages[k]))),
          async ([t, k, m]) => {
            fc.pre(!equalBytes(m, t.messages[k]));
            let hs: HandshakeState;
            if (k === 1) {
              hs = await initiator(t.pattern);
              must(await hs.writeMessage(utf8("m1")));
            } else {
              hs = await responder(t.pattern);
              must(await hs.readMessage(t.messages[0]));
              must(await hs.writeMessage(utf8("m2")));
            }
            const read = await hs.readMessage(m);
            expect(read.ok).toBe(false);
            await expectTypedFailureOrOk(read, hs);
            const again = await hs.readMessage(t.messages[k]);
            expect(!again.ok && again.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
          },
        ),
        // Two to four X25519 operations per case: a quarter of the budget here; with the full budget
        // above and below, the state machine sees 2.25 × FUZZ_RUNS mutated inputs.
        { numRuns: Math.ceil(FUZZ_RUNS / 4) },
      );
    },
    PROPERTY_TIMEOUT,
  );

  it(
    "calls in any order with any input: typed results, and never a transport before completion",
    async () => {
      const op = fc.oneof(
        fc.constant({ kind: "write" as const }),
        fc.constant({ kind: "finish" as const }),
        fc.uint8Array({ maxLength: 200 }).map((m) => ({ kind: "read" as const, m })),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.array(op, { minLength: 1, maxLength: 4 }),
          async (asInitiator, ops) => {
            const hs = asInitiator ? await initiator(XX) : await responder(XX);
            for (const o of ops) {
              if (o.kind === "finish") {
                const fin = await hs.finish();
                expect(fin.ok).toBe(false);
                if (!fin.ok) expect(fin.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
                continue;
              }
              const r = o.kind === "write" ? await hs.writeMessage() : await hs.readMessage(o.m);
              if (!r.ok) expect([...INPUT_ERRORS, "LOFT_ERR_HANDSHAKE_STATE"]).toContain(r.error.code);
            }
            expect(hs.status).not.toBe("finished");
          },
        ),
        { numRuns: FUZZ_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );
});

describe("transport decryption under tampering, replay and reordering", () => {
  const key = fill(32, 0x42);
  const ad = new Uint8Array(0);
  const sender = new CipherState(key);
  const plaintexts = Array.from({ length: 6 }, (_, i) => utf8(`frame ${i} `.repeat(i * 3 + 1)));
  // Started in order, so the frames take nonces 0..5 (cipher-state.ts takes n at the call).
  const framesReady = Promise.all(plaintexts.map(async (p) => must(await sender.encryptWithAd(ad, p))));
  let frames: Uint8Array[] = [];
  beforeAll(async () => {
    frames = await framesReady;
  });

  it("in order and untouched, every frame decrypts (not vacuous)", async () => {
    const receiver = new CipherState(key);
    for (const [i, f] of frames.entries())
      expect(must(await receiver.decryptWithAd(ad, f))).toEqual(plaintexts[i]);
  });

  it(
    "a stream with any frame flipped, replayed, dropped or swapped fails at the first deviation, typed",
    async () => {
      const edit = fc.oneof(
        fc.tuple(fc.constant("flip" as const), fc.nat(), fc.nat()),
        fc.tuple(fc.constant("replay" as const), fc.nat(), fc.nat()),
        fc.tuple(fc.constant("drop" as const), fc.nat(), fc.nat()),
        fc.tuple(fc.constant("swap" as const), fc.nat(), fc.nat()),
        fc.tuple(fc.constant("truncate" as const), fc.nat(), fc.nat()),
      );
      await fc.assert(
        fc.asyncProperty(edit, async ([kind, a, b]) => {
          const stream = frames.map((f) => f.slice());
          const at = a % stream.length;
          if (kind === "flip") stream[at]![b % stream[at]!.length]! ^= 1 << (b % 8);
          else if (kind === "replay") stream.splice(at + 1, 0, stream[b % (at + 1)]!.slice());
          else if (kind === "drop")
            stream.splice(at % (stream.length - 1), 1); // not the last: that is a clean end
          else if (kind === "truncate") stream[at] = stream[at]!.subarray(0, b % stream[at]!.length);
          else {
            const other = (at + 1 + (b % (stream.length - 1))) % stream.length;
            [stream[at], stream[other]] = [stream[other]!, stream[at]!];
          }
          const receiver = new CipherState(key);
          let failed = false;
          for (const [i, f] of stream.entries()) {
            const r = await receiver.decryptWithAd(ad, f);
            if (!r.ok) {
              expect(r.error.code).toBe("LOFT_ERR_DECRYPT");
              expect(receiver.nonce).toBe(BigInt(i)); // §5.1: n not incremented on failure
              failed = true;
              break;
            }
            expect(r.value).toEqual(plaintexts[i]); // anything accepted is the original, in place
          }
          expect(failed).toBe(true);
        }),
        { numRuns: FUZZ_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );
});
