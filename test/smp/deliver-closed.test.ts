/**
 * A delivery whose block read from the store answers after the SMP connection closed: the block
 * the store handed over (a kept one leaves its cache: relay-ws/store/hot-blocks.ts `take`) is the
 * delivery's to wipe, sent or not — as relay-ws/pump.test.ts checks for the WebSocket relay. The
 * store is the real LMDB store; only the moment its `read` answer reaches the connection is held.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LmdbStore } from "../../relay-ws/store/lmdb.ts";
import type { RelayStore } from "../../relay-ws/store/types.ts";
import { masterKeyFor } from "../../relay-ws/testing.ts";
import { bytes, cmd, parseIds, SmpTestClient, text } from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

/** The real store; while `held.on`, each `read` answers only once the test lets it, and its block is kept. */
function heldRead(store: RelayStore) {
  const waiting: (() => void)[] = [];
  const held = {
    on: false,
    blocks: [] as Uint8Array[],
    waiting: () => waiting.length,
    release: () => {
      for (const r of waiting.splice(0)) r();
    },
  };
  const proxy = new Proxy(store, {
    get(target, p) {
      if (p === "read")
        return async (rid: Uint8Array, seq: number) => {
          if (held.on) await new Promise<void>((resolve) => waiting.push(resolve));
          const b = await target.read(rid, seq);
          if (b) held.blocks.push(b);
          return b;
        };
      const v = Reflect.get(target, p, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { held, store: proxy };
}

let server: SmpTestServer;
let held: ReturnType<typeof heldRead>["held"];
const connectOpts = { connectHost: "127.0.0.1" };

beforeAll(async () => {
  server = await startSmpTestServer(
    {},
    {
      store: (dir) => {
        const h = heldRead(new LmdbStore({ path: dir, masterKey: masterKeyFor(dir) }));
        held = h.held;
        return h.store;
      },
    },
  );
});
afterAll(async () => {
  held.on = false;
  held.release();
  await server?.close();
});

describe("SMP delivery to a connection that closed meanwhile", () => {
  it("the block read for it is wiped, not left in memory", async () => {
    const rcv = await SmpTestClient.connect(server.address, connectOpts);
    const snd = await SmpTestClient.connect(server.address, connectOpts);
    try {
      const rcvAuth = ed25519.utils.randomSecretKey();
      const rcvDh = x25519.utils.randomSecretKey();
      const r = await rcv.command(
        new Uint8Array(0),
        cmd.new(ed25519.getPublicKey(rcvAuth), x25519.getPublicKey(rcvDh), false),
        { ed25519: rcvAuth },
      );
      expect(r.tag, text(r)).toBe("IDS");
      const q = parseIds(r.params);
      expect(text(await snd.command(q.sndId, cmd.send(bytes("secret body"))))).toBe("OK");
      held.on = true;
      held.blocks.length = 0;
      // SUB: the pump reads the message's block, and the store's answer is held.
      void rcv.command(q.rcvId, cmd.sub(), { ed25519: rcvAuth }).catch(() => undefined);
      await expect.poll(() => held.waiting()).toBe(1);
      const before = server.smp.connectionCount;
      rcv.close();
      await expect.poll(() => server.smp.connectionCount).toBe(before - 1);
      held.on = false;
      held.release();
      await expect.poll(() => held.blocks.length).toBe(1);
      await expect.poll(() => held.blocks[0]!.every((b) => b === 0)).toBe(true);
    } finally {
      held.on = false;
      held.release();
      rcv.close();
      snd.close();
    }
  });
});
