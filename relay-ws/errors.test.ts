/**
 * Bad input on every command, each answered by a typed error named by its code
 * (docs/protocol/relay.md §Errors), against a real relay on loopback; and a flood from one client
 * while another keeps being served.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import type { RecipientQueue } from "../core/relay/client.ts";
import { newAuthKeyPair, newDhKeyPair } from "../core/relay/crypto.ts";
import {
  type Command,
  encodeClientFrame,
  encodeServerFrame,
  MAX_BODY,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { refusalCode as codeOf, connectRelay, RawSocket, startTestRelay, type TestRelay } from "./testing.ts";

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay({
    queueQuota: 3,
    maxQueuesPerConnection: 4,
    maxPrekeys: 2,
    maxFrameBytes: 32_768,
  });
});
afterAll(async () => {
  await relay.close();
});

const id = () => new Uint8Array(randomBytes(24));
const errCode = (f: ServerFrame) => (f.k === "ERR" ? f.e : `not an error: ${f.k}`);

/** A queue created over a raw socket, with its keys. */
async function rawQueue(s: RawSocket): Promise<{ rid: Uint8Array; sid: Uint8Array; rk: Uint8Array }> {
  const auth = newAuthKeyPair();
  const f = await s.request(
    { k: "NEW", i: 1, rk: auth.publicKey, dk: newDhKeyPair().publicKey, sub: false },
    auth.secretKey,
  );
  if (f.k !== "IDS") throw new Error(`expected IDS, got ${f.k}`);
  return { rid: f.r, sid: f.s, rk: auth.secretKey };
}

