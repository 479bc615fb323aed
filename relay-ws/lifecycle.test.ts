/**
 * Queue lifecycle over a real WebSocket to a real relay on loopback (docs/protocol/relay.md):
 * NEW → SKEY/KEY → SEND → push (SUB) / GET → ACK → OFF → DEL, prekey bundles, ordering,
 * server→recipient re-encryption, and the live-link mapping onto a queue pair.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { equalBytes, toHex, utf8 } from "../core/bytes.ts";
import { LoftError } from "../core/errors.ts";
import { RelayClient, type RelayMessage } from "../core/relay/client.ts";
import { authPublicKey, newAuthKeyPair } from "../core/relay/crypto.ts";
import { MAX_BODY } from "../core/relay/protocol.ts";
import { WebSocketLink } from "../core/relay/ws-link.ts";
import { connectRelay, startTestRelay, type TestRelay } from "./testing.ts";

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay();
});
afterAll(async () => {
  await relay.close();
});

/** Collect pushed messages; `take(n)` resolves once n arrived. */
function inbox() {
  const got: RelayMessage[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  return {
    got,
    onMessage(m: RelayMessage) {
      got.push(m);
      if (waiter && got.length >= waiter.n) waiter.resolve();
    },
    take(n: number): Promise<RelayMessage[]> {
      if (got.length >= n) return Promise.resolve(got.slice(0, n));
      return new Promise((resolve) => {
        waiter = { n, resolve: () => resolve(got.slice(0, n)) };
      });
    },
  };
}

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof LoftError) return e.code;
    throw e;
  }
  return "resolved";
};

