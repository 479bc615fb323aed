/**
 * The chat engine's public surface: `Engine` implements the contract of api.ts with Noise
 * sessions, a per-contact Double Ratchet and relay mailboxes (engine.ts; docs/protocol/chat.md,
 * mailbox.md) over whatever transports its config injects (transport.ts). The PWA composes it
 * with the browser's transports in web/src/chat-engine.ts.
 */
export { DEFAULT_ENGINE_CONFIG, Engine, type EngineConfig } from "./engine.ts";
