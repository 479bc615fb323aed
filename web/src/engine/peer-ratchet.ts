/**
 * The per-contact Double Ratchet in use (docs/protocol/chat.md §4 "The per-contact ratchet"):
 * loaded from and persisted to storage (before any ciphertext leaves), and application messages
 * sealed with it for a live session or for the mailbox. Callers run these inside `serial`.
 *
 * Message version (docs/protocol/ratchet.md, "Version 0x02", "Version 0x03"; docs/decisions.md): a
 * live session whose peer's handshake payload carried `ratchet.v2` listing 0x03 gets 0x03 (header
 * and body AES-256-GCM, native in WebCrypto), listing only 0x02 gets 0x02 (AES-256-GCM body); any
 * other peer, and every mailbox deposit, 0x01 — a mailbox message may be read by a device of the
 * contact that was never seen live, and nothing stored says it reads more. This engine reads every
 * version from any peer, whatever that peer announced.
 *
 * Bundles (docs/protocol/chat.md §5, "Bundles"; docs/decisions.md): to a live peer whose handshake
 * carried `chat.bundle` = 01, the consecutive chat messages of a burst share one ratchet message;
 * to any other peer, and in the mailbox, one ratchet message per application message.
 */
import { wipe } from "../../../core/bytes.ts";
import {
  canSend,
  MESSAGE_VERSION,
  MESSAGE_VERSION_2,
  MESSAGE_VERSION_3,
  type MessageVersion,
  type RatchetState,
  ratchetEncrypt,
  ratchetEncryptBatch,
  type SealedParts,
} from "../../../core/ratchet/index.ts";
import { announcesFlag, type Extensions } from "../../../core/session/index.ts";
import { cryptoOf, type EngineContext, type Live, type Peer, Refused } from "./context.ts";

/**
 * Handshake extension (docs/protocol/chat.md §2): the ratchet message versions this side reads,
 * one byte each. Inside the encrypted, authenticated handshake payload, so a man in the middle
 * can neither add nor strip it.
 */
export const RATCHET_VERSIONS_EXTENSION = "ratchet.v2";
const READS = new Uint8Array([MESSAGE_VERSION, MESSAGE_VERSION_2, MESSAGE_VERSION_3]);

/** The extension every engine session sends. */
export function ratchetVersionsExtension(): Record<string, Uint8Array> {
  return { [RATCHET_VERSIONS_EXTENSION]: READS.slice() };
}

/**
 * Handshake extension (docs/protocol/chat.md §5, "Bundles"): `01` says this side reads bundles —
 * several chat messages under one ratchet message. Exactly that one byte counts; a later layout
 * gets a value of its own. Inside the authenticated handshake payload, like `ratchet.v2`.
 */
export const BUNDLES_EXTENSION = "chat.bundle";

/** The bundles extension every engine session sends. */
export function bundlesExtension(): Record<string, Uint8Array> {
  return { [BUNDLES_EXTENSION]: Uint8Array.of(1) };
}

/** Whether the peer's handshake said it reads bundles (exactly `01`). */
export const peerReadsBundles = (remoteExtensions: Extensions): boolean =>
  announcesFlag(remoteExtensions, BUNDLES_EXTENSION);

/**
 * The version to write on a live session: the newest the peer announced it reads — 0x03, else
 * 0x02, else 0x01 (a peer from before the extension, or one listing neither).
 */
export function liveMessageVersion(remoteExtensions: Extensions): MessageVersion {
  const reads = Object.hasOwn(remoteExtensions, RATCHET_VERSIONS_EXTENSION)
    ? remoteExtensions[RATCHET_VERSIONS_EXTENSION]
    : undefined;
  if (reads?.includes(MESSAGE_VERSION_3)) return MESSAGE_VERSION_3;
  return reads?.includes(MESSAGE_VERSION_2) ? MESSAGE_VERSION_2 : MESSAGE_VERSION;
}

