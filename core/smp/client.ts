/**
 * A client-side SMP session (docs/protocol/smp.md, "The bridge"; simplexmq
 * `protocol/simplex-messaging.md`): the handshake, commands built and signed here, answers
 * matched by correlation id, pushed `MSG`s opened with the queue's crypto_box key. It runs in the
 * browser over the relay's bridge (bridge-link.ts) — every queue key and message key stays in
 * this object; what leaves it is what an SMP server sees. Pure and isomorphic: it speaks to a
 * `BlockSink` and is fed blocks by whoever carries them.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex, wipe } from "../bytes.ts";
import {
  encodeCommand,
  encodeError,
  parseResponse,
  type SmpCommand,
  type SmpError,
  type SmpResponse,
} from "./commands.ts";
import { boxKey, cbAuthenticate, cbNonce, secretboxOpen } from "./crypto.ts";
import { Reader, unpad } from "./encoding.ts";
import { decodeSpki, SPKI_PREFIX } from "./keys.ts";
import {
  AUTH_CMDS_VERSION,
  authorizedPart,
  decodeBatch,
  decodeBlock,
  decodeServerHello,
  decodeTransmission,
  encodeBatches,
  encodeBlock,
  encodeClientHello,
  encodeTransmission,
  SMP_MAX_MESSAGE_LENGTH,
  SMP_VERSION_MAX,
  SMP_VERSION_MIN,
} from "./transport.ts";

export type SmpClientErrorCode =
  /** The bridge refused or ended the connection (`bridgeError` says why). */
  | "BRIDGE"
  /** No SMP version in common, or a hello that does not parse. */
  | "VERSION"
  /** The server's hello names another identity than the address's fingerprint. */
  | "IDENTITY"
  /** The server answered `ERR` (`smpError`). */
  | "SMP"
  /** A block or an answer that does not parse. */
  | "MALFORMED"
  | "TIMEOUT"
  | "CLOSED";

export class SmpClientError extends Error {
  override name = "SmpClientError";
  constructor(
    readonly code: SmpClientErrorCode,
    message: string,
    readonly detail?: { smpError?: SmpError; bridgeError?: string },
  ) {
    super(message);
  }
}

/** How a command is authorized: an Ed25519 secret signs; `{ x25519 }` makes a v7 authenticator. */
export type CommandAuth = Uint8Array | { x25519: Uint8Array };

/** Where the session's blocks go (the bridge link, a TLS socket in Node). */
export interface BlockSink {
  send(block: Uint8Array): void;
  close(): void;
}

/** A queue this client created: its ids and the secrets that never leave the client. */
export interface SmpQueue {
  rcvId: Uint8Array;
  sndId: Uint8Array;
  /** Secret of the recipient key (authorizes KEY, SUB, ACK, GET, OFF, DEL). */
  rcvAuthSecret: Uint8Array;
  /**
   * `ed25519`: commands are signed (readable over the WebSocket mailbox too). `x25519` (v7):
   * commands carry crypto_box authenticators with the server's session key — deniable, as SMP
   * v7 intends, and SMP-only (docs/protocol/smp.md, "Keys in the shared store").
   */
  rcvAuthAlg: "ed25519" | "x25519";
  /** crypto_box key of the server→recipient layer (HSalsa20 of X25519(rcvDh, srvDh)). */
  rcvBoxKey: Uint8Array;
}

export interface SmpMessage {
  msgId: Uint8Array;
  /** Seconds since the epoch, as the server stamped it. */
  timestamp: number;
  notification: boolean;
  body: Uint8Array;
}

export type SmpPush =
  | { tag: "MSG"; rcvId: Uint8Array; message: SmpMessage }
  | { tag: "END"; rcvId: Uint8Array }
  /** A MSG that did not open with the queue's key (not the server's, or corrupted). */
  | { tag: "UNREADABLE"; rcvId: Uint8Array };

export interface SmpClientOptions {
  /** How long an answer may take before the command fails with TIMEOUT (default 30 s). */
  timeoutMs?: number;
  /** The server's password for NEW (SMP basic auth, from the address's `fp:password@`). */
  password?: Uint8Array;
}

