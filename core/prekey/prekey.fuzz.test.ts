/**
 * Property tests of the prekey decoders and of Bob's side of first contact (PQXDH §3.4): garbage,
 * truncated and bit-flipped bundles, initial messages and stored prekey stores give typed errors,
 * never throws, and a rejected initial message leaves the store unchanged. The parsers (no
 * signatures) get the full budget; paths that verify Ed25519 signatures or decapsulate ML-KEM
 * (milliseconds each) get a fraction of it, built on inputs precomputed once.
 */
import { rngChacha20 } from "@noble/ciphers/chacha.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { LoftErrorCode, Result } from "../errors.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  decodePrekeyBundle,
  deserializePrekeyStore,
  encodePrekeyBundle,
  initiateSession,
  MAX_SEEN_BASE_KEYS,
  MAX_SEEN_PER_SENDER,
  parsePrekeyBundle,
  prekeyBundle,
  rememberBaseKey,
  SENDER_TAG_LEN,
  type SeenBaseKey,
  serializePrekeyStore,
} from "./index.ts";

const NOW = 1_700_000_000_000;
const prg = rngChacha20(new Uint8Array(32).fill(42));
const random = (n: number) => prg.randomBytes(n);

const aliceSecret = random(32);
const bobSecret = random(32);
const alice = createPrekeyStore({
  identitySecretKey: aliceSecret,
  now: NOW,
  oneTimePrekeys: 1,
  oneTimeKemPrekeys: 0,
  random,
});
const bob = createPrekeyStore({
  identitySecretKey: bobSecret,
  now: NOW,
  oneTimePrekeys: 2,
  oneTimeKemPrekeys: 1,
  random,
});
const bundleBytes = encodePrekeyBundle(prekeyBundle(bob));
const started = await initiateSession({
  sender: alice,
  bundle: bundleBytes,
  recipientIdentityKey: bob.identityKey,
  plaintext: utf8("first contact"),
  now: NOW,
  random,
});
if (!started.ok) throw started.error;
const initial = started.value.message;
const bobSnapshot = serializePrekeyStore(bob);
const storeSnapshot = serializePrekeyStore(bob);

