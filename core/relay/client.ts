/**
 * The relay client state machine the PWA uses (docs/protocol/relay.md): version header, HELLO,
 * then SMP-like queue commands correlated by request id, over any `Link` (a WebSocket in the
 * browser — see ws-link.ts —, a memory link in tests).
 *
 * Follows SMP v9 (simplexmq protocol/simplex-messaging.md §SMP commands) for the command set:
 * NEW/KEY/SKEY/SEND/SUB/GET/ACK/OFF/DEL, plus PING and prekey bundles (PKSET/PKGET). Every
 * recipient command is authorized by the queue's recipient key for this connection only: by
 * default (protocol 1.1) with an HMAC-SHA256 authenticator under a key agreed once per queue per
 * connection (SMP v7's scheme; docs/protocol/relay.md §Command authorization), or (1.0) with an
 * Ed25519 signature over the session id. Either way a captured command does not authorize
 * anything on another connection, and under 1.1 not twice on the same one. Pushed messages
 * are decrypted (server→recipient layer) and handed to `onMessage`; they are removed from the
 * relay only when the application calls `ack`. Under 1.3 (`batch: true`) the `send`s and `ack`s
 * of one queue issued in the same tick share a SENDS / ACKS frame, and pushed MSGS frames are
 * handed on message by message (docs/protocol/relay.md §Batches); each call still settles on its
 * own message's result.
 *
 * All failures surface as `LoftError` with a stable code; nothing else is thrown for bad input.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { toHex, wipe } from "../bytes.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider, KeyedHmac } from "../crypto/provider.ts";
import { detailOf, isLoftError, LoftError, type Result } from "../errors.ts";
import type { Link } from "../link/link.ts";
import {
  authPublicKey,
  commandAuthenticator,
  deriveAuthKey,
  deriveRcvKey,
  newAuthKeyPair,
  newDhKeyPair,
  type OpenedMessage,
  openFromRelay,
  openFromRelayWith,
  signCommand,
} from "./crypto.ts";
import { codeForWire } from "./errors.ts";
import {
  type Command,
  DEFAULT_FRAME_LIMIT,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  MAX_BATCH,
  MAX_BODY,
  RELAY_VERSION_AUTHENTICATOR,
  RELAY_VERSION_BATCHED,
  RELAY_VERSION_BUCKETED,
  RELAY_VERSION_SIGNATURE,
  type RelayAuthMode,
  type RelayDeliveryPadding,
  SEND_ID_LENGTH,
  type ServerFrame,
  type ServerFrameOf,
  unknownServerError,
} from "./protocol.ts";

/** Everything the recipient keeps about one of its queues (store it encrypted). */
export interface RecipientQueue {
  recipientId: Uint8Array;
  senderId: Uint8Array;
  /** Ed25519 secret key signing recipient commands. */
  recipientAuthSecret: Uint8Array;
  /** Server→recipient key derived from the per-queue DH (secret; the DH secret itself is wiped). */
  rcvKey: Uint8Array;
}

/** What a sender needs to send into a queue (sender id from the invitation, its own key). */
export interface SenderQueue {
  senderId: Uint8Array;
  /** Ed25519 secret key signing SEND once the queue is secured; absent before. */
  senderAuthSecret?: Uint8Array;
}

export interface RelayMessage {
  recipientId: Uint8Array;
  msgId: Uint8Array;
  /** Seconds since the epoch when the relay accepted it. */
  timestamp: number;
  body: Uint8Array;
}

export interface PrekeyFetch {
  bundle: Uint8Array;
  oneTimePrekey?: Uint8Array;
}

export interface RelayHello {
  sessionId: Uint8Array;
  frameLimit: number;
  queueQuota: number;
  maxInFlight: number;
  /** Protocol 1.1: the relay's X25519 key for this connection (authenticators are agreed with it). */
  connectionKey?: Uint8Array;
}

