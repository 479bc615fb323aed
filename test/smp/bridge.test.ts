/**
 * The SMP bridge (docs/protocol/smp.md, "The bridge"): core/smp's client, as a browser runs it,
 * reaches a second relay's SMP listener through the first relay's `/smp-bridge`, over real TLS; the
 * spec-written test client (test/smp/client.ts) talks to the same listener directly.
 */
import { once } from "node:events";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { utf8 } from "../../core/bytes.ts";
import { decodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import { connectSmpBridge } from "../../core/smp/bridge-link.ts";
import type { SmpPush } from "../../core/smp/client.ts";
import { decodeBatch } from "../../core/smp/transport.ts";
import { contains, recordingWebSocket, startTestBridge, type TestBridge } from "./bridge-testing.ts";
import { cmd, SmpTestClient } from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
let bridge: TestBridge;

beforeAll(async () => {
  server = await startSmpTestServer();
  bridge = await startTestBridge();
});

afterAll(async () => {
  await bridge?.close();
  await server?.close();
});

/** Resolves with the next push `match` accepts, bounded in time. */
function nextPush(
  on: (l: (p: SmpPush) => void) => () => void,
  match: (p: SmpPush) => boolean,
): Promise<SmpPush> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error("no push"));
    }, 15_000);
    const off = on((p) => {
      if (!match(p)) return;
      clearTimeout(timer);
      off();
      resolve(p);
    });
  });
}

describe("SMP bridge", () => {
  it("a bridged client creates a queue, the spec client sends to it, the bridged client receives; the bridge carries no plaintext", async () => {
    const rec = recordingWebSocket();
    const { client, tls } = await connectSmpBridge(bridge.url, server.address, { webSocket: rec.factory });
    expect(tls).toBe("TLSv1.3");
    expect(client.version).toBe(7);
    await client.ping();
    const q = await client.createQueue(true);
    const onPush = client.onPush.bind(client);

    const sender = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
    const secret = utf8("the bridge must never see this sentence");
    const first = nextPush(onPush, (p) => p.tag === "MSG");
    expect((await sender.command(q.sndId, cmd.send(secret))).tag).toBe("OK");
    const got = await first;
    if (got.tag !== "MSG") throw new Error("not a MSG");
    expect(got.message.body).toEqual(secret);
    await client.ack(q, got.message.msgId);

    // Secured: only the sender key's holder may send; the spec client signs.
    const senderSecret = ed25519.utils.randomSecretKey();
    await client.secure(q, ed25519.getPublicKey(senderSecret));
    expect((await sender.command(q.sndId, cmd.send(utf8("unsigned")))).tag).toBe("ERR");
    const second = nextPush(onPush, (p) => p.tag === "MSG");
    const signed = utf8("signed by the sender key");
    expect((await sender.command(q.sndId, cmd.send(signed), { ed25519: senderSecret })).tag).toBe("OK");
    const got2 = await second;
    if (got2.tag !== "MSG") throw new Error("not a MSG");
    expect(got2.message.body).toEqual(signed);
    await client.ack(q, got2.message.msgId);

    // The bridged client sends too (the queue's own sender key, signed in the "browser").
    const third = nextPush(onPush, (p) => p.tag === "MSG");
    await client.send(q.sndId, utf8("from the page"), senderSecret);
    const got3 = await third;
    if (got3.tag !== "MSG") throw new Error("not a MSG");
    expect(got3.message.body).toEqual(utf8("from the page"));

    await client.deleteQueue(q);
    // What crossed the bridge to the browser: no plaintext (MSG bodies are sealed to the recipient).
    expect(rec.received.length).toBeGreaterThan(3);
    for (const frame of rec.received) {
      expect(contains(frame, secret)).toBe(false);
      expect(contains(frame, signed)).toBe(false);
    }
    sender.close();
    client.close();
  });

  it("at v7 a queue with an X25519 recipient key: its commands carry 80-byte crypto_box authenticators with the server's session key, no signatures", async () => {
    const rec = recordingWebSocket();
    const { client } = await connectSmpBridge(bridge.url, server.address, { webSocket: rec.factory });
    expect(client.serverSessionKey).toHaveLength(32);
    const q = await client.createQueue(true, "x25519");
    const got = nextPush(client.onPush.bind(client), (p) => p.tag === "MSG");
    const sender = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
    expect((await sender.command(q.sndId, cmd.send(utf8("deniably read")))).tag).toBe("OK");
    sender.close();
    const p = await got;
    if (p.tag !== "MSG") throw new Error("not a MSG");
    expect(p.message.body).toEqual(utf8("deniably read"));
    await client.ack(q, p.message.msgId);
    await client.deleteQueue(q);
    client.close();
    // NEW, ACK and DEL as the page sent them: every authorization is 80 bytes.
    const lengths = rec.sent
      .map((f) => decodeBridgeFrame(f))
      .flatMap((f) => (f?.kind === "BLOCK" ? (decodeBatch(f.block) ?? []) : []))
      .map((t) => t[0]!)
      .filter((n) => n > 0);
    expect(lengths).toEqual([80, 80, 80]);
  });

  it("at v6 (session id in every transmission) too", async () => {
    const v6 = await startSmpTestServer({}, { versions: { min: 6, max: 6 } });
    try {
      const { client } = await connectSmpBridge(bridge.url, v6.address, {
        webSocket: recordingWebSocket().factory,
      });
      expect(client.version).toBe(6);
      const q = await client.createQueue(true);
      const got = nextPush(client.onPush.bind(client), (p) => p.tag === "MSG");
      const sender = await SmpTestClient.connect(v6.address, { connectHost: "127.0.0.1" });
      expect(sender.version).toBe(6);
      expect((await sender.command(q.sndId, cmd.send(utf8("at version 6")))).tag).toBe("OK");
      sender.close();
      const p = await got;
      if (p.tag !== "MSG") throw new Error("not a MSG");
      expect(p.message.body).toEqual(utf8("at version 6"));
      await client.ack(q, p.message.msgId);
      await client.deleteQueue(q);
      client.close();
    } finally {
      await v6.close();
    }
  });

  it("a queue outlives its connection: closed, reconnected through the bridge, subscribed again, its messages still open", async () => {
    const first = (
      await connectSmpBridge(bridge.url, server.address, { webSocket: recordingWebSocket().factory })
    ).client;
    const q = await first.createQueue(false);
    first.close();
    const sender = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
    expect((await sender.command(q.sndId, cmd.send(utf8("while away")))).tag).toBe("OK");
    sender.close();
    const again = (
      await connectSmpBridge(bridge.url, server.address, { webSocket: recordingWebSocket().factory })
    ).client;
    const got = nextPush(again.onPush.bind(again), (p) => p.tag !== "END");
    await again.subscribe(q);
    const p = await got;
    expect(p.tag).toBe("MSG");
    if (p.tag === "MSG") expect(p.message.body).toEqual(utf8("while away"));
    again.close();
  });
});

