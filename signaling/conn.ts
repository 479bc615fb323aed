/**
 * One signaling WebSocket's state (signaling/service.ts), packed for idle connections: most of a
 * server's connections are idle, and what one costs decides how many an instance holds
 * (docs/operations.md, "Idle connections"; bench/README.md, "Idle WebSockets").
 *
 * - The booleans (`alive`, `hello`, `closed`, `busy`) and the rate-limit `violations` count share
 *   one small integer: one field instead of five, 8 bytes each.
 * - What only a connection whose REGISTER verified uses — the last accepted REGISTER's timestamp,
 *   the identity's public key, the envelope nonces, the registration, its rooms, its room-join
 *   bucket, its TURN tag and credentials' expiry, the Redis change number — lives in a
 *   `Registered` object made at that REGISTER (an idle connection that never registers holds none).
 * - What only a connection that SUBSCRIBEs uses (`shown`, `visibleTo`) lives in a `Viewer` object
 *   made at the first SUBSCRIBE; the watched keys stay a field (read for every presence push).
 *
 * The fields keep their names as accessors, so the service reads `conn.reg`, `conn.rooms`, … as
 * before (signaling/rooms.ts does too). A getter of a field whose object is not made yet answers
 * what a fresh one holds (the TURN tag, drawn at random when the object is made: undefined) and
 * makes nothing; a setter makes the object only when given something to keep.
 */
import type { KeyObject } from "node:crypto";
import type { ClientMessage } from "../core/wire/signaling.ts";
import type { TokenBucket } from "../host/token-bucket.ts";
import type { ServerSocket as WebSocket } from "../host/websocket-server.ts";
import type { RecentNonces, SourceState } from "./limits.ts";
import type { Registration } from "./registry.ts";
import { turnTag } from "./turn-credentials.ts";

// Bits of Conn's #bits; the rate-limit violations count is the rest (bits 4 and up).
const ALIVE = 1;
const HELLO = 2;
const CLOSED = 4;
const BUSY = 8;
const FLAG_BITS = 4;
const FLAGS = (1 << FLAG_BITS) - 1;
/**
 * Violations are counted up to here and no further (config caps --signal-max-violations at
 * 1 000 000, far below): the integer stays a small one whatever a connection sends after its close.
 */
const MAX_VIOLATIONS = 1 << 24;

/** What a connection keeps once a REGISTER's signature verified on it (made then). */
class Registered {
  /** Timestamp of the last REGISTER accepted here; a later one must be greater. */
  lastRegisterAt = 0;
  /** The registered identity's key, for verifying its envelopes natively. */
  publicKey: KeyObject | undefined = undefined;
  /** Envelope nonces this connection's sender used within the skew window. */
  envelopeNonces: RecentNonces | undefined = undefined;
  reg: Registration<Conn> | undefined = undefined;
  /** Room hashes (hex) this connection is present in, as its registered identity (signaling/rooms.ts). */
  rooms: Set<string> | undefined = undefined;
  /** ROOM_JOINs this connection may still send now; made and forgotten as `bucket` is. */
  joinBucket: TokenBucket | undefined = undefined;
  /** Random tag of this connection's TURN usernames (signaling/turn-credentials.ts). */
  readonly turnTag = turnTag();
  /** When the ICE servers last pushed to this connection expire; undefined: none pushed yet. */
  iceUntil: number | undefined = undefined;
  /** With --redis: the change number of this connection's last accepted REGISTER. */
  sharedQ = 0;
}

/** What a connection keeps once it SUBSCRIBEd (made then). */
class Viewer {
  /** What this connection was last told about each watched key (online or not); made on first use. */
  shown: Map<string, boolean> | undefined = undefined;
  /** When set (SUBSCRIBE `only_watched`), the identities that may see this registration. */
  visibleTo: Set<string> | undefined = undefined;
}

