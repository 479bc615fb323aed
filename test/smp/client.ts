/**
 * An SMP client written for the tests from the SMP specification (simplexmq
 * `protocol/simplex-messaging.md`) and, where the two disagree, the reference implementation
 * (docs/protocol/smp.md, "Spec and reference") — on purpose without any code of the listener or of
 * core/smp, so that a mistake made on both sides the same way is unlikely to pass unnoticed. Its
 * own byte layouts, its own HSalsa20, its own certificate checks.
 *
 * Connects over real TLS, checks the server identity (SHA-256 of the CA certificate in the chain
 * equals the `smp://` address's fingerprint, the online certificate is signed by that CA, and the
 * hello's session id is the TLS channel binding), then speaks v6 or v7.
 */
import { createHash, X509Certificate } from "node:crypto";
import { connect, type TLSSocket } from "node:tls";
import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { ed448 } from "@noble/curves/ed448.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";

export const BLOCK = 16384;

// ---------------------------------------------------------------------------------------------
// Bytes

export const bytes = (...parts: (Uint8Array | number[] | string)[]): Uint8Array =>
  new Uint8Array(
    Buffer.concat(
      parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p as Uint8Array))),
    ),
  );
/** shortString: one length byte and the bytes. */
export const short = (b: Uint8Array): Uint8Array => bytes([b.length], b);
const w16 = (n: number) => [n >> 8, n & 255];
/** paddedString: Word16 length, the string, "#" up to `size`. */
export function padded(s: Uint8Array, size = BLOCK): Uint8Array {
  const out = Buffer.alloc(size, "#");
  out.writeUInt16BE(s.length, 0);
  Buffer.from(s).copy(out, 2);
  return new Uint8Array(out);
}
export function unpadded(b: Uint8Array): Uint8Array {
  const n = (b[0]! << 8) | b[1]!;
  if (n > b.length - 2) throw new Error("bad padding");
  return b.subarray(2, 2 + n);
}

// SubjectPublicKeyInfo DER prefixes (RFC 8410).
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");
export const spkiEd25519 = (raw: Uint8Array) => bytes(ED25519_SPKI, raw);
export const spkiX25519 = (raw: Uint8Array) => bytes(X25519_SPKI, raw);
export const spkiEd448 = (raw: Uint8Array) => bytes(Buffer.from("3043300506032b6571033a00", "hex"), raw);

// ---------------------------------------------------------------------------------------------
// NaCl crypto_box (HSalsa20 written here from the Salsa20 specification)

function rotl(v: number, c: number): number {
  return ((v << c) | (v >>> (32 - c))) >>> 0;
}

/** HSalsa20(key, 16-byte input): the Salsa20 core without the final addition, words 0,5,10,15,6..9. */
export function hsalsa20(key: Uint8Array, input: Uint8Array): Uint8Array {
  const k = new DataView(key.buffer, key.byteOffset, 32);
  const n = new DataView(input.buffer, input.byteOffset, 16);
  const c = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];
  const x = [
    c[0]!,
    k.getUint32(0, true),
    k.getUint32(4, true),
    k.getUint32(8, true),
    k.getUint32(12, true),
    c[1]!,
    n.getUint32(0, true),
    n.getUint32(4, true),
    n.getUint32(8, true),
    n.getUint32(12, true),
    c[2]!,
    k.getUint32(16, true),
    k.getUint32(20, true),
    k.getUint32(24, true),
    k.getUint32(28, true),
    c[3]!,
  ];
  const qr = (a: number, b: number, cc: number, d: number) => {
    x[b] = (x[b]! ^ rotl((x[a]! + x[d]!) >>> 0, 7)) >>> 0;
    x[cc] = (x[cc]! ^ rotl((x[b]! + x[a]!) >>> 0, 9)) >>> 0;
    x[d] = (x[d]! ^ rotl((x[cc]! + x[b]!) >>> 0, 13)) >>> 0;
    x[a] = (x[a]! ^ rotl((x[d]! + x[cc]!) >>> 0, 18)) >>> 0;
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12);
    qr(5, 9, 13, 1);
    qr(10, 14, 2, 6);
    qr(15, 3, 7, 11);
    qr(0, 1, 2, 3);
    qr(5, 6, 7, 4);
    qr(10, 11, 8, 9);
    qr(15, 12, 13, 14);
  }
  const out = Buffer.alloc(32);
  for (const [i, idx] of [0, 5, 10, 15, 6, 7, 8, 9].entries()) out.writeUInt32LE(x[idx]!, i * 4);
  return new Uint8Array(out);
}

