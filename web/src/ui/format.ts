/** Plain-words labels for states shown in the UI. */
import type { MessageState, Presence } from "../engine/api.ts";
import type { Trust } from "../identity.ts";

export function presenceLabel(p: Presence): string {
  if (p.status === "online") return p.path === "relay" ? "online · via relay" : "online · direct";
  if (p.status === "connecting") return "connecting…";
  if (p.directUnavailable) return "direct connection unavailable";
  return "offline";
}

export const TRUST_LABEL: Record<Trust, string> = {
  unknown: "Not verified",
  trusted: "Verified",
  rejected: "Blocked",
};

export const STATE_LABEL: Record<MessageState, string> = {
  queued: "waiting to send",
  sending: "sending…",
  sent: "sent",
  relayed: "sent to relay",
  delivered: "delivered",
  failed: "not sent",
  received: "",
};

export function timeLabel(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}
