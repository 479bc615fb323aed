/**
 * The named Noise baseline of bench:core: @chainsafe/libp2p-noise (the pinned devDependency, with
 * the crypto it selects by default in Node — node:crypto X25519, SHA-256 and, for messages of
 * 1 200 bytes and more, ChaCha20-Poly1305; bench/README.md). Three subjects:
 *
 *  - `xxStateMachine`: its `XXHandshakeState` (Noise_XX_25519_ChaChaPoly_SHA256) run to the end
 *    between two parties in one process, empty payloads, long-lived static keys — the same work as
 *    Loft's `HandshakeState` with XX. The state machine is not part of the package's public
 *    exports, so its module is loaded by file path next to the resolved entry point; the version
 *    is pinned exactly, and the load fails loudly if the file moves.
 *  - `fullHandshake`: `noise().secureOutbound` / `secureInbound` over two in-memory connected
 *    streams (`multiaddrConnectionPair` of @libp2p/utils, what libp2p-noise's own tests use): the
 *    XX handshake plus its signed libp2p identity payloads (Ed25519 sign and verify per
 *    handshake), protobuf and length-prefix framing — libp2p's complete connection security step.
 *  - `transport`: the two CipherStates a finished handshake splits into, sealing and opening
 *    16 KiB messages as its secured connection does (`encryptWithAd(ZEROLEN, …)`).
 */
import "./promise-with-resolvers.ts";
import type { ICryptoInterface } from "@chainsafe/libp2p-noise";
import { noise } from "@chainsafe/libp2p-noise";
import { defaultCrypto } from "@chainsafe/libp2p-noise/crypto";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { Upgrader } from "@libp2p/interface";
import { defaultLogger } from "@libp2p/logger";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { multiaddrConnectionPair } from "@libp2p/utils";
import type { Subject } from "../harness.ts";

type Bytes = Uint8Array;
/** What a Uint8ArrayList offers that we use; handshake messages are lists of chunks. */
interface ByteList {
  subarray(): Bytes;
}
interface KeyPair {
  publicKey: Bytes;
  privateKey: Bytes;
}
interface CipherState {
  encryptWithAd(ad: Bytes, plaintext: Bytes): Bytes | ByteList;
  decryptWithAd(ad: Bytes, ciphertext: Bytes, dst?: Bytes): Bytes | ByteList;
}
interface XXHandshakeState {
  writeMessageA(payload: Bytes): ByteList;
  writeMessageB(payload: Bytes): ByteList;
  writeMessageC(payload: Bytes): ByteList;
  readMessageA(message: ByteList): ByteList;
  readMessageB(message: ByteList): ByteList;
  readMessageC(message: ByteList): ByteList;
  ss: { split(): [CipherState, CipherState] };
}
interface XXHandshakeInit {
  crypto: unknown;
  protocolName: string;
  initiator: boolean;
  prologue: Bytes;
  s: KeyPair;
}
interface ProtocolModule {
  XXHandshakeState: new (init: XXHandshakeInit) => XXHandshakeState;
  ZEROLEN: Bytes;
}
interface WrapModule {
  wrapCrypto(crypto: ICryptoInterface): unknown;
}

const PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";

/** libp2p-noise's internal modules (protocol.js, crypto.js), next to its public entry point. */
async function internals(): Promise<{ protocol: ProtocolModule; wrapped: unknown }> {
  const entry = import.meta.resolve("@chainsafe/libp2p-noise");
  const protocol = (await import(new URL("./protocol.js", entry).href)) as ProtocolModule;
  const wrap = (await import(new URL("./crypto.js", entry).href)) as WrapModule;
  if (typeof protocol.XXHandshakeState !== "function" || typeof wrap.wrapCrypto !== "function")
    throw new Error("libp2p-noise internals moved: XXHandshakeState / wrapCrypto not found");
  return { protocol, wrapped: wrap.wrapCrypto(defaultCrypto) };
}

