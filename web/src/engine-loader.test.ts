/**
 * The loader subscribes the page's listener before the engine starts: `start` reads the mailboxes
 * already (engine.ts `start`), so a message stored and announced while it runs must reach the
 * screens — relay-fault.e2e.ts lost the first relayed message from an open chat this way (stored,
 * but shown only once the chat was opened again). The engine here is a stand-in that announces a
 * message from inside `start`, as the real one does when the relay pushes at once. One whose start
 * fails is stopped: what it opened before failing must not run beside the offline engine.
 */
import { describe, expect, it } from "vitest";
import { createUserIdentity } from "../../core/identity/identity.ts";
import { MemoryStorage } from "../../test/support/engine.ts";
import type { ChatEngine, EngineEvent, EngineListener, StoredMessage } from "./engine/api.ts";
import { loadEngine, loadOfflineEngine } from "./engine-loader.ts";
import type { LoftStorage } from "./storage/storage.ts";

const user = createUserIdentity({ username: "bob", now: Date.now() });
const storage = () =>
  new MemoryStorage("ws://127.0.0.1:9/signal", ["ws://127.0.0.1:9/relay"]) as unknown as LoftStorage;

const message: StoredMessage = {
  id: "m1",
  contactId: "a".repeat(64),
  direction: "in",
  text: "first from the mailbox",
  at: 1,
  state: "received",
};

/**
 * An engine whose `start` announces `message`, then settles as `outcome` says (`waits`: once
 * stopped, as engine.ts `start` returns early when a stop came while it waited; `fails-stopped`:
 * throws once stopped, as a start does whose wait the stop cut).
 */
function startingEngine(outcome: "starts" | "fails" | "waits" | "fails-stopped") {
  const listeners = new Set<EngineListener>();
  const emit = (e: EngineEvent) => {
    for (const l of listeners) l(e);
  };
  const state = { started: false, stopped: false };
  let stopped = () => {};
  const stop = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const engine = {
    subscribe(l: EngineListener) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    async start() {
      state.started = true;
      emit({ type: "message", message });
      if (outcome === "fails") throw new Error("start failed");
      if (outcome === "waits" || outcome === "fails-stopped") await stop;
      if (outcome === "fails-stopped") throw new Error("the relay pool closed under the start");
    },
    async stop() {
      state.stopped = true;
      stopped();
    },
  };
  return { engine: engine as unknown as ChatEngine, emit, state };
}

/**
 * `loadEngine` of a `startingEngine(outcome)` under a signal the test aborts (the page's stop,
 * app/model.ts `#stopEngine`); `code` is when the engine's code has come and the engine is made.
 */
function stoppableLoad(
  outcome: Parameters<typeof startingEngine>[0],
  code: Promise<void> = Promise.resolve(),
) {
  const seen: EngineEvent[] = [];
  const { engine, state } = startingEngine(outcome);
  const abort = new AbortController();
  const loading = loadEngine(
    storage(),
    user,
    (e) => seen.push(e),
    async () => {
      await code;
      return engine;
    },
    abort.signal,
  );
  return { engine, state, seen, abort, loading };
}