describe("relay bad input", () => {
  it("wrong signature and unknown queue: AUTH for every recipient command, same bytes for both", async () => {
    const s = await RawSocket.open(relay.url);
    const q = await rawQueue(s);
    const wrong = newAuthKeyPair().secretKey;
    const commands = (rid: Uint8Array): Command[] => [
      { k: "KEY", i: 7, q: rid, sk: newAuthKeyPair().publicKey },
      { k: "SUB", i: 7, q: rid, w: 1 },
      { k: "GET", i: 7, q: rid },
      { k: "ACK", i: 7, q: rid, m: id() },
      { k: "OFF", i: 7, q: rid },
      { k: "DEL", i: 7, q: rid },
      { k: "PKSET", i: 7, q: rid, po: [], pr: false },
    ];
    for (const cmd of commands(q.rid)) {
      s.send(s.frame(cmd, wrong));
      const badSig = await s.next();
      s.send(s.frame({ ...cmd, q: id() } as Command, wrong));
      const unknown = await s.next();
      s.send(s.frame(cmd)); // unsigned
      const unsigned = await s.next();
      // The sender id is not a recipient id.
      s.send(s.frame({ ...cmd, q: q.sid } as Command, q.rk));
      const senderId = await s.next();
      const expected = encodeServerFrame({ k: "ERR", i: 7, e: "AUTH" });
      for (const got of [badSig, unknown, unsigned, senderId]) expect(toHex(got!)).toBe(toHex(expected));
    }
    // The queue still works with the right key.
    expect((await s.request({ k: "GET", i: 9, q: q.rid }, q.rk)).k).toBe("OK");
    // A signature on the NEW that does not match its own key.
    const auth = newAuthKeyPair();
    const f = await s.request(
      { k: "NEW", i: 3, rk: auth.publicKey, dk: newDhKeyPair().publicKey, sub: false },
      wrong,
    );
    expect(errCode(f)).toBe("AUTH");
    // A signature on a command that takes none.
    expect(errCode(await s.request({ k: "PING", i: 4 }, wrong))).toBe("AUTH");
    s.close();
  });

  it("SEND: unknown sender id, wrong key, signed on an unsecured queue → AUTH", async () => {
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    expect(await codeOf(bob.send({ senderId: id() }, utf8("x")))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(await codeOf(bob.fetchPrekeys(id()))).toBe("LOFT_ERR_RELAY_AUTH");
    // Not secured yet: a signed SEND is refused (SMP §Send message).
    const key = newAuthKeyPair();
    expect(await codeOf(bob.send({ senderId: q.senderId, senderAuthSecret: key.secretKey }, utf8("x")))).toBe(
      "LOFT_ERR_RELAY_AUTH",
    );
    const sender = await bob.senderSecure({ senderId: q.senderId });
    expect(await codeOf(bob.send({ senderId: q.senderId, senderAuthSecret: key.secretKey }, utf8("x")))).toBe(
      "LOFT_ERR_RELAY_AUTH",
    );
    await bob.send(sender, utf8("ok"));
    alice.close();
    bob.close();
  });

  it("quota exceeded → QUOTA, and room again after an ACK", async () => {
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    for (let i = 0; i < 3; i++) await bob.send(sender, utf8(`m${i}`));
    expect(await codeOf(bob.send(sender, utf8("over")))).toBe("LOFT_ERR_RELAY_QUOTA");
    const m = await alice.get(q);
    await alice.ack(q, m!.msgId);
    await bob.send(sender, utf8("fits again"));
    alice.close();
    bob.close();
  });

  it("replayed SEND: same bytes on the same connection → DUPLICATE; on another connection → AUTH", async () => {
    const alice = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const s1 = await RawSocket.open(relay.url);
    const key = newAuthKeyPair();
    expect((await s1.request({ k: "SKEY", i: 1, q: q.senderId, sk: key.publicKey }, key.secretKey)).k).toBe(
      "OK",
    );
    const send = s1.frame(
      { k: "SEND", i: 2, q: q.senderId, n: new Uint8Array(16).fill(5), b: utf8("once") },
      key.secretKey,
    );
    s1.send(send);
    expect((await s1.nextFrame()).k).toBe("OK");
    s1.send(send);
    expect(errCode(await s1.nextFrame())).toBe("DUPLICATE");
    const s2 = await RawSocket.open(relay.url);
    s2.send(send);
    expect(errCode(await s2.nextFrame())).toBe("AUTH");
    // A retry with a fresh signature but the same send id is also refused (already stored).
    expect(
      errCode(
        await s2.request(
          { k: "SEND", i: 3, q: q.senderId, n: new Uint8Array(16).fill(5), b: utf8("once") },
          key.secretKey,
        ),
      ),
    ).toBe("DUPLICATE");
    // Exactly one copy is stored.
    const m = await alice.get(q);
    expect(new TextDecoder().decode(m!.body)).toBe("once");
    await alice.ack(q, m!.msgId);
    expect(await alice.get(q)).toBeUndefined();
    s1.close();
    s2.close();
    alice.close();
  });

  it("garbage MessagePack, wrong shapes, unknown commands and text frames", async () => {
    const s = await RawSocket.open(relay.url);
    s.send(new Uint8Array([0xc1]));
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "MALFORMED" });
    s.send(new Uint8Array([0x92, 0x01])); // truncated array
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "MALFORMED" });
    s.send(encodeCanonical({ t: 5 }));
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "SCHEMA" });
    s.send(encodeClientFrame(new Uint8Array([0xc1])));
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "MALFORMED" });
    s.send(encodeClientFrame(encodeCanonical({ k: "NOPE", i: 12 })));
    expect(await s.nextFrame()).toEqual({ k: "ERR", i: 12, e: "UNKNOWN" });
    s.send(encodeClientFrame(encodeCanonical({ k: "GET", i: 13, q: new Uint8Array(5) })));
    expect(await s.nextFrame()).toEqual({ k: "ERR", i: 13, e: "SCHEMA" });
    s.send(
      encodeClientFrame(
        encodeCanonical({
          k: "SEND",
          i: 14,
          q: id(),
          n: new Uint8Array(16),
          b: new Uint8Array(MAX_BODY + 1),
        }),
      ),
    );
    expect(await s.nextFrame()).toEqual({ k: "ERR", i: 14, e: "SCHEMA" });
    s.send("PING", false);
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "MALFORMED" });
    expect((await s.request({ k: "PING", i: 15 })).k).toBe("OK");
    s.close();
  });

  it("oversized frames: LARGE up to twice the limit, then the connection is closed (1009)", async () => {
    const s = await RawSocket.open(relay.url);
    s.send(new Uint8Array(32_769));
    expect(await s.nextFrame()).toEqual({ k: "ERR", e: "LARGE" });
    expect((await s.request({ k: "PING", i: 1 })).k).toBe("OK");
    s.send(new Uint8Array(2 * 32_768 + 1));
    await s.closed;
    expect(s.closeCode).toBe(1009);
    // The client refuses an oversized body before sending.
    const c = await connectRelay(relay.url);
    expect(await codeOf(c.send({ senderId: id() }, new Uint8Array(MAX_BODY + 1)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    c.close();
  });

  it("wrong or missing version header → VERSION, then close 1002", async () => {
    for (const first of [
      new Uint8Array([0xc1]),
      encodeVersionHeader({ protocol_name: "SREMP", version_major: 2, version_minor: 0 }),
      encodeVersionHeader({ protocol_name: "OTHER", version_major: 1, version_minor: 0 }),
      encodeCanonical({ k: "PING", i: 1 }),
    ]) {
      const s = await RawSocket.open(relay.url, false);
      await s.next(); // the relay's header comes first regardless
      s.send(first);
      expect(await s.nextFrame()).toEqual({ k: "ERR", e: "VERSION" });
      await s.closed;
      expect(s.closeCode).toBe(1002);
      expect(s.closeReason).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    }
  });

  it("per-connection and per-queue limits → LIMIT, state errors → PROHIBITED / NO_MSG", async () => {
    const c = await connectRelay(relay.url);
    const queues: RecipientQueue[] = [];
    for (let i = 0; i < 4; i++) queues.push(await c.createQueue({ subscribe: i === 0 }));
    expect(await codeOf(c.createQueue())).toBe("LOFT_ERR_RELAY_LIMIT");
    const q = queues[0]!;
    expect(await codeOf(c.get(q))).toBe("LOFT_ERR_RELAY_PROHIBITED");
    expect(await codeOf(c.ack(q, id()))).toBe("LOFT_ERR_RELAY_NO_MSG");
    const otk = () => new Uint8Array(randomBytes(100));
    await c.publishPrekeys(q, { bundle: otk(), oneTimePrekeys: [otk(), otk()] });
    expect(await codeOf(c.publishPrekeys(q, { oneTimePrekeys: [otk()] }))).toBe("LOFT_ERR_RELAY_LIMIT");
    c.close();
  });

  it("a flooding client is rate limited and closed; another client is served meanwhile", async () => {
    const flood = await relayWithRate();
    try {
      const attacker = await RawSocket.open(flood.url);
      const victimAlice = await connectRelay(flood.url);
      const victimBob = await connectRelay(flood.url);
      const q = await victimAlice.createQueue({ subscribe: false });
      const sender = await victimBob.senderSecure({ senderId: q.senderId });
      const ping = attacker.frame({ k: "PING", i: 1 });
      const garbage = new Uint8Array(randomBytes(200));
      let sent = 0;
      const pump = () => {
        for (let i = 0; i < 500 && attacker.closeCode === undefined; i++, sent++)
          attacker.send(i % 2 === 0 ? ping : garbage);
      };
      const floodTimer = setInterval(pump, 1);
      // Meanwhile a full round trip for the other clients.
      for (let i = 0; i < 20; i++) await victimBob.send(sender, utf8(`v${i}`));
      for (let i = 0; i < 20; i++) {
        const m = await victimAlice.get(q);
        expect(new TextDecoder().decode(m!.body)).toBe(`v${i}`);
        await victimAlice.ack(q, m!.msgId);
      }
      await attacker.closed;
      clearInterval(floodTimer);
      expect(attacker.closeCode).toBe(1008);
      expect(attacker.closeReason).toBe("LOFT_ERR_RELAY_RATE");
      const codes = new Set<string>();
      for (const f of attacker.frames) {
        const d = (await import("../core/relay/protocol.ts")).decodeServerFrame(f);
        if (d.ok && d.value.k === "ERR") codes.add(d.value.e);
      }
      expect(codes.has("RATE")).toBe(true);
      expect(sent).toBeGreaterThan(1000);
      await victimAlice.ping();
      victimAlice.close();
      victimBob.close();
    } finally {
      await flood.close();
    }
  });
});

describe("relay WebSocket pings", () => {
  it("a ping flood costs tokens like frames: the flooder is closed with 1008", async () => {
    const r = await startTestRelay({ rateBurst: 10, ratePerSecond: 1 });
    try {
      const attacker = await RawSocket.open(r.url);
      // Fewer than ws's own cap on unanswered auto-pongs (60), which would terminate the socket.
      for (let i = 0; i < 40; i++) attacker.ws.ping(new Uint8Array(125));
      // Frames and pings are handled in order: by this command, the pings have been counted.
      attacker.send(attacker.frame({ k: "PING", i: 1 }));
      expect(await attacker.next()).toBeUndefined();
      expect(attacker.closeCode).toBe(1008);
      expect(attacker.closeReason).toBe("LOFT_ERR_RELAY_RATE");
    } finally {
      await r.close();
    }
  });
});

describe("relay command buckets and the heartbeat", () => {
  it("a connection's bucket is forgotten at a heartbeat only once it refilled: spent, it stays spent", async () => {
    // The buckets' clock moves only when the test says; heartbeats run by hand (service.heartbeat).
    let t = 1_000_000;
    const r = await startTestRelay({ rateBurst: 3, ratePerSecond: 1 }, { now: () => t });
    try {
      const c = await RawSocket.open(r.url);
      const ping = (i: number) => c.request({ k: "PING", i });
      // The heartbeat's ping reached the client, which answered it at once: the relay reads that
      // pong before the next command on the socket, and the connection stays alive.
      const heartbeat = async () => {
        const pinged = once(c.ws, "ping");
        r.service.heartbeat();
        await pinged;
      };
      /** PINGs answered before the first RATE (at most 10 tried). */
      const spent = async (from: number) => {
        let i = from;
        while (i - from < 10 && (await ping(i)).k !== "ERR") i++;
        return i - from;
      };
      expect(await spent(1)).toBe(3);
      // A heartbeat passes, the clock does not: the spent bucket is kept, not replaced by a full one.
      await heartbeat();
      expect(await ping(10)).toEqual({ k: "ERR", i: 10, e: "RATE" });
      // Refilled, then forgotten at a heartbeat: the next frames find a full bucket, three and no more.
      t += 10_000;
      await heartbeat();
      expect(await spent(20)).toBe(3);
      expect(c.closeCode).toBeUndefined();
    } finally {
      await r.close();
    }
  });
});

function relayWithRate(): Promise<TestRelay> {
  return startTestRelay({ rateBurst: 100, ratePerSecond: 100 });
}
