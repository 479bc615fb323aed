/**
 * `npm run bench:relay-keys` — the relay's per-command key work (issue #17), each next to the way
 * it was done before, in the same run:
 *   - Ed25519 public-key import as JWK (host/node-ed25519.ts `ed25519PublicKey`) vs SPKI DER,
 *     the same 32 bytes: `jwk_vs_der` (paid by every command whose key is not cached, and by every
 *     failed check — relay-ws/verifier.ts);
 *   - one Ed25519 verification with a parsed key, for scale: what a command's check costs;
 *   - NEW's relay-side key agreement on node:crypto (relay-ws/queue-dh.ts) vs noble as before
 *     (core/relay/crypto.ts `newDhKeyPair` + `deriveRcvKey`): `native_vs_noble`;
 *   - a protocol 1.1 authenticator check of a SEND with a 1 KiB body (relay-ws/authenticator.ts,
 *     key already agreed) vs the Ed25519 verification of the same command under 1.0:
 *     `authenticator_vs_verify`; and the once-per-queue-per-connection key agreement.
 * `--json`: the last line is one JSON object; `--quick`: short runs (smoke test only).
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import { nobleCrypto } from "../core/crypto/noble.ts";
import {
  authenticateCommand,
  authPublicKey,
  deriveAuthKey,
  deriveRcvKey,
  newAuthKeyPair,
  newDhKeyPair,
} from "../core/relay/crypto.ts";
import { authInput, encodeCommand } from "../core/relay/protocol.ts";
import { ed25519PublicKey, ed25519Signer } from "../host/node-ed25519.ts";
import { AuthenticatorStats, ConnectionAuthenticator } from "../relay-ws/authenticator.ts";
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

// A SEND of 1 KiB as the relay sees it, authorized both ways by one sender key.
const sender = newAuthKeyPair();
const session = new Uint8Array(randomBytes(32));
const stats = new AuthenticatorStats();
const conn = new ConnectionAuthenticator(session, stats, 1024);
const sendT = encodeCommand({
  k: "SEND",
  i: 7,
  q: new Uint8Array(randomBytes(24)),
  n: new Uint8Array(randomBytes(16)),
  b: new Uint8Array(randomBytes(1024)),
});
const agreed = await deriveAuthKey(nobleCrypto, sender.secretKey, sender.publicKey, conn.publicKey, session);
if (!agreed.ok) throw agreed.error;
const tag = await authenticateCommand(nobleCrypto, agreed.value, sendT);
if (!conn.check("q", sender.publicKey, sendT, tag)) throw new Error("authenticator does not check");
const senderKey = ed25519PublicKey(authPublicKey(sender.secretKey))!;
const sendSig = ed25519Signer(sender.secretKey)(authInput(session, sendT));
const sendVerifies = measure(() => {
  for (let i = 0; i < 100; i++) verify(null, authInput(session, sendT), senderKey, sendSig);
  return 100;
});
const authChecks = measure(() => {
  for (let i = 0; i < 1000; i++) conn.check("q", sender.publicKey, sendT, tag);
  return 1000;
});
let slot = 0;
const agreer = new ConnectionAuthenticator(session, stats, 4);
const agreements = measure(() => {
  for (let i = 0; i < 10; i++) agreer.check(`q${slot++}`, sender.publicKey, sendT, tag);
  return 10;
});
const connectionKeys = measure(() => {
  for (let i = 0; i < 10; i++) new ConnectionAuthenticator(session, stats, 4);
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
      name: "1.1 authenticator check, 1 KiB SEND",
      value: authChecks.perSecond,
      unit: "checks/s",
      baseline: { name: "1.0 Ed25519 verify, same SEND", value: sendVerifies.perSecond },
    },
    {
      name: "1.1 key agreement (first check of a queue on a connection)",
      value: agreements.perSecond,
      unit: "agreements/s",
    },
    { name: "1.1 connection key (per opening)", value: connectionKeys.perSecond, unit: "keys/s" },
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
    authenticator_checks_per_s: authChecks.perSecond,
    send_verifies_per_s: sendVerifies.perSecond,
    authenticator_vs_verify: authChecks.perSecond / sendVerifies.perSecond,
    authenticator_agreements_per_s: agreements.perSecond,
    connection_keys_per_s: connectionKeys.perSecond,
  },
);
