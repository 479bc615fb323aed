/**
 * Output buffers of the relay (issue #17, finding 2): clients that do not read. A paused TCP
 * socket on the client makes the relay's writes pile up in user space once the kernel buffers are
 * full; these tests measure what the relay holds (the sum of `bufferedAmount` over its open
 * sockets) against its per-connection and global limits, on a real relay on loopback.
 */
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { RecipientQueue, RelayClient } from "../core/relay/client.ts";
import type { RelayConfig } from "./config.ts";
import {
  type ConnectFrom,
  connectRelay,
  connectRelayOver,
  RawSocket,
  relayCounter,
  startTestRelay,
  type TestRelay,
} from "./testing.ts";

let relay: TestRelay | undefined;
const open: { close(): void }[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await relay?.close();
  relay = undefined;
});

async function start(overrides: Partial<RelayConfig>): Promise<TestRelay> {
  relay = await startTestRelay({
    sync: false,
    ratePerSecond: 0,
    sourceCostRate: 0,
    sourceStoreRate: 0,
    ...overrides,
  });
  return relay;
}

/** `n` queues holding one 16 KiB message each, owned by `owner`. */
async function filledQueues(owner: RelayClient, n: number, perQueue = 1): Promise<RecipientQueue[]> {
  const queues: RecipientQueue[] = [];
  for (let i = 0; i < n; i++) {
    const q = await owner.createQueue({ subscribe: false });
    for (let j = 0; j < perQueue; j++)
      await owner.send({ senderId: q.senderId }, new Uint8Array(16_000).fill(i));
    queues.push(q);
  }
  return queues;
}

/** A raw socket that stops reading (its kernel buffer fills, then the relay's output grows). */
async function pausedReader(r: TestRelay, from: ConnectFrom = {}): Promise<RawSocket> {
  const s = await RawSocket.open(r.url, true, from);
  open.push(s);
  (s.ws as unknown as { _socket: Socket })._socket.pause();
  return s;
}

/**
 * GET every queue `rounds` times without reading: each answer is a 16 KiB MSG. One signed frame per
 * queue, sent again each round (a GET is answered each time): signing every frame anew in this
 * process (Ed25519 in JavaScript) took 18 s for 1 024 frames at load 23, and 4 × 1 024 ran the
 * global-budget test past its 60 s timeout before the relay was even asked.
 */
function flood(s: RawSocket, queues: RecipientQueue[], rounds: number): void {
  const frames = queues.map((q, n) =>
    s.frame({ k: "GET", i: n + 1, q: q.recipientId }, q.recipientAuthSecret),
  );
  for (let r = 0; r < rounds; r++) for (const f of frames) s.send(f);
}

const commandCount = (r: TestRelay, command: string) =>
  relayCounter(r, "loft_relay_commands_total", { command });
const errorCount = (r: TestRelay, code: string) => relayCounter(r, "loft_relay_errors_total", { code });

describe("slow consumers", () => {
  it("are terminated at once, not kept through a 30 s closing handshake", async () => {
    const r = await start({ sendBufferBytes: 1 << 20, maxDeliveries: 100 });
    const owner = await connectRelay(r.url);
    open.push(owner);
    const queues = await filledQueues(owner, 64);
    const s = await pausedReader(r);
    expect(r.service.diagnostics().sockets).toBe(2);
    flood(s, queues, 16); // 16 MiB of answers
    await expect.poll(async () => (await errorCount(r, "LOFT_ERR_RELAY_SLOW_CONSUMER")) === 1).toBe(true);
    // The socket and its buffers are gone, without waiting for the client to answer a close frame.
    await expect.poll(() => r.service.diagnostics().sockets === 1).toBe(true);
    expect(r.service.diagnostics().bufferedBytes).toBeLessThan(64 << 10);
    await owner.ping();
  });

  it("a global output budget bounds what all slow readers together pin", async () => {
    const budget = 2 << 20;
    // No single reader reaches its own limit: only the global budget can cut them.
    const r = await start({ sendBufferTotal: budget, sendBufferBytes: 1 << 30, maxDeliveries: 100 });
    const owner = await connectRelay(r.url);
    open.push(owner);
    const queues = await filledQueues(owner, 64);
    const readers = [];
    for (const a of ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
      readers.push(await pausedReader(r, { localAddress: a }));
    for (const s of readers) flood(s, queues, 16); // 4 × 16 MiB of answers
    // Until every GET is answered or a reader was cut…
    await expect
      .poll(async () => (await commandCount(r, "GET")) >= 4 * 64 * 16 || r.service.diagnostics().sockets < 5)
      .toBe(true);
    // …then what the relay holds stays within the budget (plus one small backlog per connection).
    await expect.poll(() => r.service.diagnostics().bufferedBytes <= budget + 5 * (96 << 10)).toBe(true);
    await owner.ping();
  });

  it("a subscriber that reads slowly gets pushes paused, not a disconnect, and receives everything", async () => {
    const r = await start({ sendBufferBytes: 1 << 20, maxWindow: 255, maxInFlight: 10_000, queueQuota: 100 });
    const owner = await connectRelay(r.url);
    open.push(owner);
    const queues = await filledQueues(owner, 8, 80); // 640 × 16 KiB = 10 MiB
    const byId = new Map(queues.map((q) => [Buffer.from(q.recipientId).toString("hex"), q]));
    const acked = new Set<string>();
    let sub: RelayClient | undefined;
    const { client, ws } = await connectRelayOver(r.url, {
      onMessage: (m) => {
        const q = byId.get(Buffer.from(m.recipientId).toString("hex"))!;
        void sub!.ack(q, m.msgId).then(() => acked.add(Buffer.from(m.msgId).toString("hex")));
      },
    });
    sub = client;
    open.push(client);
    const socket = (ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    // Subscribe without waiting for the OKs (they may sit behind pushes the paused socket holds).
    for (const q of queues) void client.subscribe(q, 80).catch(() => {});
    // The relay pushes until its backlog to this connection is high, then waits…
    await expect.poll(() => r.service.diagnostics().bufferedBytes > 0).toBe(true);
    await expect.poll(async () => (await commandCount(r, "SUB")) === 8).toBe(true);
    expect(await errorCount(r, "LOFT_ERR_RELAY_SLOW_CONSUMER")).toBe(0);
    // …and resumes when the client reads again: everything arrives, nothing was cut.
    socket.resume();
    await expect.poll(() => acked.size === 640).toBe(true);
    expect(await errorCount(r, "LOFT_ERR_RELAY_SLOW_CONSUMER")).toBe(0);
  });
});
