/**
 * Loads the chat engine (web/src/chat-engine.ts, the contract is web/src/engine/api.ts) as its own
 * chunk, so the first screens do not wait for it, and falls back to the offline engine (everyone
 * offline, messages wait on this device) when it cannot load or start.
 */
import type { ChatEngine, EngineListener, EngineStartOptions } from "./engine/api.ts";
import { createOfflineEngine } from "./offline-engine.ts";
import type { LoftStorage } from "./storage/storage.ts";

export interface LoadedEngine {
  engine: ChatEngine;
  /** False when running the offline stand-in. */
  real: boolean;
  /** Why the real engine is not running, in plain words. */
  problem?: string;
  /** Ends the subscription of the listener given to `loadEngine`. */
  unsubscribe: () => void;
}

/** The real engine, loaded as its own chunk (a test passes its own). */
async function createReal(options: EngineStartOptions): Promise<ChatEngine> {
  const { createChatEngine } = await import("./chat-engine.ts");
  return createChatEngine(options);
}

export async function loadEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
  listener: EngineListener,
  create: (options: EngineStartOptions) => Promise<ChatEngine> = createReal,
  /**
   * The page stops this engine before it has it (app/model.ts `#stopEngine`: a lock by another
   * tab, a restore, a new identity version while `start` still reads the mailboxes): stopped then,
   * `start` returns early (engine.ts `start` checks after each wait) and the page discards it.
   */
  signal?: AbortSignal,
): Promise<LoadedEngine> {
  let unsubscribe = () => {};
  let made: ChatEngine | undefined;
  try {
    const engine = await create({ user, storage });
    made = engine;
    const stop = () =>
      void engine.stop().catch((x: unknown) => console.warn("stopping the engine:", (x as Error).message));
    if (signal?.aborted) stop();
    else signal?.addEventListener("abort", stop, { once: true });
    // Subscribed before it starts: `start` already reads the mailboxes (engine.ts `start`), and a
    // message it stores and announces before `start` returns would reach no screen — stored, but
    // missing from an open chat until it is opened again.
    unsubscribe = engine.subscribe(listener);
    try {
      await engine.start();
    } finally {
      signal?.removeEventListener("abort", stop);
    }
    return { engine, real: true, unsubscribe };
  } catch (e) {
    unsubscribe();
    console.error("chat engine failed to start", e);
    // A start that failed half-way may have opened connections (relay pool, signaling: engine.ts
    // `start`) that would keep running beside the offline stand-in, unreferenced: stopped here.
    await made
      ?.stop()
      .catch((x: unknown) => console.warn("stopping the failed engine:", (x as Error).message));
    return loadOfflineEngine(
      storage,
      user,
      listener,
      "The chat engine could not start. Messages wait on this device.",
    );
  }
}

/**
 * The offline stand-in (web/src/offline-engine.ts) with `listener` subscribed, and `problem` as
 * the reason the real engine is not running: the fallback above, and a tab where another one runs
 * the chat (app/model.ts).
 */
export async function loadOfflineEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
  listener: EngineListener,
  problem: string,
): Promise<LoadedEngine> {
  const engine = await createOfflineEngine(storage, user);
  return { engine, real: false, problem, unsubscribe: engine.subscribe(listener) };
}
