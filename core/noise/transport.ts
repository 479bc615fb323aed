/**
 * What a finished Noise handshake hands over: the two CipherStates from `Split()` (Noise
 * Protocol Framework rev 34, §5.2), the handshake hash for channel binding (§11.2), the peer's
 * static key, and one Loft extension — `exportSecret(label)`.
 * https://noiseprotocol.org/noise.html#the-symmetricstate-object
 *
 * Extension (ours, not in the Noise spec): `exportSecret(label)` derives a further 32-byte secret
 * from the final chaining key, for bootstrapping the Double Ratchet (core/ratchet):
 *
 *   exportSecret(label) = HMAC-BLAKE2s(HMAC-BLAKE2s(ck, h ‖ UTF-8(label)), 0x01)
 *
 * i.e. the first output of Noise's HKDF (§4.3) with the final `ck` as chaining key and
 * `h ‖ label` as input key material. Split() uses a zero-length input, so the exported secret is
 * independent of both transport keys; binding `h` ties it to the whole transcript (prologue,
 * every public key and payload). Labels are non-empty; different labels give independent secrets.
 */
import { utf8, wipe } from "../bytes.ts";
import type { CipherState } from "./cipher-state.ts";
import { hkdf } from "./primitives.ts";

export interface NoiseTransportParts {
  protocolName: string;
  send: CipherState;
  receive: CipherState;
  handshakeHash: Uint8Array;
  remoteStaticKey: Uint8Array;
  chainingKey: Uint8Array;
}

export class NoiseTransport {
  readonly protocolName: string;
  /** Encrypts what we send (c1 for the initiator, c2 for the responder; §5.2 Split). */
  readonly send: CipherState;
  /** Decrypts what the peer sends. */
  readonly receive: CipherState;
  readonly #handshakeHash: Uint8Array;
  readonly #remoteStaticKey: Uint8Array;
  #chainingKey: Uint8Array | undefined;

  constructor(parts: NoiseTransportParts) {
    this.protocolName = parts.protocolName;
    this.send = parts.send;
    this.receive = parts.receive;
    this.#handshakeHash = parts.handshakeHash;
    this.#remoteStaticKey = parts.remoteStaticKey;
    this.#chainingKey = parts.chainingKey;
  }

  /** Noise §11.2: `h` after the last handshake message, the same on both sides. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** The peer's static public key `rs`, as authenticated by the handshake. */
  get remoteStaticKey(): Uint8Array {
    return this.#remoteStaticKey.slice();
  }

  /** Our extension (see the file comment): a 32-byte secret bound to `ck`, `h` and `label`. */
  exportSecret(label: string): Uint8Array {
    const ck = this.#chainingKey;
    if (ck === undefined) throw new Error("exportSecret() after wipe()");
    if (label.length === 0) throw new RangeError("exportSecret: label must be non-empty");
    const labelBytes = utf8(label);
    const ikm = new Uint8Array(this.#handshakeHash.length + labelBytes.length);
    ikm.set(this.#handshakeHash);
    ikm.set(labelBytes, this.#handshakeHash.length);
    const [secret] = hkdf(ck, ikm, 1) as [Uint8Array];
    return secret;
  }

  /** Wipe both CipherStates and the chaining key; the transport is unusable afterwards. */
  wipe(): void {
    this.send.wipe();
    this.receive.wipe();
    wipe(this.#chainingKey);
    this.#chainingKey = undefined;
  }
}
