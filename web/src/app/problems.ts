/**
 * Failures in words for the person. The app layer's actions (settings.ts, backup.ts, …) throw
 * only errors whose `message` a screen can show as it is: `ActionFailed` here, or the storage
 * layer's own errors already written for people (`BackupError`, `WrongPassphraseError`). Raw
 * IndexedDB or WebCrypto errors never reach a screen.
 */
import { BackupError } from "../storage/backup.ts";
import { WrongPassphraseError } from "../storage/vault.ts";

/**
 * Why a storage operation failed, as one sentence a person can act on, from what IndexedDB or
 * WebCrypto threw: full storage, a record that does not decrypt, or the browser's own words.
 */
export function storageProblem(x: unknown): string {
  const name = x instanceof Error || x instanceof DOMException ? x.name : "";
  if (name === "QuotaExceededError") return "this browser has no storage space left for Loft.";
  // WebCrypto's AES-GCM says only "OperationError" when a sealed record does not authenticate.
  if (name === "OperationError")
    return "some data stored on this device could not be decrypted (it may be damaged).";
  const message = x instanceof Error ? x.message : String(x);
  return message ? message.replace(/\.?$/, ".") : "the browser's storage refused the change.";
}

/** An action that did not happen, said as "Could not <what>: <why> <after>". */
export class ActionFailed extends Error {
  override readonly cause: unknown;
  constructor(message: string, cause: unknown) {
    super(message);
    this.name = "ActionFailed";
    this.cause = cause;
  }
}

/** Whether `x` is one of the errors whose message is already written for people. */
function inWords(x: unknown): x is Error {
  return x instanceof ActionFailed || x instanceof BackupError || x instanceof WrongPassphraseError;
}

/**
 * Run a storage action; a failure becomes an `ActionFailed` naming `what` could not be done and
 * why. `unchanged`: the action is all-or-nothing (one IndexedDB transaction), so the sentence
 * says nothing was changed. Errors already in words for people pass through.
 */
export async function attempt<T>(what: string, action: () => Promise<T>, unchanged = true): Promise<T> {
  try {
    return await action();
  } catch (x) {
    if (inWords(x)) throw x;
    throw new ActionFailed(
      `Could not ${what}: ${storageProblem(x)}${unchanged ? " Nothing was changed." : ""}`,
      x,
    );
  }
}

/** What to show for a failure: its message when written for people, else a sentence around it. */
export function problemText(x: unknown, what: string): string {
  return inWords(x) ? x.message : `Could not ${what}: ${storageProblem(x)}`;
}