describe("loadEngine", () => {
  it("hands the listener what the engine announces while it starts", async () => {
    const seen: EngineEvent[] = [];
    const { engine } = startingEngine("starts");
    const loaded = await loadEngine(
      storage(),
      user,
      (e) => seen.push(e),
      async () => engine,
    );
    expect(loaded.real).toBe(true);
    expect(loaded.engine).toBe(engine);
    expect(seen).toEqual([{ type: "message", message }]);
  });

  it("ends the listener's subscription when asked", async () => {
    const seen: EngineEvent[] = [];
    const { engine, emit } = startingEngine("starts");
    const loaded = await loadEngine(
      storage(),
      user,
      (e) => seen.push(e),
      async () => engine,
    );
    loaded.unsubscribe();
    emit({ type: "message", message: { ...message, id: "m2" } });
    expect(seen.map((e) => (e.type === "message" ? e.message.id : e.type))).toEqual(["m1"]);
  });

  it("an engine that fails to start: the offline one takes the listener, the failed one hears none and is stopped", async () => {
    const seen: EngineEvent[] = [];
    const { engine, emit, state } = startingEngine("fails");
    const loaded = await loadEngine(
      storage(),
      user,
      (e) => seen.push(e),
      async () => engine,
    );
    expect(loaded.real).toBe(false);
    expect(loaded.engine).not.toBe(engine);
    expect(loaded.problem).toContain("could not start");
    emit({ type: "message", message: { ...message, id: "late" } });
    expect(seen.map((e) => (e.type === "message" ? e.message.id : e.type))).toEqual(["m1"]);
    // What its start opened before failing (engine.ts `start`: relay pool, signaling) is closed.
    expect(state.stopped).toBe(true);
    loaded.unsubscribe();
  });

  it("an engine that starts is left running", async () => {
    const { engine, state } = startingEngine("starts");
    const loaded = await loadEngine(
      storage(),
      user,
      () => {},
      async () => engine,
    );
    expect(loaded.real).toBe(true);
    expect(state.stopped).toBe(false);
    loaded.unsubscribe();
  });

  it("a start the page stops (its signal aborted) stops the engine while it waits, and ends", async () => {
    const { engine, state, seen, abort, loading } = stoppableLoad("waits");
    await expect.poll(() => seen.length).toBe(1); // `start` is under way
    expect(state.stopped).toBe(false);
    abort.abort();
    await expect.poll(() => state.stopped).toBe(true);
    const loaded = await loading;
    expect(loaded.engine).toBe(engine);
    loaded.unsubscribe();
  });

  it("a start already stopped when the engine is made: the engine is stopped, never started, and the load rejects", async () => {
    const { state, seen, abort, loading } = stoppableLoad("waits");
    abort.abort();
    await expect(loading).rejects.toBe(abort.signal.reason);
    await expect.poll(() => state.stopped).toBe(true);
    expect([state.started, seen]).toEqual([false, []]);
  });

  it("a start stopped while the engine's code still loads ends at once; the engine made later is stopped, never started", async () => {
    // The code held, as a stalled network holds the engine's chunk (engine-restart.e2e.ts): the
    // page's stop waits for this load (app/model.ts `#stopEngine`), so a deletion or another
    // tab's close must not wait for the network.
    let arrive = () => {};
    const code = new Promise<void>((resolve) => {
      arrive = resolve;
    });
    const { state, abort, loading } = stoppableLoad("waits", code);
    const outcome: string[] = [];
    loading.then(
      () => outcome.push("loaded"),
      (e: unknown) => outcome.push(e === abort.signal.reason ? "stopped" : String(e)),
    );
    abort.abort();
    // Before: nothing settled until the code came.
    await expect.poll(() => outcome).toEqual(["stopped"]);
    arrive();
    await expect.poll(() => state.stopped).toBe(true);
    expect(state.started).toBe(false);
  });

  it("a stopped start that then fails: no offline stand-in, nothing said as a failure — the load rejects once the engine has stopped", async () => {
    const { state, seen, abort, loading } = stoppableLoad("fails-stopped");
    await expect.poll(() => seen.length).toBe(1); // `start` is under way
    abort.abort();
    await expect(loading).rejects.toBe(abort.signal.reason);
    expect(state.stopped).toBe(true);
  });

  it("the offline stand-in's load stopped before its engine is made rejects", async () => {
    const abort = new AbortController();
    abort.abort();
    await expect(loadOfflineEngine(storage(), user, () => {}, "another tab", abort.signal)).rejects.toBe(
      abort.signal.reason,
    );
  });

  it("a signal aborted after the start ended leaves the engine to its owner", async () => {
    const { state, abort, loading } = stoppableLoad("starts");
    const loaded = await loading;
    abort.abort();
    expect(state.stopped).toBe(false);
    loaded.unsubscribe();
  });

  it("the offline stand-in on its own (another tab runs the chat, app/model.ts): the same engine the fallback runs, with the reason given", async () => {
    const why = "Loft is open in another tab or window; chat runs there. Messages you write here wait.";
    const alone = await loadOfflineEngine(storage(), user, () => {}, why);
    const { engine } = startingEngine("fails");
    const fallback = await loadEngine(
      storage(),
      user,
      () => {},
      async () => engine,
    );
    expect([alone.real, alone.problem]).toEqual([false, why]);
    // One stand-in: the fallback is the same kind of engine, with its own reason.
    expect(Object.getPrototypeOf(alone.engine)).toBe(Object.getPrototypeOf(fallback.engine));
    expect(fallback.problem).not.toBe(why);
    // With no transports, and none started (offline-engine.ts).
    expect(alone.engine.serviceStatus()).toEqual(fallback.engine.serviceStatus());
    alone.unsubscribe();
    fallback.unsubscribe();
  });
});
