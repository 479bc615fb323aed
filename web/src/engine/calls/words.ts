/**
 * What a person reads about a call (docs/user-guide.md, "Calls"): why it ended, and its entry in
 * the chat history. One place for the words, so the call screen and the history agree.
 */
import type { CallEndKind } from "./types.ts";

/**
 * Why the microphone (or camera, for `video`) could not be had, and what to do: `again` is what
 * to try once it is fixed ("call again" on the call screen, "join again", "record again").
 */
export function mediaProblem(
  kind: "permission" | "no-device" | "device-busy",
  video: boolean,
  again = "call again",
): string {
  const device = video ? "microphone or camera" : "microphone";
  switch (kind) {
    case "permission":
      return `Loft isn't allowed to use your ${device}. Allow it for this site in your browser's settings, then ${again}.`;
    case "no-device":
      return `No microphone found. Connect one, then ${again}.`;
    case "device-busy":
      return `Your ${device} is in use by another app. Close it, then ${again}.`;
  }
}

/** Why the call ended, for the call screen; `name` is the contact's name. */
export function endMessage(kind: CallEndKind, name: string, video: boolean): string {
  switch (kind) {
    case "hangup":
      return "Call ended.";
    case "cancelled":
      return "Call cancelled.";
    case "missed":
      return `Missed call from ${name}.`;
    case "declined":
      return `${name} declined the call.`;
    case "busy":
      return `${name} is in another call. Try again later, or send a message.`;
    case "no-answer":
      return `${name} didn't answer. Send a message instead: it waits for them.`;
    case "offline":
      return `${name} is offline, so the call can't ring. Send a message instead: it waits in their mailbox.`;
    case "blocked":
      return `You can't call ${name} now: open their contact to see why.`;
    case "permission":
    case "no-device":
    case "device-busy":
      return mediaProblem(kind, video);
    case "unavailable":
      return `${name} can't take the call: their microphone isn't available.`;
    case "fingerprint":
      return `Call refused: the media connection did not present the key ${name} sent inside your encrypted chat, so someone may be trying to listen in. No audio or video was exchanged.`;
    case "refused":
      return `${name}'s app refused the call: the media connection did not match what was agreed inside your encrypted chat. No audio or video was exchanged.`;
    case "failed":
      return "The call's connection was lost.";
  }
}

/** `1:05`, `1:02:03`. */
export function durationLabel(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** The history entry's text: "Voice call · 1:05", "Missed video call", "Declined voice call". */
export function historyText(kind: CallEndKind, video: boolean, durationMs?: number): string {
  const what = video ? "video call" : "voice call";
  if (durationMs !== undefined) return `${video ? "Video" : "Voice"} call · ${durationLabel(durationMs)}`;
  switch (kind) {
    case "missed":
      return `Missed ${what}`;
    case "declined":
      return `Declined ${what}`;
    case "busy":
      return `${video ? "Video" : "Voice"} call · busy`;
    case "no-answer":
      return `${video ? "Video" : "Voice"} call · no answer`;
    case "cancelled":
      return `Cancelled ${what}`;
    case "fingerprint":
    case "refused":
      return `${video ? "Video" : "Voice"} call refused: the media key did not match`;
    default:
      return `${video ? "Video" : "Voice"} call · not connected`;
  }
}