/** One SMP connection after the handshake. */
export class SmpClient {
  readonly #sink: BlockSink;
  readonly #pending = new Map<
    string,
    { resolve: (r: SmpResponse) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
  readonly #queues = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(p: SmpPush) => void>();
  readonly #timeoutMs: number;
  readonly #password: Uint8Array | undefined;
  #closed: SmpClientError | undefined;
  #ended!: (why: SmpClientError) => void;
  /** Resolves once the session has ended (the carrier closed, a protocol failure, `close`), with why. */
  readonly done: Promise<SmpClientError> = new Promise((resolve) => {
    this.#ended = resolve;
  });
  #outbox: Uint8Array[] = [];

  private constructor(
    sink: BlockSink,
    readonly version: number,
    readonly sessionId: Uint8Array,
    /** v7: the server's X25519 session key from its hello, signed by its online certificate. */
    readonly serverSessionKey: Uint8Array | undefined,
    options: SmpClientOptions,
  ) {
    this.#sink = sink;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#password = options.password?.slice();
  }

  /**
   * Answer the server's hello (its first block): agree the highest version both serve, check the
   * identity the hello carries (v7: the CA certificate of its chain hashes to `fingerprint`), and
   * send the client hello naming `fingerprint`.
   */
  static handshake(
    sink: BlockSink,
    helloBlock: Uint8Array,
    fingerprint: Uint8Array,
    options: SmpClientOptions = {},
  ): SmpClient {
    const content = decodeBlock(helloBlock);
    const hello = content ? decodeServerHello(content) : undefined;
    if (!hello) throw new SmpClientError("VERSION", "the server hello does not parse");
    const version = Math.min(hello.versions.max, SMP_VERSION_MAX);
    if (version < hello.versions.min || version < SMP_VERSION_MIN)
      throw new SmpClientError(
        "VERSION",
        `no SMP version in common: server ${hello.versions.min}–${hello.versions.max}, client ${SMP_VERSION_MIN}–${SMP_VERSION_MAX}`,
      );
    let serverSessionKey: Uint8Array | undefined;
    if (hello.auth) {
      const [online, ca] = hello.auth.certChain;
      if (!online || !ca || !equalBytes(sha256(ca), fingerprint))
        throw new SmpClientError(
          "IDENTITY",
          "the hello's CA certificate does not match the address's fingerprint",
        );
      serverSessionKey = verifiedSessionKey(online, ca, hello.auth.signedKey);
      if (!serverSessionKey)
        throw new SmpClientError(
          "IDENTITY",
          "the hello's session key is not signed by the server's certificates",
        );
    }
    const block = encodeBlock(encodeClientHello({ version, keyHash: fingerprint }));
    sink.send(block!);
    return new SmpClient(
      sink,
      version,
      hello.sessionId.slice(),
      version >= AUTH_CMDS_VERSION ? serverSessionKey : undefined,
      options,
    );
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Pushes (MSG, END) for queues this client reads. */
  onPush(listener: (p: SmpPush) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A block from the server. A malformed one closes the session (the transport is not trusted to resync). */
  receive(block: Uint8Array): void {
    if (this.#closed) return;
    const ts = decodeBatch(block);
    if (!ts) {
      this.fail(new SmpClientError("MALFORMED", "the server sent a malformed block"));
      return;
    }
    for (const t of ts) {
      const raw = decodeTransmission(t, this.version, this.sessionId);
      const response = raw ? parseResponse(raw.command) : undefined;
      if (
        !raw ||
        !response ||
        raw.authorization.length !== 0 ||
        (raw.sessionId && !equalBytes(raw.sessionId, this.sessionId))
      ) {
        this.fail(new SmpClientError("MALFORMED", "the server sent a malformed transmission"));
        return;
      }
      const waiting = raw.corrId.length ? this.#pending.get(toHex(raw.corrId)) : undefined;
      if (waiting) {
        this.#pending.delete(toHex(raw.corrId));
        clearTimeout(waiting.timer);
        waiting.resolve(response);
      } else this.#push(raw.entityId, response);
    }
  }

  #push(entityId: Uint8Array, r: SmpResponse): void {
    let push: SmpPush | undefined;
    if (r.tag === "END") push = { tag: "END", rcvId: entityId.slice() };
    else if (r.tag === "MSG") {
      const key = this.#queues.get(toHex(entityId));
      const message = key ? openMessage(key, r.msgId, r.body) : undefined;
      push = message
        ? { tag: "MSG", rcvId: entityId.slice(), message }
        : { tag: "UNREADABLE", rcvId: entityId.slice() };
    }
    if (push) for (const l of this.#listeners) l(push);
  }

  /** The carrier ended (or a protocol failure): every waiting command fails with `error`. */
  fail(error: SmpClientError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.#pending.clear();
    for (const k of this.#queues.values()) wipe(k);
    this.#queues.clear();
    this.#sink.close();
    this.#ended(error);
  }

  close(): void {
    this.fail(new SmpClientError("CLOSED", "closed by this client"));
  }

  /** Send one command and wait for its answer; `ERR` rejects with code SMP. */
  async command(entityId: Uint8Array, command: SmpCommand, signWith?: CommandAuth): Promise<SmpResponse> {
    if (this.#closed) throw this.#closed;
    const corrId = randomBytes(24);
    const { forAuth, toSend } = authorizedPart(
      this.version,
      this.sessionId,
      corrId,
      entityId,
      encodeCommand(command),
    );
    const authorization = this.#authorize(signWith, corrId, forAuth);
    const transmission = encodeTransmission(authorization, toSend);
    if (encodeBatches([transmission]).tooLarge.length)
      throw new SmpClientError("SMP", "the command does not fit a block", {
        smpError: { type: "LARGE_MSG" },
      });
    const answer = new Promise<SmpResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(toHex(corrId));
        reject(new SmpClientError("TIMEOUT", `no answer to ${command.tag}`));
      }, this.#timeoutMs);
      this.#pending.set(toHex(corrId), { resolve, reject, timer });
    });
    this.#enqueue(transmission);
    const r = await answer;
    if (r.tag === "ERR")
      throw new SmpClientError("SMP", `${command.tag}: ERR ${encodeError(r.error)}`, { smpError: r.error });
    return r;
  }

  /**
   * Commands issued in the same turn share blocks (SMP batches up to 255 transmissions in one
   * block): 32 pipelined SENDs cross the bridge as a few blocks, not 32.
   */
  #enqueue(transmission: Uint8Array): void {
    this.#outbox.push(transmission);
    if (this.#outbox.length > 1) return;
    queueMicrotask(() => {
      const batch = this.#outbox;
      this.#outbox = [];
      if (this.#closed) return;
      for (const b of encodeBatches(batch).blocks) this.#sink.send(b);
    });
  }

  #authorize(auth: CommandAuth | undefined, corrId: Uint8Array, forAuth: Uint8Array): Uint8Array {
    if (!auth) return new Uint8Array(0);
    if (auth instanceof Uint8Array) return ed25519.sign(forAuth, auth);
    if (!this.serverSessionKey)
      throw new SmpClientError("VERSION", "X25519 authenticators need SMP v7 and the server's session key");
    const key = boxKey(this.serverSessionKey, auth.x25519);
    if (!key) throw new SmpClientError("MALFORMED", "the server's session key is not usable");
    try {
      return cbAuthenticate(key, corrId, forAuth);
    } finally {
      wipe(key);
    }
  }

  async #expect(entityId: Uint8Array, command: SmpCommand, tag: SmpResponse["tag"], signWith?: CommandAuth) {
    const r = await this.command(entityId, command, signWith);
    if (r.tag !== tag) throw new SmpClientError("MALFORMED", `${command.tag} answered ${r.tag}`);
    return r;
  }

  async ping(): Promise<void> {
    await this.#expect(new Uint8Array(0), { tag: "PING" }, "PONG");
  }

  /**
   * NEW: a queue whose recipient key (Ed25519) and DH key (X25519) are made here; `subscribe`
   * subscribes this connection at once (`S`), as SUB would.
   */
  async createQueue(subscribe = true, auth: SmpQueue["rcvAuthAlg"] = "ed25519"): Promise<SmpQueue> {
    if (auth === "x25519" && !this.serverSessionKey)
      throw new SmpClientError("VERSION", "X25519 recipient keys need SMP v7");
    const rcvAuthSecret =
      auth === "x25519" ? x25519.utils.randomSecretKey() : ed25519.utils.randomSecretKey();
    const rcvDhSecret = x25519.utils.randomSecretKey();
    try {
      const r = await this.#expect(
        new Uint8Array(0),
        {
          tag: "NEW",
          rcvAuthKey:
            auth === "x25519"
              ? { alg: "x25519", raw: x25519.getPublicKey(rcvAuthSecret) }
              : { alg: "ed25519", raw: ed25519.getPublicKey(rcvAuthSecret) },
          rcvDhKey: { alg: "x25519", raw: x25519.getPublicKey(rcvDhSecret) },
          // SMP basic auth: the server's password, only ever in NEW.
          ...(this.#password ? { basicAuth: this.#password } : {}),
          subscribe,
        },
        "IDS",
        auth === "x25519" ? { x25519: rcvAuthSecret } : rcvAuthSecret,
      );
      if (r.tag !== "IDS") throw new SmpClientError("MALFORMED", "NEW answered without ids");
      const srvDh = decodeSpki(r.srvDhKey);
      const rcvBoxKey = srvDh?.alg === "x25519" ? boxKey(srvDh.raw, rcvDhSecret) : undefined;
      if (!rcvBoxKey) throw new SmpClientError("MALFORMED", "IDS carries no usable server DH key");
      const q: SmpQueue = {
        rcvId: r.rcvId.slice(),
        sndId: r.sndId.slice(),
        rcvAuthSecret,
        rcvAuthAlg: auth,
        rcvBoxKey,
      };
      // The session keeps its own copy: it wipes it on close, and the caller's queue outlives it.
      this.#queues.set(toHex(q.rcvId), rcvBoxKey.slice());
      return q;
    } finally {
      wipe(rcvDhSecret);
    }
  }

  /** Read pushes of a queue made elsewhere (its keys restored) on this connection. */
  adopt(q: SmpQueue): void {
    this.#queues.get(toHex(q.rcvId))?.fill(0);
    this.#queues.set(toHex(q.rcvId), q.rcvBoxKey.slice());
  }

  /** KEY: only the holder of `senderKey`'s secret may SEND from now on. */
  async secure(q: SmpQueue, senderKey: Uint8Array): Promise<void> {
    await this.#expect(
      q.rcvId,
      { tag: "KEY", senderKey: { alg: "ed25519", raw: senderKey } },
      "OK",
      recipientAuth(q),
    );
  }

  /** SEND to a sender id, signed when the queue is secured (`senderSecret`). */
  async send(sndId: Uint8Array, body: Uint8Array, senderSecret?: Uint8Array): Promise<void> {
    if (body.length > SMP_MAX_MESSAGE_LENGTH)
      throw new SmpClientError("SMP", `body of ${body.length} bytes`, { smpError: { type: "LARGE_MSG" } });
    await this.#expect(sndId, { tag: "SEND", notification: false, body }, "OK", senderSecret);
  }

  async subscribe(q: SmpQueue): Promise<void> {
    this.adopt(q);
    await this.#expect(q.rcvId, { tag: "SUB" }, "OK", recipientAuth(q));
  }

  async ack(q: SmpQueue, msgId: Uint8Array): Promise<void> {
    await this.#expect(q.rcvId, { tag: "ACK", msgId }, "OK", recipientAuth(q));
  }

  async deleteQueue(q: SmpQueue): Promise<void> {
    await this.#expect(q.rcvId, { tag: "DEL" }, "OK", recipientAuth(q));
    this.#queues.get(toHex(q.rcvId))?.fill(0);
    this.#queues.delete(toHex(q.rcvId));
  }
}

function recipientAuth(q: SmpQueue): CommandAuth {
  return q.rcvAuthAlg === "x25519" ? { x25519: q.rcvAuthSecret } : q.rcvAuthSecret;
}

// ---------------------------------------------------------------------------------------------
// The v7 hello's signed session key (docs/protocol/smp.md, "Blocks and the handshake"): the
// online certificate signs the key, the CA signs the online certificate. Ed25519 certificates
// only (what the reference makes and this listener serves); anything else is refused.

const SIGNATURE_TAIL = Uint8Array.of(0x03, 0x41, 0x00);

/** A DER TLV's header and content lengths at `at`; undefined past the end or for a long form over 3 bytes. */
function tlv(der: Uint8Array, at: number): { header: number; length: number } | undefined {
  const first = der[at + 1];
  if (first === undefined) return undefined;
  if (first < 0x80) return { header: 2, length: first };
  const n = first & 0x7f;
  if (n === 0 || n > 3 || at + 2 + n > der.length) return undefined;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + der[at + 2 + i]!;
  return { header: 2 + n, length };
}

/** The raw Ed25519 key of a certificate's subject (the one Ed25519 SPKI in it). */
function ed25519KeyOf(cert: Uint8Array): Uint8Array | undefined {
  const prefix = SPKI_PREFIX.ed25519;
  for (let i = 0; i + 44 <= cert.length; i++)
    if (equalBytes(cert.subarray(i, i + 12), prefix)) return cert.subarray(i + 12, i + 44);
  return undefined;
}

/** SEQUENCE { signed, AlgorithmIdentifier, BIT STRING (64-byte Ed25519 signature) } → its parts. */
function signedParts(der: Uint8Array): { signed: Uint8Array; signature: Uint8Array } | undefined {
  const outer = tlv(der, 0);
  if (der[0] !== 0x30 || !outer || outer.header + outer.length !== der.length || der.length < 67)
    return undefined;
  const inner = tlv(der, outer.header);
  if (!inner || outer.header + inner.header + inner.length > der.length - 67) return undefined;
  const signed = der.subarray(outer.header, outer.header + inner.header + inner.length);
  if (!equalBytes(der.subarray(der.length - 67, der.length - 64), SIGNATURE_TAIL)) return undefined;
  return { signed, signature: der.subarray(der.length - 64) };
}

function verifies(signature: Uint8Array, message: Uint8Array, key: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, key);
  } catch {
    return false;
  }
}

