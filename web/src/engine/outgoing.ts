/**
 * The hand-over of an outgoing message in engine.ts (which is also the offline engine,
 * web/src/offline-engine.ts, run with no transports): the text is checked, the message gets its
 * id and time synchronously — before any storage call — and its storage steps run on a
 * per-contact line in the order messages were handed over, however long each storage call takes
 * (web/src/engine/api.ts `ChatEngine.handOver`; docs/user-guide.md "Chatting"), and the refusal
 * rules for Rejected contacts, pending identity changes and contact requests (api.ts; mailbox.md §5).
 *
 * Kept free of heavy imports: the UI bundle reads `MAX_TEXT_CHARS` from here.
 */
import { randomId } from "../lib/base64url.ts";
import {
  type ContactId,
  type ContactRecord,
  type EngineError,
  EngineRefusal,
  type EngineStorage,
  type StoredMessage,
} from "./api.ts";

/** Longest text in one message, in UTF-16 code units: the wire limit and the composer's. */
export const MAX_TEXT_CHARS = 16_000;

/** Why a text cannot be sent as one message, or undefined when it can. */
function textRefusal(text: string): EngineRefusal | undefined {
  if (text.length > 0 && text.length <= MAX_TEXT_CHARS) return undefined;
  return new EngineRefusal({
    kind: "message-refused",
    message:
      text.length === 0
        ? "An empty message can't be sent."
        : `This message is ${text.length.toLocaleString("en")} characters long; the limit is ${MAX_TEXT_CHARS.toLocaleString("en")}. Shorten it or split it in two.`,
  });
}

const CONTACT_GONE: EngineError = { kind: "internal", message: "This contact no longer exists." };

/**
 * Why nothing may be sent to, dialed or accepted from contact `c` (missing, blocked, a request not
 * yet accepted, an identity change not yet decided), or undefined when it may.
 */
export function refusalFor(c: ContactRecord | undefined): EngineError | undefined {
  if (!c) return CONTACT_GONE;
  if (c.trust === "rejected")
    return { kind: "contact-rejected", message: `You blocked ${c.username}. Unblock them first.` };
  if (c.request) return { kind: "contact-request", message: `Accept ${c.username}'s contact request first.` };
  if (c.pending)
    return {
      kind: "identity-change-pending",
      message: `${c.username}'s identity changed. Decide whether to trust the new key before sending.`,
    };
  return undefined;
}

/**
 * Why no chat message may go to contact `c` (`refusalFor`, and a paired device), or undefined
 * when one may: the rule of `sendableContact`, and of a replayed journal entry (storage.ts
 * `replayJournal`).
 */
export function sendRefusal(c: ContactRecord): EngineError | undefined {
  const refusal = refusalFor(c);
  if (refusal) return refusal;
  // A paired device reads no chat messages (docs/device.md §13): it would hold them forever.
  if (c.device)
    return {
      kind: "message-refused",
      message: `${c.username} is a device: it reads no chat messages. Use the console on its screen.`,
    };
  return undefined;
}

/** The contact a message may be sent to; throws `EngineRefusal` (`sendRefusal`) otherwise. */
export async function sendableContact(
  storage: Pick<EngineStorage, "getContact">,
  contactId: ContactId,
): Promise<ContactRecord> {
  const c = await storage.getContact(contactId);
  if (!c) throw new EngineRefusal(CONTACT_GONE);
  const refusal = sendRefusal(c);
  if (refusal) throw new EngineRefusal(refusal);
  return c;
}

/**
 * The new outgoing message for `text`, state `queued`, with a fresh id and the time `at`.
 * Throws `EngineRefusal` (synchronously) for an empty or too long text.
 */
export function newOutgoing(contactId: ContactId, text: string, at: number): StoredMessage {
  const refusal = textRefusal(text);
  if (refusal) throw refusal;
  return { id: randomId(), contactId, direction: "out", text, at, state: "queued" };
}

/**
 * Per-contact FIFO of storage steps: each step starts after the previous one for the same
 * contact settled (resolved or rejected), so a send handed over first is stored, queued and
 * announced first. Contacts don't wait on each other.
 */
export class SendLines {
  readonly #tails = new Map<ContactId, Promise<unknown>>();

  run<T>(contactId: ContactId, step: () => Promise<T>): Promise<T> {
    const tail = this.#tails.get(contactId) ?? Promise.resolve();
    const run = tail.then(step, step);
    const settled = run.then(
      () => {},
      () => {},
    );
    this.#tails.set(contactId, settled);
    // Forget an idle line (nothing chained after this step).
    void settled.then(() => {
      if (this.#tails.get(contactId) === settled) this.#tails.delete(contactId);
    });
    return run;
  }

  /** Resolves once every step handed over so far has settled. */
  async idle(): Promise<void> {
    await Promise.all([...this.#tails.values()]);
  }
}