describe("relay queue lifecycle", () => {
  it("NEW, SKEY, SEND, push, ACK, OFF, DEL", async () => {
    const box = inbox();
    const alice = await connectRelay(relay.url, { onMessage: (m) => box.onMessage(m) });
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue();
    expect(q.recipientId).toHaveLength(24);
    expect(toHex(q.recipientId)).not.toBe(toHex(q.senderId));

    const sender = await bob.senderSecure({ senderId: q.senderId });
    await bob.send(sender, utf8("hello"));
    await bob.send(sender, utf8("world"));
    const [m1, m2] = await box.take(2);
    expect(new TextDecoder().decode(m1!.body)).toBe("hello");
    expect(new TextDecoder().decode(m2!.body)).toBe("world");
    expect(m1!.timestamp).toBeGreaterThan(1_600_000_000);
    await alice.ack(q, m1!.msgId);
    await alice.ack(q, m2!.msgId);
    // A second ACK of the same message: nothing in flight with that id.
    expect(await code(alice.ack(q, m1!.msgId))).toBe("LOFT_ERR_RELAY_NO_MSG");

    await alice.suspendQueue(q);
    expect(await code(bob.send(sender, utf8("after OFF")))).toBe("LOFT_ERR_RELAY_AUTH");
    await alice.deleteQueue(q);
    expect(await code(alice.get(q))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(await code(bob.send(sender, utf8("after DEL")))).toBe("LOFT_ERR_RELAY_AUTH");
    alice.close();
    bob.close();
  });

  it("KEY flow: unsigned confirmation, then only signed SENDs", async () => {
    const box = inbox();
    const alice = await connectRelay(relay.url, { onMessage: (m) => box.onMessage(m) });
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue();
    const bobKey = newAuthKeyPair();
    const sender = { senderId: q.senderId, senderAuthSecret: bobKey.secretKey };
    // Confirmation carries Bob's public key end to end; unsigned because the queue is not secured.
    await bob.send(sender, bobKey.publicKey, { sign: false });
    const [conf] = await box.take(1);
    expect(equalBytes(conf!.body, bobKey.publicKey)).toBe(true);
    await alice.secureQueue(q, conf!.body);
    await alice.ack(q, conf!.msgId);
    // Now unsigned is refused, signed is accepted, a signature by another key is refused.
    expect(await code(bob.send(sender, utf8("unsigned"), { sign: false }))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(
      await code(bob.send({ senderId: q.senderId, senderAuthSecret: newAuthKeyPair().secretKey }, utf8("x"))),
    ).toBe("LOFT_ERR_RELAY_AUTH");
    await bob.send(sender, utf8("signed"));
    const [, m] = await box.take(2);
    expect(new TextDecoder().decode(m!.body)).toBe("signed");
    // KEY again with another key is refused; SKEY on a secured queue is refused.
    expect(await code(alice.secureQueue(q, newAuthKeyPair().publicKey))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(await code(bob.senderSecure({ senderId: q.senderId }))).toBe("LOFT_ERR_RELAY_AUTH");
    // KEY again with the same key is an idempotent retry.
    await alice.secureQueue(q, authPublicKey(bobKey.secretKey));
    alice.close();
    bob.close();
  });

  it("GET polls one message at a time; the server→recipient layer changes the bytes", async () => {
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    expect(await alice.get(q)).toBeUndefined();
    const bodies = [0, 1, MAX_BODY].map((n) => new Uint8Array(randomBytes(n)));
    for (const b of bodies) await bob.send(sender, b);
    for (const b of bodies) {
      const m = await alice.get(q);
      expect(m).toBeDefined();
      expect(equalBytes(m!.body, b)).toBe(true);
      // Same message again until it is acknowledged.
      const again = await alice.get(q);
      expect(toHex(again!.msgId)).toBe(toHex(m!.msgId));
      await alice.ack(q, m!.msgId);
    }
    expect(await alice.get(q)).toBeUndefined();
    alice.close();
    bob.close();
  });

  it("SUB moves a subscription: the old connection gets END, unacknowledged messages are redelivered", async () => {
    const box1 = inbox();
    const ended: string[] = [];
    const a1 = await connectRelay(relay.url, {
      onMessage: (m) => box1.onMessage(m),
      onEnd: (rid) => ended.push(toHex(rid)),
    });
    const bob = await connectRelay(relay.url);
    const q = await a1.createQueue();
    const sender = await bob.senderSecure({ senderId: q.senderId });
    await bob.send(sender, utf8("one"));
    const [first] = await box1.take(1);
    const box2 = inbox();
    const a2 = await connectRelay(relay.url, { onMessage: (m) => box2.onMessage(m) });
    await a2.subscribe(q);
    const [again] = await box2.take(1);
    expect(toHex(again!.msgId)).toBe(toHex(first!.msgId));
    await a2.ack(q, again!.msgId);
    await bob.ping();
    expect(ended).toEqual([toHex(q.recipientId)]);
    a1.close();
    a2.close();
    bob.close();
  });

  it("push delivery is ordered and keeps a window of unacknowledged messages", async () => {
    const box = inbox();
    const alice = await connectRelay(relay.url, { onMessage: (m) => box.onMessage(m) });
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    const n = 40;
    await Promise.all(Array.from({ length: n }, (_, i) => bob.send(sender, utf8(`m${i}`))));
    await alice.subscribe(q, 4);
    // With a window of 4 and no ACK, exactly 4 arrive.
    await box.take(4);
    await alice.ping();
    await bob.ping();
    expect(box.got).toHaveLength(4);
    for (let i = 0; i < n; i++) {
      const [m] = (await box.take(i + 1)).slice(i);
      expect(new TextDecoder().decode(m!.body)).toBe(`m${i}`);
      await alice.ack(q, m!.msgId);
    }
    alice.close();
    bob.close();
  });

  it("prekey bundles: publish, fetch with the sender id, one-time prekeys are handed out once", async () => {
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    expect(await code(bob.fetchPrekeys(q.senderId))).toBe("LOFT_ERR_RELAY_NO_BUNDLE");
    const bundle = new Uint8Array(randomBytes(3000));
    const otks = [1, 2, 3].map(() => new Uint8Array(randomBytes(1300)));
    await alice.publishPrekeys(q, { bundle, oneTimePrekeys: otks });
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const f = await bob.fetchPrekeys(q.senderId);
      expect(equalBytes(f.bundle, bundle)).toBe(true);
      expect(f.oneTimePrekey).toBeDefined();
      seen.add(toHex(f.oneTimePrekey!));
    }
    expect([...seen].sort()).toEqual(otks.map(toHex).sort());
    const last = await bob.fetchPrekeys(q.senderId);
    expect(last.oneTimePrekey).toBeUndefined();
    // The recipient id is not a sender id.
    expect(await code(bob.fetchPrekeys(q.recipientId))).toBe("LOFT_ERR_RELAY_AUTH");
    // Replace the one-time prekeys; more than the limit is refused.
    await alice.publishPrekeys(q, { oneTimePrekeys: [otks[0]!], replaceOneTime: true });
    expect(toHex((await bob.fetchPrekeys(q.senderId)).oneTimePrekey!)).toBe(toHex(otks[0]!));
    alice.close();
    bob.close();
  });
});

describe("relay operations", () => {
  it("/health and /metrics report figures without ids", async () => {
    const alice = await connectRelay(relay.url);
    const q = await alice.createQueue();
    const health = (await (await fetch(`http://127.0.0.1:${relay.port}/health`)).json()) as {
      services: { relay: { connections: number; queues: number; engine: string } };
    };
    expect(health.services.relay.engine).toBe("lmdb");
    expect(health.services.relay.connections).toBeGreaterThanOrEqual(1);
    expect(health.services.relay.queues).toBeGreaterThanOrEqual(1);
    const metrics = await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text();
    for (const name of [
      "loft_relay_connections",
      "loft_relay_commands_total",
      "loft_relay_errors_total",
      "loft_relay_stored_messages",
      "loft_relay_stored_bytes",
      "loft_relay_gc_removed_total",
      "loft_relay_send_commit_seconds",
    ])
      expect(metrics).toContain(name);
    expect(metrics).toMatch(/loft_relay_commands_total\{command="NEW",result="ok"\} \d+/);
    expect(metrics).not.toContain(toHex(q.recipientId));
    expect(metrics).not.toContain("127.0.0.1");
    const plain = await fetch(`http://127.0.0.1:${relay.port}/relay`);
    expect(plain.status).toBe(426);
    alice.close();
  });

  it("graceful shutdown closes every WebSocket with 1001 and keeps what was stored", async () => {
    const own = await startTestRelay();
    const dataDir = own.dataDir;
    const ws = new WebSocket(own.url);
    const link = new WebSocketLink(ws);
    const alice = await RelayClient.connect(link);
    const bob = await connectRelay(own.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    await bob.send(sender, utf8("kept"));
    await own.close(true);
    await link.closed;
    expect(link.remoteClose?.code).toBe(1001);
    const again = await startTestRelay({}, { dataDir });
    const c = await connectRelay(again.url);
    expect(new TextDecoder().decode((await c.get(q))!.body)).toBe("kept");
    c.close();
    await again.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
});
