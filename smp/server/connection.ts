/**
 * One SMP connection over TLS (docs/protocol/smp.md): the transport handshake, then 16 384-byte
 * blocks of batched transmissions, each command run against the relay's shared store, quotas and
 * subscriptions (relay-ws/context.ts) — the same queues the WebSocket mailbox serves.
 *
 * Order: the transmissions of a connection are handled one after another, in the order they
 * arrived (SMP §"Correlating responses with commands"); answers produced in the same turn are
 * batched into as few blocks as they fit. Limits: the WebSocket mailbox's per-connection token
 * bucket and per-source budgets (relay-ws/source-limits.ts). SMP has no rate error, so a spent
 * command budget is applied as backpressure — the listener stops reading until it refills — and a
 * spent storage budget answers QUOTA (nothing stored, retry later).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { x25519 } from "@noble/curves/ed25519.js";
import { toHex, wipe } from "../../core/bytes.ts";
import { unpadBlock } from "../../core/relay/protocol.ts";
import {
  encodeRcvMsgBody,
  encodeResponse,
  parseCommand,
  type SmpCommand,
  type SmpError,
  type SmpResponse,
} from "../../core/smp/commands.ts";
import { boxKey, boxKeyFromShared, cbVerify, secretboxSeal, verifySignature } from "../../core/smp/crypto.ts";
import { pad } from "../../core/smp/encoding.ts";
import { authKeyFromStore, encodeSpki, type PublicKey, storedAuthKey } from "../../core/smp/keys.ts";
import {
  AUTH_CMDS_VERSION,
  decodeBatch,
  decodeBlock,
  decodeClientHello,
  decodeTransmission,
  encodeBatches,
  encodeBlock,
  encodeServerHello,
  encodeServerTransmission,
  type RawTransmission,
  SMP_BLOCK_SIZE,
  SMP_MAX_MESSAGE_LENGTH,
  type VersionRange,
} from "../../core/smp/transport.ts";
import {
  type ConnectionHandle,
  type HandedOut,
  pushStillWanted,
  type RelayContext,
  type Subscription,
  stillDeliverable,
  takeHandedOut,
} from "../../relay-ws/context.ts";
import { PUSH_HIGH_WATER } from "../../relay-ws/output-budget.ts";
import {
  COST,
  type RelaySource,
  STORED_QUEUE_BYTES,
  storedMessageBytes,
} from "../../relay-ws/source-limits.ts";
import { freshQueueIds } from "../../relay-ws/store/queue-ids.ts";
import type { QueueRecord, StoredMessageMeta } from "../../relay-ws/store/types.ts";
import { type SmpCredentials, signedPublicKey } from "./certs.ts";

/** The queue and message ids the listener draws (as the reference: 24 bytes). */
const ID_BYTES = 24;
/** RcvMsgBody padded size: MaxMessageLen + 16 + 2 (the reference's `MaxRcvMessageLen` padded). */
export const RCV_MSG_PADDED = SMP_MAX_MESSAGE_LENGTH + 16 + 2;
/** Blocks read ahead of the one being handled before the socket is paused. */
const READ_AHEAD_BLOCKS = 4;
/** Longest the listener waits for a spent command budget before it gives up on the client. */
const MAX_BACKPRESSURE_MS = 60_000;

class Refused extends Error {
  constructor(readonly smp: SmpError) {
    super(smp.type);
  }
}
const AUTH: SmpError = { type: "AUTH" };
const cmdError = (
  cmd: "UNKNOWN" | "SYNTAX" | "PROHIBITED" | "NO_AUTH" | "HAS_AUTH" | "NO_ENTITY",
): SmpError => ({
  type: "CMD",
  cmd,
});

export interface SmpConnectionOptions {
  ctx: RelayContext;
  socket: TLSSocket;
  source: RelaySource;
  credentials: SmpCredentials;
  /** The range offered when the client negotiated ALPN `smp/1`; without ALPN, v6 only (as the reference). */
  versions: VersionRange;
  /** A dummy X25519 key for equal work on failed authenticator checks. */
  dummyX25519: Uint8Array;
  /** SMP basic auth: NEW must carry exactly this password (absent: NEW needs none). */
  password?: Uint8Array;
  onClosed: (conn: SmpConnection) => void;
}

