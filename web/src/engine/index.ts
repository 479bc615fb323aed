/**
 * The chat engine the PWA loads (web/src/engine-loader.ts): `createChatEngine` implements the
 * contract of api.ts with direct WebRTC links and live relay links (web/src/net), Noise sessions,
 * a per-contact Double Ratchet and relay mailboxes (engine.ts; docs/protocol/chat.md, mailbox.md).
 */
import { DirectTransport } from "../net/direct.ts";
import { RelayLiveTransport } from "../net/relay-live.ts";
import type { ChatEngine, CreateChatEngine, EngineStartOptions } from "./api.ts";
import { Engine, type EngineConfig } from "./engine.ts";

export { DEFAULT_ENGINE_CONFIG, Engine, type EngineConfig } from "./engine.ts";

const direct: EngineConfig["transport"] = (deps) => new DirectTransport(deps);
const relay: EngineConfig["transport"] = (deps) => new RelayLiveTransport(deps);

export const createChatEngine: CreateChatEngine = (options) =>
  new Engine(options, { transport: direct, relayTransport: relay });

/** The same engine with some timings or hooks changed (tests, benchmarks). */
export function createChatEngineWith(options: EngineStartOptions, config: Partial<EngineConfig>): ChatEngine {
  return new Engine(options, { transport: direct, relayTransport: relay, ...config });
}