/** What the ratchet part reads of the engine: its log and storage. */
export type RatchetContext = Pick<EngineContext, "cfg" | "storage">;

import { type ChatRatchet, decodeChatRatchet, encodeChatRatchet } from "./ratchet-store.ts";
import { type AppMessage, appPlaintexts, encodeAppMessage, RATCHET_FRAME_TYPE } from "./wire.ts";

export async function loadRatchet(
  ctx: RatchetContext,
  peer: Peer,
): Promise<{ ratchet?: ChatRatchet; unreadable: boolean }> {
  if (peer.ratchet) return { ratchet: peer.ratchet, unreadable: false };
  const blob = await ctx.storage.loadSession(peer.id);
  if (!blob) return { unreadable: false };
  const decoded = decodeChatRatchet(blob);
  wipe(blob);
  if (!decoded.ok) {
    ctx.cfg.log(`stored ratchet for ${peer.id.slice(0, 8)} unreadable: ${decoded.error.code}`);
    return { unreadable: true };
  }
  peer.ratchet = decoded.value;
  return { ratchet: decoded.value, unreadable: false };
}

/**
 * Persist the contact's ratchet, and only then make it the one in use (Signal DR §3.5: the state
 * is durable before anything that depends on it — a ciphertext it sealed, a message it read — goes
 * out or is acted on). A write that fails leaves memory where storage is (`restoreStored`): a send
 * whose state did not stick is encrypted again from the stored state (its ciphertexts never left),
 * and a received message whose state did not stick still opens when it comes again, instead of
 * meeting a ratchet that already spent its key.
 */
export async function saveRatchet(ctx: RatchetContext, peer: Peer, ratchet: ChatRatchet): Promise<void> {
  const blob = encodeChatRatchet(ratchet);
  try {
    await ctx.storage.saveSession(peer.id, blob);
  } catch (e) {
    await restoreStored(ctx, peer);
    throw e;
  } finally {
    wipe(blob);
  }
  peer.ratchet = ratchet;
}

/**
 * Put back in memory the ratchet storage holds (none if it holds none or cannot be read): the state
 * in use before a failed step may be wiped and consumed already (core/ratchet wipes what it
 * advanced from), so storage is the only copy to go back to.
 */
async function restoreStored(ctx: RatchetContext, peer: Peer): Promise<void> {
  peer.ratchet = undefined;
  try {
    await loadRatchet(ctx, peer);
  } catch (e) {
    ctx.cfg.log(`stored ratchet for ${peer.id.slice(0, 8)} not read back: ${(e as Error).message}`);
  }
}

/** The contact's loaded ratchet may send now (Alice's from the start, Bob's once Alice wrote). */
export function ratchetCanSend(peer: Peer): boolean {
  return peer.ratchet !== undefined && canSend(peer.ratchet.state);
}

/** Encrypt one application message with the contact's ratchet and send it (inside serial). */
export function sendApp(ctx: RatchetContext, peer: Peer, live: Live, message: AppMessage): Promise<void> {
  return sendApps(ctx, peer, live, [message]);
}

/**
 * Encrypt several application messages with the contact's ratchet, one after the other, persist
 * the state once — the state after the last of them — and only then send them all, in order
 * (inside serial). Signal DR §3.5's rule holds for each: the stored state is at or past the one
 * that produced every ciphertext before any of them leaves, so a crash never reuses a chain key;
 * a burst pays one sealed state write instead of one per message (docs/protocol/chat.md §4).
 */
