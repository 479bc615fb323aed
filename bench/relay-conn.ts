/**
 * The benches' relay connection: one WebSocket speaking the relay protocol with the hot-frame
 * codecs of bench/relay-wire.ts (docs/protocol/relay.md §Encoding). Shared by bench/relay.ts and
 * bench/scale.ts.
 */
import { createHmac } from "node:crypto";
import WebSocket from "ws";
import { encodeVersionHeader } from "../core/codec/version.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { deriveAuthKey, type KeyPair } from "../core/relay/crypto.ts";
import {
  authInput,
  type Command,
  RELAY_VERSION_AUTHENTICATOR,
  RELAY_VERSION_BATCHED,
  RELAY_VERSION_BUCKETED,
  RELAY_VERSION_SIGNATURE,
  type RelayAuthMode,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { ed25519Signer } from "../host/node-ed25519.ts";
import { decodeHot, encodeFrame, encodeHot } from "./relay-wire.ts";

/** 1.0 signatures, 1.1 authenticators, 1.2 "bucket" (bucketed deliveries), 1.3 "batch" (and batches). */
export type ClientMode = RelayAuthMode | "bucket" | "batch";

/** The authorization of one encoded command (`t`) by one queue key on one connection. */
export type Authorizer = (t: Uint8Array) => Uint8Array;

let nodeCrypto: CryptoProvider | undefined;

export class BenchConn {
  readonly ws: WebSocket;
  sessionId: Uint8Array = new Uint8Array(32);
  connectionKey: Uint8Array | undefined;
  readonly #pending = new Map<number, (f: ServerFrame) => void>();
  #next = 1;
  #stage = 0;
  onPush: ((f: ServerFrame) => void) | undefined;
  readonly ready: Promise<void>;

  constructor(
    url: string,
    readonly auth: ClientMode,
    localAddress?: string,
  ) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    let ready!: () => void;
    let failed!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    this.ws.on("open", () =>
      this.ws.send(
        encodeVersionHeader(
          auth === "signature"
            ? RELAY_VERSION_SIGNATURE
            : auth === "bucket"
              ? RELAY_VERSION_BUCKETED
              : auth === "batch"
                ? RELAY_VERSION_BATCHED
                : RELAY_VERSION_AUTHENTICATOR,
        ),
      ),
    );
    this.ws.on("error", (e) => failed(e));
    this.ws.on("message", (data: Buffer) => {
      if (this.#stage === 0) {
        this.#stage = 1; // the relay's version header
        return;
      }
      const f = decodeHot(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (f.k === "HELLO") {
        this.sessionId = f.s;
        this.connectionKey = f.x;
        ready();
      } else if ("i" in f && f.i !== undefined && this.#pending.has(f.i)) {
        const r = this.#pending.get(f.i)!;
        this.#pending.delete(f.i);
        r(f);
      } else this.onPush?.(f);
    });
  }

  /** How `key` authorizes commands on this connection: a signature (1.0) or an HMAC (1.1). */
  async authorizer(key: KeyPair): Promise<Authorizer> {
    if (this.auth === "signature") {
      const sign = ed25519Signer(key.secretKey);
      return (t) => sign(authInput(this.sessionId, t));
    }
    nodeCrypto ??= await createNodeCryptoProvider();
    const agreed = await deriveAuthKey(
      nodeCrypto,
      key.secretKey,
      key.publicKey,
      this.connectionKey!,
      this.sessionId,
    );
    if (!agreed.ok) throw agreed.error;
    return (t) => createHmac("sha256", agreed.value).update(t).digest();
  }

  request(cmd: Command, authorize?: Authorizer): Promise<ServerFrame> {
    const i = this.#next++;
    const t = encodeHot({ ...cmd, i } as Command);
    this.ws.send(encodeFrame(t, authorize?.(t)));
    return new Promise((resolve) => this.#pending.set(i, resolve));
  }
}

export async function expectOk(p: Promise<ServerFrame>, what: string): Promise<ServerFrame> {
  const f = await p;
  if (f.k === "ERR") throw new Error(`${what}: ${f.e}`);
  return f;
}