describe("SMP bridge heartbeat", () => {
  /**
   * The bridge's ping reached `ws` (which answered it at once, as browsers do), and the bridge has
   * read that pong: `ws`'s own ping, sent after it on the same connection, has been answered.
   * A ping from the browser is not a sign of life to the tunnel (only a frame or a pong is).
   */
  async function answered(ws: WebSocket): Promise<void> {
    await once(ws, "ping");
    ws.ping();
    await once(ws, "pong");
  }

  it.each(["lean", "ws"] as const)(
    "a browser that stops answering pings is cut and its TLS connection to the server closed; one that answers stays (--ws-impl %s)",
    async (wsImpl) => {
      // Heartbeats run by hand, not by the timer: what each browser did between two of them is
      // known, however slow the machine. An SMP server of its own: its connection count is these
      // two tunnels' and nothing else's (the shared one may still be closing the connections of
      // the tests before, read as a stale baseline).
      const own = await startSmpTestServer();
      const hb = await startTestBridge({}, { heartbeatMs: 3_600_000, wsImpl });
      try {
        let answering!: WebSocket;
        const live = await connectSmpBridge(hb.url, own.address, {
          webSocket: (u) => {
            answering = new WebSocket(u);
            return answering as never;
          },
        });
        let silent!: WebSocket;
        const dead = await connectSmpBridge(hb.url, own.address, {
          // A browser gone without a word: its socket is open, but nothing answers the pings.
          webSocket: (u) => {
            silent = new WebSocket(u, { autoPong: false });
            return silent as never;
          },
        });
        await live.client.ping();
        await dead.client.ping();
        expect(hb.service.connectionCount).toBe(2);
        // Both tunnels answered through the server: each has its connection there.
        expect(own.smp.connectionCount).toBe(2);
        // Both are pinged; only one answers before the next heartbeat, which cuts the other.
        const pinged = answered(answering);
        hb.service.heartbeat();
        await pinged;
        const cut = once(silent, "close");
        hb.service.heartbeat();
        const [code] = await cut;
        expect(code).toBe(1006);
        expect(hb.service.connectionCount).toBe(1);
        expect(hb.service.health()).toMatchObject({ outcomes: { heartbeat: 1 } });
        // The SMP server's end of the cut tunnel goes too (the bridge destroyed its TLS connection).
        await expect.poll(() => own.smp.connectionCount, { timeout: 10_000 }).toBe(1);
        // The browser that answers was pinged as often and is still served.
        await live.client.ping();
        expect(hb.service.connectionCount).toBe(1);
        expect(own.smp.connectionCount).toBe(1);
        live.client.close();
        await expect.poll(() => hb.service.connectionCount, { timeout: 10_000 }).toBe(0);
        await expect.poll(() => own.smp.connectionCount, { timeout: 10_000 }).toBe(0);
      } finally {
        await hb.close();
        await own.close();
      }
    },
  );
});
