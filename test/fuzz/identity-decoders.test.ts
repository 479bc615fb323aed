/**
 * Property tests for the identity decoders: decodeIdentity, decodeContactLink, fromBase64url and the
 * safety-code QR parser. Garbage and damaged encodings yield typed errors only; anything that
 * decodes re-encodes to the same bytes and carries a valid signature.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "../../core/codec/base64url.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { decodeContactLink, encodeContactLink } from "../../core/identity/contact-link.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  MAX_IDENTITY_BYTES,
  verifyIdentity,
} from "../../core/identity/identity.ts";
import { compareScannedSafetyCode, safetyCodeQr } from "../../core/identity/safety-code.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { expectTyped, expectTypedAsync, fieldSwapArb, mutate, mutationArb } from "./mutations.ts";

const NOW = 1_700_000_000_000;
const alice = createUserIdentity({ username: "alice", now: NOW, seed: new Uint8Array(32).fill(1) });
const carol = createUserIdentity({
  username: "Carol 🎻",
  now: NOW,
  seed: new Uint8Array(32).fill(5),
  flags: { uses_relay: true },
  extensions: {
    profile_picture: new Uint8Array(40).fill(9),
    additional_metadata: { lang: new Uint8Array([1]) },
  },
});
const identities = [alice.identity, carol.identity];
const encoded = identities.map(encodeIdentity);
const linkPayload = encodeContactLink({
  identity: alice.identity,
  signaling: ["wss://s.example/ws"],
  relay: [],
});
if (!linkPayload.ok) throw linkPayload.error;

const IDENTITY = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_BAD_IDENTITY",
  "LOFT_ERR_BAD_SIGNATURE",
] as const;
const LINK = [...IDENTITY, "LOFT_ERR_UNSUPPORTED_VERSION"] as const;

async function identityDecoder(bytes: Uint8Array): Promise<void> {
  const r = await expectTypedAsync(() => decodeIdentity(nobleCrypto, bytes), IDENTITY);
  if (r.ok) {
    expect(encodeIdentity(r.value)).toEqual(bytes);
    expect((await verifyIdentity(nobleCrypto, r.value)).ok).toBe(true);
  }
}

describe("identity decoders under hostile input (property)", () => {
  it("random bytes", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), identityDecoder), {
      numRuns: FUZZ_RUNS,
    });
  });

  it("damaged valid identities: only the untouched ones decode", async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.array(mutationArb, { minLength: 1, maxLength: 2 }),
        async (which, mutations) => {
          const original = encoded[which % encoded.length]!;
          let bytes = original;
          for (const m of mutations) bytes = mutate(bytes, m, encoded);
          await identityDecoder(bytes);
          const r = await decodeIdentity(nobleCrypto, bytes);
          seen.add(r.ok ? "ok" : r.error.code);
          // a signed identity has exactly one byte form: any change that still decodes is no change
          if (r.ok)
            expect(encoded.some((e) => e.length === bytes.length && e.every((b, i) => b === bytes[i]))).toBe(
              true,
            );
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    for (const stage of ["LOFT_ERR_MALFORMED", "LOFT_ERR_SCHEMA", "LOFT_ERR_BAD_SIGNATURE"])
      expect(seen).toContain(stage);
  });

  it("fields replaced with wrong types inside the verified data", async () => {
    const verifiedObjects = identities.map((i) => ({ ...i.verified }) as Record<string, unknown>);
    await fc.assert(
      fc.asyncProperty(fieldSwapArb(verifiedObjects), fc.nat(), async (verifiedBytes, which) => {
        // splice the mutated verified map into an Identity envelope: {signature, verified}
        const sig = identities[which % identities.length]!.signature;
        const head = new Uint8Array([
          0x82,
          0xa9,
          ...new TextEncoder().encode("signature"),
          0xc4,
          0x40,
          ...sig,
        ]);
        const mid = new Uint8Array([0xa8, ...new TextEncoder().encode("verified")]);
        await identityDecoder(new Uint8Array([...head, ...mid, ...verifiedBytes]));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("oversized input is refused before parsing", async () => {
    const r = await decodeIdentity(nobleCrypto, new Uint8Array(MAX_IDENTITY_BYTES + 1));
    expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });
});

describe("contact link and text decoders (property)", () => {
  it("random text and damaged payloads give typed errors", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.string({ maxLength: 300, unit: "binary" }),
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 63 })).map(([at, c]) => {
            const p = linkPayload.value;
            const i = at % p.length;
            const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            return p.slice(0, i) + alphabet[c] + p.slice(i + 1);
          }),
          fc.nat().map((n) => linkPayload.value.slice(0, n % linkPayload.value.length)),
          fc.uint8Array({ maxLength: 300 }).map(toBase64url),
        ),
        async (text) => {
          const r = await expectTypedAsync(() => decodeContactLink(nobleCrypto, text), LINK);
          if (r.ok) expect(encodeContactLink(r.value)).toEqual({ ok: true, value: text });
          const b = expectTyped(() => fromBase64url(text), ["LOFT_ERR_MALFORMED"]);
          if (b.ok) expect(toBase64url(b.value)).toBe(text);
          expectTyped(
            () =>
              compareScannedSafetyCode(
                text,
                alice.identity.verified.identity_key,
                carol.identity.verified.identity_key,
              ),
            ["LOFT_ERR_MALFORMED", "LOFT_ERR_UNSUPPORTED_VERSION"],
          );
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a damaged safety QR never matches", () => {
    const qr = safetyCodeQr(alice.identity.verified.identity_key, carol.identity.verified.identity_key);
    const hex = "0123456789ABCDEF";
    fc.assert(
      fc.property(fc.integer({ min: 9, max: qr.length - 1 }), fc.integer({ min: 0, max: 15 }), (at, c) => {
        if (qr[at] === hex[c]) return;
        const damaged = qr.slice(0, at) + hex[c] + qr.slice(at + 1);
        const r = compareScannedSafetyCode(
          damaged,
          carol.identity.verified.identity_key,
          alice.identity.verified.identity_key,
        );
        expect(r).toEqual({ ok: true, value: false });
      }),
      { numRuns: 50 }, // each comparison runs 2 × 5200 SHA-512 iterations
    );
  });
});
