/**
 * The per-contact Double Ratchet in use (docs/protocol/chat.md §4 "The per-contact ratchet"):
 * loaded from and persisted to storage (before any ciphertext leaves), and application messages
 * sealed with it for a live session or for the mailbox. Callers run these inside `serial`.
 */
import { wipe } from "../../../core/bytes.ts";
import { canSend, ratchetEncrypt } from "../../../core/ratchet/index.ts";
import { cryptoOf, type EngineContext, type Live, type Peer, Refused } from "./context.ts";

/** What the ratchet part reads of the engine: its log and storage. */
export type RatchetContext = Pick<EngineContext, "cfg" | "storage">;

import { type ChatRatchet, decodeChatRatchet, encodeChatRatchet } from "./ratchet-store.ts";
import { type AppMessage, encodeAppMessage, encodeRatchetFrame } from "./wire.ts";

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

export async function saveRatchet(ctx: RatchetContext, peer: Peer, ratchet: ChatRatchet): Promise<void> {
  peer.ratchet = ratchet;
  const blob = encodeChatRatchet(ratchet);
  try {
    await ctx.storage.saveSession(peer.id, blob);
  } finally {
    wipe(blob);
  }
}

/** The contact's loaded ratchet may send now (Alice's from the start, Bob's once Alice wrote). */
export function ratchetCanSend(peer: Peer): boolean {
  return peer.ratchet !== undefined && canSend(peer.ratchet.state);
}

/** Encrypt one application message with the contact's ratchet and send it (inside serial). */
export async function sendApp(
  ctx: RatchetContext,
  peer: Peer,
  live: Live,
  message: AppMessage,
): Promise<void> {
  const r = peer.ratchet;
  if (!r || !canSend(r.state)) throw new Refused("ratchet-cannot-send");
  if (live.session.state === "closed") throw new Refused("LOFT_ERR_LINK_CLOSED");
  live.session.send(encodeRatchetFrame(await encryptAndPersist(ctx, peer, r, message)));
}

/** Ratchet-encrypt one message and persist the advanced state before the ciphertext leaves, so
 * a crash never reuses a chain key (Signal DR §3.5). */
async function encryptAndPersist(
  ctx: RatchetContext,
  peer: Peer,
  r: ChatRatchet,
  message: AppMessage,
): Promise<Uint8Array> {
  const plaintext = encodeAppMessage(message);
  const { state, message: sealed } = await ratchetEncrypt(r.state, plaintext, Date.now(), cryptoOf(ctx));
  wipe(plaintext);
  await saveRatchet(ctx, peer, { id: r.id, state });
  return sealed;
}

/** Encrypt one application message with the contact's ratchet, for the mailbox (inside serial). */
export async function seal(
  ctx: RatchetContext,
  peer: Peer,
  message: AppMessage,
): Promise<Uint8Array | undefined> {
  const { ratchet: r } = await loadRatchet(ctx, peer);
  if (!r || !canSend(r.state)) return undefined;
  return encryptAndPersist(ctx, peer, r, message);
}
