/**
 * Loads the chat engine (web/src/chat-engine.ts, the contract is web/src/engine/api.ts) as its own
 * chunk, so the first screens do not wait for it, and falls back to the offline engine (everyone
 * offline, messages wait on this device) when it cannot load or start.
 */
import type { ChatEngine, EngineStartOptions } from "./engine/api.ts";
import { createOfflineEngine } from "./offline-engine.ts";
import type { LoftStorage } from "./storage/storage.ts";

export interface LoadedEngine {
  engine: ChatEngine;
  /** False when running the offline stand-in. */
  real: boolean;
  /** Why the real engine is not running, in plain words. */
  problem?: string;
}

export async function loadEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
): Promise<LoadedEngine> {
  try {
    const { createChatEngine } = await import("./chat-engine.ts");
    const engine = createChatEngine({ user, storage });
    await engine.start();
    return { engine, real: true };
  } catch (e) {
    console.error("chat engine failed to start", e);
    return {
      engine: await createOfflineEngine(storage, user),
      real: false,
      problem: "The chat engine could not start. Messages wait on this device.",
    };
  }
}
