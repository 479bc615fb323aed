/**
 * What a person reads when a file transfer does not go through (docs/protocol/files.md §7,
 * "What a person reads"): every such text of the file path, in one place, in the app's words —
 * what happened to the file, then what to do next. No protocol words (chunk, window, hash,
 * malformed, integrity, key): the protocol's reasons (`file.fail`'s `r`, files.md §1) are mapped
 * here, once per side, so the sender and the receiver describe the same event the same way.
 * web/src/engine/files/words.test.ts checks every text for protocol words and a next step.
 */
import type { FileFailReason } from "./wire.ts";

/**
 * The receiver's words when it ends a transfer it had accepted (files.md §4, §5): `from` sent
 * `file`. The same event as `failedThere` on the sender. `full`: a `storage` failure that was the
 * device's quota (a QuotaExceededError); any other storage failure — the file store's worker
 * crashed at every try (opfs-store.ts `#ask`), a file held elsewhere — is not said to be a full
 * device (files.md §7).
 */
export function failedHere(from: string, file: string, why: FileFailReason | "mismatch" | "full"): string {
  switch (why) {
    case "window":
      return `${from} sent more of ${file} at once than this device had room for, so it was discarded. Ask ${from} to send it again.`;
    case "malformed":
      return `Part of ${file} arrived garbled or out of order, so it was discarded. Ask ${from} to send it again.`;
    case "damaged":
      return `Part of ${file} was changed on the way here, so it was discarded. Ask ${from} to send it again.`;
    case "mismatch":
      return `${file} arrived damaged: it is not the file ${from} sent, so it was discarded. Ask ${from} to send it again.`;
    case "full":
      return `${file} could not be saved on this device, which may be full, so it was discarded. Free some space, then ask ${from} to send it again.`;
    case "storage":
      return `${file} could not be saved on this device: its storage stopped answering, so it was discarded. Reload Loft, then ask ${from} to send it again.`;
  }
}

/** The sender's words for a `file.fail` (or a `file.done` with `ok: false`) from `to` about `file`. */
export function failedThere(to: string, file: string, why: FileFailReason | "mismatch"): string {
  switch (why) {
    case "window":
      return `${to}'s device received more of ${file} at once than it had room for and discarded it. Try sending it again.`;
    case "malformed":
      return `Part of ${file} reached ${to}'s device garbled or out of order, so it discarded the file. Try sending it again.`;
    case "damaged":
      return `Part of ${file} was changed on the way to ${to}, so ${to}'s device discarded the file. Try sending it again.`;
    case "mismatch":
      return `${file} reached ${to}'s device damaged, so it discarded the file. Try sending it again.`;
    case "storage":
      return `${to}'s device could not save ${file}, which may mean it is full, and discarded it. Ask ${to} to free some space, then send it again.`;
  }
}

/**
 * The sender stopped because its own copy of `file` could not be read back and the file was no
 * longer open there (`file.fail` with `own`, files.md §1): nothing went wrong on the way or here.
 */
export function stoppedThere(from: string, file: string): string {
  return `${from}'s device could no longer read its copy of ${file}, so it stopped sending it. Ask ${from} to send it again.`;
}

/** The other end cancelled: `out` when this device was sending. */
export function cancelledThere(who: string, direction: "in" | "out"): string {
  return direction === "out"
    ? `${who} cancelled. Send it again if ${who} still wants it.`
    : `${who} cancelled sending it. Ask ${who} to send it again if you still want it.`;
}

/** The receiver declined an offer for a reason of its device (files.md §1, `file.decline`). */
export function declinedThere(who: string, why: "too-large" | "busy" | "chunks"): string {
  if (why === "chunks")
    return `${who}'s device could not take this file in the parts it was sent in, which may mean its Loft is out of date. Try sending it again.`;
  return why === "too-large"
    ? `${who}'s device does not accept files this large. Send a smaller file, or split it into parts.`
    : `${who} has too many files waiting. Try again once ${who} has accepted or declined some of them.`;
}

/** The sender refused a file before anything was sent. */
export const refused = {
  tooLarge: (size: string, limit: string) =>
    `This file is ${size}; files up to ${limit} can be sent. Send a smaller file, or split it into parts.`,
  blocked: (who: string) =>
    `Files cannot be sent to ${who} while ${who} is blocked. Unblock ${who} on their contact screen first.`,
  unknown: () => "This contact no longer exists, so files cannot be sent to it. Pick another contact.",
  emptyRoom: () =>
    "Nobody else is in this room yet, so there is no one to send it to. Share the room link, then send it once someone has joined.",
} as const;

/** The sender could not go on with its own copy. */
export const sendingStopped = {
  reloaded: (file: string) => `Loft was closed or reloaded before ${file} was ready to send. Send it again.`,
  unreadable: (file: string) =>
    `${file} could not be read, or this device has no room to prepare it. Check that the file is still there and the device has free space, then send it again.`,
  copyGone: (file: string) => `This device could no longer read its copy of ${file}. Send it again.`,
  /**
   * Part of the sealed copy no longer opens (changed on this device's disk) and the file picked
   * is not open here any more (a reload): nothing to send it from (files.md §5).
   */
  copyDamaged: (file: string) =>
    `Your copy of ${file} on this device is damaged, and the file is no longer open here, so it could not be sent. Send it again.`,
} as const;

/** The receiver lost what it needed to open what it stored. */
export const receivingStopped = {
  keyGone: (file: string) =>
    `This device can no longer open what it received of ${file}. Ask the sender to send it again.`,
  incomplete: (file: string) =>
    `${file} is no longer complete on this device. Ask the sender to send it again.`,
} as const;
