/**
 * The PWA's single door to core/identity (SREMP §identity, DESIGN.md Cryptography): identities,
 * contact ids, TOFU decisions, safety codes and contact links, in the shapes the UI uses.
 *
 * Functions marked INTERIM stand in for core/identity pieces that had not landed when the UI was
 * written (TOFU decision, safety code, contact-link codec); they become thin wrappers over core
 * once those land, without changing the UI.
 */

import { decode, encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, equalBytes, toHex, utf8 } from "../../core/bytes.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  type Identity,
  type UserIdentity,
} from "../../core/identity/identity.ts";
import { validateUsername } from "../../core/identity/username.ts";
import { fromBase64url, toBase64url } from "./lib/base64url.ts";

export type {
  Identity,
  IdentityFlags,
  IdentityVerifiedData,
  UserIdentity,
} from "../../core/identity/identity.ts";
export { decodeIdentity, encodeIdentity, validateUsername };

/** SREMP `Trust`. */
export type Trust = "unknown" | "trusted" | "rejected";

/** ContactId as the PWA keys it: lowercase hex of the Ed25519 identity key. */
export function contactIdOf(identity: Identity): string {
  return toHex(identity.verified.identity_key);
}

/** A fresh identity for `username` (already validated), created in this browser. */
export function newUserIdentity(username: string, now = Date.now()): UserIdentity {
  return createUserIdentity({ username, now });
}

// --- TOFU (SREMP §identity, "Trust-on-first-use") -----------------------------------------------

export interface KnownContact {
  id: string;
  identity: Identity;
  trust: Trust;
}

export type TofuOutcome =
  /** Never seen this identity key, no name clash: add as Unknown. */
  | { kind: "new" }
  /** Exactly what we have. */
  | { kind: "same"; contact: KnownContact }
  /** Same keys, higher version (new name or flags): accept silently. */
  | { kind: "updated"; contact: KnownContact }
  /** Same identity key, different noise key: the user decides. */
  | { kind: "noise-key-changed"; contact: KnownContact }
  /** Same identity key, older version than stored: refuse, tell the user. */
  | { kind: "version-downgrade"; contact: KnownContact }
  /** Another identity key already uses this username: maybe a new key, maybe an impersonator. */
  | { kind: "identity-key-changed"; contact: KnownContact }
  /** The contact is Rejected: nothing to do. */
  | { kind: "rejected"; contact: KnownContact };

/** INTERIM: the TOFU decision for a verified `candidate` against what we know. */
export function tofuDecide(known: readonly KnownContact[], candidate: Identity): TofuOutcome {
  const id = contactIdOf(candidate);
  const same = known.find((k) => k.id === id);
  if (same) {
    if (same.trust === "rejected") return { kind: "rejected", contact: same };
    const a = same.identity.verified;
    const b = candidate.verified;
    if (b.version < a.version) return { kind: "version-downgrade", contact: same };
    if (!equalBytes(a.noise_key, b.noise_key)) return { kind: "noise-key-changed", contact: same };
    if (b.version > a.version) return { kind: "updated", contact: same };
    return { kind: "same", contact: same };
  }
  const clash = known.find((k) => k.identity.verified.username === candidate.verified.username);
  if (clash) return { kind: "identity-key-changed", contact: clash };
  return { kind: "new" };
}

// --- Safety code ---------------------------------------------------------------------------------

export interface SafetyCode {
  /** 60 digits. */
  digits: string;
  /** 12 groups of 5 digits, for reading aloud. */
  groups: string[];
  /** What the QR code carries (both identity keys; the scanner recomputes the digits). */
  qr: string;
}

/**
 * INTERIM: a safety code from two identity keys, the same on both sides (keys sorted first).
 * 30 bytes of SHA-256("loft/safety-code/v1" ‖ lo ‖ hi) → 12 groups, each 5 digits from 40 bits.
 */
export function safetyCode(a: Uint8Array, b: Uint8Array): SafetyCode {
  const [lo, hi] = toHex(a) < toHex(b) ? [a, b] : [b, a];
  const h = sha256(concatBytes(utf8("loft/safety-code/v1"), lo, hi));
  const groups: string[] = [];
  for (let i = 0; i < 12; i++) {
    const off = (i * 5) % 28;
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + h[(off + j) % 32]!;
    groups.push(String(n % 100000).padStart(5, "0"));
  }
  return { digits: groups.join(""), groups, qr: `loft-safety:${toBase64url(lo)}.${toBase64url(hi)}` };
}

// --- Contact links -------------------------------------------------------------------------------

export interface ContactLink {
  identity: Identity;
  signaling?: string;
  relays?: string[];
}

const LINK_MAX_CHARS = 64 * 1024;

/** INTERIM: `<origin>/#c=<base64url(msgpack{ i: identity bytes, s?, r? })>`. */
export function makeContactLink(origin: string, link: ContactLink): string {
  const payload: Record<string, unknown> = { i: encodeIdentity(link.identity) };
  if (link.signaling) payload.s = link.signaling;
  if (link.relays && link.relays.length > 0) payload.r = link.relays;
  return `${origin}/#c=${toBase64url(encode(payload))}`;
}

export type ParsedLink = { ok: true; link: ContactLink } | { ok: false; reason: string };

/** Accepts a full link, a fragment (`#c=...`) or the bare payload; verifies the identity. */
export function parseContactLink(text: string): ParsedLink {
  const trimmed = text.trim();
  if (trimmed.length === 0) return { ok: false, reason: "Paste a contact link first." };
  if (trimmed.length > LINK_MAX_CHARS)
    return { ok: false, reason: "That link is too long to be a contact link." };
  const m = /(?:#|^|&)c=([A-Za-z0-9_-]+)/.exec(trimmed) ?? /^([A-Za-z0-9_-]+)$/.exec(trimmed);
  if (!m) return { ok: false, reason: "That is not a Loft contact link." };
  let payload: unknown;
  try {
    payload = decode(fromBase64url(m[1]!));
  } catch {
    return { ok: false, reason: "That contact link is damaged (maybe cut off when copied)." };
  }
  const p = payload as { i?: unknown; s?: unknown; r?: unknown };
  if (typeof p !== "object" || p === null || !(p.i instanceof Uint8Array))
    return { ok: false, reason: "That contact link is damaged (maybe cut off when copied)." };
  const id = decodeIdentity(p.i);
  if (!id.ok) return { ok: false, reason: "The identity in that link does not verify. Do not use it." };
  const link: ContactLink = { identity: id.value };
  if (typeof p.s === "string") link.signaling = p.s;
  if (Array.isArray(p.r) && p.r.every((x) => typeof x === "string")) link.relays = p.r as string[];
  return { ok: true, link };
}
