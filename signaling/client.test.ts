/**
 * The client's own defences, against a hostile signaling server (a raw `ws` server written here
 * that speaks the protocol and lies): envelopes that fail the recipient's checks are dropped and
 * reported, a LOOKUP answer with someone else's identity is refused, a wrong version or an
 * unreachable server become typed errors the UI can word.
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { LoftError } from "../core/errors.ts";
import { encodeIdentity } from "../core/identity/identity.ts";
import { type RejectReason, SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import {
  type ClientMessage,
  clientCodec,
  type ServerMessage,
  type SignalEnvelope,
  serverCodec,
  signEnvelope,
} from "../core/wire/signaling.ts";
import { makeUser, wsFactory } from "./testing.ts";

type User = ReturnType<typeof makeUser>;
const keyOf = (u: User) => u.identity.verified.identity_key as Uint8Array<ArrayBuffer>;

/** A lying server: answers REGISTER, then lets the test push anything. */
async function hostileServer(
  opts: { version?: Uint8Array; onRequest?: (m: ClientMessage, ws: WebSocket) => void } = {},
) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const sockets: WebSocket[] = [];
  const connected = new Promise<WebSocket>((resolve) => {
    wss.on("connection", (ws) => {
      sockets.push(ws);
      ws.send(opts.version ?? encodeVersionHeader(SIGNALING_VERSION));
      ws.send(serverCodec.encode({ t: "CHALLENGE", challenge: new Uint8Array(16) }));
      let hello = false;
      ws.on("message", (data: Buffer) => {
        if (!hello) {
          hello = true;
          return;
        }
        const m = clientCodec.decode(new Uint8Array(data));
        if (!m.ok) return;
        if (m.value.t === "REGISTER_REQUEST")
          ws.send(
            serverCodec.encode({
              t: "REGISTER_RESPONSE",
              id: m.value.id,
              success: true,
              expires_at: Date.now() + 60_000,
              renewal_interval: 30,
            }),
          );
        else opts.onRequest?.(m.value, ws);
      });
      resolve(ws);
    });
  });
  const port = (wss.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/signal`,
    connected,
    push: (ws: WebSocket, m: ServerMessage) => ws.send(serverCodec.encode(m)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.terminate();
        wss.close(() => resolve());
      }),
  };
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function envelopeFor(
  signer: User,
  from: User,
  to: User,
  kind: SignalEnvelope["kind"],
  ts = Date.now(),
) {
  return await signEnvelope(nobleCrypto, signer.privateIdentityKey, {
    from: keyOf(from),
    to: keyOf(to),
    kind,
    payload: new Uint8Array([kind.length]),
    timestamp: ts,
    nonce: crypto.getRandomValues(new Uint8Array(16)),
  });
}

describe("client-side verification", () => {
  it("drops and reports envelopes that are forged, misaddressed, stale or replayed; delivers the good one", async () => {
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const carol = makeUser("carol");
    const mallory = makeUser("mallory");
    const server = await hostileServer();
    cleanup.push(server.close);
    const client = new SignalingClient({
      url: server.url,
      user: bob,
      connect: wsFactory(),
      reconnect: false,
    });
    cleanup.push(() => client.close());
    const events: SignalingEvent[] = [];
    client.on((e) => events.push(e));
    await client.start();
    const ws = await server.connected;

    const good = await envelopeFor(alice, alice, bob, "offer");
    // A last, distinct good envelope marks the end: frames are handled in order.
    const last = await envelopeFor(alice, alice, bob, "bye");
    const done = new Promise<void>((resolve) =>
      client.on((e) => {
        if (e.type === "signal" && e.envelope.kind === "bye") resolve();
      }),
    );
    server.push(ws, { t: "SIGNAL", envelope: await envelopeFor(mallory, alice, bob, "offer") });
    server.push(ws, { t: "SIGNAL", envelope: await envelopeFor(alice, alice, carol, "offer") });
    server.push(ws, {
      t: "SIGNAL",
      envelope: await envelopeFor(alice, alice, bob, "ice", Date.now() - 3_600_000),
    });
    server.push(ws, { t: "SIGNAL", envelope: good });
    server.push(ws, { t: "SIGNAL", envelope: good });
    server.push(ws, { t: "SIGNAL", envelope: last });
    await done;

    const rejected = events
      .filter((e) => e.type === "rejected")
      .map((e) => (e as { reason: RejectReason }).reason);
    expect(rejected).toEqual(["bad-signature", "not-for-us", "stale", "replay"]);
    const signals = events.filter((e) => e.type === "signal");
    expect(signals.map((e) => (e as { envelope: SignalEnvelope }).envelope.kind)).toEqual(["offer", "bye"]);
  });

  it("refuses an offer replayed after a reload: accepted offers outlive the client", async () => {
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    // What the PWA keeps in localStorage (web/src/net/seen-offers.ts), here in memory.
    let stored: [string, number][] = [];
    const seenOffers = { load: () => stored, save: (e: [string, number][]) => (stored = e) };
    const offer = await envelopeFor(alice, alice, bob, "offer");

    const receive = async (): Promise<SignalingEvent> => {
      const server = await hostileServer();
      cleanup.push(server.close);
      const client = new SignalingClient({
        url: server.url,
        user: bob,
        connect: wsFactory(),
        reconnect: false,
        seenOffers,
      });
      cleanup.push(() => client.close());
      const outcome = new Promise<SignalingEvent>((resolve) =>
        client.on((e) => {
          if (e.type === "signal" || e.type === "rejected") resolve(e);
        }),
      );
      await client.start();
      server.push(await server.connected, { t: "SIGNAL", envelope: offer });
      const e = await outcome;
      client.close();
      return e;
    };
    expect((await receive()).type).toBe("signal");
    // The "page" reloads: a new client, the same recorded offer from the server.
    const again = await receive();
    expect(again.type === "rejected" && again.reason).toBe("replay");
    expect(stored).toHaveLength(1);
  });

  it("refuses a LOOKUP answer carrying someone else's identity", async () => {
    const bob = makeUser("bob");
    const alice = makeUser("alice");
    const mallory = makeUser("mallory");
    const server = await hostileServer({
      onRequest: (m, ws) => {
        if (m.t === "LOOKUP_REQUEST")
          ws.send(
            serverCodec.encode({
              t: "LOOKUP_RESPONSE",
              id: m.id,
              peers: [
                {
                  identity: encodeIdentity(mallory.identity) as Uint8Array<ArrayBuffer>,
                  last_seen: 1,
                  online: true,
                },
              ],
            }),
          );
      },
    });
    cleanup.push(server.close);
    const client = new SignalingClient({
      url: server.url,
      user: bob,
      connect: wsFactory(),
      reconnect: false,
    });
    cleanup.push(() => client.close());
    await client.start();
    const err = (await client.lookup(keyOf(alice)).catch((e) => e)) as LoftError;
    expect(err.wire).toBe("BAD_PEER_IDENTITY");
    expect(err.code).toBe("LOFT_ERR_SIGNALING_BAD_PEER_IDENTITY");
  });

  it("reports a server of another version as UNSUPPORTED_VERSION", async () => {
    const server = await hostileServer({
      version: encodeVersionHeader({ protocol_name: "SREMP", version_major: 9, version_minor: 0 }),
    });
    cleanup.push(server.close);
    const client = new SignalingClient({
      url: server.url,
      user: makeUser(),
      connect: wsFactory(),
      reconnect: false,
    });
    cleanup.push(() => client.close());
    const err = (await client.start().catch((e) => e)) as LoftError;
    expect(err.wire).toBe("UNSUPPORTED_VERSION");
    // Worded for people by web/src/engine/errors.ts signalingTrouble (tested there).
    expect(err.code).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });

  it("reports an unreachable server in plain words and keeps retrying with backoff", async () => {
    // A port that was just free: nothing listens there.
    const probe: Server = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const client = new SignalingClient({
      url: `ws://127.0.0.1:${port}/signal`,
      user: makeUser(),
      connect: wsFactory(),
      reconnect: { initialMs: 10, maxMs: 20 },
    });
    cleanup.push(() => client.close());
    let attempts = 0;
    const retried = new Promise<void>((resolve) =>
      client.on((e) => {
        if (e.type === "state" && e.state === "reconnecting" && ++attempts === 3) resolve();
      }),
    );
    const err = (await client.start().catch((e) => e)) as LoftError;
    expect(err.wire).toBe("UNREACHABLE");
    expect(err.code).toBe("LOFT_ERR_SIGNALING_UNREACHABLE");
    await retried;
    expect(client.state).toBe("reconnecting");
  });

  it("closing while the connection is still being made raises no error nobody listens to", async () => {
    // A TCP server that takes the connection and never answers the upgrade: the socket stays
    // CONNECTING. `ws` emits "error" when a CONNECTING socket is closed; with the client's handlers
    // already detached that was an unhandled error event (it threw out of close()'s caller).
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    cleanup.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const port = (silent.address() as { port: number }).port;
    const sockets: WebSocket[] = [];
    const client = new SignalingClient({
      url: `ws://127.0.0.1:${port}/signal`,
      user: makeUser(),
      connect: (url) => {
        const ws = new WebSocket(url);
        sockets.push(ws);
        return ws;
      },
    });
    const connected = new Promise<void>((resolve) => silent.once("connection", () => resolve()));
    void client.start().catch(() => undefined);
    await connected;
    expect(sockets[0]?.readyState).toBe(WebSocket.CONNECTING);
    const emitted: unknown[] = [];
    const emit = sockets[0]!.emit.bind(sockets[0]!);
    sockets[0]!.emit = (event: string | symbol, ...args: unknown[]) => {
      if (event === "error" && sockets[0]!.listenerCount("error") === 0) {
        emitted.push(args[0]);
        return false; // recorded here instead of thrown out of ws's nextTick
      }
      return emit(event, ...args);
    };
    expect(() => client.close()).not.toThrow();
    // Either the socket closes, or the error nobody listens to is emitted (and the close never comes).
    await expect.poll(() => emitted.length > 0 || sockets[0]?.readyState === WebSocket.CLOSED).toBe(true);
    expect(emitted).toEqual([]);
  });

  it("browser and ws WebSockets both satisfy WebSocketLike", () => {
    // Compile-time: assignments below fail the typecheck if the interface drifts.
    const fromWs: import("../core/signaling/client.ts").WebSocketFactory = (url) => new WebSocket(url);
    const fromDom: import("../core/signaling/client.ts").WebSocketFactory = (url) =>
      new globalThis.WebSocket(url);
    expect(typeof fromWs).toBe("function");
    expect(typeof fromDom).toBe("function");
  });
});