export const boxBeforeNm = (pub: Uint8Array, priv: Uint8Array) =>
  hsalsa20(x25519.getSharedSecret(priv, pub), new Uint8Array(16));

export function boxOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  return xsalsa20poly1305(key, nonce).decrypt(sealed);
}

// ---------------------------------------------------------------------------------------------
// Server address

export interface SmpAddress {
  fingerprint: Uint8Array;
  host: string;
  port: number;
}

export function parseAddress(address: string): SmpAddress {
  const m = /^smp:\/\/([A-Za-z0-9_-]+={0,2})@([^:/]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`not an smp:// address: ${address}`);
  return { fingerprint: new Uint8Array(Buffer.from(m[1]!, "base64url")), host: m[2]!, port: Number(m[3]) };
}

// ---------------------------------------------------------------------------------------------
// Transmissions

export interface Response {
  corrId: Uint8Array;
  entityId: Uint8Array;
  /** The command word and its raw parameters ("IDS", "MSG", "OK", "ERR", "END", "PONG"). */
  tag: string;
  params: Uint8Array;
}

export interface Signer {
  /** Ed25519 secret key: a signature. */
  ed25519?: Uint8Array;
  /** Ed448 secret key (57 bytes): a 114-byte signature. */
  ed448?: Uint8Array;
  /** X25519 secret key: a v7 crypto_box authenticator with the server's session key. */
  x25519?: Uint8Array;
  /** Exact authorization bytes to send (malformed-input tests). */
  raw?: Uint8Array;
}

export interface ClientOptions {
  /** Highest version to agree (default: the top of the server's range). */
  version?: number;
  /** Offer ALPN smp/1 (default true). */
  alpn?: boolean;
  /** Connect here instead of the address's host (the tests' loopback). */
  connectHost?: string;
  /** Client hello key hash to send instead of the address's fingerprint (identity tests). */
  keyHash?: Uint8Array;
  /** Send this version in the hello whatever the server offered (version tests). */
  forceVersion?: number;
  /** Cap TLS at 1.2 (constrained clients). */
  tls12?: boolean;
}

