/**
 * The signaling codecs and envelope verification on their own: FUZZ_RUNS (≥ 10⁴) garbage and
 * mutated frames per decoder return a typed result and never throw; a signed envelope verifies
 * after an encode/decode round trip and stops verifying when any signed field changes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { isLoftError } from "../../core/errors.ts";
import { createUserIdentity } from "../../core/identity/identity.ts";
import {
  clientCodec,
  SIGNAL_KINDS,
  type SignalEnvelope,
  serverCodec,
  signEnvelope,
  verifyEnvelope,
} from "../../core/wire/signaling.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";

const alice = createUserIdentity({
  username: "alice",
  now: 1_700_000_000_000,
  seed: new Uint8Array(32).fill(1),
});
const bob = createUserIdentity({ username: "bob", now: 1_700_000_000_000, seed: new Uint8Array(32).fill(2) });
const A = alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>;
const B = bob.identity.verified.identity_key as Uint8Array<ArrayBuffer>;

const fieldsArb = fc.record({
  kind: fc.constantFrom(...SIGNAL_KINDS),
  payload: fc.uint8Array({ maxLength: 300 }),
  timestamp: fc.nat({ max: 2 ** 48 }),
  nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
});
const sign = (f: {
  kind: (typeof SIGNAL_KINDS)[number];
  payload: Uint8Array;
  timestamp: number;
  nonce: Uint8Array;
}) =>
  signEnvelope(nobleCrypto, alice.privateIdentityKey, {
    from: A,
    to: B,
    kind: f.kind,
    payload: f.payload as Uint8Array<ArrayBuffer>,
    timestamp: f.timestamp,
    nonce: f.nonce as Uint8Array<ArrayBuffer>,
  });

/** Signing is the expensive part: a fixed pool of signed envelopes, mutated by the properties. */
const POOL = await Promise.all(fc.sample(fieldsArb, { numRuns: 64, seed: 7 }).map(sign));
const pooled = fc.constantFrom(...POOL);

const typedOrOk = (r: { ok: boolean; error?: unknown }) => r.ok || isLoftError(r.error);

describe("signaling codecs under garbage", () => {
  it("decode random bytes to a typed result", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_048 }), (bytes) => {
        expect(typedOrOk(clientCodec.decode(bytes))).toBe(true);
        expect(typedOrOk(serverCodec.decode(bytes))).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("decode mutated SIGNAL frames to a typed result; survivors still carry a well-formed envelope", async () => {
    await fc.assert(
      fc.asyncProperty(
        pooled,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.nat(),
        async (e, at, value, cut) => {
          const frame = clientCodec.encode({ t: "SIGNAL", id: 9, envelope: e });
          const mutated = frame.slice(0, frame.length - (cut % 3));
          mutated[at % mutated.length] = value;
          const r = clientCodec.decode(mutated);
          expect(typedOrOk(r)).toBe(true);
          if (r.ok && r.value.t === "SIGNAL")
            expect(typedOrOk(await verifyEnvelope(nobleCrypto, r.value.envelope))).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("decode well-formed maps with known tags and wrong fields to a typed result", () => {
    const tag = fc.constantFrom(
      "SIGNAL",
      "SUBSCRIBE",
      "PRESENCE",
      "GOING_AWAY",
      "REGISTRATION_ENDED",
      "ERROR",
      "X",
    );
    fc.assert(
      fc.property(
        tag,
        fc.dictionary(fc.string({ maxLength: 12 }), fc.anything({ maxDepth: 2 }), { maxKeys: 6 }),
        (t, rest) => {
          let bytes: Uint8Array;
          try {
            bytes = encodeCanonical({ ...rest, t });
          } catch {
            return; // fast-check produced something MessagePack cannot encode
          }
          expect(typedOrOk(clientCodec.decode(bytes))).toBe(true);
          expect(typedOrOk(serverCodec.decode(bytes))).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("envelope signatures", () => {
  it("verify after a round trip", async () => {
    for (const e of POOL) {
      const decoded = serverCodec.decode(serverCodec.encode({ t: "SIGNAL", envelope: e }));
      if (!decoded.ok || decoded.value.t !== "SIGNAL") throw new Error("round trip failed");
      expect((await verifyEnvelope(nobleCrypto, decoded.value.envelope)).ok).toBe(true);
    }
  });

  // One Ed25519 verification per case (~1 ms): a cryptographic property, not a decoder, so it
  // runs a tenth of the decoder budget.
  it("fail when any signed field changes", async () => {
    const fields = ["from", "to", "kind", "payload", "timestamp", "nonce", "signature"] as const;
    await fc.assert(
      fc.asyncProperty(pooled, fc.constantFrom(...fields), fc.nat(), async (e, field, n) => {
        const changed: SignalEnvelope = { ...e };
        if (field === "kind") changed.kind = SIGNAL_KINDS[(SIGNAL_KINDS.indexOf(e.kind) + 1 + (n % 3)) % 4]!;
        else if (field === "timestamp") changed.timestamp = e.timestamp + 1 + (n % 1000);
        else if (field === "from") changed.from = B;
        else if (field === "to") changed.to = A;
        else {
          const bytes = e[field].length === 0 ? new Uint8Array(1) : e[field].slice();
          bytes[n % bytes.length]! ^= 1 << (n % 8);
          changed[field] = bytes;
        }
        const r = await verifyEnvelope(nobleCrypto, changed);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_BAD_SIGNATURE");
      }),
      { numRuns: Math.max(1_000, Math.floor(FUZZ_RUNS / 10)) },
    );
  });
});
