/**
 * Every vector file that exercises the crypto provider, through every backend available in Node
 * (noble, WebCrypto, node:crypto; core/crypto): the published Noise XX vectors and our XXhfs ones
 * (core/noise/vectors.ts), the Double Ratchet vectors (core/ratchet/vectors.ts), the PQXDH first
 * contacts (core/prekey/vectors.ts), the identity keys and signatures, the signed requests and
 * contact links (core/wire/signed-vectors.ts). A backend passes only
 * if it reproduces every byte. test/e2e/crypto-backends.e2e.ts runs the same files in Chromium.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../core/bytes.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../core/crypto/webcrypto.ts";
import { decodeIdentity } from "../../core/identity/identity.ts";
import { runVectorFile } from "../../core/noise/vectors.ts";
import { type PqxdhVectorFile, replayPqxdhVectors } from "../../core/prekey/vectors.ts";
import { type RatchetVectorFile, replayRatchetVectors } from "../../core/ratchet/vectors.ts";
import { type IdentityVectorFiles, replayIdentityVectors } from "../../core/wire/signed-vectors.ts";
import { type RelayAuthVectorFile, replayRelayAuthVectors } from "../../core/relay/vectors.ts";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";

const read = (path: string) => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"));

const NOISE_FILES = [
  "test/vectors/noise/noise-xx-blake2s.json",
  "test/vectors/noise/noise-xx-aesgcm-sha256.json",
  "docs/vectors/noise-xxhfs-mlkem768.json",
  "docs/vectors/noise-xxhfs-mlkem768-aesgcm.json",
];

const identityFiles = (): IdentityVectorFiles => ({
  identities: read("docs/vectors/identity-vectors.json"),
  requests: read("docs/vectors/identity-signed-requests.json"),
  links: read("docs/vectors/identity-contact-links.json"),
});

const backends: [string, () => Promise<CryptoProvider>][] = [
  ["noble", async () => nobleCrypto],
  ["webcrypto", () => createWebCryptoProvider()],
  ["node", () => createNodeCryptoProvider()],
];

describe.each(backends)("vector files through the %s backend", (_name, make) => {
  it.each(NOISE_FILES)("%s", async (file) => {
    const crypto = await make();
    const outcomes = await runVectorFile(read(file), crypto);
    expect(outcomes.filter((o) => o.status === "passed").length).toBeGreaterThanOrEqual(2);
    expect(outcomes.filter((o) => o.status === "failed")).toEqual([]);
  });

  it("docs/vectors/ratchet-v1.json", async () => {
    const crypto = await make();
    expect(await replayRatchetVectors(read("docs/vectors/ratchet-v1.json") as RatchetVectorFile, crypto)).toBe(
      "passed",
    );
  });

  it("docs/vectors/ratchet-v2.json", async () => {
    const crypto = await make();
    expect(await replayRatchetVectors(read("docs/vectors/ratchet-v2.json") as RatchetVectorFile, crypto)).toBe(
      "passed",
    );
  });
  it("docs/vectors/ratchet-v3.json", async () => {
    const crypto = await make();
    expect(await replayRatchetVectors(read("docs/vectors/ratchet-v3.json") as RatchetVectorFile, crypto)).toBe(
      "passed",
    );
  });

  it("docs/vectors/pqxdh-v1.json", async () => {
    const crypto = await make();
    expect(await replayPqxdhVectors(read("docs/vectors/pqxdh-v1.json") as PqxdhVectorFile, crypto)).toBe(
      "passed",
    );
  });

  it("docs/vectors/identity-vectors.json: keys and signatures", async () => {
    const crypto = await make();
    const file = read("docs/vectors/identity-vectors.json") as IdentityVectorFiles["identities"];
    const all = [...file.identities, ...file.updates];
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const v of all) {
      const secret = fromHex(v.private_identity_key);
      expect(toHex(await crypto.ed25519.publicKey(secret)), v.name).toBe(v.identity_key);
      expect(toHex(await crypto.x25519.publicKey(fromHex(v.private_noise_key))), v.name).toBe(v.noise_key);
      const signed = fromHex(v.signed_bytes);
      expect(toHex(await crypto.ed25519.sign(secret, signed)), v.name).toBe(v.signature);
      expect(await crypto.ed25519.verify(fromHex(v.identity_key), signed, fromHex(v.signature))).toBe(true);
      signed[signed.length - 1]! ^= 1;
      expect(await crypto.ed25519.verify(fromHex(v.identity_key), signed, fromHex(v.signature))).toBe(false);
      // The whole identity decodes and verifies through this backend (the session's path)…
      const decoded = await decodeIdentity(crypto, fromHex(v.identity));
      expect(decoded.ok && toHex(decoded.value.signature), v.name).toBe(v.signature);
      // …and a changed signature byte is refused.
      const at = v.identity.indexOf(v.signature) / 2;
      expect(at, v.name).toBeGreaterThan(0);
      const tampered = fromHex(v.identity);
      tampered[at + 10]! ^= 1;
      const bad = await decodeIdentity(crypto, tampered);
      expect(!bad.ok && bad.error.code, v.name).toBe("LOFT_ERR_BAD_SIGNATURE");
    }
  });

  it("docs/vectors/identity-*.json: identities, signed requests and contact links", async () => {
    const crypto = await make();
    expect(await replayIdentityVectors(identityFiles(), crypto)).toBe("passed");
  });

  it("docs/vectors/relay-auth-v1.1.json", async () => {
    const crypto = await make();
    const file = read("docs/vectors/relay-auth-v1.1.json") as RelayAuthVectorFile;
    expect(await replayRelayAuthVectors(file, crypto)).toBe("passed");
    file.cases[1]!.t = file.cases[1]!.t.replace(/.$/, (d) => (d === "0" ? "1" : "0"));
    expect(await replayRelayAuthVectors(file, crypto)).toBe("GET: authenticator");
  });

  it("a changed byte fails on this backend too (the runners are not vacuous)", async () => {
    const crypto = await make();
    const ratchet = read("docs/vectors/ratchet-v1.json") as RatchetVectorFile;
    const draw = ratchet.steps[0]!.random[0]!;
    ratchet.steps[0]!.random[0] = (draw[0] === "0" ? "1" : "0") + draw.slice(1);
    expect(await replayRatchetVectors(ratchet, crypto)).toMatch(/^step 0 .*: message$/);
    const pqxdh = read("docs/vectors/pqxdh-v1.json") as PqxdhVectorFile;
    const m = pqxdh.cases[0]!.initial_message;
    pqxdh.cases[0]!.initial_message = m.slice(0, -1) + (m.endsWith("0") ? "1" : "0");
    expect(await replayPqxdhVectors(pqxdh, crypto)).toMatch(/initial message$/);
    const identity = identityFiles();
    // encrypted_blob 01020304 (bin 8, length 4) becomes 01020305: still a frame, no longer signed
    const frame = identity.requests.store_message;
    expect(frame).toContain("c40401020304");
    identity.requests.store_message = frame.replace("c40401020304", "c40401020305");
    expect(await replayIdentityVectors(identity, crypto)).toBe("store_message: does not verify");
  });
});
