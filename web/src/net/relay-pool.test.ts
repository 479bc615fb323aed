/**
 * RelayPool (web/src/net/relay-pool.ts) and the connection's ACK pacer (core/relay/ack-pacer.ts)
 * against a real relay on loopback with a small command budget per connection
 * (docs/protocol/relay.md §Limits): a backlog is pushed faster than the connection's command rate
 * lets it acknowledge. An ACK refused for rate and dropped left its message unacknowledged (once
 * a SUB window of them was lost the relay pushed nothing more until the next reconnection); ACKs
 * retried each on its own timer ran the connection into the relay's rate debt, which closes it.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ackPacer } from "../../../core/relay/ack-pacer.ts";
import type { RecipientQueue, RelayClient, RelayMessage } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { DEFAULT_SEND_RETRY, retryTemporary } from "../../../core/relay/live-link.ts";
import {
  connectRelay,
  relayCounter,
  StoppableClock,
  startTestRelay,
  type TestRelay,
} from "../../../relay-ws/testing.ts";
import { relaySocket, until } from "../../../test/support/engine.ts";
import type { RelayConnectionsOptions } from "../engine/transport.ts";
import { RelayPool } from "./relay-pool.ts";

/** A queue on `relay` holding `total` one-byte messages 0, 1, … (sent from another connection). */
async function backlog(relay: TestRelay, total: number): Promise<RecipientQueue> {
  const sender = await connectRelay(relay.url);
  try {
    const queue = await sender.createQueue({ subscribe: false });
    const key = newAuthKeyPair();
    await sender.secureQueue(queue, key.publicKey);
    const target = { senderId: queue.senderId, senderAuthSecret: key.secretKey };
    for (let i = 0; i < total; i++) {
      const sendId = randomBytes(16);
      await retryTemporary(() => sender.send(target, new Uint8Array([i]), { sendId }));
    }
    return queue;
  } finally {
    sender.close();
  }
}

/** Every message of `queue` was acknowledged: none waits for a redelivery. */
async function expectEmpty(relay: TestRelay, queue: RecipientQueue): Promise<void> {
  const check = await connectRelay(relay.url);
  try {
    expect(await check.get(queue)).toBeUndefined();
  } finally {
    check.close();
  }
}

/** A pool on loopback relays (fast reconnection unless `options` say otherwise). */
function testPool(
  options: Pick<RelayConnectionsOptions, "onMessage"> & Partial<RelayConnectionsOptions>,
): RelayPool {
  return new RelayPool({
    webSocket: (url) => relaySocket(url),
    timeoutMs: 10_000,
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    window: 8,
    onState: () => {},
    log: () => {},
    ...options,
  });
}

const ackRefusals = (relay: TestRelay) =>
  relayCounter(relay, "loft_relay_commands_total", { command: "ACK", result: "RATE" });

