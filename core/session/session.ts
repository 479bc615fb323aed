/**
 * An authenticated Loft session over any `Link` (docs/design.md, "Transports" and "Cryptography"; SREMP
 * §noise and §version; Noise Protocol Framework rev 34; Noise HFS rev 1). Every byte on the wire
 * is in docs/protocol/session.md. In order:
 *
 *   1. Each side sends its version header (core/codec/version.ts) as its first Link message and
 *      decodes the peer's; anything but SREMP 1.0 closes the link with the decoder's code
 *      (LOFT_ERR_UNSUPPORTED_VERSION, …).
 *   2. Noise `XXhfs_25519+MLKEM768` (default) or plain `XX`, with the prologue of prologue.ts
 *      (both version headers and the link kind). Message 1 carries an empty payload; message 2
 *      (responder) and message 3 (initiator) carry the signed Identity and extensions
 *      (payload.ts).
 *   3. The session exists only if the peer's Identity signature verifies (else
 *      LOFT_ERR_BAD_SIGNATURE), the Noise remote static key equals `identity.verified.noise_key`
 *      (else LOFT_ERR_NOISE_KEY_MISMATCH), and — when the caller named the contact it meant to
 *      reach — the identity key equals it (else LOFT_ERR_HANDSHAKE_IDENTITY). The initiator
 *      checks the responder before revealing its own identity in message 3.
 *   4. Transport: frames.ts (DATA / CHUNK / CLOSE), each direction rekeyed (Noise §11.3) every
 *      `REKEY_INTERVAL` messages.
 *
 * WireGuard's rule: a session is `open` or `closed`; a handshake that fails for any reason — or
 * does not finish before the deadline (LOFT_ERR_TIMEOUT) — wipes its state, closes the link with
 * the error code as the reason, and rejects with that LoftError. It never yields a Session.
 */
