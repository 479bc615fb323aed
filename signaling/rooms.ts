/**
 * Room rendezvous (docs/protocol/rooms.md §2): who is present under which room hash. The server
 * never sees a room's id or secret, only the SHA-256 of the id that members join under, and the
 * identity keys registered on the connections present. Members of one room may SIGNAL each other
 * even when their presence is "contacts only" (they met here, by a hash only they could name).
 *
 * Bounded everywhere: members per room (the operator's cap, lowered by each joiner's own `max`),
 * rooms per connection, rooms in total; memory only, nothing persisted, everything of a connection
 * gone when it leaves, unregisters or closes.
 */

export interface RoomLimits {
  maxRoomMembers: number;
  maxRoomsPerConnection: number;
  maxRooms: number;
}

/** What a connection present in rooms must expose. */
export interface RoomMember {
  /** Made at the first join: an idle connection holds no Set (bench/README.md "bench:scale"). */
  rooms: Set<string> | undefined;
}

interface Present<C> {
  readonly conn: C;
  readonly key: Uint8Array<ArrayBuffer>;
}

export type JoinResult<C> =
  | { ok: true; fresh: boolean; others: Present<C>[] }
  | { ok: false; code: "ROOM_FULL" | "TOO_MANY_ROOMS" };

export class RoomTable<C extends RoomMember> {
  readonly #limits: RoomLimits;
  /** room hash (hex) → identity key (hex) → the connection present with it. */
  readonly #rooms = new Map<string, Map<string, Present<C>>>();

  constructor(limits: RoomLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#rooms.size;
  }

  /** `conn`, registered as `keyHex`, joins `room`; the others present are returned. */
  join(room: string, keyHex: string, key: Uint8Array<ArrayBuffer>, conn: C, max: number): JoinResult<C> {
    let members = this.#rooms.get(room);
    const mine = members?.get(keyHex);
    if (mine && mine.conn === conn)
      return { ok: true, fresh: false, others: [...members!.values()].filter((p) => p !== mine) };
    if (!conn.rooms?.has(room) && (conn.rooms?.size ?? 0) >= this.#limits.maxRoomsPerConnection)
      return { ok: false, code: "TOO_MANY_ROOMS" };
    if (!members && this.#rooms.size >= this.#limits.maxRooms) return { ok: false, code: "TOO_MANY_ROOMS" };
    const present = (members?.size ?? 0) - (mine ? 1 : 0);
    if (present + 1 > Math.min(max, this.#limits.maxRoomMembers)) return { ok: false, code: "ROOM_FULL" };
    if (!members) {
      members = new Map();
      this.#rooms.set(room, members);
    }
    // The same identity from another connection (it moved here): the newer connection wins.
    if (mine) mine.conn.rooms?.delete(room);
    const entry = { conn, key: key.slice() };
    members.set(keyHex, entry);
    conn.rooms ??= new Set();
    conn.rooms.add(room);
    return { ok: true, fresh: true, others: [...members.values()].filter((p) => p !== entry) };
  }

  /** `conn` leaves `room`; the others still present are returned (to be told), none if it was not there. */
  leave(room: string, keyHex: string, conn: C): Present<C>[] {
    const members = this.#rooms.get(room);
    conn.rooms?.delete(room);
    const mine = members?.get(keyHex);
    if (!members || mine?.conn !== conn) return [];
    members.delete(keyHex);
    if (members.size === 0) this.#rooms.delete(room);
    return [...members.values()];
  }

  /** Whether `a` and `b` are present in a room together. */
  together(a: C, b: C): boolean {
    if (!a.rooms || !b.rooms) return false;
    const [small, large] = a.rooms.size <= b.rooms.size ? [a.rooms, b.rooms] : [b.rooms, a.rooms];
    for (const room of small) if (large.has(room)) return true;
    return false;
  }
}
