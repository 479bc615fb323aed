/**
 * `npm run bench:relay-keys` — the relay's per-command key work (issue #17), each next to the way
 * it was done before, in the same run:
 *   - Ed25519 public-key import as JWK (host/node-ed25519.ts `ed25519PublicKey`) vs SPKI DER,
 *     the same 32 bytes: `jwk_vs_der` (paid by every command whose key is not cached, and by every
 *     failed check — relay-ws/verifier.ts);
 *   - one Ed25519 verification with a parsed key, for scale: what a command's check costs;
 *   - NEW's relay-side key agreement on node:crypto (relay-ws/queue-dh.ts) vs noble as before
 *     (core/relay/crypto.ts `newDhKeyPair` + `deriveRcvKey`): `native_vs_noble`.
 * `--json`: the last line is one JSON object; `--quick`: short runs (smoke test only).
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { deriveRcvKey, newDhKeyPair } from "../core/relay/crypto.ts";
import { ed25519PublicKey } from "../host/node-ed25519.ts";
import { queueDh } from "../relay-ws/queue-dh.ts";
import { measure, report } from "./harness.ts";

const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const raw = new Uint8Array(Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url"));
const message = randomBytes(120);
const signature = sign(null, message, privateKey);
const client = newDhKeyPair();
const rid = new Uint8Array(randomBytes(24));

const der = measure(() => {
  for (let i = 0; i < 100; i++)
    createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
  return 100;
});
const jwk = measure(() => {
  for (let i = 0; i < 100; i++) ed25519PublicKey(raw);
  return 100;
});
const verifies = measure(() => {
  for (let i = 0; i < 100; i++) verify(null, message, publicKey, signature);
  return 100;
});
const noble = measure(() => {
  const dh = newDhKeyPair();
  deriveRcvKey(dh.secretKey, client.publicKey, rid);
  dh.secretKey.fill(0);
  return 1;
});
const native = measure(() => {
  for (let i = 0; i < 10; i++) queueDh(client.publicKey, rid);
  return 10;
});

report(
  "relay key work per command",
  [
    {
      name: "Ed25519 key import, JWK",
      value: jwk.perSecond,
      unit: "keys/s",
      baseline: { name: "SPKI DER", value: der.perSecond },
    },
    { name: "Ed25519 verify (parsed key)", value: verifies.perSecond, unit: "verifies/s" },
    {
      name: "NEW key agreement, node:crypto",
      value: native.perSecond,
      unit: "queues/s",
      baseline: { name: "noble (before)", value: noble.perSecond },
    },
  ],
  {
    bench: "relay-keys",
    jwk_imports_per_s: jwk.perSecond,
    der_imports_per_s: der.perSecond,
    jwk_vs_der: jwk.perSecond / der.perSecond,
    verifies_per_s: verifies.perSecond,
    native_new_per_s: native.perSecond,
    noble_new_per_s: noble.perSecond,
    native_vs_noble: native.perSecond / noble.perSecond,
  },
);
