/**
 * SMP transport (simplexmq `protocol/simplex-messaging.md`, "Transport connection with the SMP
 * server", "SMP Transmission and transport block structure"; the reference's
 * `Simplex.Messaging.Transport` and `tParse`/`tEncode` in `Protocol.hs`): 16 384-byte padded
 * blocks, batched transmissions, the server and client hellos, and the authorized part of a
 * transmission at v6 (session id sent) and v7 (session id implied). Byte-level vectors:
 * docs/protocol/smp.md.
 */
import { pad, Reader, unpad, Writer } from "./encoding.ts";
import { decodeSpki, encodeSpki, type PublicKey } from "./keys.ts";

export const SMP_BLOCK_SIZE = 16_384;
/** v6: commands signed over the session id sent in each transmission. */
export const SMP_VERSION_MIN = 6;
/** v7: session id implied (not sent), X25519 command authenticators. */
export const SMP_VERSION_MAX = 7;
export const AUTH_CMDS_VERSION = 7;
export const SMP_ALPN = "smp/1";
/** Largest SEND body at v6–v10 (the reference's `maxMessageLength`). */
export const SMP_MAX_MESSAGE_LENGTH = 16_088;

export interface VersionRange {
  min: number;
  max: number;
}

export type TransportErrorType = "BLOCK" | "VERSION" | "LARGE_MSG" | "SESSION" | "HANDSHAKE";

// --------------------------------------------------------------------------------------------
// Blocks and batches

/** Pad one encoded block content to 16 384 bytes; undefined if it does not fit. */
export function encodeBlock(content: Uint8Array): Uint8Array | undefined {
  return pad(content, SMP_BLOCK_SIZE);
}

/** The content of a received block, or undefined (wrong size, length header past the end). */
export function decodeBlock(block: Uint8Array): Uint8Array | undefined {
  if (block.length !== SMP_BLOCK_SIZE) return undefined;
  return unpad(block);
}

/** Bytes of transmissions one block holds: 16 384 − 2 (pad length) − 1 (count). */
export const BATCH_CAPACITY = SMP_BLOCK_SIZE - 3;

/**
 * Pack encoded transmissions into as few blocks as they fit in order (count byte, then each as
 * `Large`; at most 255 per block). A transmission that fits no block is returned in `tooLarge`.
 */
export function encodeBatches(transmissions: Uint8Array[]): { blocks: Uint8Array[]; tooLarge: number[] } {
  const blocks: Uint8Array[] = [];
  const tooLarge: number[] = [];
  let current: Uint8Array[] = [];
  let size = 0;
  const flush = () => {
    if (current.length === 0) return;
    const w = new Writer().byte(current.length);
    for (const t of current) w.large(t);
    blocks.push(encodeBlock(w.finish())!);
    current = [];
    size = 0;
  };
  transmissions.forEach((t, i) => {
    const need = t.length + 2;
    if (need > BATCH_CAPACITY) {
      tooLarge.push(i);
      return;
    }
    if (size + need > BATCH_CAPACITY || current.length === 255) flush();
    current.push(t);
    size += need;
  });
  flush();
  return { blocks, tooLarge };
}

/** The transmissions of one batched block; undefined if the block is malformed (BLOCK). */
export function decodeBatch(block: Uint8Array): Uint8Array[] | undefined {
  const content = decodeBlock(block);
  if (!content) return undefined;
  const r = new Reader(content);
  const n = r.byte();
  if (n === undefined || n === 0) return undefined;
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const t = r.large();
    if (!t) return undefined;
    out.push(t);
  }
  // The reference parses the count and the transmissions and ignores nothing after them inside
  // the unpadded content: extra bytes there are a malformed block.
  return r.done ? out : undefined;
}

// --------------------------------------------------------------------------------------------
// Handshake

export interface ServerHello {
  versions: VersionRange;
  sessionId: Uint8Array;
  /** From v7 (when the range's max is ≥ 7): the TLS certificate chain (DER each) and the signed session key. */
  auth?: { certChain: Uint8Array[]; signedKey: Uint8Array };
}

/**
 * serverHello = smpVersionRange sessionIdentifier [certChain signedServerKey]. The key part
 * follows the reference, not the spec's grammar (docs/protocol/smp.md, "Spec and reference"):
 * the chain is a 1-byte count of `Large` DER certificates, the signed key a `Large` DER of an
 * X.509 SignedExact SubjectPublicKeyInfo.
 */
export function encodeServerHello(h: ServerHello): Uint8Array {
  const w = new Writer().word16(h.versions.min).word16(h.versions.max).shortString(h.sessionId);
  if (h.auth && h.versions.max >= AUTH_CMDS_VERSION) {
    w.byte(h.auth.certChain.length);
    for (const c of h.auth.certChain) w.large(c);
    w.large(h.auth.signedKey);
  }
  return w.finish();
}