export interface RelayClientOptions {
  /**
   * How commands are authorized: "authenticator" (default; SREMP 1.1, an HMAC per command under a
   * key agreed once per queue per connection) or "signature" (SREMP 1.0, an Ed25519 signature per
   * command — what clients before 1.1 do; relays serve both).
   */
  auth?: RelayAuthMode;
  /**
   * How deliveries are padded: "block" (default; every message one 16 KiB block, so its size is
   * hidden on the relay→recipient side) or "bucket" (SREMP 1.2, authenticators only: the body's
   * size bucket, 256 B to 16 KiB — up to 64× fewer bytes to receive and decrypt; the relay must
   * serve 1.2). docs/protocol/relay.md §Versions, docs/decisions.md (Relay), "Bucketed deliveries".
   */
  delivery?: RelayDeliveryPadding;
  /**
   * SREMP 1.3 (needs `delivery: "bucket"`): SENDs to one queue issued in the same tick leave in
   * one SENDS frame, ACKs of one queue in one ACKS frame, and the relay pushes a burst of one
   * queue in MSGS frames — one authenticator, one commit and one answer per batch
   * (docs/protocol/relay.md §Batches). Each `send`/`ack` still settles on its own message's result.
   */
  batch?: boolean;
  /** Primitives for the authenticators (default: noble; the app passes its provider). */
  crypto?: CryptoProvider;
  /** Reject a request with LOFT_ERR_TIMEOUT after this long (default 30 s; 0 disables). */
  timeoutMs?: number;
  /**
   * The opening fails with LOFT_ERR_TIMEOUT when the link is still connecting (a WebSocket whose
   * upgrade is unanswered) after this long, whatever `timeoutMs` says; absent or 0: only
   * `timeoutMs` bounds the opening. A browser holds every other WebSocket to the host while one
   * is connecting (RFC 6455 §4.1), so this bounds how long a stuck opening holds them
   * (docs/decisions.md (Relay), "A relay socket's opening has its own bound").
   */
  openTimeoutMs?: number;
  /** Pushed messages (after a SUB), already decrypted. Call `ack` once stored. */
  onMessage?: (message: RelayMessage) => void;
  /** A pushed frame that could not be used: undecryptable MSG, uncorrelated ERR, … */
  onError?: (error: LoftError) => void;
  /** The subscription of a queue ended (another connection subscribed, or the queue was deleted). */
  onEnd?: (recipientId: Uint8Array) => void;
  /**
   * A command was answered UNAVAILABLE: this relay instance cannot reach its shared store (Redis)
   * right now (docs/operations.md, "Redis down: one rule"). The command itself is rejected as
   * usual; this lets the owner of the connection leave the instance.
   */
  onUnavailable?: () => void;
}

/** A SEND or ACK waiting for the end of the tick to share a frame with others of its queue (1.3). */
interface Corked {
  /** Queue id (sid for SENDs, rid for ACKs) and the key that authorizes the frame. */
  q: Uint8Array;
  authKey: Uint8Array | undefined;
  /** SENDs: [send id, body]; ACKs: the message id. */
  items: {
    entry: [Uint8Array, Uint8Array] | Uint8Array;
    resolve: () => void;
    reject: (e: LoftError) => void;
  }[];
}

type Pending = {
  resolve: (frame: ServerFrame) => void;
  reject: (error: LoftError) => void;
  timer: unknown;
};

/**
 * A link failure as LOFT_ERR_LINK_CLOSED: the link's own LINK_CLOSED keeps its words, not a doubled
 * code; another LoftError keeps its code after ours. A link is any `Link` (core/link/link.ts): what
 * it throws need not be an Error (`detailOf`).
 */
const linkClosed = (cause: unknown) =>
  new LoftError(
    "LOFT_ERR_LINK_CLOSED",
    isLoftError(cause) && cause.code !== "LOFT_ERR_LINK_CLOSED" ? cause.message : detailOf(cause, "the link"),
  );

export class RelayClient {
  readonly hello: RelayHello;
  readonly #link: Link;
  readonly #options: RelayClientOptions;
  readonly #pending = new Map<number, Pending>();
  /** rcv keys of queues whose messages may arrive on this connection, by recipient id (hex). */
  readonly #queues = new Map<string, Uint8Array>();
  /** Per-queue handlers of pushed messages (instead of `onMessage`), by recipient id (hex). */
  readonly #handlers = new Map<string, (message: RelayMessage) => void>();
  #nextId = 1;
  /** 1.3: SENDs and ACKs issued this tick, by kind ‖ queue id (hex); flushed in a microtask. */
  #corked: Map<string, Corked> | undefined;
  /**
   * Authentication keys of this connection, by the auth secret they belong to (1.1), each as a
   * keyed HMAC handle (core/crypto/provider.ts `KeyedHmac`): imported once, not per command.
   */
  readonly #authKeys = new WeakMap<Uint8Array, Promise<KeyedHmac>>();
  /**
   * Frames leave in request-id order: under 1.1 the relay refuses an authenticated command whose
   * id is not above the previous one's, and authenticators are computed asynchronously.
   */
  #outbox: Promise<void> = Promise.resolve();
  #closed: LoftError | undefined;
  #resolveDone!: (error: LoftError) => void;
  /** Resolves with why once the connection is closed (never rejects). */
  readonly done: Promise<LoftError> = new Promise((resolve) => {
    this.#resolveDone = resolve;
  });

