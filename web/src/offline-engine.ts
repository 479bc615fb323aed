/**
 * The ChatEngine used when the real one must not or cannot connect: another tab runs it (the
 * "loft-engine" Web Lock), or it failed to start. It is the engine itself (web/src/engine/engine.ts)
 * with no transports — no signaling, no relay, no data channels (`EngineConfig.offline`): nobody
 * is reachable, sends are stored as `queued` with their outbox entry in hand-over order, refusals
 * and contact changes follow the same rules, and the real engine started later drains the outbox.
 * Loaded lazily like the real one (the first screens do not wait for the engine, docs/decisions.md
 * "Layers without cycles"); when even that fails, a reload is the way out, and the error says so.
 */
import type { ChatEngine, EngineStartOptions } from "./engine/api.ts";
import type { RelayConnectionsFactory, TransportFactory } from "./engine/transport.ts";
import type { LoftStorage } from "./storage/storage.ts";

/** The offline engine builds no transport; one asked for anyway is a bug, said plainly. */
const noTransport: TransportFactory = () => {
  throw new Error("the offline engine has no transports");
};
const noRelay: RelayConnectionsFactory = () => {
  throw new Error("the offline engine has no relay connections");
};

export async function createOfflineEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
): Promise<ChatEngine> {
  let engine: typeof import("./engine/engine.ts");
  try {
    engine = await import("./engine/engine.ts");
  } catch (e) {
    throw new Error(
      "Loft could not load its chat engine (a new version may have been installed). Reload the page.",
      { cause: e },
    );
  }
  return new engine.Engine(
    { user, storage },
    { offline: true, transport: noTransport, relayConnections: noRelay },
  );
}