/** Handed to the command in hand: who sent it and how it is authorized. */
interface InFlightCommand {
  t: RawTransmission;
  command: SmpCommand;
}

export class SmpConnection implements ConnectionHandle {
  readonly #ctx: RelayContext;
  readonly #socket: TLSSocket;
  readonly #source: RelaySource;
  readonly #opts: SmpConnectionOptions;
  readonly subs = new Map<string, Subscription>();
  /** Messages handed out by GET, not acknowledged, by hex recipient id. */
  readonly #gets = new Map<string, HandedOut>();
  /** Queues read with GET on this connection: SUB on them is prohibited (as the reference). */
  readonly #getMode = new Set<string>();
  readonly #queues = new Set<string>();
  #state: "hello" | "ready" | "closed" = "hello";
  #version = 0;
  readonly sessionId: Uint8Array;
  /** v7: the server's X25519 session key for command authenticators (secret wiped on close). */
  readonly #sessionKey = x25519.utils.randomSecretKey();
  #input: Buffer[] = [];
  #inputBytes = 0;
  readonly #blocks: Uint8Array[] = [];
  #working = false;
  #output: Uint8Array[] = [];
  #flushScheduled = false;
  #tokens: number;
  #refilledAt = performance.now();
  readonly #openingTimer: NodeJS.Timeout;

