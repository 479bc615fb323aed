/**
 * SMP queues and Loft mailboxes are one queue seen from two protocols (docs/protocol/smp.md,
 * "Mailboxes and SMP queue addresses"): a queue a page creates over SMP through the bridge is
 * written by the PWA's relay client over the WebSocket and by another page through the bridge;
 * a mailbox the PWA's relay client creates over the WebSocket gets an SMP queue address that the
 * spec-written SMP client and a bridged page write to.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromUtf8, utf8 } from "../../core/bytes.ts";
import {
  formatSmpQueueAddress,
  parseSmpQueueAddress,
  parseSmpServerAddress,
} from "../../core/smp/address.ts";
import { connectSmpBridge } from "../../core/smp/bridge-link.ts";
import type { SmpPush } from "../../core/smp/client.ts";
import { relayKeyOfSmpServer, smpQueueOfMailbox, writeRouteOfSmpQueue } from "../../core/smp/mailbox-map.ts";
import { connectRelay } from "../../relay-ws/testing.ts";
import { recordingWebSocket, startTestBridge, type TestBridge } from "./bridge-testing.ts";
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

const bridged = async () =>
  (await connectSmpBridge(bridge.url, server.address, { webSocket: recordingWebSocket().factory })).client;

describe("SMP queue addresses and Loft mailboxes", () => {
  it("a queue made over SMP through the bridge is written by the PWA's relay client (WebSocket) and by another bridged page", async () => {
    const page = await bridged();
    const q = await page.createQueue(true);
    const senderKey = ed25519.utils.randomSecretKey();
    await page.secure(q, ed25519.getPublicKey(senderKey));
    const got: string[] = [];
    page.onPush((p: SmpPush) => {
      if (p.tag !== "MSG") return;
      got.push(fromUtf8(p.message.body));
      page.ack(q, p.message.msgId).catch(() => {});
    });
    // What the creating page shares: the queue address (and, inside E2EE, the sender key).
    const serverAddress = parseSmpServerAddress(server.address)!;
    const shared = formatSmpQueueAddress(
      smpQueueOfMailbox(
        { senderId: q.sndId },
        serverAddress,
        x25519.getPublicKey(x25519.utils.randomSecretKey()),
      ),
    );
    const parsed = parseSmpQueueAddress(shared)!;
    expect(parsed.senderId).toEqual(q.sndId);

    // A PWA that knows this server as a Loft relay writes over its WebSocket: a plain mailbox.
    const route = writeRouteOfSmpQueue(
      parsed,
      senderKey,
      new Map([[relayKeyOfSmpServer(parsed.server), server.relay.url]]),
    );
    if (route.via !== "relay") throw new Error("expected the relay route");
    expect(route.mailbox.relayUrl).toBe(server.relay.url);
    const ws = await connectRelay(route.mailbox.relayUrl);
    await ws.send(
      { senderId: route.mailbox.senderId, senderAuthSecret: route.mailbox.senderKey! },
      utf8("over the WebSocket"),
    );
    ws.close();
    await expect.poll(() => got).toEqual(["over the WebSocket"]);

    // Any other page writes through its bridge.
    const other = writeRouteOfSmpQueue(parsed, senderKey);
    if (other.via !== "bridge") throw new Error("expected the bridge route");
    const writer = await bridged();
    await writer.send(other.senderId, utf8("through the bridge"), other.senderKey);
    await expect.poll(() => got).toEqual(["over the WebSocket", "through the bridge"]);
    writer.close();
    page.close();
  });

  it("a mailbox made over the WebSocket has an SMP queue address the spec client and a bridged page write to", async () => {
    const got: string[] = [];
    const ws = await connectRelay(server.relay.url, { onMessage: (m) => got.push(fromUtf8(m.body)) });
    try {
      const rx = await ws.createQueue();
      const senderKey = ed25519.utils.randomSecretKey();
      await ws.secureQueue(rx, ed25519.getPublicKey(senderKey));
      await ws.subscribe(rx);
      const address = formatSmpQueueAddress(
        smpQueueOfMailbox(
          { senderId: rx.senderId },
          parseSmpServerAddress(server.address)!,
          x25519.getPublicKey(x25519.utils.randomSecretKey()),
        ),
      );
      expect(address).toMatch(
        /^smp:\/\/[A-Za-z0-9_-]{43}=@localhost:\d+\/[A-Za-z0-9_-]{32}#\/\?v=6-7&dh=[A-Za-z0-9_=-]+$/,
      );
      const q = parseSmpQueueAddress(address)!;
      const spec = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
      expect(
        (await spec.command(q.senderId, cmd.send(utf8("from an SMP client")), { ed25519: senderKey })).tag,
      ).toBe("OK");
      spec.close();
      const page = await bridged();
      await page.send(q.senderId, utf8("from a bridged page"), senderKey);
      page.close();
      await expect.poll(() => [...got].sort()).toEqual(["from a bridged page", "from an SMP client"]);
    } finally {
      ws.close();
    }
  });
});