export interface Libp2pNoise {
  xxStateMachine: Subject;
  fullHandshake: Subject;
  /** Seals and opens one `messageBytes` message per operation. */
  transport(messageBytes: number): Subject;
}

export async function libp2pNoise(): Promise<Libp2pNoise> {
  const { protocol, wrapped } = await internals();
  const { XXHandshakeState, ZEROLEN } = protocol;
  const initiatorStatic = defaultCrypto.generateX25519KeyPair();
  const responderStatic = defaultCrypto.generateX25519KeyPair();
  const prologue = new Uint8Array(0);

  const stateMachineHandshake = (): [CipherState, CipherState] => {
    const i = new XXHandshakeState({
      crypto: wrapped,
      protocolName: PROTOCOL_NAME,
      initiator: true,
      prologue,
      s: initiatorStatic,
    });
    const r = new XXHandshakeState({
      crypto: wrapped,
      protocolName: PROTOCOL_NAME,
      initiator: false,
      prologue,
      s: responderStatic,
    });
    r.readMessageA(i.writeMessageA(ZEROLEN));
    i.readMessageB(r.writeMessageB(ZEROLEN));
    r.readMessageC(i.writeMessageC(ZEROLEN));
    const [i1] = i.ss.split();
    const [r1] = r.ss.split();
    return [i1, r1];
  };

  // Two libp2p nodes' connection encrypters, created once as a node does at start.
  const upgrader = { getStreamMuxers: () => new Map() } as unknown as Upgrader;
  const node = async () => {
    const privateKey = await generateKeyPair("Ed25519");
    const peerId = peerIdFromPrivateKey(privateKey);
    return { peerId, encrypter: noise()({ privateKey, peerId, logger: defaultLogger(), upgrader }) };
  };
  const dialer = await node();
  const listener = await node();

  return {
    xxStateMachine: {
      name: "libp2p-noise XX (state machine)",
      run: async () => {
        stateMachineHandshake();
        return 1;
      },
    },
    fullHandshake: {
      name: "libp2p-noise secureOutbound/secureInbound",
      run: async () => {
        const [outbound, inbound] = multiaddrConnectionPair();
        const [a, b] = await Promise.all([
          dialer.encrypter.secureOutbound(outbound, {
            remotePeer: listener.peerId,
            skipStreamMuxerNegotiation: true,
          }),
          listener.encrypter.secureInbound(inbound, {
            remotePeer: dialer.peerId,
            skipStreamMuxerNegotiation: true,
          }),
        ]);
        if (!a.remotePeer.equals(listener.peerId) || !b.remotePeer.equals(dialer.peerId))
          throw new Error("libp2p-noise authenticated the wrong peer");
        a.connection.abort(new Error("bench: done"));
        b.connection.abort(new Error("bench: done"));
        return 1;
      },
    },
    transport(messageBytes: number): Subject {
      const [send, receive] = stateMachineHandshake();
      const plaintext = crypto.getRandomValues(new Uint8Array(messageBytes));
      const opened = new Uint8Array(messageBytes);
      // Once, untimed: both sides derived the same keys and a message round-trips intact.
      const sealed = send.encryptWithAd(ZEROLEN, plaintext);
      const back = receive.decryptWithAd(
        ZEROLEN,
        sealed instanceof Uint8Array ? sealed : sealed.subarray(),
        opened,
      );
      const backBytes = back instanceof Uint8Array ? back : back.subarray();
      if (!Buffer.from(backBytes).equals(Buffer.from(plaintext)))
        throw new Error("libp2p-noise transport did not round-trip the message");
      return {
        name: `libp2p-noise transport ${messageBytes / 1024} KiB`,
        run: async () => {
          const sealed = send.encryptWithAd(ZEROLEN, plaintext);
          const ct = sealed instanceof Uint8Array ? sealed : sealed.subarray();
          receive.decryptWithAd(ZEROLEN, ct, opened);
          return 1;
        },
      };
    },
  };
}
