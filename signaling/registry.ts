/**
 * The rendezvous registry (SREMP §rendezvous, "Registration"): which identity keys are online,
 * bound to which connection, until when. Registrations expire unless renewed; expiry, explicit
 * unregistration and connection loss all remove the peer and publish "offline" to presence
 * subscribers. Memory only: nothing is persisted, a restart forgets everyone (clients
 * re-register on reconnect).
 *
 * Expiry uses a one-second timing wheel (bucket = ceil(expiresAt / 1 s)), so a sweep costs the
 * number of expiring registrations plus elapsed seconds, not the size of the registry.
 */
import { toHex } from "../core/bytes.ts";

type Bytes = Uint8Array<ArrayBuffer>;

export interface Registration<C> {
  readonly key: Bytes;
  readonly keyHex: string;
  /** The signed Identity exactly as registered (handed back in LOOKUP). */
  identity: Bytes;
  version: number;
  conn: C;
  registeredAt: number;
  /** Last REGISTER (first or renewal), ms since epoch. */
  lastSeen: number;
  expiresAt: number;
}

export type PresenceListener<C> = (subscriber: C, key: Bytes, online: boolean) => void;

export class PeerRegistry<C> {
  readonly #byKey = new Map<string, Registration<C>>();
  readonly #wheel = new Map<number, Set<Registration<C>>>();
  #sweptSecond: number;
  /** Subscribed connections per watched key. */
  readonly #watchers = new Map<string, Set<C>>();
  #watchCount = 0;

  constructor(
    now: number,
    private readonly onPresence: PresenceListener<C>,
  ) {
    this.#sweptSecond = Math.floor(now / 1000);
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Number of (connection, key) presence subscriptions. */
  get subscriptions(): number {
    return this.#watchCount;
  }

  get(keyHex: string): Registration<C> | undefined {
    return this.#byKey.get(keyHex);
  }

  isOnline(key: Uint8Array): boolean {
    return this.#byKey.has(toHex(key));
  }

  /** Up to `max` registrations, in registration order. */
  list(max: number): Registration<C>[] {
    const out: Registration<C>[] = [];
    for (const r of this.#byKey.values()) {
      if (out.length >= max) break;
      out.push(r);
    }
    return out;
  }

  #schedule(r: Registration<C>): void {
    const second = Math.ceil(r.expiresAt / 1000);
    let bucket = this.#wheel.get(second);
    if (!bucket) {
      bucket = new Set();
      this.#wheel.set(second, bucket);
    }
    bucket.add(r);
  }

  #unschedule(r: Registration<C>): void {
    const second = Math.ceil(r.expiresAt / 1000);
    const bucket = this.#wheel.get(second);
    if (!bucket) return;
    bucket.delete(r);
    if (bucket.size === 0) this.#wheel.delete(second);
  }

  /**
   * Insert a new registration or update one (renewal, replacement by another connection).
   * Returns the previous registration's connection when it was bound elsewhere.
   */
  upsert(
    key: Uint8Array,
    fields: { identity: Bytes; version: number; conn: C; now: number; expiresAt: number },
  ): { registration: Registration<C>; replaced: C | undefined; fresh: boolean } {
    const keyHex = toHex(key);
    const existing = this.#byKey.get(keyHex);
    if (existing) {
      this.#unschedule(existing);
      const replaced = existing.conn === fields.conn ? undefined : existing.conn;
      existing.identity = fields.identity;
      existing.version = fields.version;
      existing.conn = fields.conn;
      existing.lastSeen = fields.now;
      existing.expiresAt = fields.expiresAt;
      this.#schedule(existing);
      return { registration: existing, replaced, fresh: false };
    }
    const registration: Registration<C> = {
      key: key.slice(),
      keyHex,
      identity: fields.identity,
      version: fields.version,
      conn: fields.conn,
      registeredAt: fields.now,
      lastSeen: fields.now,
      expiresAt: fields.expiresAt,
    };
    this.#byKey.set(keyHex, registration);
    this.#schedule(registration);
    this.#publish(registration.key, keyHex, true);
    return { registration, replaced: undefined, fresh: true };
  }

  /** Remove a registration (unregister, connection closed, expired) and publish "offline". */
  remove(r: Registration<C>): void {
    if (this.#byKey.get(r.keyHex) !== r) return;
    this.#byKey.delete(r.keyHex);
    this.#unschedule(r);
    this.#publish(r.key, r.keyHex, false);
  }

  /** Remove every registration whose time is up; `onExpired` runs before "offline" is published. */
  sweep(now: number, onExpired: (r: Registration<C>) => void): number {
    const until = Math.floor(now / 1000);
    let expired = 0;
    for (let s = this.#sweptSecond + 1; s <= until; s++) {
      const bucket = this.#wheel.get(s);
      if (!bucket) continue;
      this.#wheel.delete(s);
      for (const r of bucket) {
        if (this.#byKey.get(r.keyHex) !== r) continue;
        this.#byKey.delete(r.keyHex);
        expired++;
        onExpired(r);
        this.#publish(r.key, r.keyHex, false);
      }
    }
    if (until > this.#sweptSecond) this.#sweptSecond = until;
    return expired;
  }

  // ---- presence --------------------------------------------------------------------------------

  /** Replace `conn`'s watched keys (deduplicated by the caller); returns the current states. */
  watch(conn: C, previous: ReadonlySet<string>, next: Map<string, Bytes>): { key: Bytes; online: boolean }[] {
    for (const keyHex of previous) if (!next.has(keyHex)) this.#unwatchOne(conn, keyHex);
    const states: { key: Bytes; online: boolean }[] = [];
    for (const [keyHex, key] of next) {
      if (!previous.has(keyHex)) {
        let set = this.#watchers.get(keyHex);
        if (!set) {
          set = new Set();
          this.#watchers.set(keyHex, set);
        }
        if (!set.has(conn)) {
          set.add(conn);
          this.#watchCount++;
        }
      }
      states.push({ key, online: this.#byKey.has(keyHex) });
    }
    return states;
  }

  /** The connections watching `keyHex`. */
  watchersOf(keyHex: string): Iterable<C> {
    return this.#watchers.get(keyHex) ?? [];
  }

  unwatchAll(conn: C, keys: Iterable<string>): void {
    for (const keyHex of keys) this.#unwatchOne(conn, keyHex);
  }

  #unwatchOne(conn: C, keyHex: string): void {
    const set = this.#watchers.get(keyHex);
    if (!set?.delete(conn)) return;
    this.#watchCount--;
    if (set.size === 0) this.#watchers.delete(keyHex);
  }

  #publish(key: Bytes, keyHex: string, online: boolean): void {
    const set = this.#watchers.get(keyHex);
    if (!set) return;
    for (const conn of set) this.onPresence(conn, key, online);
  }
}
