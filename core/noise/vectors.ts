/**
 * Runs Noise test vectors in the cacophony JSON format (as published by cacophony, snow and
 * noise-c) against our handshake and transport code, for the protocol names we implement.
 * Format: https://github.com/haskell-cryptography/cacophony (vectors/cacophony.txt), with the
 * older noise-c field names accepted too (`name` for `protocol_name`, `init_psk` for
 * `init_psks[0]`).
 *
 * Messages alternate sender from the initiator (index 0) on: the first `pattern.messages.length`
 * are handshake messages, the rest transport messages encrypted with the Split() CipherStates
 * and an empty associated data (cacophony's convention).
 *
 * Loft's own vectors (docs/vectors/noise-xxhfs-mlkem768.json) add fields for the randomness a KEM
 * handshake consumes — `init_ephemeral_kem_seed` (64-byte ML-KEM-768 keygen seed for `e1`) and
 * `resp_kem_encapsulation_seed` (32-byte encapsulation randomness for `ekem1`) — and
 * `exported_secrets: [{label, secret}]` for our `exportSecret` extension.
 */
import { equalBytes, fromHex, toHex } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { HandshakeState } from "./handshake-state.ts";
import { type HandshakePattern, patternByName } from "./patterns.ts";
import { keyPairFromPrivate, type NoiseEntropy } from "./primitives.ts";
import type { NoiseTransport } from "./transport.ts";

export type VectorStatus = "passed" | "failed" | "skipped";

export interface VectorOutcome {
  index: number;
  protocolName: string;
  status: VectorStatus;
  /** Why it failed or was skipped. */
  reason?: string;
}

type Json = Record<string, unknown>;

const EMPTY = new Uint8Array(0);

