/**
 * A delivery whose block read from the store answers after the SMP connection closed: the block
 * the store handed over (a kept one leaves its cache: relay-ws/store/hot-blocks.ts `take`) is the
 * delivery's to wipe, sent or not — as relay-ws/pump.test.ts checks for the WebSocket relay. And a
 * push whose read spans the subscription's move to another connection, or a SUB again, is not
 * sent for the old subscription (relay-ws/context.ts `pushStillWanted`). The store is the real
 * LMDB store; only the moment its `read` answer reaches the connection is held.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LmdbStore } from "../../relay-ws/store/lmdb.ts";
import type { RelayStore } from "../../relay-ws/store/types.ts";
import { masterKeyFor } from "../../relay-ws/testing.ts";
import { boxBeforeNm, bytes, cmd, openMsg, parseIds, type Response, SmpTestClient, text } from "./client.ts";
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

describe("SMP push whose block read spans a change of its subscription", () => {
  /** A queue made by `c` (not subscribed), with two messages m0, m1 in it from `snd`. */
  async function queueWithTwo(c: SmpTestClient, snd: SmpTestClient) {
    const rcvAuth = ed25519.utils.randomSecretKey();
    const rcvDh = x25519.utils.randomSecretKey();
    const r = await c.command(
      new Uint8Array(0),
      cmd.new(ed25519.getPublicKey(rcvAuth), x25519.getPublicKey(rcvDh), false),
      { ed25519: rcvAuth },
    );
    expect(r.tag, text(r)).toBe("IDS");
    const q = parseIds(r.params);
    for (const t of ["m0", "m1"]) expect(text(await snd.command(q.sndId, cmd.send(bytes(t))))).toBe("OK");
    return { ...q, rcvAuth, boxKey: boxBeforeNm(q.srvDh, rcvDh) };
  }
  const bodies = (pushes: Response[], boxKey: Uint8Array) =>
    pushes.filter((p) => p.tag === "MSG").map((p) => Buffer.from(openMsg(p.params, boxKey).body).toString());

  it("moved to another connection (END): the old connection gets no MSG after its END", async () => {
    const a = await SmpTestClient.connect(server.address, connectOpts);
    const b = await SmpTestClient.connect(server.address, connectOpts);
    const snd = await SmpTestClient.connect(server.address, connectOpts);
    try {
      const q = await queueWithTwo(a, snd);
      const signer = { ed25519: q.rcvAuth };
      expect(text(await a.command(q.rcvId, cmd.sub(), signer))).toBe("OK");
      const m0 = openMsg((await a.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
      expect(Buffer.from(m0.body).toString()).toBe("m0");
      // The ACK frees the window: the push of m1 to `a` waits for its block.
      held.on = true;
      expect(text(await a.command(q.rcvId, cmd.ack(m0.msgId), signer))).toBe("OK");
      await expect.poll(() => held.waiting()).toBe(1);
      // `b` takes the subscription: `a` is told END (and `b`'s own push of m1 waits too).
      expect(text(await b.command(q.rcvId, cmd.sub(), signer))).toBe("OK");
      await a.nextPush((r) => r.tag === "END");
      held.on = false;
      held.release();
      expect(
        Buffer.from(openMsg((await b.nextPush((r) => r.tag === "MSG")).params, q.boxKey).body).toString(),
      ).toBe("m1");
      // `a`'s held push was let go before `b`'s: had it been sent, it is before this PONG.
      expect(text(await a.command(new Uint8Array(0), cmd.ping()))).toBe("PONG");
      // Before the fix `a` got m1 after its END, a push for a subscription it no longer held.
      expect(bodies(a.pushes, q.boxKey)).toEqual([]);
    } finally {
      held.on = false;
      held.release();
      for (const c of [a, b, snd]) c.close();
    }
  });

  it("SUB again: the held push is not sent, the new subscription delivers the message once", async () => {
    const a = await SmpTestClient.connect(server.address, connectOpts);
    const snd = await SmpTestClient.connect(server.address, connectOpts);
    try {
      const q = await queueWithTwo(a, snd);
      const signer = { ed25519: q.rcvAuth };
      expect(text(await a.command(q.rcvId, cmd.sub(), signer))).toBe("OK");
      const m0 = openMsg((await a.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
      held.on = true;
      expect(text(await a.command(q.rcvId, cmd.ack(m0.msgId), signer))).toBe("OK");
      await expect.poll(() => held.waiting()).toBe(1);
      // SUB again (its OK goes out first): the held push of m1 was the old subscription's.
      expect(text(await a.command(q.rcvId, cmd.sub(), signer))).toBe("OK");
      held.on = false;
      held.release();
      await expect.poll(() => bodies(a.pushes, q.boxKey)).toEqual(["m1"]);
      // Nothing more comes (a PONG follows every push sent before it).
      expect(text(await a.command(new Uint8Array(0), cmd.ping()))).toBe("PONG");
      // Without the check the old subscription's push went too, and m1 came twice.
      expect(bodies(a.pushes, q.boxKey)).toEqual(["m1"]);
    } finally {
      held.on = false;
      held.release();
      a.close();
      snd.close();
    }
  });
});
