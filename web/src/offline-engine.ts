/**
 * The ChatEngine used when no real engine is available (web/src/engine/index.ts absent, or it
 * failed to start): nobody is reachable, sends are stored as `queued` with an outbox entry, and
 * a real engine started later drains that outbox. Same refusals as the real engine, so the UI
 * behaves the same with or without a network.
 */
import type {
  ChatEngine,
  ContactId,
  EngineListener,
  EngineStartOptions,
  MessageId,
  Presence,
  ServiceStatus,
  StoredMessage,
} from "./engine/api.ts";
import { EngineRefusal } from "./engine/api.ts";
import { randomId } from "./lib/base64url.ts";
import type { LoftStorage } from "./storage/storage.ts";

export const MAX_TEXT_CHARS = 16_000;

/** Checks shared by every engine front: blocked contacts and pending identity changes refuse. */
export async function refuseIfBlocked(storage: LoftStorage | EngineStartOptions["storage"], id: ContactId) {
  const c = await storage.getContact(id);
  if (!c) throw new EngineRefusal({ kind: "internal", message: "This contact no longer exists." });
  if (c.trust === "rejected")
    throw new EngineRefusal({
      kind: "contact-rejected",
      message: `You blocked ${c.username}. Unblock them first.`,
    });
  if (c.request)
    throw new EngineRefusal({
      kind: "contact-request",
      message: `Accept ${c.username}'s contact request first.`,
    });
  if (c.pending)
    throw new EngineRefusal({
      kind: "identity-change-pending",
      message: `${c.username}'s identity changed. Decide whether to trust the new key before sending.`,
    });
}

export function createOfflineEngine(storage: LoftStorage): ChatEngine {
  const listeners = new Set<EngineListener>();
  const since = Date.now();
  const offline: Presence = { status: "offline", since };
  const status: ServiceStatus = { signaling: "disabled", relay: "disabled" };
  const emit: EngineListener = (e) => {
    for (const l of listeners) l(e);
  };
  return {
    async start() {},
    async stop() {},
    connect() {},
    disconnect() {},
    async send(contactId, text): Promise<MessageId> {
      await refuseIfBlocked(storage, contactId);
      if (text.length === 0 || text.length > MAX_TEXT_CHARS)
        throw new EngineRefusal({
          kind: "message-refused",
          message: "Messages can be 1 to 16 000 characters.",
        });
      const message: StoredMessage = {
        id: randomId(),
        contactId,
        direction: "out",
        text,
        at: Date.now(),
        state: "queued",
      };
      await storage.queueOutgoing(message);
      emit({ type: "message-state", contactId, id: message.id, state: "queued" });
      return message.id;
    },
    async retry(messageId) {
      const m = await storage.getMessage(messageId);
      if (m?.direction !== "out") return;
      await refuseIfBlocked(storage, m.contactId);
      await storage.setMessageState(messageId, "queued");
      await storage.putOutbox({ messageId, contactId: m.contactId, queuedAt: Date.now(), attempts: 0 });
      emit({ type: "message-state", contactId: m.contactId, id: messageId, state: "queued" });
    },
    contactChanged() {},
    presence: () => offline,
    serviceStatus: () => status,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