export class SmpTestClient {
  readonly pushes: Response[] = [];
  readonly #pending = new Map<string, { resolve: (r: Response) => void; reject: (e: Error) => void }>();
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(
    readonly socket: TLSSocket,
    readonly version: number,
    readonly sessionId: Uint8Array,
    readonly serverRange: [number, number],
    /** v7: the server's session X25519 key from the hello (after its signature was checked). */
    readonly serverSessionKey: Uint8Array | undefined,
  ) {
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("close", () => {
      this.closed = true;
      for (const p of this.#pending.values()) p.reject(new Error("connection closed"));
      this.#pending.clear();
      this.#wake();
    });
  }

  static async connect(address: string, options: ClientOptions = {}): Promise<SmpTestClient> {
    const a = parseAddress(address);
    const socket = connect({
      host: options.connectHost ?? a.host,
      port: a.port,
      servername: a.host === "localhost" ? undefined : undefined,
      rejectUnauthorized: false, // the chain is checked below against the address's fingerprint
      ...(options.tls12 ? { maxVersion: "TLSv1.2" as const, ciphers: "ECDHE-ECDSA-CHACHA20-POLY1305" } : {}),
      ...(options.alpn === false ? {} : { ALPNProtocols: ["smp/1"] }),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    // Identity: the chain is [online, CA]; the CA's certificate hash is the fingerprint.
    const leaf = socket.getPeerCertificate(true);
    const ca = leaf.issuerCertificate;
    if (!ca?.raw || ca === leaf) throw new Error("server sent no CA certificate");
    const caHash = createHash("sha256").update(ca.raw).digest();
    if (!caHash.equals(Buffer.from(a.fingerprint)))
      throw new Error("CA fingerprint does not match the address");
    const leafX = new X509Certificate(leaf.raw);
    const caX = new X509Certificate(ca.raw);
    if (!leafX.verify(caX.publicKey)) throw new Error("online certificate not signed by the CA");
    const tlsUnique = socket.getFinished();
    if (!tlsUnique) throw new Error("no TLS Finished message");
    // Server hello.
    const hello = unpadded(await readBlock(socket));
    const min = (hello[0]! << 8) | hello[1]!;
    const max = (hello[2]! << 8) | hello[3]!;
    const sidLen = hello[4]!;
    const sessionId = hello.subarray(5, 5 + sidLen);
    if (!Buffer.from(sessionId).equals(tlsUnique))
      throw new Error("session id is not the TLS channel binding");
    let at = 5 + sidLen;
    let serverSessionKey: Uint8Array | undefined;
    if (max >= 7 && at < hello.length) {
      const count = hello[at++]!;
      const chain: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const len = (hello[at]! << 8) | hello[at + 1]!;
        chain.push(Buffer.from(hello.subarray(at + 2, at + 2 + len)));
        at += 2 + len;
      }
      if (!chain[0]?.equals(leaf.raw) || !chain[1]?.equals(ca.raw))
        throw new Error("hello chain is not the TLS chain");
      const len = (hello[at]! << 8) | hello[at + 1]!;
      const signed = Buffer.from(hello.subarray(at + 2, at + 2 + len));
      serverSessionKey = checkSignedKey(signed, leafX);
    }
    const version = options.forceVersion ?? Math.min(max, options.version ?? max);
    if (version < min && options.forceVersion === undefined)
      throw new Error(`no common version (server ${min}-${max})`);
    const clientHello = bytes(w16(version), short(options.keyHash ?? a.fingerprint));
    socket.write(padded(clientHello));
    return new SmpTestClient(socket, version, new Uint8Array(sessionId), [min, max], serverSessionKey);
  }

  #onData(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= BLOCK) {
      const block = new Uint8Array(this.#buffer.subarray(0, BLOCK));
      this.#buffer = this.#buffer.subarray(BLOCK);
      const content = unpadded(block);
      const count = content[0]!;
      let at = 1;
      for (let i = 0; i < count; i++) {
        const len = (content[at]! << 8) | content[at + 1]!;
        this.#onTransmission(content.subarray(at + 2, at + 2 + len));
        at += 2 + len;
      }
    }
  }

  #onTransmission(t: Uint8Array): void {
    let at = 0;
    const field = () => {
      const n = t[at]!;
      const v = t.subarray(at + 1, at + 1 + n);
      at += 1 + n;
      return v;
    };
    const auth = field();
    if (auth.length !== 0) throw new Error("server transmission with an authorization");
    if (this.version < 7) {
      const sid = field();
      if (!Buffer.from(sid).equals(Buffer.from(this.sessionId)))
        throw new Error("server sent another session id");
    }
    const corrId = field();
    const entityId = field();
    const cmd = t.subarray(at);
    const sp = cmd.indexOf(0x20);
    const r: Response = {
      corrId: new Uint8Array(corrId),
      entityId: new Uint8Array(entityId),
      tag: Buffer.from(sp < 0 ? cmd : cmd.subarray(0, sp)).toString("latin1"),
      params: new Uint8Array(sp < 0 ? new Uint8Array(0) : cmd.subarray(sp + 1)),
    };
    const key = Buffer.from(corrId).toString("hex");
    const waiting = corrId.length ? this.#pending.get(key) : undefined;
    if (waiting) {
      this.#pending.delete(key);
      waiting.resolve(r);
    } else this.pushes.push(r);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** One transmission of this connection (its version and session). */
  transmission(corrId: Uint8Array, entityId: Uint8Array, command: Uint8Array, signer?: Signer): Uint8Array {
    return clientTransmission(
      this.version,
      this.sessionId,
      corrId,
      entityId,
      command,
      signer,
      this.serverSessionKey,
    );
  }

  /** Send transmissions in one block (a batch) and wait for their answers. */
  async batch(items: { entityId: Uint8Array; command: Uint8Array; signer?: Signer }[]): Promise<Response[]> {
    const waits: Promise<Response>[] = [];
    const ts: Uint8Array[] = [];
    for (const it of items) {
      const corrId = new Uint8Array(24);
      crypto.getRandomValues(corrId);
      waits.push(this.#await(corrId));
      ts.push(this.transmission(corrId, it.entityId, it.command, it.signer));
    }
    this.sendTransmissions(ts);
    return Promise.all(waits);
  }

  command(entityId: Uint8Array, command: Uint8Array, signer?: Signer): Promise<Response> {
    return this.batch([{ entityId, command, ...(signer ? { signer } : {}) }]).then((r) => r[0]!);
  }

  #await(corrId: Uint8Array): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error("connection closed"));
      this.#pending.set(Buffer.from(corrId).toString("hex"), { resolve, reject });
    });
  }

  /** Await an answer to a correlation id sent by `sendRaw`. */
  answerTo(corrId: Uint8Array): Promise<Response> {
    return this.#await(corrId);
  }

  /** Send transmissions batched: as many per block as fit (count byte, Word16-prefixed each, ≤ 255). */
  sendTransmissions(ts: Uint8Array[]): void {
    let group: Uint8Array[] = [];
    let size = 3; // pad length + count
    const flush = () => {
      if (group.length === 0) return;
      this.socket.write(padded(bytes([group.length], ...group.map((t) => bytes(w16(t.length), t)))));
      group = [];
      size = 3;
    };
    for (const t of ts) {
      if (size + 2 + t.length > BLOCK || group.length === 255) flush();
      group.push(t);
      size += 2 + t.length;
    }
    flush();
  }

  /** Write raw bytes (malformed-block tests). */
  sendRaw(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Wait until a push matches, bounded in time. */
  async nextPush(match: (r: Response) => boolean = () => true, timeoutMs = 10_000): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.pushes.findIndex(match);
      if (i >= 0) return this.pushes.splice(i, 1)[0]!;
      if (this.closed) throw new Error("connection closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no matching push");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Wait for the server to close the connection, bounded in time. */
  async waitClosed(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * transmission = authorization authorized (SMP §"SMP Transmission and transport block structure"):
 * the authorization covers shortString(sessionId) ‖ shortString(corrId) ‖ shortString(entityId) ‖
 * command; v6 sends that whole part, v7 leaves the session id out (implied).
 */
export function clientTransmission(
  version: number,
  sessionId: Uint8Array,
  corrId: Uint8Array,
  entityId: Uint8Array,
  command: Uint8Array,
  signer?: Signer,
  serverSessionKey?: Uint8Array,
): Uint8Array {
  const body = bytes(short(corrId), short(entityId), command);
  const forAuth = bytes(short(sessionId), body);
  const sent = version >= 7 ? body : forAuth;
  let auth: Uint8Array = new Uint8Array(0);
  if (signer?.raw) auth = signer.raw;
  else if (signer?.ed25519) auth = ed25519.sign(forAuth, signer.ed25519);
  else if (signer?.ed448) auth = ed448.sign(forAuth, signer.ed448);
  else if (signer?.x25519) {
    if (!serverSessionKey) throw new Error("no server session key (v6)");
    // SMP §"Command authorization" (v7): crypto_box(SHA-512(authorized)), nonce = correlation id.
    const key = boxBeforeNm(serverSessionKey, signer.x25519);
    auth = xsalsa20poly1305(key, corrId).encrypt(sha512(forAuth));
  }
  return bytes(short(auth), sent);
}

/** The signed session key of the v7 hello: SEQUENCE { SPKI, AlgorithmIdentifier, BIT STRING }. */
function checkSignedKey(der: Buffer, leaf: X509Certificate): Uint8Array {
  // The SPKI is the first element: 30 2a … (44 bytes) right after the outer header.
  const headerLen = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
  const spki = der.subarray(headerLen, headerLen + 44);
  if (!spki.subarray(0, 12).equals(X25519_SPKI)) throw new Error("signed key is not X25519");
  const sigStart = der.length - 64;
  if (der[sigStart - 3] !== 0x03 || der[sigStart - 2] !== 0x41 || der[sigStart - 1] !== 0x00)
    throw new Error("signed key: bad signature encoding");
  const sig = der.subarray(sigStart);
  const leafRaw = leaf.publicKey.export({ format: "der", type: "spki" }).subarray(12);
  if (!ed25519.verify(sig, spki, leafRaw)) throw new Error("signed key not signed by the online certificate");
  return new Uint8Array(spki.subarray(12));
}

async function readBlock(socket: TLSSocket): Promise<Uint8Array> {
  let buf = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= BLOCK) {
        socket.off("data", onData);
        const rest = buf.subarray(BLOCK);
        if (rest.length) socket.unshift(rest);
        resolve(new Uint8Array(buf.subarray(0, BLOCK)));
      }
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error("closed before the server hello")));
  });
}