  constructor(opts: SmpConnectionOptions) {
    this.#opts = opts;
    this.#ctx = opts.ctx;
    this.#socket = opts.socket;
    this.#source = opts.source;
    this.#tokens = opts.ctx.config.rateBurst;
    // tls-unique as the reference takes it: the client's Finished message, in TLS 1.3 too
    // (docs/protocol/smp.md, "Spec and reference").
    // Without one (never after a completed handshake) the hello carries an id no client accepts.
    const finished = this.#socket.getPeerFinished();
    this.sessionId = new Uint8Array(finished ?? randomBytes(32));
    if (!finished) this.#ctx.metrics.errors.inc({ code: "SMP_NO_CHANNEL_BINDING" });
    const alpn = this.#socket.alpnProtocol;
    const versions: VersionRange =
      alpn === "smp/1" ? opts.versions : { min: opts.versions.min, max: opts.versions.min };
    const hello = encodeServerHello({
      versions,
      sessionId: this.sessionId,
      ...(versions.max >= AUTH_CMDS_VERSION
        ? {
            auth: {
              certChain: opts.credentials.chainDer,
              signedKey: signedPublicKey(
                encodeSpki({ alg: "x25519", raw: x25519.getPublicKey(this.#sessionKey) }),
                opts.credentials.onlineKey,
              ),
            },
          }
        : {}),
    });
    this.#offered = versions;
    this.#openingTimer = setTimeout(
      () => this.close(0, "SMP_HANDSHAKE_TIMEOUT"),
      opts.ctx.config.openingTimeoutSeconds * 1000,
    );
    this.#openingTimer.unref();
    this.#socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on("close", () => this.#onClosed());
    this.#socket.on("error", () => this.#socket.destroy());
    this.#socket.on("drain", () => this.#resumePushes());
    this.#write(encodeBlock(hello)!);
  }

  readonly #offered: VersionRange;

  get version(): number {
    return this.#version;
  }

  get inFlight(): number {
    let n = this.#gets.size;
    for (const s of this.subs.values()) n += s.inflight.size;
    return n;
  }

  get congested(): boolean {
    return this.#socket.writableLength > PUSH_HIGH_WATER;
  }

  /** The service tells a moved or deleted subscription END (relay-ws/service.ts). */
  sendFrame(frame: { k: string; q?: Uint8Array }): void {
    if (frame.k === "END" && frame.q) this.#respond(new Uint8Array(0), frame.q, { tag: "END" });
  }

  /** TCP keepalive carries liveness for TLS connections; clients PING (SMP §"Keep-alive"). */
  heartbeat(): void {}

  close(_code: number, reason: string, isError = true): void {
    if (this.#state === "closed") return;
    if (isError) this.#ctx.metrics.errors.inc({ code: reason });
    this.#flush();
    this.#socket.end();
    this.#socket.destroySoon();
    this.#onClosed();
  }

  #onClosed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#openingTimer);
    wipe(this.#sessionKey);
    for (const sub of this.subs.values()) this.#ctx.unsubscribe(sub);
    this.subs.clear();
    for (const g of this.#gets.values()) this.#ctx.store.releaseDeliveries(g.rid, [g.seq]);
    this.#gets.clear();
    this.#input = [];
    this.#blocks.length = 0;
    this.#ctx.connectionClosed(this);
    this.#opts.onClosed(this);
  }

  // ------------------------------------------------------------------------------------------
  // Input: bytes → blocks → transmissions, one at a time

  #onData(chunk: Buffer): void {
    if (this.#state === "closed") return;
    this.#input.push(chunk);
    this.#inputBytes += chunk.length;
    while (this.#inputBytes >= SMP_BLOCK_SIZE) {
      const all = Buffer.concat(this.#input);
      this.#blocks.push(new Uint8Array(all.subarray(0, SMP_BLOCK_SIZE)));
      const rest = all.subarray(SMP_BLOCK_SIZE);
      this.#input = rest.length ? [rest] : [];
      this.#inputBytes = rest.length;
    }
    if (this.#blocks.length > READ_AHEAD_BLOCKS) this.#socket.pause();
    void this.#work();
  }

  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      while (this.#blocks.length > 0 && this.#state !== "closed") {
        const block = this.#blocks.shift()!;
        if (this.#blocks.length <= READ_AHEAD_BLOCKS / 2 && this.#socket.isPaused()) this.#socket.resume();
        if (this.#state === "hello") this.#onHello(block);
        else await this.#onBlock(block);
      }
    } catch (e) {
      this.#ctx.log.error({ err: e }, "smp connection failed");
      this.close(0, "SMP_INTERNAL");
    } finally {
      this.#working = false;
    }
  }

  /** Client hello: version within the offered range and the server identity (CA fingerprint). */
  #onHello(block: Uint8Array): void {
    clearTimeout(this.#openingTimer);
    const content = decodeBlock(block);
    const hello = content ? decodeClientHello(content) : undefined;
    // Handshake failures close the connection (the reference closes it after IDENTITY or VERSION).
    let failure: string | undefined;
    if (!hello) failure = "SMP_HANDSHAKE_PARSE";
    else if (!equalFingerprint(hello.keyHash, this.#opts.credentials.fingerprint))
      failure = "SMP_HANDSHAKE_IDENTITY";
    else if (hello.version < this.#offered.min || hello.version > this.#offered.max) failure = "SMP_VERSION";
    if (failure || !hello) {
      this.close(0, failure ?? "SMP_HANDSHAKE_PARSE");
      return;
    }
    this.#version = hello.version;
    this.#state = "ready";
    this.#ctx.metrics.commands.inc({ command: "SMP_HANDSHAKE", result: `v${hello.version}` });
  }

  async #onBlock(block: Uint8Array): Promise<void> {
    const transmissions = decodeBatch(block);
    if (!transmissions) {
      // A block that does not parse: ERR BLOCK with an empty correlation id; the connection stays.
      this.#respond(new Uint8Array(0), new Uint8Array(0), { tag: "ERR", error: { type: "BLOCK" } });
      return;
    }
    for (const bytes of transmissions) {
      if (this.#state === "closed") return;
      await this.#onTransmission(bytes);
    }
  }

  /**
   * Wait for this connection's token and its source's command budget (backpressure), at most
   * MAX_BACKPRESSURE_MS; a client still over budget then is closed.
   */
  async #budget(cost: number): Promise<boolean> {
    const started = performance.now();
    let pause = 10;
    for (;;) {
      if (this.#state === "closed") return false;
      const now = performance.now();
      if (this.#takeToken(now)) {
        if (this.#source.commands.take(cost, now)) return true;
        this.#tokens += 1; // not spent: the source's budget held it back
      }
      if (now - started > MAX_BACKPRESSURE_MS) {
        this.close(0, "LOFT_ERR_RELAY_SOURCE_RATE");
        return false;
      }
      this.#ctx.metrics.errors.inc({ code: "SMP_BACKPRESSURE" });
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(1000, pause * 2);
    }
  }

  #takeToken(now: number): boolean {
    const { ratePerSecond, rateBurst } = this.#ctx.config;
    if (ratePerSecond === 0) return true;
    this.#tokens = Math.min(rateBurst, this.#tokens + ((now - this.#refilledAt) / 1000) * ratePerSecond);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  async #onTransmission(bytes: Uint8Array): Promise<void> {
    const t = decodeTransmission(bytes, this.#version, this.sessionId);
    // Decoding is cheap; the work after it is charged first (or waited for).
    if (!(await this.#budget(t ? costOf(t.command) : COST.frame))) return;
    if (!t)
      return this.#respond(new Uint8Array(0), new Uint8Array(0), { tag: "ERR", error: { type: "BLOCK" } });
    const err = (e: SmpError, entity: Uint8Array = new Uint8Array(0)) =>
      this.#respond(t.corrId, entity, { tag: "ERR", error: e });
    if (t.sessionId && !equalFingerprint(t.sessionId, this.sessionId)) return err({ type: "SESSION" });
    const a = t.authorization.length;
    // Authorization sizes the reference decodes: none, an Ed25519 or Ed448 signature, an authenticator.
    if (a !== 0 && a !== 64 && a !== 114 && !(a === 80 && this.#version >= AUTH_CMDS_VERSION))
      return err({ type: "BLOCK" });
    const parsed = parseCommand(t.command, this.#version);
    if (!parsed.ok) return err(cmdError(parsed.error));
    const command = parsed.command;
    const credentials = checkCredentials(command, a > 0, t.entityId.length > 0);
    if (credentials) return err(credentials);
    try {
      await this.#dispatch({ t, command });
      this.#ctx.metrics.commands.inc({ command: `SMP_${command.tag}`, result: "ok" });
    } catch (e) {
      if (e instanceof Refused) {
        this.#ctx.metrics.commands.inc({ command: `SMP_${command.tag}`, result: e.smp.type });
        return err(e.smp, t.entityId);
      }
      this.#ctx.log.error({ err: e, command: `SMP_${command.tag}` }, "smp command failed");
      return err({ type: "INTERNAL" }, t.entityId);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Authorization (SMP §"Command authorization"; the reference's verifyCmdAuthorization)

  /**
   * One verification on every path: against the key if there is one of a matching type, else
   * against a dummy key of the authorization's type, so unknown queues and bad signatures cost the same.
   */
  #verified(stored: Uint8Array | PublicKey | undefined, t: RawTransmission): boolean {
    const key = stored instanceof Uint8Array ? authKeyFromStore(stored) : stored;
    const auth = t.authorization;
    if (auth.length === 80) {
      const pub = key?.alg === "x25519" ? key.raw : this.#opts.dummyX25519;
      const box = boxKey(pub, this.#sessionKey);
      const good = box !== undefined && cbVerify(box, t.corrId, auth, t.authorized);
      if (box) wipe(box);
      return good && key?.alg === "x25519";
    }
    if (auth.length === 114) {
      if (key?.alg === "ed448") return verifySignature(key, auth, t.authorized);
      this.#ctx.verifier.verify(undefined, t.authorized, auth.subarray(0, 64));
      return false;
    }
    if (key?.alg === "ed25519")
      return this.#ctx.verifier.verify(key.raw, t.authorized, auth.length ? auth : undefined);
    this.#ctx.verifier.verify(undefined, t.authorized, auth.length ? auth : undefined);
    return false;
  }

  async #recipientQueue(c: InFlightCommand): Promise<QueueRecord> {
    const q = await this.#ctx.store.queueByRecipient(c.t.entityId);
    if (!this.#verified(q?.recipientKey, c.t) || !q) throw new Refused(AUTH);
    return q;
  }

  // ------------------------------------------------------------------------------------------
  // Commands

  async #dispatch(c: InFlightCommand): Promise<void> {
    const { t, command } = c;
    const ok = () => this.#respond(t.corrId, t.entityId, { tag: "OK" });
    switch (command.tag) {
      case "PING":
        return this.#respond(t.corrId, t.entityId, { tag: "PONG" });
      case "NEW":
        return this.#new(c, command);
      case "KEY": {
        const q = await this.#recipientQueue(c);
        if (command.senderKey.alg === "ed25519" && !this.#ctx.verifier.validKey(command.senderKey.raw))
          throw new Refused(AUTH);
        const r = await this.#ctx.store.secureQueue(q.recipientId, storedAuthKey(command.senderKey));
        if (r !== "ok") throw new Refused(AUTH);
        return ok();
      }
      case "SKEY":
        // v9: below it no queue accepts a sender's own key (the reference answers AUTH after a dummy check).
        this.#verified(undefined, t);
        throw new Refused(AUTH);
      case "SEND":
        return this.#send(c, command);
      case "SUB":
        return this.#sub(c);
      case "GET":
        return this.#get(c);
      case "ACK":
        return this.#ack(c, command.msgId);
      case "OFF": {
        const q = await this.#recipientQueue(c);
        await this.#ctx.store.suspendQueue(q.recipientId);
        return ok();
      }
      case "DEL": {
        const q = await this.#recipientQueue(c);
        const hex = toHex(q.recipientId);
        this.#ctx.endSubscription(hex, this);
        this.#ctx.bundles.forget(hex);
        this.#gets.delete(hex);
        this.#getMode.delete(hex);
        this.#queues.delete(hex);
        await this.#ctx.store.deleteQueue(q.recipientId);
        return ok();
      }
    }
  }

  #reserveStorage(bytes: number): void {
    if (bytes > 0 && !this.#source.storage.take(bytes, performance.now()))
      throw new Refused({ type: "QUOTA" });
  }

  async #new(c: InFlightCommand, cmd: Extract<SmpCommand, { tag: "NEW" }>): Promise<void> {
    if (!this.#verified(cmd.rcvAuthKey, c.t)) throw new Refused(AUTH);
    // SMP basic auth (simplexmq rfcs/done/2022-11-11-smp-basic-auth.md): a server with a create
    // password refuses NEW without it as AUTH, after the signature check, in constant time.
    const password = this.#opts.password;
    if (password && !(cmd.basicAuth && equalPassword(cmd.basicAuth, password))) throw new Refused(AUTH);
    if (cmd.rcvDhKey.alg !== "x25519") throw new Refused(cmdError("SYNTAX"));
    if (this.#queues.size >= this.#ctx.config.maxQueuesPerConnection) throw new Refused(AUTH);
    this.#reserveStorage(STORED_QUEUE_BYTES);
    const store = this.#ctx.store;
    try {
      const { recipientId: rid, senderId: sid } = await freshQueueIds(store, ID_BYTES);
      // The server→recipient key: crypto_box_beforenm(X25519(server queue secret, recipient DH key)).
      const secret = x25519.utils.randomSecretKey();
      let shared: Uint8Array | undefined;
      try {
        shared = x25519.getSharedSecret(secret, cmd.rcvDhKey.raw);
      } catch {
        shared = undefined;
      }
      const publicKey = x25519.getPublicKey(secret);
      wipe(secret);
      if (!shared || shared.every((b) => b === 0)) throw new Refused(AUTH);
      const rcvKey = boxKeyFromShared(shared);
      wipe(shared);
      await store.createQueue({
        recipientId: rid,
        senderId: sid,
        recipientKey: storedAuthKey(cmd.rcvAuthKey),
        rcvKey,
        senderKey: undefined,
        suspended: false,
      });
      this.#queues.add(toHex(rid));
      this.#respond(c.t.corrId, new Uint8Array(0), {
        tag: "IDS",
        rcvId: rid,
        sndId: sid,
        srvDhKey: encodeSpki({ alg: "x25519", raw: publicKey }),
      });
      if (cmd.subscribe && this.#state !== "closed") this.#ctx.subscribe(this, rid, rcvKey, 1);
    } catch (e) {
      this.#source.storage.refund(STORED_QUEUE_BYTES);
      throw e;
    }
  }

  async #send(c: InFlightCommand, cmd: Extract<SmpCommand, { tag: "SEND" }>): Promise<void> {
    const q = await this.#ctx.store.queueBySender(c.t.entityId);
    // Secured queue: the sender key must authorize. Unsecured: no authorization allowed.
    const authorized = q?.senderKey
      ? this.#verified(q.senderKey, c.t)
      : !this.#verified(undefined, c.t) && c.t.authorization.length === 0;
    if (!q || !authorized || q.suspended) throw new Refused(AUTH);
    if (cmd.body.length > SMP_MAX_MESSAGE_LENGTH) throw new Refused({ type: "LARGE_MSG" });
    const bytes = storedMessageBytes(cmd.body.length);
    this.#reserveStorage(bytes);
    const now = this.#ctx.clock();
    const result = await this.#ctx.store.append(
      q.recipientId,
      {
        msgId: new Uint8Array(randomBytes(ID_BYTES)),
        // SMP has no send id; a fresh one keeps the store's replay table consistent.
        sendId: new Uint8Array(randomBytes(16)),
        timestamp: Math.floor(now / 1000),
        expiresAt: now + this.#ctx.config.ttlSeconds * 1000,
        body: cmd.body,
      },
      this.#ctx.config.queueQuota,
    );
    if (result !== "ok") this.#source.storage.refund(bytes);
    // "full" (the relay's storage) has no SMP code of its own: QUOTA, nothing stored, retry later.
    if (result === "quota" || result === "full") throw new Refused({ type: "QUOTA" });
    if (result !== "ok") throw new Refused(AUTH);
    this.#respond(c.t.corrId, c.t.entityId, { tag: "OK" });
  }

  async #sub(c: InFlightCommand): Promise<void> {
    const q = await this.#recipientQueue(c);
    const hex = toHex(q.recipientId);
    if (this.#getMode.has(hex)) throw new Refused(cmdError("PROHIBITED"));
    // Queues held by one connection (created or subscribed) are bounded, as over the WebSocket.
    if (!this.#queues.has(hex) && this.#queues.size >= this.#ctx.config.maxQueuesPerConnection)
      throw new Refused(AUTH);
    this.#queues.add(hex);
    this.#respond(c.t.corrId, c.t.entityId, { tag: "OK" });
    // One message at a time until it is acknowledged (SMP §"Subscribe to queue").
    this.#ctx.subscribe(this, q.recipientId, q.rcvKey, 1);
  }

  async #get(c: InFlightCommand): Promise<void> {
    const q = await this.#recipientQueue(c);
    const hex = toHex(q.recipientId);
    if (this.subs.has(hex)) throw new Refused(cmdError("PROHIBITED"));
    this.#getMode.add(hex);
    const previous = this.#gets.get(hex);
    if (previous) {
      this.#gets.delete(hex);
      this.#ctx.store.releaseDeliveries(previous.rid, [previous.seq]);
    }
    let after = -1;
    for (;;) {
      const m = await this.#ctx.store.next(q.recipientId, after);
      if (!m) return this.#respond(c.t.corrId, c.t.entityId, { tag: "OK" });
      after = m.seq;
      // Acknowledged, its deletion not durable yet (relay-ws/service.ts `acknowledge`): not again.
      if (this.#ctx.deletionUnderWay(hex, m.seq)) continue;
      if (await this.#deliverTo(q.recipientId, q.rcvKey, m, c.t.corrId)) {
        this.#gets.set(hex, { seq: m.seq, msgId: toHex(m.msgId), rid: q.recipientId });
        return;
      }
    }
  }

  async #ack(c: InFlightCommand, msgId: Uint8Array): Promise<void> {
    const q = await this.#recipientQueue(c);
    const hex = toHex(q.recipientId);
    const msgHex = toHex(msgId);
    const sub = this.subs.get(hex);
    const seq = takeHandedOut(sub, this.#gets, hex, msgHex);
    if (seq === undefined) throw new Refused({ type: "NO_MSG" });
    const removed = await this.#ctx.acknowledge(q.recipientId, hex, seq, msgId);
    if (!removed) throw new Refused({ type: "NO_MSG" });
    this.#respond(c.t.corrId, c.t.entityId, { tag: "OK" });
    // The next message follows as a push (the reference may instead answer ACK with it; its
    // clients take both — docs/protocol/smp.md, "Spec and reference").
    if (sub) this.#ctx.pump(sub);
  }

  deliver(rid: Uint8Array, rcvKey: Uint8Array, m: StoredMessageMeta, sub: Subscription): Promise<boolean> {
    return this.#deliverTo(rid, rcvKey, m, new Uint8Array(0), sub);
  }

  /**
   * Hand one stored message over: MSG msgId crypto_box(rcvKey, nonce = msgId,
   * pad(timestamp ‖ flags ‖ " " ‖ body, 16 106)). Expired or too often failed: dropped. A body
   * stored over the WebSocket that is longer than SMP's 16 088 bytes cannot be framed here; it is
   * skipped and stays for a WebSocket reader until its TTL.
   */
  async #deliverTo(
    rid: Uint8Array,
    rcvKey: Uint8Array,
    m: StoredMessageMeta,
    corrId: Uint8Array,
    sub?: Subscription,
  ): Promise<boolean> {
    const ctx = this.#ctx;
    if (!(await stillDeliverable(ctx, rid, m))) return false;
    const block = await ctx.store.read(rid, m.seq);
    if (!block) return false;
    // A push always waits here: a SUB again meanwhile (its OK already sent) or the subscription's
    // end leaves it unsent — the new subscription delivers the message again (relay-ws/context.ts
    // `pushStillWanted`).
    if (this.#state === "closed" || (sub && !pushStillWanted(sub, m))) {
      // Handed over by the store (a kept block left its cache): ours to wipe, sent or not — as
      // relay-ws/connection.ts `RelayConnection#deliverBlock`.
      block.fill(0);
      return false;
    }
    // The store may hand a Buffer, whose slice is a view: the block is wiped only once encoded.
    const body = unpadBlock(block);
    if (!body.ok || body.value.length > SMP_MAX_MESSAGE_LENGTH) {
      block.fill(0);
      return false;
    }
    void ctx.store.markDelivered(rid, m.seq);
    const plain = pad(encodeRcvMsgBody(m.timestamp, false, body.value), RCV_MSG_PADDED)!;
    block.fill(0);
    const sealed = secretboxSeal(rcvKey, m.msgId, plain);
    plain.fill(0);
    ctx.metrics.deliveries.inc();
    this.#respond(corrId, rid, { tag: "MSG", msgId: m.msgId, body: sealed });
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // Output: transmissions of one turn batched into blocks

  #respond(corrId: Uint8Array, entityId: Uint8Array, message: SmpResponse): void {
    if (this.#state === "closed") return;
    if (message.tag === "ERR") this.#ctx.metrics.errors.inc({ code: `SMP_${message.error.type}` });
    this.#output.push(
      encodeServerTransmission(this.#version, this.sessionId, corrId, entityId, encodeResponse(message)),
    );
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#output.length === 0) return;
    const { blocks } = encodeBatches(this.#output);
    this.#output = [];
    for (const b of blocks) this.#write(b);
  }

  #write(block: Uint8Array): void {
    if (this.#state === "closed" && block.length === 0) return;
    // A client that does not read its output is cut: what it was sent would queue without bound.
    if (this.#socket.writableLength > this.#ctx.config.sendBufferBytes) {
      this.#ctx.metrics.errors.inc({ code: "LOFT_ERR_RELAY_SLOW_CONSUMER" });
      this.#socket.destroy();
      this.#onClosed();
      return;
    }
    this.#socket.write(block);
  }

  #resumePushes(): void {
    if (this.congested || this.#state === "closed") return;
    for (const sub of this.subs.values()) this.#ctx.pump(sub);
  }
}

/** The reference's checkCredentials: which commands need an authorization and an entity id. */
function checkCredentials(c: SmpCommand, hasAuth: boolean, hasEntity: boolean): SmpError | undefined {
  switch (c.tag) {
    case "NEW":
      if (!hasAuth) return cmdError("NO_AUTH");
      if (hasEntity) return cmdError("HAS_AUTH");
      return undefined;
    case "SEND":
      return hasEntity ? undefined : cmdError("NO_ENTITY");
    case "PING":
      return hasAuth || hasEntity ? cmdError("HAS_AUTH") : undefined;
    default:
      return hasAuth && hasEntity ? undefined : cmdError("NO_AUTH");
  }
}

/**
 * What a command costs, in the WebSocket mailbox's units (relay-ws/source-limits.ts `COST`), from
 * its tag: PING a frame, NEW a queue, DEL the deletion of every message, the rest one signature
 * check and one store operation. Charged before the work, like `commandCost`.
 */
function costOf(command: Uint8Array): number {
  const sp = command.indexOf(0x20);
  const tag = Buffer.from(
    command.subarray(0, sp < 0 ? Math.min(command.length, 8) : Math.min(sp, 8)),
  ).toString("latin1");
  if (tag === "PING") return COST.frame;
  if (tag === "NEW") return COST.frame + COST.signature + COST.newQueue + COST.store;
  if (tag === "KEY") return COST.frame + 2 * COST.signature + COST.store;
  if (tag === "DEL") return COST.frame + COST.signature + COST.deleteQueue;
  return COST.frame + COST.signature + COST.store;
}

function equalFingerprint(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

function equalPassword(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
