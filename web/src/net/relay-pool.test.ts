/**
 * RelayPool (web/src/net/relay-pool.ts) against a real relay on loopback: a backlog pushed faster
 * than the connection's command rate lets it acknowledge. An ACK refused for rate that was dropped
 * left its message unacknowledged, and once a SUB window of them was lost the relay pushed nothing
 * more to that queue until the next reconnection.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { afterAll, beforeAll, describe, it } from "vitest";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { retryTemporary } from "../../../core/relay/live-link.ts";
import { connectRelay, startTestRelay, type TestRelay } from "../../../relay-ws/testing.ts";
import { relaySocket, until } from "../../../test/support/engine.ts";
import { RelayPool } from "./relay-pool.ts";

describe("RelayPool", () => {
  let relay: TestRelay;
  beforeAll(async () => {
    // A small command budget per connection, so the receiver's ACKs run into it.
    relay = await startTestRelay({ rateBurst: 12, ratePerSecond: 40, maxWindow: 8 });
  });
  afterAll(async () => {
    await relay?.close();
  });

  it("a backlog read faster than the command rate allows: every message acknowledged, none stuck", async () => {
    const sender = await connectRelay(relay.url);
    const queue = await sender.createQueue({ subscribe: false });
    const key = newAuthKeyPair();
    await sender.secureQueue(queue, key.publicKey);
    const target = { senderId: queue.senderId, senderAuthSecret: key.secretKey };
    const total = 60;
    for (let i = 0; i < total; i++) {
      const sendId = randomBytes(16);
      await retryTemporary(() => sender.send(target, new Uint8Array([i]), { sendId }));
    }
    sender.close();

    const received = new Set<number>();
    const pool = new RelayPool({
      webSocket: (url) => relaySocket(url),
      timeoutMs: 10_000,
      backoffInitialMs: 100,
      backoffMaxMs: 1_000,
      window: 8,
      onMessage: (url, m) => {
        received.add(m.body[0]!);
        void pool.ack(url, queue, m.msgId);
      },
      onState: () => {},
      log: () => {},
    });
    try {
      pool.subscribe(relay.url, queue);
      // Without the retry the queue stalls for good after a window of dropped ACKs (none of the
      // 60 arrive in time); with it every message arrives, at worst after the relay closed the
      // connection for the debt the refused ACKs ran up and the pool reconnected.
      await until(() => received.size === total, `all ${total} delivered`, 30_000);
    } finally {
      pool.close();
    }
  });
});