export class Conn {
  /**
   * The connection's message bucket, made at the first frame and forgotten by the heartbeat once
   * it has refilled (a full bucket is what a fresh one is): idle connections hold none.
   */
  bucket: TokenBucket | undefined = undefined;
  /** The keys it watches (SUBSCRIBE); `none`, shared, until it watches any. */
  watching: ReadonlySet<string>;
  /** A request of this connection is waiting for Redis; later ones wait here (in order). */
  backlog: ClientMessage[] | undefined = undefined;
  #bits = ALIVE;
  #registered: Registered | undefined = undefined;
  #viewer: Viewer | undefined = undefined;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly source: SourceState,
    /** The Host the client addressed (for the default audience check). */
    readonly host: string | undefined,
    none: ReadonlySet<string>,
  ) {
    this.watching = none;
  }

  // ---- the bits -------------------------------------------------------------------------------

  #bit(bit: number, on: boolean): void {
    this.#bits = on ? this.#bits | bit : this.#bits & ~bit;
  }

  /** Answered the last ping, or sent something, since the last heartbeat. */
  get alive(): boolean {
    return (this.#bits & ALIVE) !== 0;
  }
  set alive(on: boolean) {
    this.#bit(ALIVE, on);
  }

  /** Its VERSION_HEADER arrived. */
  get hello(): boolean {
    return (this.#bits & HELLO) !== 0;
  }
  set hello(on: boolean) {
    this.#bit(HELLO, on);
  }

  /** Its socket closed. */
  get closed(): boolean {
    return (this.#bits & CLOSED) !== 0;
  }
  set closed(on: boolean) {
    this.#bit(CLOSED, on);
  }

  /** A request of this connection is waiting for Redis (later ones wait in `backlog`). */
  get busy(): boolean {
    return (this.#bits & BUSY) !== 0;
  }
  set busy(on: boolean) {
    this.#bit(BUSY, on);
  }

  /** Rate-limited frames and pings so far (closed past --signal-max-violations). */
  get violations(): number {
    return this.#bits >>> FLAG_BITS;
  }
  set violations(n: number) {
    this.#bits = (Math.min(Math.max(0, n), MAX_VIOLATIONS) << FLAG_BITS) | (this.#bits & FLAGS);
  }

  // ---- made at the first REGISTER whose signature verified --------------------------------------

  /** The `Registered` object, made now if there is none yet (a REGISTER verified). */
  #r(): Registered {
    this.#registered ??= new Registered();
    return this.#registered;
  }

  get lastRegisterAt(): number {
    return this.#registered?.lastRegisterAt ?? 0;
  }
  set lastRegisterAt(t: number) {
    this.#r().lastRegisterAt = t;
  }

  get publicKey(): KeyObject | undefined {
    return this.#registered?.publicKey;
  }
  set publicKey(k: KeyObject | undefined) {
    if (k !== undefined || this.#registered) this.#r().publicKey = k;
  }

  get envelopeNonces(): RecentNonces | undefined {
    return this.#registered?.envelopeNonces;
  }
  set envelopeNonces(n: RecentNonces | undefined) {
    if (n !== undefined || this.#registered) this.#r().envelopeNonces = n;
  }

  get reg(): Registration<Conn> | undefined {
    return this.#registered?.reg;
  }
  set reg(r: Registration<Conn> | undefined) {
    if (r !== undefined || this.#registered) this.#r().reg = r;
  }

  get rooms(): Set<string> | undefined {
    return this.#registered?.rooms;
  }
  set rooms(s: Set<string> | undefined) {
    if (s !== undefined || this.#registered) this.#r().rooms = s;
  }

  get joinBucket(): TokenBucket | undefined {
    return this.#registered?.joinBucket;
  }
  set joinBucket(b: TokenBucket | undefined) {
    if (b !== undefined || this.#registered) this.#r().joinBucket = b;
  }

  /**
   * Drawn with the `Registered` object: only a connection whose REGISTER verified is handed TURN
   * credentials (docs/protocol/signaling.md "ICE_SERVERS"). Undefined before: reading it must not
   * make the object, or an idle connection would carry one (the packing above).
   */
  get turnTag(): string | undefined {
    return this.#registered?.turnTag;
  }

  get iceUntil(): number | undefined {
    return this.#registered?.iceUntil;
  }
  set iceUntil(t: number | undefined) {
    if (t !== undefined || this.#registered) this.#r().iceUntil = t;
  }

  get sharedQ(): number {
    return this.#registered?.sharedQ ?? 0;
  }
  set sharedQ(q: number) {
    if (q !== 0 || this.#registered) this.#r().sharedQ = q;
  }

  // ---- made at the first SUBSCRIBE ------------------------------------------------------------

  #v(): Viewer {
    this.#viewer ??= new Viewer();
    return this.#viewer;
  }

  get shown(): Map<string, boolean> | undefined {
    return this.#viewer?.shown;
  }
  set shown(m: Map<string, boolean> | undefined) {
    if (m !== undefined || this.#viewer) this.#v().shown = m;
  }

  get visibleTo(): Set<string> | undefined {
    return this.#viewer?.visibleTo;
  }
  set visibleTo(s: Set<string> | undefined) {
    if (s !== undefined || this.#viewer) this.#v().visibleTo = s;
  }
}
