/**
 * The live session's heartbeat and frame reading (session.ts `heartbeat`, `readFrame`; chat.md §6)
 * stay correct when the Noise session's `send` becomes asynchronous (core crypto behind an async
 * provider): a PONG is handed over before the next frame is read, a PING tick never overlaps the
 * one before, and a send that fails is caught instead of escaping as an unhandled rejection. Real
 * Noise XXhfs sessions over in-memory links; only `send` is wrapped to resolve later or reject.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Session } from "../../../core/session/index.ts";
import { sessionPair as newSessionPair } from "../../../test/support/engine.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import type { EngineContext } from "./context.ts";
import { heartbeat, newLive, readFrame } from "./session.ts";
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