const DECODE_ERRORS = new Set<LoftErrorCode>([
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_UNSUPPORTED_VERSION",
]);
const typed = (r: Result<unknown>, allowed: Set<LoftErrorCode>) => r.ok || allowed.has(r.error.code);

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "truncate"; at: number }
  | { kind: "extend"; extra: Uint8Array }
  | { kind: "overwrite"; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("extend" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({
    kind: fc.constant("overwrite" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case "flip": {
      const out = bytes.slice();
      out[m.at % out.length]! ^= 1 << m.bit;
      return out;
    }
    case "truncate":
      return bytes.subarray(0, m.at % bytes.length);
    case "extend":
      return new Uint8Array([...bytes, ...m.extra]);
    case "overwrite": {
      const out = bytes.slice();
      out.set(m.bytes.subarray(0, Math.max(0, out.length - (m.at % out.length))), m.at % out.length);
      return out;
    }
  }
}

describe("prekey decoders under garbage and mutation", () => {
  it("the fixtures are valid (so the properties below test rejections of near-valid input)", async () => {
    expect((await decodePrekeyBundle(nobleCrypto, bundleBytes)).ok).toBe(true);
    expect(decodeInitialMessage(initial).ok).toBe(true);
    expect(deserializePrekeyStore(storeSnapshot).ok).toBe(true);
  });

  it("parsePrekeyBundle: garbage and mutated bundles give typed errors", async () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          mutation.map((m) => mutate(bundleBytes, m)),
        ),
        (bytes) => {
          expect(typed(parsePrekeyBundle(bytes), DECODE_ERRORS)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("decodePrekeyBundle: a changed bit anywhere is refused (signatures cover everything signed)", async () => {
    const allowed = new Set<LoftErrorCode>([...DECODE_ERRORS, "LOFT_ERR_BAD_SIGNATURE"]);
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 0, max: 7 }), async (at, bit) => {
        const bad = mutate(bundleBytes, { kind: "flip", at, bit });
        const r = await decodePrekeyBundle(nobleCrypto, bad);
        // A one-time X25519 prekey is unsigned (PQXDH §3.2), so a flip there may still decode.
        if (r.ok) {
          const original = prekeyBundle(bob);
          expect(r.value.identityKey).toEqual(original.identityKey);
          expect(r.value.signedPrekey).toEqual(original.signedPrekey);
          expect(r.value.kemPrekey).toEqual(original.kemPrekey);
          expect(r.value.oneTimeKemPrekeys).toEqual(original.oneTimeKemPrekeys);
        } else expect(allowed.has(r.error.code)).toBe(true);
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 10) },
    );
  });

  it("decodeInitialMessage: garbage and mutated initial messages give typed errors", async () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          mutation.map((m) => mutate(initial, m)),
        ),
        (bytes) => {
          expect(typed(decodeInitialMessage(bytes), DECODE_ERRORS)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("deserializePrekeyStore: garbage and mutated stores give typed errors", async () => {
    const allowed = new Set<LoftErrorCode>([...DECODE_ERRORS, "LOFT_ERR_STATE_VERSION"]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          mutation.map((m) => mutate(storeSnapshot, m)),
        ),
        (bytes) => {
          expect(typed(deserializePrekeyStore(bytes), allowed)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("acceptInitialMessage: a mutated initial message is refused with a typed error; the store is unchanged", async () => {
    const allowed = new Set<LoftErrorCode>([
      ...DECODE_ERRORS,
      "LOFT_ERR_DECRYPT",
      "LOFT_ERR_REPLAY",
      "LOFT_ERR_HANDSHAKE_STATE",
      "LOFT_ERR_BAD_SIGNATURE",
      "LOFT_ERR_TOO_MANY_SKIPPED",
    ]);
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const bad = mutate(initial, m);
        if (equalBytes(bad, initial)) return;
        const r = await acceptInitialMessage(bob, bad, { now: NOW, random });
        if (r.ok) {
          // Only a re-encoding of the same content (e.g. a non-canonical integer) can be accepted.
          const a = decodeInitialMessage(bad);
          const b = decodeInitialMessage(initial);
          expect(a.ok && b.ok && a.value).toEqual(b.ok && b.value);
          throw new Error("accepted a mutated initial message");
        }
        expect(allowed.has(r.error.code)).toBe(true);
        expect(equalBytes(serializePrekeyStore(bob), bobSnapshot)).toBe(true);
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 10) },
    );
  });

  it("rememberBaseKey: any sequence of senders keeps the cache bounded, per sender ≤ 4, newest kept", async () => {
    const tags = Array.from({ length: 600 }, (_, i) =>
      new Uint8Array(SENDER_TAG_LEN).fill(i % 256).map((x, j) => (j === 0 ? i >> 8 : x)),
    );
    const check = (senders: number[]) => {
      let seen: SeenBaseKey[] = [];
      senders.forEach((who, n) => {
        const entry = {
          baseKey: new Uint8Array(32).map((_, j) => (j < 4 ? (n >>> (8 * j)) & 0xff : 0)),
          sender: tags[who]!,
        };
        seen = rememberBaseKey(seen, entry);
        expect(seen.at(-1)).toBe(entry);
      });
      expect(seen.length).toBeLessThanOrEqual(MAX_SEEN_BASE_KEYS);
      const counts = new Map<string, number>();
      for (const e of seen) counts.set(e.sender.join(), (counts.get(e.sender.join()) ?? 0) + 1);
      for (const c of counts.values()) expect(c).toBeLessThanOrEqual(MAX_SEEN_PER_SENDER);
      // The last min(4, n) entries of the last sender are all there.
      const last = senders.at(-1)!;
      const mine = senders
        .map((w, i) => [w, i] as const)
        .filter(([w]) => w === last)
        .slice(-MAX_SEEN_PER_SENDER);
      for (const [, i] of mine)
        expect(
          seen.some(
            (e) =>
              e.baseKey[0] === (i & 0xff) && e.baseKey[1] === ((i >> 8) & 0xff) && e.sender === tags[last],
          ),
        ).toBe(true);
    };
    fc.assert(fc.property(fc.array(fc.nat(599), { minLength: 1, maxLength: 60 }), check), {
      numRuns: Math.ceil(FUZZ_RUNS / 10),
    });
    // Past the capacity (2048 entries): a few long sequences (each insert scans the whole cache).
    fc.assert(fc.property(fc.array(fc.nat(599), { minLength: 2100, maxLength: 2200 }), check), {
      numRuns: 2,
    });
  });
});
