/**
 * Replays docs/vectors/relay-auth-v1.1.json (docs/protocol/relay.md §Command authorization) through
 * a crypto provider: the client's side of a 1.1 authenticator — X25519 scalar from the seed, the
 * DH with the relay's connection key, the HKDF-derived key and the HMAC of each command — and the
 * relay's side of the DH from the Montgomery form of the queue key. Isomorphic, so the same file
 * runs on every backend in Node (test/vectors/backends.test.ts) and in Chromium
 * (test/e2e/crypto-backends.e2e.ts). Returns "passed" or the first field that differs.
 */
import { fromHex, toHex } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { authDhPublic, authDhSecret, authenticateCommand, deriveAuthKey } from "./crypto.ts";
import { encodeClientFrame } from "./protocol.ts";

export interface RelayAuthVectorFile {
  sessionId: string;
  relayConnectionSecret: string;
  relayConnectionKey: string;
  queueAuthSeed: string;
  queueAuthKey: string;
  queueDhScalar: string;
  queueDhU: string;
  dh: string;
  authKey: string;
  cases: { command: string; t: string; a: string; frame: string }[];
}

export async function replayRelayAuthVectors(
  v: RelayAuthVectorFile,
  crypto: CryptoProvider,
): Promise<string> {
  const seed = fromHex(v.queueAuthSeed);
  if (toHex(await crypto.ed25519.publicKey(seed)) !== v.queueAuthKey) return "queue auth key";
  if (toHex(await authDhSecret(crypto, seed)) !== v.queueDhScalar) return "queue dh scalar";
  const u = authDhPublic(fromHex(v.queueAuthKey));
  if (!u || toHex(u) !== v.queueDhU) return "queue dh u";
  const relaySecret = fromHex(v.relayConnectionSecret);
  if (toHex(await crypto.x25519.publicKey(relaySecret)) !== v.relayConnectionKey)
    return "relay connection key";
  const relaySide = await crypto.x25519.sharedSecret(relaySecret, u);
  if (!relaySide || toHex(relaySide) !== v.dh) return "relay's dh";
  const key = await deriveAuthKey(
    crypto,
    seed,
    fromHex(v.queueAuthKey),
    fromHex(v.relayConnectionKey),
    fromHex(v.sessionId),
  );
  if (!key.ok || toHex(key.value) !== v.authKey) return "auth key";
  for (const c of v.cases) {
    const a = await authenticateCommand(crypto, key.value, fromHex(c.t));
    if (toHex(a) !== c.a) return `${c.command}: authenticator`;
    if (toHex(encodeClientFrame(fromHex(c.t), a)) !== c.frame) return `${c.command}: frame`;
  }
  return "passed";
}
