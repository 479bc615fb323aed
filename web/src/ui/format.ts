/** Plain-words labels for states, times and days shown in the UI. */
import type { MessageState } from "../engine/api.ts";
import type { RoomView } from "../engine/rooms/api.ts";
import type { Trust } from "../identity.ts";

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

/**
 * An outgoing message's state in words. `stored`: false while a message just handed over is
 * being written (it shows as "sending…"); a queued message to a contact who is online is about to
 * go, so it reads "sending…" too rather than "waiting to send".
 */
export function outgoingStateLabel(state: MessageState, stored: boolean, contactOnline: boolean): string {
  if (!stored || (state === "queued" && contactOnline)) return STATE_LABEL.sending;
  return STATE_LABEL[state];
}

/** Time and date for anything that may be old (contact details): the time alone for today. */
export function timeLabel(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** The clock time only (a message bubble; its day is on the separator above it). */
export function clockLabel(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** Local calendar day of `ms` as a comparable number (days since the epoch, local time). */
export function localDay(ms: number): number {
  const d = new Date(ms);
  return Math.floor(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / 86_400_000);
}

/**
 * A date separator's words: "Today", "Yesterday", the weekday within the last week, else the date
 * (with the year when it is not this year's).
 */
export function dayLabel(ms: number, now = Date.now()): string {
  const diff = localDay(now) - localDay(ms);
  if (diff === 0) return "Today";
  if (diff === 1) return "Yesterday";
  const d = new Date(ms);
  if (diff > 1 && diff < 7) return d.toLocaleDateString(undefined, { weekday: "long" });
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleDateString(undefined, {
    weekday: "short",
    day: "numeric",
    month: "long",
    ...(sameYear ? {} : { year: "numeric" }),
  });
}

/** `YYYY-MM-DD` of the local day (a `<time datetime>` for a date separator). */
export function isoDay(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** One line of a message for a preview: whitespace folded, cut at a length a row can show. */
export function previewText(text: string, max = 80): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * Whose link is out of date when a member refuses us and the state we hold lists us (we were a
 * member, docs/protocol/rooms.md §8) — as far as it is known. A member linked to us holds the
 * secret we hold: one that refuses us holds another, so it is the one behind (`them`). With none
 * linked, several refusing us agree with one another, not with us (`us`, as when the host removed
 * people while we were away, more often than our older secrets reach). One alone tells nothing:
 * either of the two may have missed the changes (`unknown`).
 */
export function whoIsBehind(r: Pick<RoomView, "members">): "us" | "them" | "unknown" {
  if (r.members.some((m) => m.state === "online")) return "them";
  return r.members.filter((m) => m.state === "refused").length >= 2 ? "us" : "unknown";
}

/**
 * A room member chip's words when that member does not let us in (engine/rooms/mesh.ts: its
 * binding is not ours, or the host removed us and no member is dialed any more): why, as far as
 * the room's state tells it — the host removed us, one of our two links holds a secret the room
 * has moved on from (we were a member: `whoIsBehind`), or ours never was this room's.
 */
export function refusedWords(r: Pick<RoomView, "status" | "wasMember" | "members">): string {
  if (r.status === "removed") return "not connected: you were removed from the room";
  if (!r.wasMember) return "refused you: your link is not this room's";
  switch (whoIsBehind(r)) {
    case "us":
      return "refused you: your link is out of date";
    case "them":
      return "refused you: their link is out of date";
    case "unknown":
      return "refused you: your link and theirs differ, one of them is out of date";
  }
}