function hexField(v: Json, key: string): Uint8Array | undefined {
  const value = v[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new Error(`${key} is not a hex string`);
  return fromHex(value);
}

function pskField(v: Json, side: "init" | "resp"): Uint8Array | undefined {
  const list = v[`${side}_psks`];
  if (Array.isArray(list)) {
    if (list.length === 0) return undefined;
    if (list.length > 1) throw new Error("more than one psk");
    return fromHex(String(list[0]));
  }
  return hexField(v, `${side}_psk`);
}

/** Entropy that hands out the vector's fixed bytes (fresh copies: the handshake wipes them). */
function fixedEntropy(
  ephemeral: Uint8Array | undefined,
  kemSeed: Uint8Array | undefined,
  kemEncapsulation: Uint8Array | undefined,
): NoiseEntropy {
  const need = (b: Uint8Array | undefined, what: string): Uint8Array => {
    if (b === undefined) throw new Error(`vector has no ${what}`);
    return b.slice();
  };
  return {
    ephemeralPrivateKey: () => need(ephemeral, "ephemeral key"),
    kemKeySeed: () => need(kemSeed, "ML-KEM key seed"),
    kemEncapsulationRandomness: () => need(kemEncapsulation, "ML-KEM encapsulation seed"),
  };
}

async function side(
  v: Json,
  pattern: HandshakePattern,
  role: "init" | "resp",
  crypto: CryptoProvider,
): Promise<HandshakeState> {
  const staticKey = hexField(v, `${role}_static`);
  if (staticKey === undefined) throw new Error(`${role}_static missing`);
  return HandshakeState.create({
    pattern,
    role: role === "init" ? "initiator" : "responder",
    prologue: hexField(v, `${role}_prologue`) ?? EMPTY,
    staticKeyPair: await keyPairFromPrivate(staticKey, crypto),
    crypto,
    ...(pattern.psk ? { psk: pskField(v, role) } : {}),
    entropy: fixedEntropy(
      hexField(v, `${role}_ephemeral`),
      hexField(v, `${role}_ephemeral_kem_seed`),
      hexField(v, `${role}_kem_encapsulation_seed`),
    ),
  });
}

/** Replays one vector; throws (with a message) on the first mismatch. */
async function replay(v: Json, pattern: HandshakePattern, crypto: CryptoProvider): Promise<void> {
  const messages = v.messages;
  if (!Array.isArray(messages)) throw new Error("messages missing");
  const initiator = await side(v, pattern, "init", crypto);
  const responder = await side(v, pattern, "resp", crypto);
  const handshakeLength = pattern.messages.length;
  // Exports are derived at finish() (the chaining key is wiped there): name them up front.
  const exportLabels = Array.isArray(v.exported_secrets)
    ? (v.exported_secrets as Json[]).map((e) => String(e.label))
    : [];
  let transports: [NoiseTransport, NoiseTransport] | undefined;
  for (const [i, m] of (messages as Json[]).entries()) {
    const payload = fromHex(String(m.payload));
    const expected = fromHex(String(m.ciphertext));
    const fromInitiator = i % 2 === 0;
    let ciphertext: Uint8Array;
    let received: Uint8Array;
    if (i < handshakeLength) {
      const [writer, reader] = fromInitiator ? [initiator, responder] : [responder, initiator];
      const written = await writer.writeMessage(payload);
      if (!written.ok) throw new Error(`message ${i}: write failed: ${written.error.message}`);
      ciphertext = written.value;
      if (!equalBytes(ciphertext, expected)) throw new Error(`message ${i}: ciphertext ${toHex(ciphertext)}`);
      const read = await reader.readMessage(ciphertext);
      if (!read.ok) throw new Error(`message ${i}: read failed: ${read.error.message}`);
      received = read.value;
    } else {
      if (transports === undefined) {
        const a = await initiator.finish(exportLabels);
        const b = await responder.finish(exportLabels);
        if (!a.ok || !b.ok) throw new Error("handshake did not complete");
        transports = [a.value, b.value];
      }
      const [writer, reader] = fromInitiator ? transports : [transports[1], transports[0]];
      const sealed = await writer.send.encryptWithAd(EMPTY, payload);
      if (!sealed.ok) throw new Error(`message ${i}: ${sealed.error.message}`);
      ciphertext = sealed.value;
      if (!equalBytes(ciphertext, expected)) throw new Error(`message ${i}: ciphertext ${toHex(ciphertext)}`);
      const opened = await reader.receive.decryptWithAd(EMPTY, ciphertext);
      if (!opened.ok) throw new Error(`message ${i}: ${opened.error.message}`);
      received = opened.value;
    }
    if (!equalBytes(received, payload)) throw new Error(`message ${i}: decrypted payload differs`);
  }
  if (transports === undefined) {
    const a = await initiator.finish(exportLabels);
    const b = await responder.finish(exportLabels);
    if (!a.ok || !b.ok) throw new Error("handshake did not complete");
    transports = [a.value, b.value];
  }
  const [init, resp] = transports;
  if (!equalBytes(init.handshakeHash, resp.handshakeHash)) throw new Error("handshake hashes differ");
  const hh = hexField(v, "handshake_hash");
  if (hh !== undefined && !equalBytes(init.handshakeHash, hh))
    throw new Error(`handshake_hash ${toHex(init.handshakeHash)}`);
  const exported = v.exported_secrets;
  if (Array.isArray(exported)) {
    for (const entry of exported as Json[]) {
      const label = String(entry.label);
      const want = fromHex(String(entry.secret));
      for (const t of transports)
        if (!equalBytes(t.exportSecret(label), want)) throw new Error(`exportSecret(${label}) differs`);
    }
  }
  init.wipe();
  resp.wipe();
}

/**
 * Runs one vector object with `crypto`'s primitives (noble by default); `fail: true` vectors pass
 * when replaying them fails.
 */
export async function runVector(
  vector: unknown,
  index: number,
  crypto: CryptoProvider = nobleCrypto,
): Promise<VectorOutcome> {
  const v = (typeof vector === "object" && vector !== null ? vector : {}) as Json;
  const protocolName = String(v.protocol_name ?? v.name ?? "");
  const pattern = patternByName(protocolName);
  if (pattern === undefined)
    return { index, protocolName, status: "skipped", reason: "protocol not implemented" };
  if (v.init_remote_static !== undefined || v.resp_remote_static !== undefined)
    return { index, protocolName, status: "skipped", reason: "pre-message keys (not used by XX)" };
  const shouldFail = v.fail === true;
  try {
    await replay(v, pattern, crypto);
    return shouldFail
      ? { index, protocolName, status: "failed", reason: "expected failure, but it passed" }
      : { index, protocolName, status: "passed" };
  } catch (e) {
    const reason = (e as Error).message;
    return shouldFail
      ? { index, protocolName, status: "passed" }
      : { index, protocolName, status: "failed", reason };
  }
}

/** Runs every vector of a cacophony-format file (`{"vectors": [...]}` or a bare array). */
export async function runVectorFile(
  json: unknown,
  crypto: CryptoProvider = nobleCrypto,
): Promise<VectorOutcome[]> {
  const list = Array.isArray(json) ? json : (json as Json | null)?.vectors;
  if (!Array.isArray(list)) throw new Error('not a cacophony vector file (no "vectors" array)');
  const outcomes: VectorOutcome[] = [];
  for (const [index, vector] of list.entries()) outcomes.push(await runVector(vector, index, crypto));
  return outcomes;
}
