/**
 * What the chat screen reads and does (docs/user-guide.md, "Messages"), as app functions: pages
 * of history and single messages from storage, and the engine's hand-over, retry and connect.
 * The screen never holds storage or the engine itself; the engine may restart underneath (a new
 * username, a restored backup), so it is looked up on every call.
 */
import {
  EngineRefusal,
  type HandedOver,
  type MessageId,
  RetryDeferred,
  SaveDeferred,
  type StoredMessage,
} from "../engine/api.ts";
import type { AppModel } from "./model.ts";
import { ActionFailed, problemText } from "./problems.ts";

/** Up to `limit` messages with a contact, newest first in time before `before` (all when absent). */
export function historyPage(
  app: AppModel,
  contactId: string,
  limit: number,
  before?: number,
): Promise<StoredMessage[]> {
  return app.storage.listMessagesPage(contactId, limit, before);
}

/** One stored message by id. */
export function storedMessage(app: AppModel, id: MessageId): Promise<StoredMessage | undefined> {
  return app.storage.getMessage(id);
}

/**
 * Hand a message over to the engine (shown at once, stored on the contact's line). Throws
 * `EngineRefusal` synchronously when the text or contact is refused, or `ActionFailed` while the
 * engine is not running yet.
 */
export function handOver(app: AppModel, contactId: string, text: string): HandedOver {
  const engine = app.engine;
  if (!engine) throw new ActionFailed("Loft is still starting. Try again in a moment.", undefined);
  return engine.handOver(contactId, text);
}

/**
 * How many messages handed over would be lost if the page went now (neither in the outbox
 * journal nor stored yet: storage.ts `unsavedOutgoing`). Zero almost always: the journal takes
 * each message in the same task as its hand-over; only a full or blocked localStorage leaves one
 * unsaved for the tens of milliseconds its commit takes.
 */
export function unsavedMessages(app: AppModel): number {
  return app.storage.unsavedOutgoing;
}

/** Put a failed message back in the outbox. */
export function retryMessage(app: AppModel, id: MessageId): Promise<void> {
  return app.engine?.retry(id) ?? Promise.resolve();
}

/** The chat is open: bring up a link to the contact if there is none. */
export function connectTo(app: AppModel, contactId: string): void {
  app.engine?.connect(contactId);
}

/** Why a message could not be sent, in words for the person. */
export function sendProblem(x: unknown): string {
  if (x instanceof SaveDeferred)
    return "Loft could not save this message yet. It keeps trying and sends it once saved, at the latest the next time you open Loft. No need to send it again.";
  if (x instanceof RetryDeferred)
    return "Loft could not save this retry yet. It keeps it and sends the message the next time you open Loft. No need to retry again.";
  return x instanceof EngineRefusal ? x.reason.message : problemText(x, "send");
}
