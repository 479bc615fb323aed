/**
 * The ChatEngine used when no real engine is available (web/src/chat-engine.ts did not load, or it
 * failed to start): nobody is reachable, sends are stored as `queued` with an outbox entry (in
 * hand-over order, web/src/engine/outgoing.ts), and a real engine started later drains that
 * outbox. Same refusals as the real engine (outgoing.ts `sendableContact`), so the UI behaves the
 * same with or without a network.
 */
import type {
  ChatEngine,
  EngineListener,
  HandedOver,
  MessageId,
  Presence,
  ServiceStatus,
} from "./engine/api.ts";
import { newOutgoing, SendLines, sendableContact } from "./engine/outgoing.ts";
import type { LoftStorage } from "./storage/storage.ts";

export function createOfflineEngine(storage: LoftStorage): ChatEngine {
  const listeners = new Set<EngineListener>();
  const since = Date.now();
  const offline: Presence = { status: "offline", since };
  const status: ServiceStatus = { signaling: "disabled", relay: "disabled" };
  const lines = new SendLines();
  let lastAt = 0;
  const emit: EngineListener = (e) => {
    for (const l of listeners) l(e);
  };
  return {
    async start() {},
    async stop() {},
    connect() {},
    disconnect() {},
    handOver(contactId, text): HandedOver {
      // Strictly increasing per device, like the engine's `stamp`: history is ordered by `at`.
      lastAt = Math.max(Date.now(), lastAt + 1);
      const message = newOutgoing(contactId, text, lastAt);
      const stored = lines.run(contactId, async () => {
        await sendableContact(storage, contactId);
        await storage.queueOutgoing(message);
        emit({ type: "message-state", contactId, id: message.id, state: "queued" });
        return message.id;
      });
      return { message: { ...message }, stored };
    },
    send(contactId, text): Promise<MessageId> {
      try {
        return this.handOver(contactId, text).stored;
      } catch (e) {
        return Promise.reject(e);
      }
    },
    async retry(messageId) {
      const first = await storage.getMessage(messageId);
      if (first?.direction !== "out") return;
      await lines.run(first.contactId, async () => {
        const m = await storage.getMessage(messageId);
        if (m?.direction !== "out" || m.state !== "failed") return;
        await sendableContact(storage, m.contactId);
        lastAt = Math.max(Date.now(), lastAt + 1);
        await storage.setMessageState(messageId, "queued");
        await storage.putOutbox({ messageId, contactId: m.contactId, queuedAt: lastAt, attempts: 0 });
        emit({ type: "message-state", contactId: m.contactId, id: messageId, state: "queued" });
      });
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
