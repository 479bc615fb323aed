/**
 * A room link and what is derived from it (docs/protocol/rooms.md §1–§2, §4):
 *
 *   https://HOST/#room=<id>&k=<secret>&h=<host public key>
 *
 * each value base64url without padding (core/codec/base64url.ts): `id` 16 random bytes, `k` 32
 * random bytes (the room secret), `h` the 32-byte Ed25519 public key of the room's host key. The
 * whole link lives in the URL fragment, which browsers never send to a server; the app reads it and
 * removes it from the address bar.
 *
 *   room hash    = SHA-256("loft/room/rendezvous/v1" ‖ 0x00 ‖ id)            → signaling (§2)
 *   room binding = HKDF-SHA256(ikm = k, salt = id, info = "loft/room/binding/v1" ‖ h, 32)
 *                                                   → the Noise prologue of every member link (§4)
 *
 * Signaling learns the hash and nothing else: not the id (a hash preimage), not the secret. Anyone
 * with the id can meet members at the rendezvous, but without `k` (and the same `h`) their
 * handshakes fail (LOFT_ERR_DECRYPT on the member's side) before anything is read.
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8 } from "../../../../core/bytes.ts";
import { fromBase64url, toBase64url } from "../../../../core/codec/base64url.ts";
import { err, ok, type Result } from "../../../../core/errors.ts";

export const ROOM_ID_BYTES = 16;
export const ROOM_SECRET_BYTES = 32;
export const ROOM_HOST_KEY_BYTES = 32;
export const RENDEZVOUS_LABEL = "loft/room/rendezvous/v1";
export const BINDING_LABEL = "loft/room/binding/v1";

/** What a room link carries. */
export interface RoomLink {
  id: Uint8Array;
  secret: Uint8Array;
  host: Uint8Array;
}

/** The fragment of a room link (`room=…&k=…&h=…`, without `#`). */
export function roomFragment(link: RoomLink): string {
  return `room=${toBase64url(link.id)}&k=${toBase64url(link.secret)}&h=${toBase64url(link.host)}`;
}

/** The full link on `origin` (e.g. `https://loft.example`). */
export function formatRoomLink(origin: string, link: RoomLink): string {
  return `${origin.replace(/\/+$/, "")}/#${roomFragment(link)}`;
}

const FIELDS: readonly [string, keyof RoomLink, number][] = [
  ["room", "id", ROOM_ID_BYTES],
  ["k", "secret", ROOM_SECRET_BYTES],
  ["h", "host", ROOM_HOST_KEY_BYTES],
];

/**
 * Read a room link: a full URL, or its fragment with or without `#`. Exactly the three fields,
 * once each, in any order; each the exact length. LOFT_ERR_MALFORMED otherwise, naming what is wrong.
 */
export function parseRoomLink(text: string): Result<RoomLink> {
  if (text.length > 512) return err("LOFT_ERR_MALFORMED", "a room link is at most 512 characters");
  const hashAt = text.indexOf("#");
  const fragment = hashAt >= 0 ? text.slice(hashAt + 1) : text.trim();
  const seen = new Map<string, string>();
  for (const part of fragment.split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return err("LOFT_ERR_MALFORMED", "a room link is room=…&k=…&h=…");
    const name = part.slice(0, eq);
    if (seen.has(name)) return err("LOFT_ERR_MALFORMED", `the room link names "${name}" twice`);
    seen.set(name, part.slice(eq + 1));
  }
  const out: Partial<RoomLink> = {};
  for (const [name, field, length] of FIELDS) {
    const value = seen.get(name);
    if (value === undefined) return err("LOFT_ERR_MALFORMED", `the room link has no "${name}"`);
    const bytes = fromBase64url(value, 64);
    if (!bytes.ok || bytes.value.length !== length)
      return err("LOFT_ERR_MALFORMED", `the room link's "${name}" is not ${length} bytes of base64url`);
    out[field] = bytes.value;
    seen.delete(name);
  }
  if (seen.size > 0)
    return err("LOFT_ERR_MALFORMED", `the room link has an unknown field "${[...seen.keys()][0]}"`);
  return ok(out as RoomLink);
}

/** Whether a URL fragment (with or without `#`) is a room link rather than anything else. */
export function isRoomFragment(fragment: string): boolean {
  return /^#?room=/.test(fragment);
}

/** The rendezvous name signaling sees (docs/protocol/rooms.md §2). */
export function roomHash(id: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(RENDEZVOUS_LABEL), new Uint8Array([0]), id));
}

/** The secret every member link binds into its Noise prologue (docs/protocol/rooms.md §4). */
export function roomBinding(link: RoomLink): Uint8Array {
  return hkdf(sha256, link.secret, link.id, concatBytes(utf8(BINDING_LABEL), link.host), 32);
}

/** A fresh room: random id and secret, and the host's public key (the creator's room key). */
export function newRoomLink(
  hostPublicKey: Uint8Array,
  random = (n: number) => crypto.getRandomValues(new Uint8Array(n)),
): RoomLink {
  return { id: random(ROOM_ID_BYTES), secret: random(ROOM_SECRET_BYTES), host: hostPublicKey.slice() };
}
