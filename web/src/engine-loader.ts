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

/**
 * The real engine, loaded as its own chunk (a test passes its own). Not made when the start was
 * stopped while the chunk loaded: an engine stopped then would still release the file store its
 * chunk shares with the next one (chat-engine.ts `fileStore`, engine.ts `stop`) under that one.
 */
async function createReal(options: EngineStartOptions, signal?: AbortSignal): Promise<ChatEngine> {
  const { createChatEngine } = await import("./chat-engine.ts");
  signal?.throwIfAborted();
  return createChatEngine(options);
}

/**
 * `making`, or a rejection with the signal's reason as soon as it is aborted: a start stopped while
 * its engine's code still loads (a slow or stalled network; engine-restart.e2e.ts holds it) ends
 * then, not when the code comes — the page's stop waits for it (app/model.ts `#stopEngine`: a
 * deletion, another tab's change). An engine made after that is stopped, never started.
 */
function madeUnlessStopped(
  making: Promise<ChatEngine>,
  signal: AbortSignal | undefined,
): Promise<ChatEngine> {
  if (!signal) return making;
  return new Promise<ChatEngine>((resolve, reject) => {
    const stopped = () => reject(signal.reason);
    if (signal.aborted) stopped();
    else signal.addEventListener("abort", stopped, { once: true });
    making.then(
      (engine) => {
        signal.removeEventListener("abort", stopped);
        if (!signal.aborted) resolve(engine);
        else
          void engine
            .stop()
            .catch((x: unknown) => console.warn("stopping an engine made too late:", (x as Error).message));
      },
      (e: unknown) => {
        signal.removeEventListener("abort", stopped);
        reject(e);
      },
    );
  });
}

export async function loadEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
  listener: EngineListener,
  create: (options: EngineStartOptions, signal?: AbortSignal) => Promise<ChatEngine> = createReal,
  /**
   * The page stops this engine before it has it (app/model.ts `#stopEngine`: a lock by another
   * tab, a restore, a new identity version while `start` still reads the mailboxes): stopped then,
   * `start` returns early (engine.ts `start` checks after each wait) and the page discards it.
   * Stopped before the engine is made, or while a stopped start fails, this rejects with the
   * signal's reason instead: no offline stand-in is made for a start nobody wants.
   */
  signal?: AbortSignal,
): Promise<LoadedEngine> {
  let unsubscribe = () => {};
  let made: ChatEngine | undefined;
  try {
    const engine = await madeUnlessStopped(create({ user, storage }, signal), signal);
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
    if (signal?.aborted) {
      // Stopped meanwhile: what it made ends before this does (the caller's next step finds no
      // engine running), and the failure is the stop's own doing, not worth a stand-in.
      await made?.stop().catch((x: unknown) => console.warn("stopping the engine:", (x as Error).message));
      throw signal.reason;
    }
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
      signal,
    );
  }
}

/**
 * The offline stand-in (web/src/offline-engine.ts) with `listener` subscribed, and `problem` as
 * the reason the real engine is not running: the fallback above, and a tab where another one runs
 * the chat (app/model.ts). Its code loads too: `signal` aborted first, this rejects at once.
 */
export async function loadOfflineEngine(
  storage: LoftStorage,
  user: EngineStartOptions["user"],
  listener: EngineListener,
  problem: string,
  signal?: AbortSignal,
): Promise<LoadedEngine> {
  const engine = await madeUnlessStopped(createOfflineEngine(storage, user), signal);
  return { engine, real: false, problem, unsubscribe: engine.subscribe(listener) };
}
