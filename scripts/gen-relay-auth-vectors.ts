/**
 * Generates Loft's vectors for relay protocol 1.1 command authenticators
 * (docs/protocol/relay.md §Command authorization):
 *
 *   docs/vectors/relay-auth-v1.1.json  one connection (session id, the relay's X25519 key pair),
 *                                      one queue key (Ed25519 seed and public key, its X25519
 *                                      scalar and Montgomery u), the DH, the HKDF info and the
 *                                      authentication key, then three commands (NEW, GET, SEND)
 *                                      with their encoded command `t`, authenticator `a` and frame.
 *
 * Every secret is SHA-256("loft/vectors/relay-auth/" ‖ label), truncated, and written into the
 * file. Computed with the core reference (noble); relay-ws/authenticator.test.ts replays the file
 * against the relay's node:crypto code and core on every backend, and checks that this script
 * regenerates it byte for byte.
 *
 *   npx tsx scripts/gen-relay-auth-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-relay-auth-vectors.ts --check  # exit 1 if the committed file differs
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { x25519 } from "@noble/curves/ed25519.js";
import { toHex } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import {
  authDhPublic,
  authDhSecret,
  authenticateCommand,
  authKeyInfo,
  authPublicKey,
  deriveAuthKey,
} from "../core/relay/crypto.ts";
import {
  type Command,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  RELAY_VERSION_AUTHENTICATOR,
} from "../core/relay/protocol.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const RELAY_AUTH_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/relay-auth-v1.1.json", import.meta.url),
);

const det = (label: string, length: number): Uint8Array =>
  new Uint8Array(
    createHash("sha256").update(`loft/vectors/relay-auth/${label}`).digest().subarray(0, length),
  );

export async function buildRelayAuthVectors(): Promise<unknown> {
  const sessionId = det("session id", 32);
  const relaySecret = det("relay connection key", 32);
  const relayPublic = x25519.getPublicKey(relaySecret);
  const seed = det("queue auth key", 32);
  const queuePublic = authPublicKey(seed);
  const scalar = await authDhSecret(nobleCrypto, seed);
  const u = authDhPublic(queuePublic);
  if (!u) throw new Error("queue key has no Montgomery form");
  const shared = x25519.getSharedSecret(relaySecret, u);
  const clientShared = x25519.getSharedSecret(scalar, relayPublic);
  if (toHex(shared) !== toHex(clientShared)) throw new Error("the two sides' DH differ");
  const key = await deriveAuthKey(nobleCrypto, seed, queuePublic, relayPublic, sessionId);
  if (!key.ok) throw key.error;
  const dk = x25519.getPublicKey(det("recipient dh key", 32));
  const commands: Command[] = [
    { k: "NEW", i: 1, rk: queuePublic, dk, sub: true },
    { k: "GET", i: 2, q: det("recipient id", 24) },
    { k: "SEND", i: 3, q: det("sender id", 24), n: det("send id", 16), b: new TextEncoder().encode("hello") },
  ];
  const cases = [];
  for (const command of commands) {
    const t = encodeCommand(command);
    const a = await authenticateCommand(nobleCrypto, key.value, t);
    cases.push({
      command: command.k,
      i: command.i,
      t: toHex(t),
      a: toHex(a),
      frame: toHex(encodeClientFrame(t, a)),
    });
  }
  return {
    description:
      "Loft relay protocol 1.1 command authenticators (docs/protocol/relay.md §Command authorization). " +
      "a = HMAC-SHA256(K, t); K = HKDF-SHA256(ikm = X25519(relay connection key, u), salt = session id, " +
      "info = 'loft-relay/1.1 auth' ‖ X ‖ queue Ed25519 key, L = 32); u = Montgomery form of the queue key; " +
      "the client computes the same DH as X25519(SHA-512(seed)[0..32], X).",
    clientVersionHeader: toHex(encodeVersionHeader(RELAY_VERSION_AUTHENTICATOR)),
    hello: toHex(
      encodeServerFrame({ k: "HELLO", s: sessionId, fl: 65_535, qq: 128, mi: 128, x: relayPublic }),
    ),
    sessionId: toHex(sessionId),
    relayConnectionSecret: toHex(relaySecret),
    relayConnectionKey: toHex(relayPublic),
    queueAuthSeed: toHex(seed),
    queueAuthKey: toHex(queuePublic),
    queueDhScalar: toHex(scalar),
    queueDhU: toHex(u),
    dh: toHex(shared),
    hkdfInfo: toHex(authKeyInfo(relayPublic, queuePublic)),
    authKey: toHex(key.value),
    cases,
  };
}

if (isScript(import.meta.url))
  writeOrCheck([[RELAY_AUTH_VECTOR_FILE, `${JSON.stringify(await buildRelayAuthVectors(), null, 2)}\n`]]);
