/**
 * docs/vectors/identity-*.json: the files must equal what scripts/gen-identity-vectors.ts builds
 * today (so the published bytes never drift silently), and each value is re-checked with noble
 * directly, independent of core/identity's own code paths.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { buildIdentityVectors, serialise, VECTORS_DIR } from "../../scripts/gen-identity-vectors.ts";
import { concatBytes, fromHex, toHex, utf8 } from "../bytes.ts";
import { decodeVersionHeader } from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import { srempCodec } from "../wire/sremp.ts";
import { parseContactLinkUrl } from "./contact-link.ts";
import { decodeIdentity } from "./identity.ts";
import { safetyCode } from "./safety-code.ts";

const read = (file: string) => readFileSync(join(VECTORS_DIR, file), "utf8");
const json = (file: string) => JSON.parse(read(file));

interface IdentityVector {
  name: string;
  seed: string;
  username: string;
  version: number;
  created: number;
  private_identity_key: string;
  private_noise_key: string;
  identity_key: string;
  noise_key: string;
  verified_data: string;
  signed_bytes: string;
  signature: string;
  identity: string;
}

describe("identity vectors (docs/vectors/identity-*.json)", () => {
  it("the files are exactly what the generator builds", async () => {
    for (const [file, value] of Object.entries(await buildIdentityVectors()))
      expect(read(file), file).toBe(serialise(value));
  });

  const { identities, updates } = json("identity-vectors.json") as {
    identities: IdentityVector[];
    updates: (IdentityVector & { from: string; changes: { noise_seed?: string } })[];
  };

  it.each(identities.map((v) => [v.name, v] as const))(
    "%s: keys, signed bytes and signature check out with noble",
    async (_n, v) => {
      const salt = utf8("loft/identity-seed/v1");
      const seed = fromHex(v.seed);
      expect(toHex(hkdf(sha256, seed, salt, utf8("ed25519 identity key"), 32))).toBe(v.private_identity_key);
      expect(toHex(hkdf(sha256, seed, salt, utf8("x25519 noise key"), 32))).toBe(v.private_noise_key);
      expect(toHex(ed25519.getPublicKey(fromHex(v.private_identity_key)))).toBe(v.identity_key);
      expect(toHex(x25519.getPublicKey(fromHex(v.private_noise_key)))).toBe(v.noise_key);
      const signed = concatBytes(
        utf8("loft/sremp/identity/v1"),
        new Uint8Array([0]),
        fromHex(v.verified_data),
      );
      expect(toHex(signed)).toBe(v.signed_bytes);
      expect(ed25519.verify(fromHex(v.signature), signed, fromHex(v.identity_key))).toBe(true);
      const decoded = await decodeIdentity(nobleCrypto, fromHex(v.identity));
      expect(decoded.ok).toBe(true);
      if (decoded.ok) {
        expect(decoded.value.verified.username).toBe(v.username);
        expect(decoded.value.verified.version).toBe(v.version);
        expect(decoded.value.verified.created).toBe(v.created);
      }
    },
  );

  it("updates keep the identity key, bump the version and verify", async () => {
    const byName = new Map(identities.map((v) => [v.name, v]));
    for (const u of updates) {
      const from = byName.get(u.from)!;
      expect(u.identity_key).toBe(from.identity_key);
      expect(u.version).toBe(from.version + 1);
      if (u.changes.noise_seed !== undefined) {
        const secret = hkdf(
          sha256,
          fromHex(u.changes.noise_seed),
          utf8("loft/identity-seed/v1"),
          utf8("x25519 rotated noise key"),
          32,
        );
        expect(toHex(secret)).toBe(u.private_noise_key);
        expect(u.noise_key).not.toBe(from.noise_key);
      } else expect(u.noise_key).toBe(from.noise_key);
      expect(ed25519.verify(fromHex(u.signature), fromHex(u.signed_bytes), fromHex(u.identity_key))).toBe(
        true,
      );
      expect((await decodeIdentity(nobleCrypto, fromHex(u.identity))).ok).toBe(true);
    }
  });

  it("safety codes", () => {
    const { pairs } = json("identity-safety-codes.json") as {
      pairs: { identity_key_a: string; identity_key_b: string; code: string; formatted: string }[];
    };
    for (const p of pairs) {
      expect(safetyCode(fromHex(p.identity_key_a), fromHex(p.identity_key_b))).toBe(p.code);
      expect(p.formatted.replace(/ /g, "")).toBe(p.code);
    }
  });

  it("contact links decode to the vector identity", async () => {
    const { links } = json("identity-contact-links.json") as { links: { url: string; payload: string }[] };
    const alice = identities.find((v) => v.name === "alice")!;
    for (const l of links) {
      expect(l.url.endsWith(`#c=${l.payload}`)).toBe(true);
      const r = await parseContactLinkUrl(nobleCrypto, l.url);
      expect(r.ok && toHex(r.value.identity.verified.identity_key)).toBe(alice.identity_key);
    }
  });

  it("signed request frames decode and the version header is SREMP 1.0", () => {
    const file = json("identity-signed-requests.json") as Record<string, string>;
    expect(decodeVersionHeader(fromHex(file.version_header!)).ok).toBe(true);
    for (const k of [
      "register_request",
      "relay_register",
      "retrieve_messages",
      "store_message",
      "delivery_confirmation",
    ])
      expect(srempCodec.decode(fromHex(file[k]!)).ok, k).toBe(true);
  });
});