import { concatBytes, equalBytes } from "../bytes.ts";
import { chunkFrameCount } from "../codec/chunk.ts";
import {
  CURRENT_VERSION,
  decodeVersionHeader,
  encodeVersionHeader,
  type VersionHeader,
} from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { detailOf, err, isLoftError, LoftError, type LoftErrorCode, type Result } from "../errors.ts";
import type { Identity, UserIdentity } from "../identity/identity.ts";
import type { Link, LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";
import { HandshakeState, type PreparedEphemerals } from "../noise/handshake-state.ts";
import { withSuite, XX, XX_HFS } from "../noise/patterns.ts";
import { type NoiseEntropy, TAGLEN } from "../noise/primitives.ts";
import { SUITE_NAMES, type SuiteName, suiteByName } from "../noise/suite.ts";
import type { NoiseTransport } from "../noise/transport.ts";
import {
  closeFrame,
  DETACHED_EXTENSION,
  DETACHED_EXTENSION_VALUE,
  DETACHED_TAIL_LEN,
  dataFrameOf,
  detachedFrameOf,
  FrameAssembler,
  LINK_PREFIX_LEN,
  linkMessageInPlace,
  linkMessageOf,
  MAX_DATA_PAYLOAD,
  MAX_DETACHED_LINK_MESSAGE,
  MAX_DETACHED_MESSAGE,
  messageFrames,
  splitLinkMessage,
} from "./frames.ts";
import {
  announcesFlag,
  decodeHandshakePayload,
  type Extensions,
  encodeHandshakePayload,
  type HandshakePayload,
} from "./payload.ts";
import { type LinkKind, sessionPrologue } from "./prologue.ts";

/**
 * Each direction calls Noise `Rekey()` (§11.3) after every 1024 transport messages it encrypts
 * (sender) or decrypts (receiver): a key compromised later exposes at most the last 1024 messages
 * of a direction, for the cost of one ChaCha20 block per 1024 messages.
 */
export const REKEY_INTERVAL = 1024;
/** Bound on one reassembled application message (258 chunks). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * At most this many transport frames are sealed, or opened, together (their AEAD calls in flight
 * at once): enough to keep an asynchronous AEAD busy, small enough that a run is a few hundred KiB.
 */
export const SEAL_BATCH = 32;

export type SessionProtocol = "XXhfs" | "XX";

/** How the version header is written and checked; tests swap it to model a downgrade. */
export interface VersionCodec {
  encode(): Uint8Array;
  decode(bytes: Uint8Array): Result<unknown>;
}

export interface SessionOptions {
  link: Link;
  /** The side that dialled is the initiator. */
  role: "initiator" | "responder";
  kind: LinkKind;
  self: UserIdentity;
  /** The contact we meant to reach (Ed25519 identity key); refused with LOFT_ERR_HANDSHAKE_IDENTITY otherwise. */
  expectedIdentityKey?: Uint8Array;
  /** Named bytes sent with our identity (e.g. a ratchet public key); see payload.ts for limits. */
  extensions?: Extensions;
  /** "XXhfs" (default, hybrid post-quantum) or "XX" (tests, interop). Both sides must agree. */
  protocol?: SessionProtocol;
  handshakeTimeoutMs?: number;
  /** Rekey interval in messages; both sides must agree (default REKEY_INTERVAL). */
  rekeyInterval?: number;
  maxMessageBytes?: number;
  /** Randomness for the handshake (tests); the provider's CSPRNG otherwise. */
  entropy?: NoiseEntropy;
  /** The primitives of the handshake and the transport (core/crypto/provider.ts); noble by default. */
  crypto?: CryptoProvider;
  /**
   * A secret both sides must hold, bound into the prologue (prologue.ts; a room's binding,
   * docs/protocol/rooms.md §4). A peer with another one fails the handshake (LOFT_ERR_DECRYPT).
   */
  binding?: Uint8Array;
  /** Version header codec (tests); SREMP 1.0 otherwise (no suite negotiation then). */
  versionCodec?: VersionCodec;
  /**
   * The Noise cipher suites this side accepts, in its order of preference (docs/protocol/noise.md,
   * "Cipher suites"). An initiator offers them in its version header only when they are not just
   * `["ChaChaPoly_BLAKE2s"]` (the default, and all a 1.0 peer understands: a peer that may be
   * older must be dialled without an offer). A responder answers an offer with its own list
   * (default: every suite, AES-GCM first) and the initiator's first choice both accept wins.
   */
  suites?: readonly SuiteName[];
  /**
   * Ephemeral keys made ahead of time (core/noise `prepareEphemerals`, e.g. while the link
   * opened): the handshake takes them, once, instead of generating its own on the critical path.
   */
  prepared?: PreparedEphemerals;
  /**
   * Labels whose `exportSecret` the handshake derives when it finishes (the chaining key is wiped
   * then; docs/protocol/session.md §6). Default: `SESSION_EXPORT_LABELS`.
   */
  exportLabels?: readonly string[];
  /**
   * Announce `session.detached` (frames.ts): when the peer announces it too, every link message
   * carries a length prefix and `sendDetached` sends a message's tail beside its Noise message
   * instead of inside it (docs/protocol/session.md §5, "Detached frames"). Off by default: only a
   * layer whose tail bytes carry their own AEAD (the ratchet body) may use it.
   */
  detachedFrames?: boolean;
}

/**
 * What the chat layer exports from every session: the Double Ratchet bootstrap secret
 * (core/ratchet/bootstrap.ts `RATCHET_EXPORT_LABEL`) and the ratchet id
 * (core/ratchet/from-session.ts `RATCHET_ID_LABEL`).
 */
export const SESSION_EXPORT_LABELS: readonly string[] = ["loft/ratchet/v1", "loft/chat/ratchet-id/v1"];

const EMPTY = new Uint8Array(0);

function fail(code: LoftErrorCode, message: string): never {
  throw new LoftError(code, message);
}

/** The next Link message; if the peer closed instead, a LOFT_ERR_LINK_CLOSED naming its reason. */
async function next(link: Link): Promise<Uint8Array> {
  try {
    return await link.receive();
  } catch (e) {
    if (!isLoftError(e) || e.code !== "LOFT_ERR_LINK_CLOSED") throw e;
    const info = await link.closed;
    throw new LoftError("LOFT_ERR_LINK_CLOSED", `closed during the handshake: ${info.detail ?? info.reason}`);
  }
}

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

/**
 * The peer's payload decides whether there is a session (SREMP §noise: "it must be verified that
 * the static key for the noise handshake exactly matches the noise static key of the received
 * and verified identity").
 */
export async function verifyPeer(
  crypto: CryptoProvider,
  payload: Uint8Array,
  remoteStaticKey: Uint8Array,
  expectedIdentityKey: Uint8Array | undefined,
): Promise<Result<HandshakePayload>> {
  return checkPeer(await decodeHandshakePayload(crypto, payload), remoteStaticKey, expectedIdentityKey);
}

function checkPeer(
  decoded: Result<HandshakePayload>,
  remoteStaticKey: Uint8Array,
  expectedIdentityKey: Uint8Array | undefined,
): Result<HandshakePayload> {
  if (!decoded.ok) return decoded;
  const { verified } = decoded.value.identity;
  if (!equalBytes(remoteStaticKey, verified.noise_key))
    return err("LOFT_ERR_NOISE_KEY_MISMATCH", "the Noise static key is not the identity's noise key");
  if (expectedIdentityKey !== undefined && !equalBytes(expectedIdentityKey, verified.identity_key))
    return err("LOFT_ERR_HANDSHAKE_IDENTITY", "the peer is not the contact we meant to reach");
  return decoded;
}

/**
 * Run the version exchange and the handshake over `options.link`; resolves with an open Session
 * or rejects with a LoftError whose code says why (the link is then closed with that code).
 */
export async function establishSession(options: SessionOptions): Promise<Session> {
  const { link, role, self } = options;
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const crypto = options.crypto ?? nobleCrypto;
  const ourNoiseKey = await crypto.x25519.publicKey(self.privateNoiseKey);
  if (!equalBytes(ourNoiseKey, self.identity.verified.noise_key))
    throw new RangeError("self.privateNoiseKey does not match self.identity's noise_key");
  // `session.detached` is announced by `detachedFrames` only: announced through `extensions`, the
  // peer would switch to the detached layout while this side does not (session.md §5).
  if (options.extensions !== undefined && Object.hasOwn(options.extensions, DETACHED_EXTENSION))
    throw new RangeError(`extensions: ${DETACHED_EXTENSION} is announced by detachedFrames, not by hand`);
  /** Set once the peer's version header came: whether we announce (and so may use) detached frames. */
  let detached = false;
  /**
   * Our handshake payload, made once the link has carried the peer's version header (so a data
   * channel's negotiated `maxMessageSize` is known): `session.detached` only when asked for and
   * the link carries a detached link message of 65537 bytes (session.md §5).
   */
  const ourPayload = (): Uint8Array => {
    detached = options.detachedFrames === true && carriesDetached(link);
    return encodeHandshakePayload(self.identity, {
      ...options.extensions,
      ...(detached ? { [DETACHED_EXTENSION]: DETACHED_EXTENSION_VALUE } : {}),
    });
  };
  let hs: HandshakeState | undefined;
  /** Set when the handshake gave up (timeout, error) before `hs` existed: abort it on creation. */
  let aborted = false;

  const run = async (): Promise<Session> => {
    // 1. SREMP §version, with the Noise suite chosen from both headers (negotiateHeaders).
    const initiator = role === "initiator";
    const { ourHeader, theirHeader, suite } = await negotiateHeaders(link, role, options);
    const prologue = sessionPrologue(
      options.kind,
      initiator ? ourHeader : theirHeader,
      initiator ? theirHeader : ourHeader,
      options.binding,
    );
    // 2. Noise handshake, in the chosen suite (its name ends the protocol name).
    const handshake = await HandshakeState.create({
      pattern: withSuite(options.protocol === "XX" ? XX : XX_HFS, suite),
      role,
      prologue,
      staticKeyPair: { privateKey: self.privateNoiseKey, publicKey: ourNoiseKey },
      crypto,
      ...(options.entropy ? { entropy: options.entropy } : {}),
      ...(options.prepared ? { prepared: options.prepared } : {}),
    });
    hs = handshake;
    if (aborted) handshake.abort();
    let peer: HandshakePayload;
    if (initiator) {
      link.send(must(await handshake.writeMessage(EMPTY)));
      const payload2 = must(await handshake.readMessage(await next(link)));
      // 3. Check the responder before our identity leaves in message 3.
      peer = must(
        await verifyPeer(crypto, payload2, handshake.remoteStaticKey!, options.expectedIdentityKey),
      );
      link.send(must(await handshake.writeMessage(ourPayload())));
    } else {
      const payload1 = must(await handshake.readMessage(await next(link)));
      if (payload1.length !== 0) fail("LOFT_ERR_MALFORMED", "handshake message 1 must carry no payload");
      link.send(must(await handshake.writeMessage(ourPayload())));
      const payload3 = must(await handshake.readMessage(await next(link)));
      peer = must(
        await verifyPeer(crypto, payload3, handshake.remoteStaticKey!, options.expectedIdentityKey),
      );
    }
    const transport = must(await handshake.finish(options.exportLabels ?? SESSION_EXPORT_LABELS));
    return new Session({
      link,
      transport,
      role,
      kind: options.kind,
      remoteIdentity: peer.identity,
      remoteExtensions: peer.extensions,
      rekeyInterval: options.rekeyInterval ?? REKEY_INTERVAL,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      // Both sides announced it (each side's payload is authenticated by the handshake, so both
      // compute the same answer before the first transport message).
      detached: detached && announcesDetached(peer.extensions),
    });
  };

  let timer: unknown;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LoftError("LOFT_ERR_TIMEOUT", `handshake did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const running = run();
  running.catch(() => {}); // after a timeout its rejection (link closed) is expected and ignored
  try {
    return await Promise.race([running, deadline]);
  } catch (e) {
    aborted = true;
    hs?.abort();
    // Our own bugs (not LoftErrors) still close the link, then surface unchanged.
    const code = isLoftError(e) ? e.code : "LOFT_ERR_HANDSHAKE_STATE";
    if (link.state !== "closed") link.close(code, detailOf(e));
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

const CHACHA_ONLY: readonly SuiteName[] = ["ChaChaPoly_BLAKE2s"];

/** The known suite names of a header, in its order (absent: ChaChaPoly_BLAKE2s only). */
function suitesOf(header: VersionHeader): SuiteName[] {
  if (header.noise_suites === undefined) return [...CHACHA_ONLY];
  return header.noise_suites.filter((n): n is SuiteName => suiteByName(n) !== undefined);
}

/**
 * The version exchange (docs/protocol/noise.md, "Cipher suites"). The initiator sends its header
 * first — with `noise_suites` only when it offers more than ChaChaPoly — and reads the responder's;
 * the responder reads first and answers an offer with its own list, a plain header otherwise (so a
 * 1.0 initiator sees the 1.0 header it expects). The suite is the first of the initiator's list
 * that the responder's has. Both headers go into the prologue: a header changed in transit makes
 * the handshake fail (LOFT_ERR_DECRYPT), so neither the offer nor the answer can be downgraded.
 */
async function negotiateHeaders(
  link: Link,
  role: "initiator" | "responder",
  options: SessionOptions,
): Promise<{ ourHeader: Uint8Array; theirHeader: Uint8Array; suite: SuiteName }> {
  if (options.versionCodec) {
    const ourHeader = options.versionCodec.encode();
    link.send(ourHeader);
    const theirHeader = await next(link);
    must(options.versionCodec.decode(theirHeader));
    return { ourHeader, theirHeader, suite: "ChaChaPoly_BLAKE2s" };
  }
  if (role === "initiator") {
    const ours = options.suites ?? CHACHA_ONLY;
    if (ours.length === 0) throw new RangeError("suites: at least one");
    const offering = !(ours.length === 1 && ours[0] === "ChaChaPoly_BLAKE2s");
    const ourHeader = encodeVersionHeader(
      offering ? { ...CURRENT_VERSION, noise_suites: [...ours] } : CURRENT_VERSION,
    );
    link.send(ourHeader);
    const theirHeader = await next(link);
    const theirs = must(decodeVersionHeader(theirHeader));
    if (offering && theirs.noise_suites === undefined)
      fail(
        "LOFT_ERR_UNSUPPORTED_VERSION",
        "the peer does not negotiate Noise suites (SREMP 1.0 without noise_suites): dial it again without an offer",
      );
    return { ourHeader, theirHeader, suite: agreedSuite(ours, suitesOf(theirs)) };
  }
  const theirHeader = await next(link);
  const theirs = must(decodeVersionHeader(theirHeader));
  const ours = options.suites ?? SUITE_NAMES;
  const ourHeader = encodeVersionHeader(
    theirs.noise_suites === undefined ? CURRENT_VERSION : { ...CURRENT_VERSION, noise_suites: [...ours] },
  );
  link.send(ourHeader);
  return { ourHeader, theirHeader, suite: agreedSuite(suitesOf(theirs), ours) };
}

/** The initiator's first choice that the responder accepts: both sides compute the same one. */
function agreedSuite(initiator: readonly SuiteName[], responder: readonly SuiteName[]): SuiteName {
  const suite = initiator.find((n) => responder.includes(n));
  if (suite === undefined) fail("LOFT_ERR_UNSUPPORTED_VERSION", "no Noise suite both sides accept");
  return suite;
}

/** The link carries a detached-framing session's longest link message (`Link.maxMessageSize`). */
function carriesDetached(link: Link): boolean {
  return link.maxMessageSize === undefined || link.maxMessageSize >= MAX_DETACHED_LINK_MESSAGE;
}

/**
 * The peer's handshake payload carries `session.detached` whose value is exactly the one byte 01
 * (session.md §5): any other value — `01 02`, `02`, empty — is not this layout (a later one gets a
 * value of its own), and both sides decide by this same rule.
 */
export function announcesDetached(extensions: Extensions): boolean {
  return announcesFlag(extensions, DETACHED_EXTENSION);
}

/**
 * A frame plaintext queued for the send chain, and the detached bytes that follow it, if any — or
 * a whole message over one frame (`whole`), cut into its CHUNK frames only when the send chain
 * reaches it (`#take`): a CHUNK frame carries its message's id, which the receiver expects in
 * order (frames.ts `FrameAssembler`), so the id is the next one *sealed*, not the next one queued.
 */
interface Outgoing {
  frame: Uint8Array;
  detached?: Uint8Array;
  /** A message to be cut into CHUNK frames when taken (`frame` is then empty). */
  whole?: Uint8Array;
  /** Sent without `bulk`: `flushed` waits for it. */
  covered: boolean;
  /** Another CHUNK frame of the same message follows it: nothing may be sealed between them. */
  more: boolean;
}

/** How a message is queued (`Session.sendParts`). */
export interface SendOptions {
  /**
   * Bulk data with its own flow control and resume (file chunks inside the session, proxy frames:
   * docs/protocol/session.md §5, "Bulk frames"): sealed after every other message queued before
   * the next run starts, in order among themselves, and not waited for by `flushed`.
   */
  bulk?: boolean;
}

/** A `flushed` call waiting on `left` covered frames queued before it. */
interface FlushWaiter {
  left: number;
  resolve: () => void;
  reject: (e: LoftError) => void;
}

interface SessionParts {
  link: Link;
  transport: NoiseTransport;
  role: "initiator" | "responder";
  kind: LinkKind;
  remoteIdentity: Identity;
  remoteExtensions: Extensions;
  rekeyInterval: number;
  maxMessageBytes: number;
  detached: boolean;
}

/**
 * An open session: itself a `Link` (send / receive whole messages, close with a reason), so the
 * layers above (ratchet, chat) run unchanged over direct, relay and serial links. Only
 * `establishSession` creates one.
 */
export class Session extends QueueLink {
  readonly role: "initiator" | "responder";
  readonly kind: LinkKind;
  /** The peer's verified Identity (signature checked, noise key = Noise remote static key). */
  readonly remoteIdentity: Identity;
  readonly remoteExtensions: Extensions;
  readonly protocolName: string;
  readonly #handshakeHash: Uint8Array;
  readonly #link: Link;
  readonly #transport: NoiseTransport;
  readonly #assembler: FrameAssembler;
  readonly #rekeyInterval: number;
  readonly #maxMessageBytes: number;
  /** Both sides announced `session.detached`: the link messages carry a length prefix. */
  readonly detachedFrames: boolean;
  /** Messages delivered from DETACHED frames and their head lengths (`detachedHead`), until collected. */
  readonly #detachedIn = new WeakMap<Uint8Array, number>();
  #sentSinceRekey = 0;
  #receivedSinceRekey = 0;
  /** The send chain: sealing and sending, one batch at a time (resolves, never rejects). */
  #sending: Promise<void> = Promise.resolve();
  /** A seal or send failed: nothing more goes out. */
  #sendFailed = false;
  /** Frames queued for the send chain, not sealed yet (`#flush`): every message but bulk ones. */
  readonly #outbox: Outgoing[] = [];
  /** Bulk frames queued, not sealed yet: sealed when `#outbox` is empty (`SendOptions.bulk`). */
  readonly #bulkOut: Outgoing[] = [];
  /** The run being sealed and handed to the link (`#flush`), and how many of it were handed. */
  #inFlight: Outgoing[] = [];
  #inFlightHanded = 0;
  /** The last frame taken had `more`: the next run continues its message, whatever waits. */
  #midMessage = false;
  /** A `#flush` is queued on the send chain and has not started. */
  #flushQueued = false;
  /** Covered messages (not bulk) queued and not wholly handed to the link nor dropped (`flushed`). */
  #outstanding = 0;
  /** Covered messages dropped since the session opened: `flushed` rejects from then on. */
  #coveredDropped = 0;
  /** Every frame dropped since the session opened, bulk ones too (`dropped`). */
  #dropped = 0;
  readonly #flushWaiters: FlushWaiter[] = [];
  #nextMessageId = 0;

  /** @internal — use `establishSession`. */
  constructor(parts: SessionParts) {
    super("open");
    if (!Number.isSafeInteger(parts.rekeyInterval) || parts.rekeyInterval < 1)
      throw new RangeError("rekeyInterval must be a positive integer");
    this.#link = parts.link;
    this.#transport = parts.transport;
    this.role = parts.role;
    this.kind = parts.kind;
    this.remoteIdentity = parts.remoteIdentity;
    this.remoteExtensions = parts.remoteExtensions;
    this.protocolName = parts.transport.protocolName;
    this.#handshakeHash = parts.transport.handshakeHash;
    this.#rekeyInterval = parts.rekeyInterval;
    this.#maxMessageBytes = parts.maxMessageBytes;
    this.detachedFrames = parts.detached;
    this.#assembler = new FrameAssembler(parts.maxMessageBytes);
    void this.#pump();
  }

  /**
   * Whether a message sent now can still leave: false once the session is closed, and also while
   * it is still `open` after its link closed under it or a send failed — its reader then still
   * delivers what arrived before the close (`#queueFrames`), but whatever is sent is dropped. A
   * layer that must not lose what it sends checks this first and awaits `flushed` before it counts
   * a message as gone (web/src/engine/messages.ts, docs/protocol/session.md §5).
   */
  get writable(): boolean {
    return this.state !== "closed" && !this.#sendFailed && this.#link.state !== "closed";
  }

  /**
   * Resolves once every frame of the messages sent before this call — bulk ones aside
   * (`SendOptions.bulk`) — has been handed to the link; rejects with LOFT_ERR_LINK_CLOSED when
   * any of them was not: the link closed first, or a send failed (the session then drops what is
   * queued: `#queueFrames`). It waits for nothing sent after the call, and for no bulk frame: a
   * chat message's `sent` does not wait behind a file window (docs/protocol/session.md §5,
   * "Bulk frames"). Handed to the link is not received: only the peer's answer says that (a chat
   * receipt).
   */
  flushed(): Promise<void> {
    if (this.#coveredDropped > 0)
      return Promise.reject(new LoftError("LOFT_ERR_LINK_CLOSED", "the link closed before the message left"));
    if (this.#outstanding === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#flushWaiters.push({ left: this.#outstanding, resolve, reject });
    });
  }

  /**
   * Frames this session dropped because its link closed under it or a send failed — bulk ones
   * too, whose senders resume on their own (files, proxy: docs/protocol/session.md §5). The
   * engine logs it when the session closes: a drop is never silent.
   */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Resolves once the send chain has run everything queued before the call — handed to the link
   * or dropped, bulk frames too — and the close after it, if one was queued; never rejects. Once
   * the session is closed, `dropped` is then final (the engine's log: web/src/engine/link/
   * controller.ts).
   */
  settled(): Promise<void> {
    return this.#sending;
  }

  /** `f` was handed to the link: a `flushed` waiting on its message (its last frame) may resolve. */
  #handed(f: Outgoing): void {
    if (!f.covered || f.more) return;
    this.#outstanding--;
    for (let i = 0; i < this.#flushWaiters.length; ) {
      const w = this.#flushWaiters[i]!;
      if (--w.left > 0) i++;
      else {
        this.#flushWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * `frames` will never leave: counted, and every `flushed` waiting on a covered message rejects
   * (a message counts once: by its last frame, or whole when it was never cut).
   */
  #drop(frames: readonly Outgoing[]): void {
    let covered = 0;
    for (const f of frames) {
      if (f.covered && !f.more) covered++;
      // A message never cut: the frames it would have been, counted without building them.
      this.#dropped += f.whole ? chunkFrameCount(this.#nextMessageId, f.whole.length, MAX_DATA_PAYLOAD) : 1;
    }
    if (covered === 0) return;
    this.#outstanding -= covered;
    this.#coveredDropped += covered;
    const error = new LoftError("LOFT_ERR_LINK_CLOSED", "the link closed before the message left");
    // Frames leave in order and a failure is for good: a waiter still owed any frame is owed one
    // of the dropped.
    for (const w of this.#flushWaiters.splice(0)) w.reject(error);
  }

  /** Everything queued or in flight and not handed: dropped (a failed send, a closed link). */
  #dropAll(): void {
    const lost = [...this.#inFlight.slice(this.#inFlightHanded), ...this.#outbox, ...this.#bulkOut];
    this.#inFlight = [];
    this.#inFlightHanded = 0;
    this.#outbox.length = 0;
    this.#bulkOut.length = 0;
    this.#midMessage = false;
    this.#drop(lost);
  }

  /** Noise §11.2 handshake hash, the same on both sides: a channel binding for the layers above. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** A 32-byte secret bound to this handshake (core/noise/transport.ts `exportSecret`). */
  exportSecret(label: string): Uint8Array {
    if (this.state === "closed") throw new LoftError("LOFT_ERR_LINK_CLOSED", "session is closed");
    return this.#transport.exportSecret(label);
  }

  /**
   * Encrypt one frame plaintext (built with 16 spare bytes: sealed in place where the AEAD writes
   * in place — node:crypto, noble; a WebCrypto key seals into a fresh buffer: cipher-state.ts) and
   * send it (`#wire`: in a detached-framing session, in place into its link message too). Runs on
   * the send chain, so frames leave in the order their messages were sent (and their nonces, taken
   * at the encrypt call, follow that order too).
   */
  async #seal(frame: Uint8Array, detached?: Uint8Array): Promise<void> {
    const sealed = await this.#transport.send.encryptWithAd(
      EMPTY,
      frame.subarray(0, frame.length - TAGLEN),
      frame,
    );
    if (!sealed.ok) throw sealed.error;
    if (++this.#sentSinceRekey === this.#rekeyInterval) {
      this.#sentSinceRekey = 0;
      await this.#transport.send.rekey(); // Noise §11.3
    }
    if (this.#link.state === "closed") throw new LoftError("LOFT_ERR_LINK_CLOSED", "the link closed");
    this.#link.send(this.#wire(sealed.value, detached, frame));
  }

  /** `#seal` of a queued frame, counted as handed to the link once it was (`flushed`). */
  async #sealQueued(f: Outgoing): Promise<void> {
    await this.#seal(f.frame, f.detached);
    this.#inFlightHanded++;
    this.#handed(f);
  }

  /**
   * The link message of a sealed frame: itself, or in a detached-framing session prefixed — in
   * place when the AEAD sealed into the frame it was given (node:crypto, noble) and the frame was
   * built with the prefix's headroom (`#headroom`): one copy and one buffer of a whole Noise message
   * fewer per frame than `linkMessageOf` (bench/README.md §bench:proxy, session 16).
   */
  #wire(sealed: Uint8Array, detached: Uint8Array | undefined, frame?: Uint8Array): Uint8Array {
    if (!this.detachedFrames) return sealed;
    if (
      detached === undefined &&
      frame !== undefined &&
      sealed.buffer === frame.buffer &&
      sealed.byteOffset === LINK_PREFIX_LEN &&
      sealed.buffer.byteLength === LINK_PREFIX_LEN + sealed.length
    )
      return linkMessageInPlace(sealed);
    return linkMessageOf(sealed, detached);
  }

  /** Room before each frame built here for its link message's prefix (`#wire`): detached framing only. */
  get #headroom(): number {
    return this.detachedFrames ? LINK_PREFIX_LEN : 0;
  }

  /** Queue `work` on the send chain (one frame batch at a time, in call order). */
  #onSendChain(work: () => Promise<void>): Promise<void> {
    const run = this.#sending.then(work);
    this.#sending = run.catch(() => undefined);
    return run;
  }

  /**
   * Messages larger than one frame go out as CHUNK frames; over `maxMessageBytes` throws. The
   * frames are sealed and sent asynchronously, in order; if that fails (nonce exhausted, the link
   * went away) the session closes with the error's code.
   */
  protected transmit(message: Uint8Array): void {
    this.#queueMessage(message, false, false);
  }

  /** `owned`: `message` is the session's (built for it), else the caller's, who may change it. */
  #queueMessage(message: Uint8Array, bulk: boolean, owned: boolean): void {
    if (message.length > this.#maxMessageBytes)
      throw new LoftError("LOFT_ERR_FRAME_TOO_LARGE", `message of ${message.length} bytes exceeds the limit`);
    // Over one frame: cut when the send chain takes it (`#take`), under the id sealed next — kept
    // till then as a copy, as a frame built now is one: the caller's buffer is its own again.
    if (message.length > MAX_DATA_PAYLOAD)
      this.#queueFrames(
        [{ frame: EMPTY, whole: owned ? message : message.slice(), covered: !bulk, more: false }],
        bulk,
      );
    else
      this.#queueFrames(
        [{ frame: dataFrameOf([message], message.length, this.#headroom), covered: !bulk, more: false }],
        bulk,
      );
  }

  /**
   * The next run of `queue` (up to `count` frames), its whole messages cut into CHUNK frames as
   * they are reached, each under the next message id: ids then follow the order messages are
   * sealed in, whichever queue they waited in (session.md §5, "Bulk frames"). A message cut
   * beyond `count` keeps its rest at the head of its queue (`Outgoing.more`).
   */
  #take(queue: Outgoing[], count: number): Outgoing[] {
    for (let i = 0; i < Math.min(count, queue.length); i++) {
      const f = queue[i]!;
      if (!f.whole) continue;
      const frames = messageFrames(f.whole, this.#nextMessageId++, this.#headroom);
      const last = frames.length - 1;
      queue.splice(i, 1, ...frames.map((frame, n) => ({ frame, covered: f.covered, more: n < last })));
      i += last;
    }
    return queue.splice(0, count);
  }

  /**
   * `send` of the concatenation of `parts`, each part copied once, straight into the frame that is
   * sealed — instead of once per layer that prefixes its bytes (the PROXY type, the proxy channel,
   * a DATA head: docs/protocol/proxy.md §Carrying frames over a session). Larger than one DATA
   * frame: joined, then sent as `send` does. `options.bulk`: see `SendOptions`. Either way, bulk or
   * not, every part is copied at the call: its buffer is the caller's again once this returns (a
   * file's read buffers go back to the store at once: web/src/engine/files/transfers.ts `#pump`).
   */
  sendParts(parts: readonly Uint8Array[], options?: SendOptions): void {
    if (this.state === "closed") throw new LoftError("LOFT_ERR_LINK_CLOSED", "session is closed");
    const bulk = options?.bulk === true;
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > MAX_DATA_PAYLOAD || length > this.#maxMessageBytes)
      this.#queueMessage(concatBytes(...parts), bulk, true);
    else
      this.#queueFrames(
        [{ frame: dataFrameOf(parts, length, this.#headroom), covered: !bulk, more: false }],
        bulk,
      );
  }

  /**
   * `sendParts([...head, detached])`, but in a session that negotiated detached frames the
   * `detached` bytes are not sealed by the Noise transport: they follow the sealed DETACHED frame
   * in the same link message, with their length and their last 16 bytes inside it
   * (docs/protocol/session.md §5, "Detached frames"). Only for bytes that carry their own AEAD
   * under a key the network never has, ending in its tag — a ratchet message's body (DR §3.5;
   * docs/protocol/ratchet.md, "One AEAD pass per byte"). In any other session, or for a message
   * over one frame, exactly `sendParts`. Unlike `sendParts`, which copies at the call, a detached
   * `detached` is copied into its link message only when the send chain seals the frame (its tail
   * is taken at the call): the caller must not change or wipe it after the call.
   */
  sendDetached(head: readonly Uint8Array[], detached: Uint8Array): void {
    if (this.state === "closed") throw new LoftError("LOFT_ERR_LINK_CLOSED", "session is closed");
    let length = detached.length;
    for (const part of head) length += part.length;
    if (
      !this.detachedFrames ||
      detached.length < DETACHED_TAIL_LEN ||
      length === detached.length ||
      length > MAX_DETACHED_MESSAGE ||
      length > this.#maxMessageBytes
    )
      this.sendParts([...head, detached]);
    else
      this.#queueFrames(
        [{ frame: detachedFrameOf(head, detached), detached, covered: true, more: false }],
        false,
      );
  }

  /**
   * For a message `receive()` returned from a DETACHED frame, the length of its head — the bytes
   * that were under the Noise AEAD (session.md §5); the rest was not. Undefined for any other
   * message (so also: whether it came detached — its tail was not under the Noise AEAD and the layer above
   * must authenticate it itself, and refuse such a message of any other kind). A layer above checks the split is the one its security argument needs (the chat
   * path: type byte + the whole 81-byte ratchet prefix, web/src/engine/link/controller.ts).
   */
  detachedHead(message: Uint8Array): number | undefined {
    return this.#detachedIn.get(message);
  }

  /**
   * Queue `frames` to be sealed and sent on the send chain; a failure closes the session with its
   * code. Frames queued while the chain is busy are sealed together (`#flush`). A link that closed
   * under the session is the reader's to report (`#pump`): what arrived before the close — the
   * peer's last messages and its CLOSE, a data channel closes right behind them
   * (web/src/net/webrtc-link.ts) — is still read, then the session closes as the link said. Until
   * then the session stays `open` for its reader, but is no longer `writable`: what is queued or
   * sent meanwhile is dropped (counted: `dropped`), and `flushed` says so to a sender that must
   * not lose it. Bulk frames queue apart (`SendOptions.bulk`); a message over one frame, bulk or
   * not, gets its message id when it is sealed (`#take`), so none waits behind another queue's.
   */
  #queueFrames(frames: Outgoing[], bulk: boolean): void {
    for (const f of frames) if (f.covered && !f.more) this.#outstanding++;
    if (this.#sendFailed) {
      this.#drop(frames);
      return;
    }
    const queue = bulk ? this.#bulkOut : this.#outbox;
    for (const f of frames) queue.push(f);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    void this.#onSendChain(() => this.#flush()).catch((e: unknown) => {
      this.#sendFailed = true;
      this.#dropAll();
      const code = isLoftError(e) ? e.code : "LOFT_ERR_HANDSHAKE_STATE";
      if (code === "LOFT_ERR_LINK_CLOSED" && this.#link.state === "closed") return;
      const local = code !== "LOFT_ERR_LINK_CLOSED";
      this.finish({ reason: code, detail: detailOf(e) }, local);
      if (!local) this.#transport.wipe();
    });
  }

  /**
   * Seal and send what is queued, in order: runs of up to SEAL_BATCH frames, each run's AEAD calls
   * in flight together (CipherState `encryptBatchWithAd`: nonces in frame order, so the frames
   * leave as if sealed one by one), never across a rekey (Noise §11.3: the run ends on the frame
   * that triggers it). Bulk frames only when no other frame waits, checked before each run; a
   * chunked message's frames stay together (`Outgoing.more`).
   */
  async #flush(): Promise<void> {
    this.#flushQueued = false;
    while (this.#outbox.length > 0 || this.#bulkOut.length > 0) {
      if (this.#sendFailed) {
        this.#dropAll();
        return;
      }
      const room = this.#rekeyInterval - this.#sentSinceRekey;
      const bulk = this.#midMessage || this.#outbox.length === 0;
      const run = this.#take(bulk ? this.#bulkOut : this.#outbox, Math.min(SEAL_BATCH, room));
      // Only a bulk run can leave a message half sent with other frames waiting: the rest of an
      // unfinished message of `#outbox` is still at its head.
      this.#midMessage = bulk && run[run.length - 1]!.more;
      this.#inFlight = run;
      this.#inFlightHanded = 0;
      if (run.length === 1) {
        await this.#sealQueued(run[0]!);
        this.#inFlight = [];
        continue;
      }
      const sealed = await this.#transport.send.encryptBatchWithAd(
        EMPTY,
        run.map(({ frame }) => frame.subarray(0, frame.length - TAGLEN)),
        run.map(({ frame }) => frame), // in place where the AEAD can (as `#seal`)
      );
      if (!sealed.ok) throw sealed.error;
      this.#sentSinceRekey += run.length;
      if (this.#sentSinceRekey === this.#rekeyInterval) {
        this.#sentSinceRekey = 0;
        await this.#transport.send.rekey(); // Noise §11.3
      }
      if (this.#link.state === "closed") throw new LoftError("LOFT_ERR_LINK_CLOSED", "the link closed");
      for (let i = 0; i < run.length; i++) {
        this.#link.send(this.#wire(sealed.value[i]!, run[i]!.detached, run[i]!.frame));
        this.#inFlightHanded++;
        this.#handed(run[i]!);
      }
      this.#inFlight = [];
    }
  }

  /**
   * Local close: after every frame already sent, tell the peer why in an encrypted CLOSE frame,
   * close the link, wipe keys. The link's close is orderly (core/link/link.ts
   * `LinkCloseInfo.orderly`: it may wait, bounded, until the peer has the CLOSE) only when this
   * close was, and the CLOSE went out.
   */
  protected teardown(info: LinkCloseInfo): void {
    void this.#onSendChain(async () => {
      if (this.#link.state !== "closed") {
        let told = false;
        try {
          if (!this.#sendFailed) {
            await this.#seal(closeFrame(info.reason));
            told = true;
          }
        } catch {
          // the link went away first; nothing more to tell
        }
        this.#link.close(info.reason, info.detail, { orderly: told && info.orderly === true });
      }
      this.#transport.wipe();
    });
  }

  /** The link state, read afresh (TypeScript's narrowing does not see a close across an await). */
  #closed(): boolean {
    return this.state === "closed";
  }

  /**
   * A protocol violation or a failed decryption: close with its code. `detail` is the failure's
   * words without the code (LoftError `detail`): the close info carries the code as `reason`, and
   * whoever re-wraps it (core/device/exchange.ts) must not show it twice.
   */
  #fail(code: LoftErrorCode, detail: string): void {
    this.finish({ reason: code, detail }, true);
  }

  /** One frame: `decryptWithAd` as a batch of one. */
  async #openOne(frame: Uint8Array): Promise<{ opened: Uint8Array[]; error?: LoftError }> {
    const r = await this.#transport.receive.decryptWithAd(EMPTY, frame);
    return r.ok ? { opened: [r.value] } : { opened: [], error: r.error };
  }

  /** Reads Link messages, decrypts them, reassembles, delivers; stops on close. */
  async #pump(): Promise<void> {
    for (;;) {
      let frames: Uint8Array[];
      // What has arrived, up to a run (never across a rekey: Noise §11.3), opened together.
      const room = Math.min(SEAL_BATCH, this.#rekeyInterval - this.#receivedSinceRekey);
      try {
        frames = this.#link.receiveMany ? await this.#link.receiveMany(room) : [await this.#link.receive()];
      } catch {
        if (this.state !== "closed") {
          const info = await this.#link.closed;
          this.finish({ reason: "LOFT_ERR_LINK_CLOSED", detail: info.detail ?? info.reason }, false);
          this.#transport.wipe();
        }
        return;
      }
      if (this.state === "closed") return;
      // A detached-framing session: each link message split at its length prefix first, up to
      // the first that does not parse (the ones before it still count, as with a failed open).
      let rests: Uint8Array[] | undefined;
      let framing: LoftError | undefined;
      if (this.detachedFrames) {
        const sealed: Uint8Array[] = [];
        rests = [];
        for (const m of frames) {
          const split = splitLinkMessage(m);
          if (!split.ok) {
            framing = split.error;
            break;
          }
          sealed.push(split.value.sealed);
          rests.push(split.value.rest);
        }
        frames = sealed;
        if (frames.length === 0) return this.#fail(framing!.code, framing!.detail);
      }
      // No output buffer: node:crypto and WebCrypto decrypt into a fresh buffer anyway, and
      // returning it saves copying the plaintext back over the ciphertext (and wiping the copy).
      // In order until one fails (CipherState `decryptBatchWithAd`): the frames before it count.
      const { opened, error } =
        frames.length === 1
          ? await this.#openOne(frames[0]!)
          : await this.#transport.receive.decryptBatchWithAd(EMPTY, frames);
      if (this.#closed()) return; // closed while the frames were being decrypted
      for (let i = 0; i < opened.length; i++) {
        if (++this.#receivedSinceRekey === this.#rekeyInterval) {
          this.#receivedSinceRekey = 0;
          await this.#transport.receive.rekey(); // Noise §11.3
        }
        // The received link message is the session's: a DETACHED frame's head is written over its
        // opened Noise bytes (frames[i]) so that `head ‖ rest` is delivered without copying rest.
        const inbound = this.#assembler.push(opened[i]!, rests?.[i], frames[i]);
        if (!inbound.ok) return this.#fail(inbound.error.code, inbound.error.detail);
        if (inbound.value.kind === "message") {
          if (inbound.value.detached !== undefined)
            this.#detachedIn.set(inbound.value.message, inbound.value.detached.head);
          this.deliver(inbound.value.message);
        } else if (inbound.value.kind === "close") {
          this.finish({ reason: "remote-closed", detail: inbound.value.reason }, false);
          this.#link.close("remote-closed", inbound.value.reason);
          this.#transport.wipe();
          return;
        }
      }
      if (error) return this.#fail(error.code, error.detail);
      if (framing) return this.#fail(framing.code, framing.detail);
    }
  }
}