/** The server's X25519 session key, if the CA signed the online certificate and that signed the key. */
export function verifiedSessionKey(
  online: Uint8Array,
  ca: Uint8Array,
  signedKey: Uint8Array,
): Uint8Array | undefined {
  const caKey = ed25519KeyOf(ca);
  const onlineKey = ed25519KeyOf(online);
  const cert = signedParts(online);
  const key = signedParts(signedKey);
  if (!caKey || !onlineKey || !cert || !key) return undefined;
  if (!verifies(cert.signature, cert.signed, caKey) || !verifies(key.signature, key.signed, onlineKey))
    return undefined;
  const sessionKey = decodeSpki(key.signed);
  return sessionKey?.alg === "x25519" ? sessionKey.raw : undefined;
}

/** Open a delivered MSG body: crypto_box(rcvBoxKey, nonce = msgId) → padded RcvMsgBody. */
export function openMessage(key: Uint8Array, msgId: Uint8Array, sealed: Uint8Array): SmpMessage | undefined {
  const opened = secretboxOpen(key, cbNonce(msgId), sealed);
  const plain = opened ? unpad(opened) : undefined;
  if (!plain) return undefined;
  const r = new Reader(plain);
  const ts = r.take(8);
  const flag = r.byte();
  if (!ts || (flag !== 0x54 && flag !== 0x46) || !r.expect(0x20)) return undefined;
  const view = new DataView(ts.buffer, ts.byteOffset, 8);
  const timestamp = Number(view.getBigInt64(0));
  return { msgId: msgId.slice(), timestamp, notification: flag === 0x54, body: r.tail().slice() };
}