export async function sendApps(
  ctx: RatchetContext,
  peer: Peer,
  live: Live,
  messages: readonly AppMessage[],
  alone?: ReadonlySet<number>,
): Promise<void> {
  if (messages.length === 0) return;
  const r = peer.ratchet;
  if (!r || !canSend(r.state)) throw new Refused("ratchet-cannot-send");
  // Not only closed: a session whose link closed under it drops what is sent while its reader
  // drains (core/session `writable`); the ratchet is not moved for messages that cannot leave.
  if (!live.session.writable) throw new Refused("LOFT_ERR_LINK_CLOSED");
  const messageVersion = liveMessageVersion(live.session.remoteExtensions);
  // To a peer that reads bundles, consecutive chat messages share one ratchet message (one KDF_CK
  // step, one header, one body AEAD: docs/protocol/chat.md §5, "Bundles"; docs/decisions.md) —
  // but not those `alone` names (messages.ts `flushOutbox`: a resend).
  const bundles = peerReadsBundles(live.session.remoteExtensions);
  // One batch call: KDF_CK step by step, the seals of the whole burst overlapping (core/ratchet
  // `ratchetEncryptBatch`; the same messages as one ratchetEncryptParts per message).
  const sealed = await encryptAndPersist<SealedParts>(
    ctx,
    peer,
    r,
    // Encoded first: a message that does not encode throws before the ratchet moves.
    appPlaintexts(messages, bundles, alone),
    async (state, plaintexts) => {
      const batch = await ratchetEncryptBatch(state, plaintexts, Date.now(), {
        ...cryptoOf(ctx),
        messageVersion,
      });
      return { state: batch.state, sealed: batch.messages };
    },
  );
  // Each message as the RATCHET frame (type ‖ prefix ‖ body, the bytes of `encodeRatchetFrame`)
  // with its body detached: to a peer that announced `session.detached` the Noise transport seals
  // type ‖ prefix and the body's length and tag, and the body — already sealed by the ratchet
  // under its message key — follows unsealed again: one AEAD pass per byte (docs/protocol/ratchet.md,
  // "One AEAD pass per byte"; docs/decisions.md). To any other peer, the whole frame in one Noise
  // frame as before (`sendDetached` falls back to `sendParts`).
  for (const s of sealed) live.session.sendDetached([RATCHET_FRAME_TYPE, s.prefix], s.body);
  live.syncOwed = false;
}

/** Ratchet encryption of plaintexts in order: the advanced state and what each sealed. */
type EncryptAll<T> = (
  state: RatchetState,
  plaintexts: readonly Uint8Array[],
) => Promise<{ state: RatchetState; sealed: readonly T[] }>;

/** Ratchet-encrypt encoded messages in order (wiped after) and persist the advanced state before
 * any ciphertext leaves, so a crash never reuses a chain key (Signal DR §3.5). */
async function encryptAndPersist<T>(
  ctx: RatchetContext,
  peer: Peer,
  r: ChatRatchet,
  plaintexts: readonly Uint8Array[],
  encrypt: EncryptAll<T>,
): Promise<readonly T[]> {
  let out: { state: RatchetState; sealed: readonly T[] };
  try {
    // A batch that throws leaves the state it started from as it was (core/ratchet: the state is
    // replaced only on success), so memory still matches storage; nothing of it is sent.
    out = await encrypt(r.state, plaintexts);
  } finally {
    for (const p of plaintexts) wipe(p);
  }
  const { state, sealed } = out;
  await saveRatchet(ctx, peer, { id: r.id, state });
  return sealed;
}

/**
 * Encrypt one application message with the contact's ratchet, for the mailbox (inside serial):
 * always version 0x01 (see the file comment).
 */
export async function seal(
  ctx: RatchetContext,
  peer: Peer,
  message: AppMessage,
): Promise<Uint8Array | undefined> {
  const { ratchet: r } = await loadRatchet(ctx, peer);
  if (!r || !canSend(r.state)) return undefined;
  const sealed = await encryptAndPersist(
    ctx,
    peer,
    r,
    [encodeAppMessage(message)],
    async (state, [plaintext]) => {
      const next = await ratchetEncrypt(state, plaintext!, Date.now(), {
        ...cryptoOf(ctx),
        messageVersion: MESSAGE_VERSION,
      });
      return { state: next.state, sealed: [next.message] };
    },
  );
  return sealed[0];
}
