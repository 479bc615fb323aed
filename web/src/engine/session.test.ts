/**
 * The live session's heartbeat and frame reading (session.ts `heartbeat`, `readFrame`; chat.md §6)
 * stay correct when the Noise session's `send` becomes asynchronous (core crypto behind an async
 * provider): a PONG is handed over before the next frame is read, a PING tick never overlaps the
 * one before, and a send that fails is caught instead of escaping as an unhandled rejection. Real
 * Noise XXhfs sessions over in-memory links; only `send` is wrapped to resolve later or reject.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Session } from "../../../core/session/index.ts";
import { sessionPair as newSessionPair, TestLink, until } from "../../../test/support/engine.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import type { EngineContext, Live } from "./context.ts";
import { heartbeat, newLive, probe, probeVerdict, readFrame } from "./session.ts";
import { decodeSessionFrame, encodePing, PING_BYTES } from "./wire.ts";

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close("stopped");
});

/** A session pair (test/support/engine.ts), closed after the test. */
async function sessionPair(): Promise<[Session, Session]> {
  const pair = await newSessionPair();
  open.push(...pair);
  return pair;
}

/** `send` as an asynchronous provider makes it: the frame leaves a macrotask later. */
function sendLater(session: Session): Uint8Array[] {
  const handedOver: Uint8Array[] = [];
  const send = session.send.bind(session);
  session.send = async (m: Uint8Array) => {
    await new Promise((r) => setTimeout(r, 5));
    send(m);
    handedOver.push(m);
  };
  return handedOver;
}

/** `send` failing asynchronously (the link went away while the frame was being sealed); undone by the result. */
function sendFails(session: Session): () => void {
  const send = session.send;
  session.send = async () => {
    throw new Error("link closed while sealing");
  };
  return () => {
    session.send = send;
  };
}

/** The type of a session frame handed over. */
function frameType(bytes: Uint8Array): string {
  const f = decodeSessionFrame(bytes);
  return f.ok ? f.value.type : f.error.code;
}

const ctx = { cfg: DEFAULT_ENGINE_CONFIG } as Pick<EngineContext, "cfg"> as EngineContext;
const ping = () => encodePing(crypto.getRandomValues(new Uint8Array(PING_BYTES)));

describe("the live session with an asynchronous send", () => {
  it("readFrame resolves only once the PONG is handed over, so frames are answered in order", async () => {
    const [, bob] = await sessionPair();
    const handedOver = sendLater(bob);
    const live = newLive(bob, "direct");
    expect(await readFrame(live, ping())).toEqual({ kind: "next" });
    expect(handedOver.length).toBe(1);
    expect(await readFrame(live, ping())).toEqual({ kind: "next" });
    expect(handedOver.map(frameType)).toEqual(["pong", "pong"]);
  });

  it("readFrame catches a PONG that fails to send", async () => {
    const [, bob] = await sessionPair();
    sendFails(bob);
    await expect(readFrame(newLive(bob, "direct"), ping())).resolves.toEqual({ kind: "next" });
  });

  it("a heartbeat tick resolves once its PING is handed over, and ticks do not overlap", async () => {
    const [alice] = await sessionPair();
    const handedOver = sendLater(alice);
    const live = newLive(alice, "direct");
    const first = heartbeat(ctx, live);
    const second = heartbeat(ctx, live); // while the first PING is still being sent
    await Promise.all([first, second]);
    expect(handedOver.length).toBe(1);
    await heartbeat(ctx, live);
    expect(handedOver.length).toBe(2);
    expect(handedOver.map(frameType)).toEqual(["ping", "ping"]);
  });

  it("a heartbeat tick catches a PING that fails to send, and the next tick tries again", async () => {
    const [alice] = await sessionPair();
    const restore = sendFails(alice);
    const live = newLive(alice, "direct");
    await expect(heartbeat(ctx, live)).resolves.toBeUndefined();
    restore();
    const handedOver = sendLater(alice);
    await heartbeat(ctx, live);
    expect(handedOver.length).toBe(1);
  });
});

/**
 * Alice's and Bob's sessions where Alice's end can be frozen (a frozen tab, a long task, a laptop
 * asleep): frames reaching her link meanwhile wait as the network would hold them, until `wake`
 * hands them over, each in a task of its own (as socket and data channel events come). Both ends
 * read their frames as the link controller does (readFrame: PINGs answered, `lastInbound` kept).
 */
