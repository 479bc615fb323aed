/**
 * What the UI sees of rooms (web/src/engine/rooms/mesh.ts implements it; docs/protocol/rooms.md).
 * Views are plain data; `subscribe` says when to read them again.
 */

export type MemberState = "connecting" | "online" | "refused";

export interface RoomMemberView {
  key: string;
  name: string | undefined;
  state: MemberState;
  /** This member holds the room's host role (its signed state says so). */
  host: boolean;
  /** We compared safety codes with this member and marked it verified. */
  verified: boolean;
  /** The host role can be handed to it now (connected, its room key known). */
  canBeHost: boolean;
  /**
   * The Noise suite of our live session with it (docs/protocol/noise.md, "Cipher suites"), e.g.
   * "AESGCM_SHA256"; absent while none runs.
   */
  suite?: string;
  /**
   * How our live session with it runs (docs/protocol/rooms.md §3): `direct` (a data channel) or
   * `relay` (no direct path opened: the relay carries it, end-to-end encrypted); absent while none runs.
   */
  path?: "direct" | "relay";
}

/**
 * `removed`: the host removed us; the room stays on the device, read-only, until we leave it.
 * `full`: the room has as many members as it takes (its cap, or the server's). `too-many`: the
 * server takes no more rooms from us (rooms per connection) or at all — not this room's doing.
 */
export type RoomStatus = "joining" | "in" | "full" | "too-many" | "offline" | "refused" | "removed";

export interface RoomView {
  /** Someone else holds the host role and is not connected now: the room works, removals and
   *  hand-overs wait until the host is back (docs/protocol/rooms.md §8, "Host away"). */
  hostAway: boolean;
  /** The room id, hex: the room's name in the app (routes, storage). */
  id: string;
  /** The name this person gave the room on this device (`rename`); absent: none. Never sent. */
  name?: string;
  /** `room=…&k=…&h=…` — the link's fragment (the UI puts it after its own origin). */
  fragment: string;
  /** The newest host-signed member list we hold lists us: refused now, we were a member and the
   *  room's secret moved on further than we can catch up (docs/protocol/rooms.md §8). */
  wasMember: boolean;
  /** We hold the room's host role (we made the room, or it was handed to us). */
  host: boolean;
  status: RoomStatus;
  members: RoomMemberView[];
  /** Attempts by someone without the room secret, refused (newest last, at most 20). */
  refused: { key: string; at: number }[];
  /**
   * Set while this room's history cannot be stored (why, in words: a full disk): messages read
   * meanwhile are shown but not kept nor confirmed, and come again once a write lands.
   */
  unsaved?: string;
  unread: number;
  /** Text of the newest message, for Home. */
  last: string | undefined;
}

export type RoomMessageState = "sent" | "delivered" | "received" | "alone";

/**
 * Ours, per member it was for: `sending` (not yet with the member or its relay mailbox: it goes
 * live when both are here, or into the mailbox once the relay takes it — retried after relay
 * errors), `relayed` (its relay mailbox stored it), `delivered` (the member confirmed it).
 */
export type RoomRecipientState = "sending" | "relayed" | "delivered";

export interface RoomRecipientView {
  key: string;
  name: string | undefined;
  state: RoomRecipientState;
}

export interface RoomMessageView {
  /**
   * The message's own among the room's: its writer and id (ids are the writer's, two members may
   * use the same) — what the room screen keys its list by (ui/Room.tsx).
   */
  key: string;
  id: string;
  /** Sender's identity key (hex); undefined for ours. */
  from: string | undefined;
  name: string | undefined;
  at: number;
  text: string;
  state: RoomMessageState;
  /** Ours: how many of the members it was for have it. */
  delivered: number;
  recipients: number;
  /** Ours: how many of the members not yet confirmed have it waiting in their relay mailbox. */
  relayed: number;
  /** Ours: each member it was for, and where its copy is. */
  to: RoomRecipientView[];
}

export type RoomEvent = { type: "room-changed"; roomId: string } | { type: "rooms-changed" };

export interface RoomsApi {
  /** Read the rooms we are in from storage (the UI can list them before the network is up). */
  load(): Promise<void>;
  list(): RoomView[];
  room(id: string): RoomView | undefined;
  /** New views at each call, the caller's to keep (the room screen's store takes them as they are). */
  messages(id: string): RoomMessageView[];
  /** A new room with us as its host. */
  create(): Promise<RoomView>;
  /** Join from a room link or its fragment; throws an Error written for people on a bad link. */
  join(linkText: string): Promise<RoomView>;
  /** Leave for good: the others are told, the history on this device is deleted. */
  leave(id: string): Promise<void>;
  markRead(id: string): void;
  /** Throws an Error written for people (empty, too long, not in the room). */
  send(id: string, text: string): RoomMessageView;
  subscribe(listener: (e: RoomEvent) => void): () => void;
  /** Host only: remove a member (its links are refused, the room secret changes). Throws for people. */
  remove(id: string, memberKey: string): Promise<void>;
  /** Host only: hand the host role to a connected member (`canBeHost`). Throws for people. */
  handOver(id: string, memberKey: string): Promise<void>;
  /** Name the room on this device only (tidied, at most 64 characters; empty removes the name). */
  rename(id: string, name: string): Promise<void>;
  /** Mark a member verified after comparing safety codes (or take the mark back). */
  verify(id: string, memberKey: string, verified: boolean): void;
}