// ---------------------------------------------------------------------------------------------
// Commands (SMP §"SMP commands", v6–v8 forms)

export const cmd = {
  ping: () => bytes("PING"),
  /**
   * NEW rcvAuthKey rcvDhKey ["A" basicAuth] subscribeMode ("S" subscribe now, "C" create only);
   * `basicAuth` is the server password (simplexmq rfcs/done/2022-11-11-smp-basic-auth.md).
   */
  new: (
    rcvAuth: Uint8Array,
    rcvDh: Uint8Array,
    subscribe = false,
    authKeyType: "ed25519" | "x25519" | "ed448" = "ed25519",
    basicAuth?: string,
  ) =>
    bytes(
      "NEW ",
      short({ ed25519: spkiEd25519, x25519: spkiX25519, ed448: spkiEd448 }[authKeyType](rcvAuth)),
      short(spkiX25519(rcvDh)),
      basicAuth === undefined ? "" : bytes("A", short(bytes(basicAuth))),
      subscribe ? "S" : "C",
    ),
  key: (senderKey: Uint8Array) => bytes("KEY ", short(spkiEd25519(senderKey))),
  send: (body: Uint8Array, notify = false) => bytes("SEND ", notify ? "T" : "F", " ", body),
  sub: () => bytes("SUB"),
  get: () => bytes("GET"),
  ack: (msgId: Uint8Array) => bytes("ACK ", short(msgId)),
  off: () => bytes("OFF"),
  del: () => bytes("DEL"),
};