async function freezablePair() {
  const a = new TestLink();
  let frozen = false;
  let cut = false;
  const held: Uint8Array[] = [];
  const deliver = a.fromPeer.bind(a);
  a.fromPeer = (m: Uint8Array) => {
    if (cut) return;
    if (frozen) held.push(m);
    else deliver(m);
  };
  const [alice, bob] = await newSessionPair({}, [a, new TestLink()]);
  open.push(alice, bob);
  const aliceLive = newLive(alice, "direct");
  const bobLive = newLive(bob, "direct");
  const read = async (live: Live) => {
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await live.session.receive();
      } catch {
        return;
      }
      if ((await readFrame(live, bytes)).kind === "stop") return;
    }
  };
  void read(aliceLive);
  void read(bobLive);
  return {
    alice,
    aliceLive,
    held,
    freeze: () => {
      frozen = true;
    },
    /** Bob's frames never reach Alice again (the network vanished, no close seen). */
    cutOff: () => {
      cut = true;
    },
    /**
     * The held frames are handed over in order, in a task queued now (ahead of any the tick
     * queues) or `after` ms on; frames arriving before then wait behind them, as on a socket.
     */
    wake: (after = 0) => {
      const handOver = () => {
        frozen = false;
        for (const m of held.splice(0)) deliver(m);
      };
      if (after > 0) setTimeout(handOver, after);
      else setImmediate(handOver);
    },
  };
}

/** The event loop blocked for `ms` (a frozen tab, a long task): nothing else runs meanwhile. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: timers, I/O and other tasks wait
  }
}

/** What closed `session`, or "open". */
async function closeReason(session: Session): Promise<string> {
  if (session.state !== "closed") return "open";
  return (await session.closed).reason;
}

describe("the heartbeat after a stall of our own event loop (chat.md §6)", () => {
  const INTERVAL = 50;
  const TIMEOUT = 150;
  const fast = {
    cfg: { ...DEFAULT_ENGINE_CONFIG, heartbeatIntervalMs: INTERVAL, heartbeatTimeoutMs: TIMEOUT },
  } as Pick<EngineContext, "cfg"> as EngineContext;

  it("a tick that wakes past the timeout reads the PONG that arrived during the stall first: the session stays", async () => {
    const p = await freezablePair();
    p.freeze();
    await heartbeat(fast, p.aliceLive); // a PING; Bob's PONG reaches Alice's link, not her page
    await until(() => p.held.length > 0, "Bob's PONG waits at Alice's frozen end");
    const frozenAt = Date.now();
    stall(TIMEOUT + 20);
    // On wake the heartbeat's timer runs before the task that hands over the PONG (Node: timers
    // before the poll phase): the PONG's task is queued, then the tick runs. The previous tick
    // is taken as on time, so only the turn the verdict waits can save the session. Before the
    // fix the tick closed it here (`heartbeat-timeout`).
    p.wake();
    p.aliceLive.tickAt = Date.now();
    await heartbeat(fast, p.aliceLive);
    expect(await closeReason(p.alice)).toBe("open");
    expect(p.aliceLive.lastInbound).toBeGreaterThan(frozenAt);
  });

  it("a tick two intervals late spares a session whose frames are not read yet; the next tick finds them", async () => {
    const p = await freezablePair();
    p.freeze();
    await heartbeat(fast, p.aliceLive);
    await until(() => p.held.length > 0, "Bob's PONG waits at Alice's frozen end");
    stall(Math.max(TIMEOUT, 2 * INTERVAL) + 20);
    // The PONG comes a few tasks after the turn the verdict waits (still being decrypted, say):
    // the late tick sends a PING instead of closing. Before the fix it closed the session.
    p.wake(20);
    await heartbeat(fast, p.aliceLive);
    expect(await closeReason(p.alice)).toBe("open");
    await until(() => Date.now() - p.aliceLive.lastInbound <= TIMEOUT, "the PONG is read", 5_000);
    await heartbeat(fast, p.aliceLive);
    expect(await closeReason(p.alice)).toBe("open");
  });

  it("a silent peer is still closed: at once by a tick on time, at the next tick after a late one", async () => {
    const onTime = await freezablePair();
    onTime.cutOff();
    stall(TIMEOUT + 20);
    onTime.aliceLive.tickAt = Date.now();
    await heartbeat(fast, onTime.aliceLive);
    expect(await closeReason(onTime.alice)).toBe("heartbeat-timeout");

    const late = await freezablePair();
    late.cutOff();
    stall(Math.max(TIMEOUT, 2 * INTERVAL) + 20);
    await heartbeat(fast, late.aliceLive); // late: spared once, a PING goes
    expect(await closeReason(late.alice)).toBe("open");
    await heartbeat(fast, late.aliceLive); // nothing since: closed
    expect(await closeReason(late.alice)).toBe("heartbeat-timeout");
  });
});

