/**
 * The PWA's mailbox connections to an SMP server (web/src/net/relay-pool.ts handing `smp://` to
 * web/src/net/smp-mailbox.ts; docs/protocol/mailbox.md §1 "Mailboxes on SMP servers", §2, §4)
 * against the real listener over TLS through the real bridge, in Node: a queue made, secured and
 * subscribed as the engine does it; bodies of the SMP size (16 088 B) pass at the boundary and a
 * relay-size body (16 382 B) is refused before it leaves; deliveries come one at a time (the next
 * after the ACK); a server password reaches NEW; a queue whose bridge session drops is
 * subscribed again on the next session; and a closed pool leaves no tunnel at the bridge.
 */
import { createConnection, createServer, type Socket } from "node:net";
import { ed25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isLoftError, type LoftError } from "../../core/errors.ts";
import type { RelayMessage } from "../../core/relay/client.ts";
import { decodeMailboxBody, MAILBOX_BODY, ratchetBodies } from "../../web/src/engine/mailbox.ts";
import type { RelayConnState } from "../../web/src/engine/transport.ts";
import { RelayPool } from "../../web/src/net/relay-pool.ts";
import { recordingWebSocket, startTestBridge, type TestBridge } from "./bridge-testing.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
let guarded: SmpTestServer;
let bridge: TestBridge;

beforeAll(async () => {
  server = await startSmpTestServer();
  guarded = await startSmpTestServer({}, { password: "pw-for-new" });
  bridge = await startTestBridge();
});

afterAll(async () => {
  await bridge?.close();
  await server?.close();
  await guarded?.close();
});

function pool() {
  const got: RelayMessage[] = [];
  const states: RelayConnState[] = [];
  const p = new RelayPool({
    webSocket: recordingWebSocket().factory,
    timeoutMs: 10_000,
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    window: 16,
    onMessage: (_url, m) => got.push(m),
    onState: (_url, s) => states.push(s),
    log: () => {},
    smpBridgeUrl: bridge.url,
  });
  return { p, got, states };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return isLoftError(e) ? (e as LoftError).code : String(e);
  }
}

describe("the PWA's mailbox on an SMP server", () => {
  it("NEW, KEY, SUB as the engine makes its queue; SMP-size bodies at the boundary; one delivery at a time", async () => {
    const { p, got, states } = pool();
    try {
      const client = await p.mailbox(server.address);
      const queue = await client.createQueue({ subscribe: false });
      const sender = ed25519.utils.randomSecretKey();
      await client.secureQueue(queue, ed25519.getPublicKey(sender));
      p.subscribe(server.address, queue);
      const target = { senderId: queue.senderId, senderAuthSecret: sender };

      // One byte over one SMP part: two bodies of exactly 16 088 bytes, both taken.
      const message = new Uint8Array(MAILBOX_BODY.smp - 1).map((_, i) => i & 0xff);
      const bodies = ratchetBodies(message, MAILBOX_BODY.smp);
      expect(bodies.map((b) => b.length)).toEqual([MAILBOX_BODY.smp, MAILBOX_BODY.smp]);
      for (const b of bodies) await client.send(target, b);
      // A relay-size body is refused before it leaves (SMP LARGE_MSG), and nothing is stored.
      expect(await refusal(client.send(target, new Uint8Array(MAILBOX_BODY.relay)))).toBe(
        "LOFT_ERR_FRAME_TOO_LARGE",
      );
      expect(await refusal(client.send(target, new Uint8Array(MAILBOX_BODY.smp + 1)))).toBe(
        "LOFT_ERR_FRAME_TOO_LARGE",
      );
      // Unsigned, or signed by another key: the queue is secured (AUTH, as on a relay).
      expect(await refusal(client.send({ senderId: queue.senderId }, bodies[0]!))).toBe(
        "LOFT_ERR_RELAY_AUTH",
      );

      // The first piece comes; the second only after its ACK (why pieces are ACKed as they come).
      await expect.poll(() => got.length, { timeout: 10_000 }).toBe(1);
      await new Promise((r) => setTimeout(r, 300));
      expect(got.length).toBe(1);
      await p.ack(server.address, queue, got[0]!.msgId);
      await expect.poll(() => got.length, { timeout: 10_000 }).toBe(2);
      await p.ack(server.address, queue, got[1]!.msgId);
      const parts = got.map((m) => decodeMailboxBody(m.body, MAILBOX_BODY.smp));
      const joined = parts.flatMap((r) => (r.ok && r.value.type === "ratchet" ? [...r.value.part] : []));
      expect(Uint8Array.from(joined)).toEqual(message);
      expect(states).toContain("connected");
      await client.deleteQueue(queue);
    } finally {
      p.close();
    }
  });

  it("a server password from the address reaches NEW; without it NEW is refused (AUTH)", async () => {
    const { p } = pool();
    try {
      const withPassword = guarded.address.replace("@", ":pw-for-new@");
      expect(await refusal((await p.mailbox(guarded.address)).createQueue())).toBe("LOFT_ERR_RELAY_AUTH");
      p.close();
      const second = pool();
      try {
        const q = await (await second.p.mailbox(withPassword)).createQueue();
        expect(q.senderId.length).toBe(24);
      } finally {
        second.p.close();
      }
    } finally {
      p.close();
    }
  });

  it("a bridge session that ends is opened again and the queue subscribed again", async () => {
    // A TCP relay between the bridge and the listener, whose connections the test cuts.
    const smpPort = Number(server.address.split(":").at(-1));
    const sockets = new Set<Socket>();
    const tap = createServer((inbound) => {
      const outbound = createConnection(smpPort, "127.0.0.1");
      sockets.add(inbound).add(outbound);
      inbound.pipe(outbound).pipe(inbound);
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
      inbound.on("close", () => outbound.destroy());
      outbound.on("close", () => inbound.destroy());
    });
    await new Promise<void>((resolve) => tap.listen(0, "127.0.0.1", resolve));
    const address = server.address.replace(/:\d+$/, `:${(tap.address() as { port: number }).port}`);
    const { p, got, states } = pool();
    try {
      const client = await p.mailbox(address);
      const queue = await client.createQueue({ subscribe: false });
      p.subscribe(address, queue);
      await expect.poll(() => states.filter((s) => s === "connected").length).toBe(1);
      // The server's side drops (the SMP server restarting, a network cut).
      for (const s of sockets) s.destroy();
      await expect.poll(() => states.includes("unreachable"), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => states.filter((s) => s === "connected").length, { timeout: 20_000 }).toBe(2);
      // Unsecured queue: anyone may SEND (as a first message would); it arrives on the new session.
      await (await p.mailbox(address)).send({ senderId: queue.senderId }, new Uint8Array(100).fill(1));
      await expect.poll(() => got.length, { timeout: 10_000 }).toBe(1);
      // Closing the pool ends the bridged session: the bridge holds nothing for it.
      p.close();
      await expect.poll(() => bridge.service.connectionCount, { timeout: 10_000 }).toBe(0);
    } finally {
      p.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tap.close(() => resolve()));
    }
  });
});