describe("RelayPool", () => {
  let relay: TestRelay;
  /** The relay's clock for command buckets: running, except where a test stops it. */
  const clock = new StoppableClock();
  beforeAll(async () => {
    // A small command budget per connection (12 at once, 40/s), so the receiver's ACKs run into
    // it; a connection 12 frames in debt is closed.
    relay = await startTestRelay({ rateBurst: 12, ratePerSecond: 40, maxWindow: 8 }, { now: clock.now });
  });
  afterAll(async () => {
    await relay?.close();
  });

  it("a backlog read faster than the command rate allows: every message acknowledged on one connection, never closed for debt", async () => {
    const total = 60;
    const queue = await backlog(relay, total);
    const refusedBefore = await ackRefusals(relay);
    const received = new Set<number>();
    const acks: Promise<void>[] = [];
    const states: string[] = [];
    const pool = testPool({
      backoffInitialMs: 100,
      backoffMaxMs: 1_000,
      onMessage: (url, m) => {
        received.add(m.body[0]!);
        acks.push(pool.ack(url, queue, m.msgId));
      },
      onState: (_url, state) => states.push(state),
    });
    // The relay's buckets stand still until the receiver's ACKs have spent its budget (however
    // slowly this machine reads), then refill at 40/s again: the rest of the backlog is read at
    // the relay's pace, through the pacer.
    clock.stop();
    try {
      pool.subscribe(relay.url, queue);
      await until(async () => (await ackRefusals(relay)) > refusedBefore, "an ACK refused for rate", 10_000);
      clock.run();
      // Without the retry the queue stalls for good after a window of dropped ACKs; with a retry
      // per ACK the relay closes the connection for the debt the refused retries run up.
      await until(() => received.size === total, `all ${total} delivered`, 30_000);
      await Promise.all(acks);
      // The one connection stayed up throughout.
      expect(states).toEqual(["connecting", "connected"]);
    } finally {
      clock.run();
      pool.close();
    }
    await expectEmpty(relay, queue);
  });

  it("speaks 1.3 to a relay that serves it and falls back to 1.1, in the same opening, on one from before 1.2; messages flow on both", async () => {
    // docs/decisions.md (Relay), "The app speaks relay protocol 1.2": the fall-back.
    const old = await startTestRelay({ bucketed: false });
    const qOld = await backlog(old, 1);
    const qNew = await backlog(relay, 1);
    const logs: string[] = [];
    const states: string[] = [];
    const got: string[] = [];
    const pool = testPool({
      onMessage: (url, m) => {
        got.push(`${url === old.url ? "old" : "new"}:${m.body.length}`);
        void pool.ack(url, url === old.url ? qOld : qNew, m.msgId);
      },
      onState: (url, state) => states.push(`${url === old.url ? "old" : "new"} ${state}`),
      log: (m) => logs.push(m),
    });
    const refusals = () => relayCounter(old, "loft_relay_errors_total", { code: "VERSION" });
    try {
      pool.subscribe(old.url, qOld);
      pool.subscribe(relay.url, qNew);
      await until(() => got.length === 2, "one message from each relay", 10_000);
      expect(got.sort()).toEqual(["new:1", "old:1"]);
      expect((await pool.client(relay.url)).delivery).toBe("bucket");
      expect((await pool.client(relay.url)).batched).toBe(true);
      const first = await pool.client(old.url);
      expect(first.delivery).toBe("block");
      expect(first.batched).toBe(false);
      // The refusal cost one extra socket inside the opening, not an "unreachable" state.
      expect(states.filter((s) => s.startsWith("old"))).toEqual(["old connecting", "old connected"]);
      // 1.3 then 1.2 refused (a relay without 1.2 has no 1.3 either), both in this one opening.
      expect(await refusals()).toBe(2);
      expect(logs).toContain("relay: protocol 1.3 refused (a relay from before it); speaking 1.2 to it");
      expect(logs).toContain("relay: protocol 1.2 refused (a relay from before it); speaking 1.1 to it");
      // A reconnection opens straight in 1.1: no second refusal.
      first.close();
      await until(() => pool.isUp(old.url), "old relay reconnected", 10_000);
      const second = await pool.client(old.url);
      expect(second).not.toBe(first);
      expect(second.delivery).toBe("block");
      expect(await refusals()).toBe(2);
      expect(await relayCounter(old, "loft_relay_openings_total", { version: "1.1" })).toBeGreaterThanOrEqual(
        2,
      );
    } finally {
      pool.close();
      await old.close();
    }
  });

  it("speaks 1.3 (batches) where served and falls back to 1.2, in the same opening, on a relay from before it", async () => {
    // docs/decisions.md (Relay), "Several messages per frame (protocol 1.3)": the fall-back.
    const mid = await startTestRelay({ batched: false });
    const queue = await backlog(mid, 3);
    const logs: string[] = [];
    const got: number[] = [];
    const pool = testPool({
      onMessage: (url, m) => {
        got.push(m.body[0]!);
        void pool.ack(url, queue, m.msgId);
      },
      log: (m) => logs.push(m),
    });
    try {
      pool.subscribe(mid.url, queue);
      await until(() => got.length === 3, "the backlog delivered", 10_000);
      expect(got).toEqual([0, 1, 2]);
      const client = await pool.client(mid.url);
      expect([client.delivery, client.batched]).toEqual(["bucket", false]);
      expect(logs).toEqual(["relay: protocol 1.3 refused (a relay from before it); speaking 1.2 to it"]);
      expect(await relayCounter(mid, "loft_relay_openings_total", { version: "1.2" })).toBe(1);
    } finally {
      pool.close();
      await mid.close();
    }
  });

  it("the pacer: a window of ACKs on a connection whose budget is spent all land, one refusal at a time", async () => {
    const total = 8;
    const queue = await backlog(relay, total);
    const messages: RelayMessage[] = [];
    // The relay's buckets stand still while this connection spends its budget and sends its
    // window of ACKs: no refill, so what passes does not depend on how fast this machine is.
    clock.stop();
    try {
      const client: RelayClient = await connectRelay(relay.url, {
        onMessage: (m: RelayMessage) => {
          messages.push(m);
        },
      });
      try {
        await client.subscribe(queue, 8);
        await until(() => messages.length === total, "the window pushed", 10_000);
        // Spend the connection's budget: PINGs until the relay says RATE — at most the burst of
        // 12, and the refused one leaves one frame of debt (12 close the connection).
        let pings = 0;
        for (let refused = false; !refused; pings++) {
          expect(pings, "PINGs before RATE").toBeLessThanOrEqual(12);
          refused = await client.ping().then(
            () => false,
            (e: { code?: string }) => e.code === "LOFT_ERR_RELAY_RATE",
          );
        }
        const pacer = ackPacer(client, DEFAULT_SEND_RETRY);
        const refusedBefore = await ackRefusals(relay);
        const acks = messages.map((m) => pacer.ack(queue, m.msgId));
        // The first refusal puts the connection's ACKs in one paced line. With the bucket empty,
        // every ACK sent before the pacer knew is refused: the whole window.
        await until(() => pacer.paced, "paced after the first refusal", 10_000);
        await until(
          async () => (await ackRefusals(relay)) - refusedBefore >= total,
          "the window of ACKs refused",
          10_000,
        );
        // Time runs again: the 40/s refill pays the debt, and the paced line goes through.
        clock.run();
        await Promise.all(acks);
        expect(client.closed).toBe(false);
        // The ACKs sent before the pacer knew, and one per pause after (pauses double from
        // 50–100 ms: the refill pays the debt of 9 within a few): never a window of retries at
        // once, which would be `total` more each round (12 frames of debt close this connection).
        expect((await ackRefusals(relay)) - refusedBefore).toBeLessThanOrEqual(total + 6);
      } finally {
        client.close();
      }
    } finally {
      clock.run();
    }
    await expectEmpty(relay, queue);
  });
});
