/**
 * Loads the chat engine if one is built in: web/src/engine/index.ts exporting `createChatEngine`
 * (the contract is web/src/engine/api.ts). `import.meta.glob` resolves to nothing when the file
 * does not exist, so the app builds and runs without it (offline engine, everyone offline).
 */
import type { ChatEngine, CreateChatEngine, EngineStartOptions } from "./engine/api.ts";
import { createOfflineEngine } from "./offline-engine.ts";
import type { LoftStorage } from "./storage/storage.ts";

const modules = import.meta.glob<{ createChatEngine?: CreateChatEngine }>("./engine/index.ts");

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
  const load = modules["./engine/index.ts"];
  if (load) {
    try {
      const mod = await load();
      if (mod.createChatEngine) {
        const engine = mod.createChatEngine({ user, storage });
        await engine.start();
        return { engine, real: true };
      }
    } catch (e) {
      console.error("chat engine failed to start", e);
      const offline = createOfflineEngine(storage);
      return {
        engine: offline,
        real: false,
        problem: "The chat engine could not start. Messages wait on this device.",
      };
    }
  }
  return {
    engine: createOfflineEngine(storage),
    real: false,
    problem: "Chat is not available in this build yet. Messages wait on this device.",
  };
}