export function decodeServerHello(content: Uint8Array): ServerHello | undefined {
  const r = new Reader(content);
  const min = r.word16();
  const max = r.word16();
  const sessionId = r.shortString();
  if (min === undefined || max === undefined || !sessionId || min > max) return undefined;
  const hello: ServerHello = { versions: { min, max }, sessionId };
  if (max >= AUTH_CMDS_VERSION && !r.done) {
    const n = r.byte();
    if (!n) return undefined;
    const certChain: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const c = r.large();
      if (!c) return undefined;
      certChain.push(c);
    }
    const signedKey = r.large();
    if (!signedKey) return undefined;
    hello.auth = { certChain, signedKey };
  }
  return hello;
}

export interface ClientHello {
  version: number;
  /** SHA-256 of the server's offline CA certificate (the server identity). */
  keyHash: Uint8Array;
  /** v7: the client's X25519 session key (used by proxies for block encryption from v11). */
  authKey?: PublicKey;
}

/** clientHello = smpVersion keyHash [clientKey] ignoredPart (the reference sends keyHash; the spec omits it). */
export function encodeClientHello(h: ClientHello): Uint8Array {
  const w = new Writer().word16(h.version).shortString(h.keyHash);
  if (h.version >= AUTH_CMDS_VERSION && h.authKey) w.shortString(encodeSpki(h.authKey));
  return w.finish();
}

export function decodeClientHello(content: Uint8Array): ClientHello | undefined {
  const r = new Reader(content);
  const version = r.word16();
  const keyHash = r.shortString();
  if (version === undefined || !keyHash) return undefined;
  const hello: ClientHello = { version, keyHash };
  if (version >= AUTH_CMDS_VERSION && !r.done) {
    // `optional smpP` in the reference: a key that does not parse is an ignored part.
    const at = r.shortString();
    const key = at ? decodeSpki(at) : undefined;
    if (key?.alg === "x25519") hello.authKey = key;
  }
  return hello;
}

// --------------------------------------------------------------------------------------------
// Transmissions

export interface RawTransmission {
  /** Signature or authenticator; empty when absent. */
  authorization: Uint8Array;
  /** The bytes the authorization covers (at v7 with the session id prefixed as a shortString). */
  authorized: Uint8Array;
  /** v6 only: the session id the transmission carries. */
  sessionId?: Uint8Array;
  corrId: Uint8Array;
  entityId: Uint8Array;
  command: Uint8Array;
}

/**
 * transmission = authorization [sessionId] corrId entityId command. Undefined when the bytes do
 * not parse (the reference answers BLOCK with an empty correlation id).
 */
export function decodeTransmission(
  t: Uint8Array,
  version: number,
  sessionId: Uint8Array,
): RawTransmission | undefined {
  const r = new Reader(t);
  const authorization = r.shortString();
  if (!authorization) return undefined;
  const rest = t.subarray(r.pos);
  const implied = version >= AUTH_CMDS_VERSION;
  let sent: Uint8Array | undefined;
  if (!implied) {
    sent = r.shortString();
    if (!sent) return undefined;
  }
  const corrId = r.shortString();
  const entityId = r.shortString();
  if (!corrId || !entityId) return undefined;
  const command = r.tail();
  const authorized = implied ? new Writer().shortString(sessionId).bytes(rest).finish() : rest;
  return {
    authorization,
    authorized,
    ...(sent ? { sessionId: sent } : {}),
    corrId,
    entityId,
    command,
  };
}

/** The authorized part of a transmission as a client signs it (session id prefixed at v7, sent at v6). */
export function authorizedPart(
  version: number,
  sessionId: Uint8Array,
  corrId: Uint8Array,
  entityId: Uint8Array,
  command: Uint8Array,
): { forAuth: Uint8Array; toSend: Uint8Array } {
  const body = new Writer().shortString(corrId).shortString(entityId).bytes(command).finish();
  const forAuth = new Writer().shortString(sessionId).bytes(body).finish();
  return { forAuth, toSend: version >= AUTH_CMDS_VERSION ? body : forAuth };
}

/** One transmission: authorization ‖ authorized part as sent. */
export function encodeTransmission(authorization: Uint8Array, toSend: Uint8Array): Uint8Array {
  return new Writer().shortString(authorization).bytes(toSend).finish();
}

/** A server's transmission (never authorized): session id at v6, none at v7. */
export function encodeServerTransmission(
  version: number,
  sessionId: Uint8Array,
  corrId: Uint8Array,
  entityId: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  const { toSend } = authorizedPart(version, sessionId, corrId, entityId, message);
  return encodeTransmission(new Uint8Array(0), toSend);
}