/** IDS rcvId sndId srvDhKey (v6–v8). */
export function parseIds(params: Uint8Array): { rcvId: Uint8Array; sndId: Uint8Array; srvDh: Uint8Array } {
  let at = 0;
  const field = () => {
    const n = params[at]!;
    const v = params.subarray(at + 1, at + 1 + n);
    at += 1 + n;
    return new Uint8Array(v);
  };
  const rcvId = field();
  const sndId = field();
  const srvDhDer = field();
  if (!Buffer.from(srvDhDer.subarray(0, 12)).equals(X25519_SPKI))
    throw new Error("srvDh is not an X25519 SPKI");
  return { rcvId, sndId, srvDh: srvDhDer.subarray(12) };
}

/** MSG msgId encryptedBody → the message, opened with the queue's crypto_box key. */
export function openMsg(
  params: Uint8Array,
  boxKey: Uint8Array,
): { msgId: Uint8Array; timestamp: number; notify: boolean; body: Uint8Array } {
  const n = params[0]!;
  const msgId = params.subarray(1, 1 + n);
  const sealed = params.subarray(1 + n);
  const plain = unpadded(boxOpen(boxKey, msgId, sealed));
  const ts = Number(Buffer.from(plain.subarray(0, 8)).readBigInt64BE());
  const flag = String.fromCharCode(plain[8]!);
  if (plain[9] !== 0x20) throw new Error("no space after the flags");
  return {
    msgId: new Uint8Array(msgId),
    timestamp: ts,
    notify: flag === "T",
    body: new Uint8Array(plain.subarray(10)),
  };
}

export const text = (r: Response) =>
  `${r.tag}${r.params.length ? ` ${Buffer.from(r.params).toString("latin1")}` : ""}`;