describe("the presence probe after a stall of our own event loop (chat.md §6)", () => {
  const INTERVAL = 50;
  const TIMEOUT = 150;
  const PROBE = 100;
  const fast = {
    cfg: {
      ...DEFAULT_ENGINE_CONFIG,
      heartbeatIntervalMs: INTERVAL,
      heartbeatTimeoutMs: TIMEOUT,
      presenceProbeMs: PROBE,
    },
  } as Pick<EngineContext, "cfg"> as EngineContext;
  /** The probe's start, a clock tick after the last frame read (one in the same millisecond counts as an answer). */
  const probeStart = async () => {
    await new Promise((r) => setTimeout(r, 2));
    return Date.now();
  };

  it("the probe's PING leaves the heartbeat's clock and its one spare alone: the tick after a stall still spares the session", async () => {
    const p = await freezablePair();
    p.freeze();
    await heartbeat(fast, p.aliceLive);
    await until(() => p.held.length > 0, "Bob's PONG waits at Alice's frozen end");
    const tickAt = p.aliceLive.tickAt;
    stall(Math.max(TIMEOUT, 2 * INTERVAL) + 20);
    // On wake a signaling event (the contact left, or our own signaling came back) probes before
    // the heartbeat's timer runs. Before the fix the probe ran a heartbeat tick: the real tick
    // then looked on time and found the spare used, and closed the session (heartbeat-timeout).
    await probe(p.aliceLive);
    expect(p.aliceLive.tickAt).toBe(tickAt);
    expect(p.aliceLive.sparedAt).toBeUndefined();
    p.wake(20);
    await heartbeat(fast, p.aliceLive);
    expect(await closeReason(p.alice)).toBe("open");
    await until(() => Date.now() - p.aliceLive.lastInbound <= TIMEOUT, "the PONG is read", 5_000);
    await heartbeat(fast, p.aliceLive);
    expect(await closeReason(p.alice)).toBe("open");
  });

  it("a window that ends late with the answer not read yet gets one more window; the answer then counts", async () => {
    const p = await freezablePair();
    p.freeze();
    const since = await probeStart();
    await probe(p.aliceLive);
    await until(() => p.held.length > 0, "Bob's PONG waits at Alice's frozen end");
    stall(2 * PROBE + 20);
    // The PONG comes a few tasks after the turn the verdict waits. Before the fix the window's
    // end closed the session here (presence-offline) though the contact had answered.
    p.wake(20);
    expect(await probeVerdict(fast, p.aliceLive, since, false)).toBe("again");
    await until(() => p.aliceLive.lastInbound >= since, "the PONG is read", 5_000);
    expect(await probeVerdict(fast, p.aliceLive, since, true)).toBe("answered");
  });

  it("the answer that arrived during a stall is read before the verdict", async () => {
    const p = await freezablePair();
    p.freeze();
    const since = await probeStart();
    await probe(p.aliceLive);
    await until(() => p.held.length > 0, "Bob's PONG waits at Alice's frozen end");
    stall(PROBE + 10);
    p.wake(); // the PONG's task is queued before the verdict's turn
    expect(await probeVerdict(fast, p.aliceLive, since, false)).toBe("answered");
  });

  it("a silent contact is still closed: at once on time, after one more window when late", async () => {
    const onTime = await freezablePair();
    onTime.cutOff();
    stall(PROBE + 20); // nothing from the contact since well before the probe
    await probe(onTime.aliceLive);
    const since = Date.now() - PROBE - 5; // the window ends now, on time
    expect(await probeVerdict(fast, onTime.aliceLive, since, false)).toBe("silent");

    const late = await freezablePair();
    late.cutOff();
    const lateSince = await probeStart();
    await probe(late.aliceLive);
    stall(2 * PROBE + 20);
    expect(await probeVerdict(fast, late.aliceLive, lateSince, false)).toBe("again");
    await probe(late.aliceLive);
    stall(PROBE + 10);
    expect(await probeVerdict(fast, late.aliceLive, lateSince, true)).toBe("silent");
  });
});