  private constructor(link: Link, hello: RelayHello, options: RelayClientOptions) {
    this.#link = link;
    this.hello = hello;
    this.#options = options;
    void this.#readLoop();
  }

  /**
   * Run the opening: send our version header, read the relay's header and HELLO. The link must
   * carry whole frames (one WebSocket message each).
   */
  static async connect(link: Link, options: RelayClientOptions = {}): Promise<RelayClient> {
    try {
      return await RelayClient.#opening(link, options);
    } catch (e) {
      // Every failed opening closes its link — a timeout too, while the WebSocket may still be
      // CONNECTING. A socket left behind in CONNECTING holds up every other WebSocket of the page
      // to the same host (RFC 6455 §4.1, one connection in CONNECTING per host), and one Loft
      // host serves signaling and the relay on one host:port (host/host.ts). Closing an already
      // closed link does nothing, so the reasons given below stay.
      link.close(isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED");
      throw e;
    }
  }

  static async #opening(link: Link, options: RelayClientOptions): Promise<RelayClient> {
    const mode = options.auth ?? "authenticator";
    if (options.delivery === "bucket" && mode !== "authenticator")
      throw new RangeError("bucketed deliveries (SREMP 1.2) need authenticators");
    if (options.batch && options.delivery !== "bucket")
      throw new RangeError("batches (SREMP 1.3) need bucketed deliveries");
    try {
      link.send(
        encodeVersionHeader(
          mode === "signature"
            ? RELAY_VERSION_SIGNATURE
            : options.batch
              ? RELAY_VERSION_BATCHED
              : options.delivery === "bucket"
                ? RELAY_VERSION_BUCKETED
                : RELAY_VERSION_AUTHENTICATOR,
        ),
      );
    } catch (e) {
      throw linkClosed(e);
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    const next = () => withTimeout(link.receive(), timeoutMs, "relay opening");
    const header = decodeVersionHeader(await whileConnecting(link, next(), options.openTimeoutMs));
    if (!header.ok) {
      link.close(header.error.code);
      throw header.error;
    }
    const helloBytes = await next();
    const hello = decodeServerFrame(helloBytes);
    if (!hello.ok) {
      const unknown = unknownServerError(helloBytes);
      if (unknown) {
        link.close("relay-refused");
        throw new LoftError("LOFT_ERR_RELAY_UNRECOGNIZED", "relay refused the connection", unknown.e);
      }
      link.close(hello.error.code);
      throw hello.error;
    }
    if (hello.value.k === "ERR") {
      link.close("relay-refused");
      throw new LoftError(codeForWire(hello.value.e), "relay refused the connection", hello.value.e);
    }
    if (hello.value.k !== "HELLO") {
      link.close("LOFT_ERR_RELAY_UNEXPECTED");
      throw new LoftError("LOFT_ERR_RELAY_UNEXPECTED", `expected HELLO, got ${hello.value.k}`);
    }
    const h = hello.value;
    if ((mode === "authenticator") !== (h.x !== undefined)) {
      link.close("LOFT_ERR_RELAY_UNEXPECTED");
      throw new LoftError(
        "LOFT_ERR_RELAY_UNEXPECTED",
        h.x ? "HELLO carries a connection key on a 1.0 connection" : "HELLO lacks the connection key of 1.1",
      );
    }
    return new RelayClient(
      link,
      {
        sessionId: h.s,
        frameLimit: h.fl,
        queueQuota: h.qq,
        maxInFlight: h.mi,
        ...(h.x ? { connectionKey: h.x } : {}),
      },
      options,
    );
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /**
   * How this connection's deliveries are padded: "bucket" when it opened with the SREMP 1.2
   * header (the relay accepted it, or `connect` would have thrown LOFT_ERR_UNSUPPORTED_VERSION),
   * else "block" (docs/protocol/relay.md §Versions).
   */
  get delivery(): RelayDeliveryPadding {
    return this.#options.delivery ?? "block";
  }

  /** Whether this connection speaks SREMP 1.3 (batches; `connect` threw if the relay refused it). */
  get batched(): boolean {
    return this.#options.batch === true;
  }

  /**
   * How many SENDs to one queue, issued in one tick, leave in a single SENDS frame (1.3; undefined
   * before 1.3): up to `count` messages while `frameBytes` holds them by `sendsEntryBytes`. Within
   * one frame the relay stores a prefix (docs/protocol/relay.md §Batches), which lets a caller
   * pipeline a run of ordered messages without a later one ever landing before a refused one.
   */
  get sendsFrame(): { count: number; frameBytes: number } | undefined {
    return this.batched
      ? { count: MAX_BATCH, frameBytes: this.hello.frameLimit - SENDS_FRAME_OVERHEAD }
      : undefined;
  }

  /**
   * Route pushed messages of one queue to `handler` instead of `onMessage` (undefined removes it).
   * Used by live links (live-link.ts) that share a connection with the mailbox.
   */
  onQueueMessage(recipientId: Uint8Array, handler: ((message: RelayMessage) => void) | undefined): void {
    if (handler) this.#handlers.set(toHex(recipientId), handler);
    else this.#handlers.delete(toHex(recipientId));
  }

  close(): void {
    this.#fail(linkClosed("closed by the client"));
    this.#link.close("closed");
  }

  // ------------------------------------------------------------------------------------------
  // Recipient commands

  /**
   * NEW: create a queue with fresh per-queue keys. With `subscribe` (default true) this
   * connection receives its messages at once.
   */
  async createQueue(options: { subscribe?: boolean } = {}): Promise<RecipientQueue> {
    const auth = newAuthKeyPair();
    const dh = newDhKeyPair();
    try {
      const reply = await this.#request(
        "IDS",
        { k: "NEW", i: 0, rk: auth.publicKey, dk: dh.publicKey, sub: options.subscribe ?? true },
        auth.secretKey,
      );
      const rcvKey = deriveRcvKey(dh.secretKey, reply.d, reply.r);
      if (!rcvKey.ok) throw rcvKey.error;
      const queue: RecipientQueue = {
        recipientId: reply.r.slice(),
        senderId: reply.s.slice(),
        recipientAuthSecret: auth.secretKey,
        rcvKey: rcvKey.value,
      };
      if (options.subscribe ?? true) this.#queues.set(toHex(queue.recipientId), queue.rcvKey);
      return queue;
    } finally {
      dh.secretKey.fill(0);
    }
  }

  /** KEY: accept SEND from the holder of `senderAuthPublic` only. */
  async secureQueue(queue: RecipientQueue, senderAuthPublic: Uint8Array): Promise<void> {
    await this.#request(
      "OK",
      { k: "KEY", i: 0, q: queue.recipientId, sk: senderAuthPublic },
      queue.recipientAuthSecret,
    );
  }

