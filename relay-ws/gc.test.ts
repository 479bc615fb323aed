/**
 * Garbage collection with an injected clock: TTL expiry (timer GC and at delivery), the 5-failure
 * drop (GoRelay "redelivery loop protection"), and that a crypto-deleted message never comes back.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../core/bytes.ts";
import type { RelayMessage } from "../core/relay/client.ts";
import { connectRelay, relayCounter, startTestRelay, type TestRelay } from "./testing.ts";

let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.close();
  relay = undefined;
});

describe("relay garbage collection", () => {
  it("expires messages after the TTL (GC timer path and delivery path)", async () => {
    let now = Date.UTC(2030, 0, 1);
    relay = await startTestRelay({ ttlSeconds: 3600 }, { clock: () => now });
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    for (let i = 0; i < 3; i++) await bob.send(sender, utf8(`old${i}`));
    now += 3599_000;
    expect((await relay.runGcForTest()).expiredMessages).toBe(0);
    expect(relay.service.store.stats().messages).toBe(3);
    now += 2_000;
    const r = await relay.runGcForTest();
    expect(r).toMatchObject({ expiredMessages: 3, expiredSendIds: 3 });
    expect(relay.service.store.stats().messages).toBe(0);
    expect(await alice.get(q)).toBeUndefined();
    expect(await relayCounter(relay, "loft_relay_gc_removed_total", { reason: "expired" })).toBe(3);

    // Expired but not collected yet: dropped when it would be delivered.
    await bob.send(sender, utf8("stale"));
    now += 3601_000;
    expect(await alice.get(q)).toBeUndefined();
    expect(relay.service.store.stats().messages).toBe(0);
    expect(await relayCounter(relay, "loft_relay_gc_removed_total", { reason: "expired" })).toBe(4);
    alice.close();
    bob.close();
  });

  it("drops a message after 5 unacknowledged deliveries (GET and SUB on new connections)", async () => {
    relay = await startTestRelay();
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    await bob.send(sender, utf8("poison"));
    await bob.send(sender, utf8("next"));
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const m = await alice.get(q);
      expect(new TextDecoder().decode(m!.body)).toBe("poison");
      ids.add(toHex(m!.msgId));
    }
    expect(ids.size).toBe(1);
    // The sixth attempt finds it failed 5 times: dropped, the next message comes instead.
    const m = await alice.get(q);
    expect(new TextDecoder().decode(m!.body)).toBe("next");
    expect(await relayCounter(relay, "loft_relay_gc_removed_total", { reason: "delivery_failures" })).toBe(1);
    alice.close();

    // Same through SUB: "next" was delivered once by that GET; four subscribers that disconnect
    // without ACK make five failed deliveries.
    for (let attempt = 0; attempt < 4; attempt++) {
      const got: RelayMessage[] = [];
      let resolve!: () => void;
      const arrived = new Promise<void>((r) => {
        resolve = r;
      });
      const c = await connectRelay(relay.url, {
        onMessage: (msg) => {
          got.push(msg);
          resolve();
        },
      });
      await c.subscribe(q);
      await arrived;
      expect(new TextDecoder().decode(got[0]!.body)).toBe("next");
      c.close();
    }
    const last = await connectRelay(relay.url);
    expect(await last.get(q)).toBeUndefined();
    expect(await relayCounter(relay, "loft_relay_gc_removed_total", { reason: "delivery_failures" })).toBe(2);
    expect(relay.service.store.stats().messages).toBe(0);
    last.close();
    bob.close();
  });

  it("failed deliveries are counted across a restart of the relay", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "loft-relay-gc-"));
    try {
      let r = await startTestRelay({}, { dataDir });
      let alice = await connectRelay(r.url);
      const bob = await connectRelay(r.url);
      const q = await alice.createQueue({ subscribe: false });
      const sender = await bob.senderSecure({ senderId: q.senderId });
      await bob.send(sender, utf8("poison"));
      for (let i = 0; i < 3; i++) expect(await alice.get(q)).toBeDefined();
      alice.close();
      bob.close();
      await alice.done;
      await r.close();
      r = await startTestRelay({}, { dataDir });
      relay = r;
      alice = await connectRelay(r.url);
      for (let i = 0; i < 2; i++) expect(await alice.get(q)).toBeDefined();
      expect(await alice.get(q)).toBeUndefined();
      alice.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
