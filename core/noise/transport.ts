/**
 * What a finished Noise handshake hands over: the two CipherStates from `Split()` (Noise
 * Protocol Framework rev 34, §5.2), the handshake hash for channel binding (§11.2), the peer's
 * static key, and one Loft extension — `exportSecret(label)`.
 * https://noiseprotocol.org/noise.html#the-symmetricstate-object
 *
 * Extension (ours, not in the Noise spec): `exportSecret(label)` is a 32-byte secret derived from
 * the final chaining key, for bootstrapping the Double Ratchet (core/ratchet):
 *
 *   exportSecret(label) = HMAC-BLAKE2s(HMAC-BLAKE2s(ck, h ‖ UTF-8(label)), 0x01)
 *
 * i.e. the first output of Noise's HKDF (§4.3) with the final `ck` as chaining key and
 * `h ‖ label` as input key material (so HMAC-SHA256 under `AESGCM_SHA256`: the suite's HMAC). Split() uses a zero-length input, so the exported secret is
 * independent of both transport keys; binding `h` ties it to the whole transcript (prologue,
 * every public key and payload). Labels are non-empty; different labels give independent secrets.
 *
 * The secrets are derived once, at `HandshakeState.finish(exportLabels)`, for the labels named
 * there; the final `ck` is wiped with the handshake state and never reaches the transport, so a
 * later memory disclosure cannot derive further secrets (docs/protocol/session.md §6).
 */
import { wipe } from "../bytes.ts";
import type { CipherState } from "./cipher-state.ts";

export interface NoiseTransportParts {
  protocolName: string;
  send: CipherState;
  receive: CipherState;
  handshakeHash: Uint8Array;
  remoteStaticKey: Uint8Array;
  /** label → exportSecret(label), derived at finish(); owned (and wiped) by the transport. */
  exports: ReadonlyMap<string, Uint8Array>;
}

export class NoiseTransport {
  readonly protocolName: string;
  /** Encrypts what we send (c1 for the initiator, c2 for the responder; §5.2 Split). */
  readonly send: CipherState;
  /** Decrypts what the peer sends. */
  readonly receive: CipherState;
  readonly #handshakeHash: Uint8Array;
  readonly #remoteStaticKey: Uint8Array;
  #exports: Map<string, Uint8Array> | undefined;

  constructor(parts: NoiseTransportParts) {
    this.protocolName = parts.protocolName;
    this.send = parts.send;
    this.receive = parts.receive;
    this.#handshakeHash = parts.handshakeHash;
    this.#remoteStaticKey = parts.remoteStaticKey;
    this.#exports = new Map(parts.exports);
  }

  /** Noise §11.2: `h` after the last handshake message, the same on both sides. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** The peer's static public key `rs`, as authenticated by the handshake. */
  get remoteStaticKey(): Uint8Array {
    return this.#remoteStaticKey.slice();
  }

  /** The labels whose secrets `finish()` derived. */
  get exportLabels(): string[] {
    return [...(this.#exports?.keys() ?? [])];
  }

  /**
   * Our extension (see the file comment): a copy of the 32-byte secret for `label`, which must be
   * one of the labels passed to `finish()` (the chaining key is gone; nothing else can be derived).
   */
  exportSecret(label: string): Uint8Array {
    const exports = this.#exports;
    if (exports === undefined) throw new Error("exportSecret() after wipe()");
    if (label.length === 0) throw new RangeError("exportSecret: label must be non-empty");
    const secret = exports.get(label);
    if (secret === undefined)
      throw new RangeError(`exportSecret: "${label}" was not among the labels derived at finish()`);
    return secret.slice();
  }

  /** Wipe both CipherStates and the exported secrets; the transport is unusable afterwards. */
  wipe(): void {
    this.send.wipe();
    this.receive.wipe();
    if (this.#exports) for (const secret of this.#exports.values()) wipe(secret);
    this.#exports = undefined;
  }
}