  /** SUB: push this queue's messages to this connection, `window` of them in flight before ACKs. */
  async subscribe(queue: RecipientQueue, window = 8): Promise<void> {
    this.#queues.set(toHex(queue.recipientId), queue.rcvKey);
    try {
      await this.#request(
        "OK",
        { k: "SUB", i: 0, q: queue.recipientId, w: window },
        queue.recipientAuthSecret,
      );
    } catch (e) {
      this.#queues.delete(toHex(queue.recipientId));
      throw e;
    }
  }

  /**
   * GET: poll the oldest message (undefined when the queue is empty). ACK it to get the next.
   * Rejects with the connection's close when the client closes before the reply is opened.
   */
  async get(queue: RecipientQueue): Promise<RelayMessage | undefined> {
    const reply = await this.#request(
      ["MSG", "OK"],
      { k: "GET", i: 0, q: queue.recipientId },
      queue.recipientAuthSecret,
    );
    if (reply.k === "OK") return undefined;
    const opened = await this.#open(queue.rcvKey, reply.m, reply.b);
    // Closed while it opened (a native open settles later): dropped, as a pushed delivery is
    // (`#handOver`). Nothing could ACK it on this connection any more, so the relay keeps it for
    // the next GET or SUB (docs/protocol/relay.md §Errors) instead of it being taken twice.
    if (this.#closed) throw this.#closed;
    if (!opened.ok) throw opened.error;
    return toMessage(reply.q, reply.m, opened.value);
  }

  /** ACK: the message is stored on our side; the relay deletes it (cryptographically). */
  async ack(queue: RecipientQueue, msgId: Uint8Array): Promise<void> {
    if (this.batched) return this.#cork("A", queue.recipientId, queue.recipientAuthSecret, msgId);
    await this.#request("OK", { k: "ACK", i: 0, q: queue.recipientId, m: msgId }, queue.recipientAuthSecret);
  }

  /** OFF: refuse further SENDs (messages already stored stay deliverable). */
  async suspendQueue(queue: RecipientQueue): Promise<void> {
    await this.#request("OK", { k: "OFF", i: 0, q: queue.recipientId }, queue.recipientAuthSecret);
  }

  /** DEL: delete the queue and every message in it. */
  async deleteQueue(queue: RecipientQueue): Promise<void> {
    await this.#request("OK", { k: "DEL", i: 0, q: queue.recipientId }, queue.recipientAuthSecret);
    this.#queues.delete(toHex(queue.recipientId));
  }

  /**
   * PKSET: publish an opaque signed prekey bundle and/or one-time prekeys for first contact
   * (core/prekey defines their contents; the relay stores bytes). `replaceOneTime` drops the
   * one-time prekeys stored before.
   */
  async publishPrekeys(
    queue: RecipientQueue,
    prekeys: { bundle?: Uint8Array; oneTimePrekeys?: Uint8Array[]; replaceOneTime?: boolean },
  ): Promise<void> {
    const cmd: Command = {
      k: "PKSET",
      i: 0,
      q: queue.recipientId,
      po: prekeys.oneTimePrekeys ?? [],
      pr: prekeys.replaceOneTime ?? false,
      ...(prekeys.bundle ? { pb: prekeys.bundle } : {}),
    };
    await this.#request("OK", cmd, queue.recipientAuthSecret);
  }

  // ------------------------------------------------------------------------------------------
  // Sender commands

  /** SKEY: the sender secures the queue with its own key (generated here unless given). */
  async senderSecure(queue: SenderQueue): Promise<SenderQueue> {
    const secret = queue.senderAuthSecret ?? newAuthKeyPair().secretKey;
    await this.#request("OK", { k: "SKEY", i: 0, q: queue.senderId, sk: authPublicKey(secret) }, secret);
    return { senderId: queue.senderId, senderAuthSecret: secret };
  }

  /**
   * SEND one body (≤ MAX_BODY bytes). Resolves once the relay has committed it durably.
   * `sendId` (16 random bytes by default) makes a retry after a lost reply safe: the relay answers
   * a repeated send id with LOFT_ERR_RELAY_DUPLICATE, which means "already stored".
   * `sign` (default: whether the queue has a sender key) must be false until the queue is secured
   * — the confirmation message of the KEY flow carries the sender's public key unsigned.
   */
  async send(
    queue: SenderQueue,
    body: Uint8Array,
    options: { sendId?: Uint8Array; sign?: boolean } = {},
  ): Promise<void> {
    if (body.length > MAX_BODY)
      throw new LoftError("LOFT_ERR_FRAME_TOO_LARGE", `body of ${body.length} bytes exceeds ${MAX_BODY}`);
    const n = options.sendId ?? randomBytes(SEND_ID_LENGTH);
    const sign = options.sign ?? queue.senderAuthSecret !== undefined;
    if (this.batched)
      return this.#cork("S", queue.senderId, sign ? queue.senderAuthSecret : undefined, [n, body]);
    await this.#request(
      "OK",
      { k: "SEND", i: 0, q: queue.senderId, n, b: body },
      sign ? queue.senderAuthSecret : undefined,
    );
  }

  /** PKGET: the bundle and one one-time prekey (which the relay removes) for first contact. */
  async fetchPrekeys(senderId: Uint8Array): Promise<PrekeyFetch> {
    const reply = await this.#request("PK", { k: "PKGET", i: 0, q: senderId });
    return reply.po ? { bundle: reply.pb, oneTimePrekey: reply.po } : { bundle: reply.pb };
  }

  async ping(): Promise<void> {
    await this.#request("OK", { k: "PING", i: 0 });
  }

  // ------------------------------------------------------------------------------------------
  // Batches (SREMP 1.3, docs/protocol/relay.md §Batches)

  /**
   * Hold a SEND ("S") or ACK ("A") until the current tick's other work has run: every one of its
   * queue (with the same key) issued meanwhile leaves in the same frame, in issue order.
   */
  #cork(
    kind: "S" | "A",
    q: Uint8Array,
    authKey: Uint8Array | undefined,
    entry: [Uint8Array, Uint8Array] | Uint8Array,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (!this.#corked) {
      this.#corked = new Map();
      queueMicrotask(() => this.#uncork());
    }
    // A queue's frames are authorized by one key: a different key (or none) starts its own batch.
    let key = `${kind}${toHex(q)}`;
    let group = this.#corked.get(key);
    while (group && group.authKey !== authKey) {
      key += "'";
      group = this.#corked.get(key);
    }
    if (!group) {
      group = { q, authKey, items: [] };
      this.#corked.set(key, group);
    }
    const items = group.items;
    return new Promise<void>((resolve, reject) => items.push({ entry, resolve, reject }));
  }

  #uncork(): void {
    const corked = this.#corked;
    this.#corked = undefined;
    if (!corked) return;
    for (const [key, group] of corked) {
      const send = key.startsWith("S");
      const items = group.items;
      let from = 0;
      while (from < items.length) {
        // At most MAX_BATCH per frame, and within the relay's frame limit (HELLO.fl): per SEND
        // entry its body, send id and ~8 bytes of framing; ~120 bytes for the rest of the frame.
        let to = from + 1;
        let bytes = SENDS_FRAME_OVERHEAD + entrySize(items[from]!.entry);
        while (to < items.length && to - from < MAX_BATCH) {
          const more = entrySize(items[to]!.entry);
          if (bytes + more > this.hello.frameLimit) break;
          bytes += more;
          to++;
        }
        this.#flushBatch(send, group, items.slice(from, to));
        from = to;
      }
    }
  }

  #flushBatch(send: boolean, group: Corked, items: Corked["items"]): void {
    // One alone goes as the plain command: byte for byte what a 1.2 client sends.
    if (items.length === 1) {
      const it = items[0]!;
      const command: Command = send
        ? {
            k: "SEND",
            i: 0,
            q: group.q,
            n: (it.entry as Uint8Array[])[0]!,
            b: (it.entry as Uint8Array[])[1]!,
          }
        : { k: "ACK", i: 0, q: group.q, m: it.entry as Uint8Array };
      this.#request("OK", command, group.authKey).then(() => it.resolve(), it.reject);
      return;
    }
    const command: Command = send
      ? { k: "SENDS", i: 0, q: group.q, ms: items.map((it) => it.entry as [Uint8Array, Uint8Array]) }
      : { k: "ACKS", i: 0, q: group.q, ms: items.map((it) => it.entry as Uint8Array) };
    this.#request("RES", command, group.authKey).then(
      (res) => {
        if (res.r.length !== items.length) {
          const e = new LoftError(
            "LOFT_ERR_RELAY_UNEXPECTED",
            `${command.k} answered ${res.r.length} results`,
          );
          for (const it of items) it.reject(e);
          return;
        }
        items.forEach((it, k) => {
          const r = res.r[k]!;
          if (r === "OK") it.resolve();
          else it.reject(new LoftError(codeForWire(r), `${send ? "SEND" : "ACK"} refused`, r));
        });
      },
      (e: LoftError) => {
        for (const it of items) it.reject(e);
      },
    );
  }

  #request<K extends ServerFrame["k"]>(
    expect: K | K[],
    command: Command,
    authKey?: Uint8Array,
  ): Promise<ServerFrameOf<K>> {
    if (this.#closed) return Promise.reject(this.#closed);
    const corr = this.#nextId;
    if (this.hello.connectionKey && corr > 0xffff_fffe) {
      // 1.1 ids only grow on a connection: a fresh connection starts again at 1.
      this.#fail(linkClosed("request ids of this connection are used up; reconnect"));
      this.#link.close("LOFT_ERR_LINK_CLOSED");
      return Promise.reject(this.#closed);
    }
    this.#nextId = this.hello.connectionKey || this.#nextId < 0xffff_fffe ? this.#nextId + 1 : 1;
    const t = encodeCommand({ ...command, i: corr } as Command);
    if (t.length + 80 > this.hello.frameLimit)
      return Promise.reject(
        new LoftError("LOFT_ERR_FRAME_TOO_LARGE", "command exceeds the relay's frame limit"),
      );
    const frame = this.#authorize(t, authKey);
    const kinds: readonly string[] = Array.isArray(expect) ? expect : [expect];
    return new Promise<ServerFrameOf<K>>((resolve, reject) => {
      const timeoutMs = this.#options.timeoutMs ?? 30_000;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.#pending.delete(corr);
              reject(new LoftError("LOFT_ERR_TIMEOUT", `${command.k} got no answer in ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.#pending.set(corr, {
        resolve: (f) => {
          if (f.k === "ERR") {
            reject(new LoftError(codeForWire(f.e), `${command.k} refused`, f.e));
            if (f.e === "UNAVAILABLE") this.#options.onUnavailable?.();
          } else if (kinds.includes(f.k)) resolve(f as ServerFrameOf<K>);
          else reject(new LoftError("LOFT_ERR_RELAY_UNEXPECTED", `${command.k} answered with ${f.k}`));
        },
        reject,
        timer,
      });
      const put = (bytes: Uint8Array) => {
        if (!this.#pending.has(corr)) return; // timed out or the connection closed meanwhile
        try {
          this.#link.send(bytes);
        } catch (e) {
          this.#settle(corr);
          reject(linkClosed(e));
        }
      };
      if (frame instanceof Uint8Array) {
        this.#outbox = this.#outbox.then(() => put(frame));
        return;
      }
      this.#outbox = this.#outbox.then(() =>
        frame.then(put, (e: unknown) => {
          if (!this.#settle(corr)) return;
          reject(e instanceof LoftError ? e : new LoftError("LOFT_ERR_RELAY_UNEXPECTED", String(e)));
        }),
      );
    });
  }

  /** The frame for `t`: unauthorized, signed (1.0) or with its authenticator (1.1). */
  #authorize(t: Uint8Array, authSecret: Uint8Array | undefined): Uint8Array | Promise<Uint8Array> {
    if (!authSecret) return encodeClientFrame(t);
    const relayKey = this.hello.connectionKey;
    if (!relayKey) return encodeClientFrame(t, signCommand(authSecret, this.hello.sessionId, t));
    return this.#authKey(authSecret, relayKey).then(async (mac) => encodeClientFrame(t, await mac.sign(t)));
  }

  /**
   * The queue's authentication key on this connection: one X25519 + HKDF and one key import,
   * then cached as the handle (`a = HMAC-SHA256(K, t)`, docs/protocol/relay.md §Command authorization).
   */
  #authKey(authSecret: Uint8Array, relayKey: Uint8Array): Promise<KeyedHmac> {
    const known = this.#authKeys.get(authSecret);
    if (known) return known;
    const crypto = this.#options.crypto ?? nobleCrypto;
    const derived = (async () => {
      const authPublic = await crypto.ed25519.publicKey(authSecret);
      const key = await deriveAuthKey(crypto, authSecret, authPublic, relayKey, this.hello.sessionId);
      if (!key.ok) throw key.error;
      try {
        return await commandAuthenticator(crypto, key.value);
      } finally {
        // The handle holds the key now (a CryptoKey, a KeyObject or noble's keyed states); an
        // import that failed leaves nothing to keep it for (the next command derives it again).
        wipe(key.value);
      }
    })();
    this.#authKeys.set(authSecret, derived);
    derived.catch(() => this.#authKeys.delete(authSecret));
    return derived;
  }

  #settle(corr: number): Pending | undefined {
    const p = this.#pending.get(corr);
    if (!p) return undefined;
    this.#pending.delete(corr);
    if (p.timer !== undefined) clearTimeout(p.timer);
    return p;
  }

  async #readLoop(): Promise<void> {
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await this.#link.receive();
      } catch (e) {
        this.#fail(linkClosed(e));
        return;
      }
      const limit = Math.max(this.hello.frameLimit, DEFAULT_FRAME_LIMIT);
      const frame = decodeServerFrame(bytes, limit);
      if (!frame.ok) {
        const unknown = unknownServerError(bytes, limit);
        const refused = unknown && new LoftError("LOFT_ERR_RELAY_UNRECOGNIZED", "relay refused", unknown.e);
        if (refused && unknown.i !== undefined && this.#pending.has(unknown.i))
          this.#settle(unknown.i)?.reject(refused);
        else this.#options.onError?.(refused || frame.error);
        continue;
      }
      // A delivery opened asynchronously (a native AEAD, `#pushed`) is handed over before the
      // next frame is looked at: frames are still handled one at a time, in the order they came.
      const delivering = this.#dispatch(frame.value);
      if (delivering) await delivering;
    }
  }

  #dispatch(f: ServerFrame): Promise<void> | undefined {
    switch (f.k) {
      case "MSG":
        if (f.i !== undefined) this.#settle(f.i)?.resolve(f);
        else return this.#pushed(f);
        return;
      case "END":
        this.#queues.delete(toHex(f.q));
        this.#options.onEnd?.(f.q);
        return;
      case "ERR":
        if (f.i !== undefined && this.#pending.has(f.i)) this.#settle(f.i)?.resolve(f);
        else this.#options.onError?.(new LoftError(codeForWire(f.e), "relay error on this connection", f.e));
        return;
      case "HELLO":
        this.#options.onError?.(new LoftError("LOFT_ERR_RELAY_UNEXPECTED", "second HELLO"));
        return;
      case "MSGS":
        if (!this.batched) {
          this.#options.onError?.(
            new LoftError("LOFT_ERR_RELAY_UNEXPECTED", "MSGS on a connection before 1.3"),
          );
          return;
        }
        return this.#pushedAll(f.q, f.ms);
      default: {
        const p = this.#settle(f.i);
        if (p) p.resolve(f);
        else this.#options.onError?.(new LoftError("LOFT_ERR_RELAY_UNEXPECTED", `uncorrelated ${f.k}`));
      }
    }
  }

  /** A MSGS frame's messages, each handed over in turn (SREMP 1.3: in the order the relay sent them). */
  async #pushedAll(q: Uint8Array, ms: [Uint8Array, Uint8Array][]): Promise<void> {
    for (const [m, b] of ms) {
      const delivering = this.#pushed({ k: "MSG", q, m, b });
      if (delivering) await delivering;
    }
  }

  /**
   * One pushed message: opened (server→recipient layer), then handed to its queue's handler.
   * With a provider whose XChaCha20-Poly1305 is native (not noble's JavaScript), the open runs
   * through it and the promise returned settles once the message is handed over; with noble it
   * stays synchronous, as before (docs/protocol/relay.md §Server→recipient layer).
   */
  #pushed(f: ServerFrameOf<"MSG">): Promise<void> | undefined {
    const rcvKey = this.#queues.get(toHex(f.q));
    if (!rcvKey) {
      this.#options.onError?.(
        new LoftError("LOFT_ERR_RELAY_UNEXPECTED", "message for a queue not subscribed here"),
      );
      return undefined;
    }
    const opened = this.#open(rcvKey, f.m, f.b);
    if (!(opened instanceof Promise)) return void this.#handOver(f, opened);
    return opened.then((r) => this.#handOver(f, r));
  }

  /**
   * The server→recipient layer opened: through the provider's XChaCha20-Poly1305 where it is
   * native (not noble's JavaScript: host/crypto-node.ts), else synchronously with noble.
   */
  #open(
    rcvKey: Uint8Array,
    msgId: Uint8Array,
    ciphertext: Uint8Array,
  ): Result<OpenedMessage> | Promise<Result<OpenedMessage>> {
    const crypto = this.#options.crypto;
    // Read per message: a composed provider (core/crypto/compose.ts) may settle its backends late.
    if (crypto && crypto.backends.xchacha20poly1305 !== "noble")
      return openFromRelayWith(crypto.xchacha20poly1305, rcvKey, msgId, ciphertext, this.#options.delivery);
    return openFromRelay(rcvKey, msgId, ciphertext, this.#options.delivery);
  }

  #handOver(f: ServerFrameOf<"MSG">, opened: Result<OpenedMessage>): void {
    // Closed while it opened (a native open settles later): not handed over. Nothing could ACK
    // it on this connection any more, so the relay keeps it and delivers it again on the next
    // SUB (docs/protocol/relay.md §Commands, SUB), instead of it being taken twice.
    if (this.#closed) return;
    if (!opened.ok) {
      this.#options.onError?.(opened.error);
      return;
    }
    const message = toMessage(f.q, f.m, opened.value);
    const handler = this.#handlers.get(toHex(f.q));
    if (handler) handler(message);
    else this.#options.onMessage?.(message);
  }

  #fail(error: LoftError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const corr of [...this.#pending.keys()]) this.#settle(corr)?.reject(error);
    this.#resolveDone(error);
  }
}

/** Bytes a SENDS/ACKS frame takes besides its entries (an estimate from above). */
const SENDS_FRAME_OVERHEAD = 120;

/** Bytes one batch entry adds to a SENDS/ACKS frame (an estimate from above). */
function entrySize(entry: [Uint8Array, Uint8Array] | Uint8Array): number {
  return entry instanceof Uint8Array ? entry.length + 3 : entry[0].length + entry[1].length + 9;
}

/** Bytes one SEND (send id, body) adds to a SENDS frame: what `sendsFrame.frameBytes` counts. */
export function sendsEntryBytes(sendId: Uint8Array, body: Uint8Array): number {
  return entrySize([sendId, body]);
}

function toMessage(q: Uint8Array, m: Uint8Array, opened: OpenedMessage): RelayMessage {
  return { recipientId: q.slice(), msgId: m.slice(), timestamp: opened.timestamp, body: opened.body };
}

/**
 * `first`, unless `link` is still connecting `ms` after the opening began: then a
 * LOFT_ERR_TIMEOUT (`connect` closes the link). A link open by then is left to `first`'s own
 * timeout: this bounds the upgrade, not the relay's answer.
 */
function whileConnecting<T>(link: Link, first: Promise<T>, ms: number | undefined): Promise<T> {
  if (ms === undefined || ms <= 0 || link.state !== "connecting") return first;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (link.state === "connecting")
        reject(new LoftError("LOFT_ERR_TIMEOUT", `relay socket not open after ${ms} ms`));
    }, ms);
    first.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new LoftError("LOFT_ERR_TIMEOUT", `${what} timed out`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e instanceof LoftError ? e : linkClosed(e));
      },
    );
  });
}
