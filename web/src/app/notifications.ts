/**
 * Message notifications (Notifications API, https://notifications.spec.whatwg.org/), shown through
 * the Service Worker registration (`registration.showNotification`) so they also work for an
 * installed app in the background, and so a click reaches the Service Worker, which focuses the
 * app and opens the chat (sw/index.ts, "notificationclick").
 *
 * When: only for a message the person can't be seeing — the page is hidden or its window does
 * not have the focus — and never for the chat open in front of them. What: a setting, "on" (the
 * contact's name and the message), "private" (the name only) or "off". Contact requests never
 * show their text: it is read only after accepting.
 */
import type { ContactId } from "../engine/api.ts";

export type NotificationMode = "on" | "private" | "off";

export const NOTIFICATION_MODES: readonly NotificationMode[] = ["on", "private", "off"];

/** Longest message text put in a notification body. */
const BODY_MAX = 140;

export interface NotificationContent {
  title: string;
  body: string;
  /** One notification per conversation: a newer message replaces the older one. */
  tag: string;
  /** The app path a click opens (sw/index.ts accepts only app paths). */
  path: string;
}

/** What to show for an incoming message, or nothing when notifications are off. */
export function notificationContent(
  mode: NotificationMode,
  from: { id: ContactId; name: string; request: boolean },
  text: string,
): NotificationContent | undefined {
  if (mode === "off") return undefined;
  if (from.request)
    return {
      title: "Contact request",
      body: `${from.name} wants to talk to you.`,
      tag: `chat:${from.id}`,
      path: "/",
    };
  const line = text.replace(/\s+/g, " ").trim();
  const body =
    mode === "private" ? "New message" : line.length > BODY_MAX ? `${line.slice(0, BODY_MAX - 1)}…` : line;
  return { title: from.name, body, tag: `chat:${from.id}`, path: `/chat#${from.id}` };
}

/**
 * What to show for a call ringing while the page is in the background (docs/protocol/calls.md):
 * who calls and how ("private" keeps the kind of call too: it says no more than the name).
 * One per contact (`call:<id>`), closed once the call stops ringing; a click opens their chat,
 * where the call screen is.
 */
export function callNotificationContent(
  mode: NotificationMode,
  from: { id: ContactId; name: string },
  video: boolean,
): NotificationContent | undefined {
  if (mode === "off") return undefined;
  const body = mode === "private" ? "Incoming call" : video ? "Incoming video call" : "Incoming voice call";
  return { title: from.name, body, tag: `call:${from.id}`, path: `/chat#${from.id}` };
}

/** Close the ringing call's notification (answered, declined, or no longer ringing). */
export function closeCallNotifications(contactId: ContactId): Promise<void> {
  return closeTagged(`call:${contactId}`);
}

/** The browser's permission, or "unsupported" without the Notifications API or Service Workers. */
export function notificationPermission(): NotificationPermission | "unsupported" {
  if (typeof Notification === "undefined" || !("serviceWorker" in navigator)) return "unsupported";
  return Notification.permission;
}

/** Ask the browser for permission (call from a click: browsers require a user gesture). */
export async function requestNotificationPermission(): Promise<NotificationPermission | "unsupported"> {
  if (notificationPermission() === "unsupported") return "unsupported";
  return Notification.requestPermission();
}

/** Whether the person can't be seeing the page now: hidden, or another window/tab has the focus. */
export function pageInBackground(): boolean {
  return document.visibilityState === "hidden" || !document.hasFocus();
}

export async function showNotification(content: NotificationContent): Promise<void> {
  if (notificationPermission() !== "granted") return;
  const reg = await navigator.serviceWorker.getRegistration();
  if (!reg) return; // no Service Worker (the dev server): nothing that could handle a click
  const options: NotificationOptions & { renotify?: boolean } = {
    body: content.body,
    tag: content.tag,
    // A newer message replaces the conversation's notification and still alerts (sound, vibration).
    renotify: true,
    icon: "/icon-192.png",
    data: { path: content.path },
  };
  await reg.showNotification(content.title, options);
}

/** Close what is shown for a conversation once it is read. */
export function closeNotifications(contactId: ContactId): Promise<void> {
  return closeTagged(`chat:${contactId}`);
}

/** Close every shown notification with this tag. */
async function closeTagged(tag: string): Promise<void> {
  if (notificationPermission() !== "granted") return;
  const reg = await navigator.serviceWorker.getRegistration();
  for (const n of (await reg?.getNotifications({ tag })) ?? []) n.close();
}
