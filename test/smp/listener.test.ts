/**
 * The SMP listener end to end over real TLS on loopback, driven by the spec-written client
 * (test/smp/client.ts): identity check, NEW → KEY → SEND → SUB/MSG → ACK → DEL at v6 and v7, GET,
 * OFF, subscription moves, and the WebSocket mailbox meeting the SMP client in one queue.
 */
import { randomBytes } from "node:crypto";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes } from "../../core/bytes.ts";
import { connectRelay } from "../../relay-ws/testing.ts";
import {
  boxBeforeNm,
  bytes,
  cmd,
  hsalsa20,
  openMsg,
  parseAddress,
  parseIds,
  SmpTestClient,
  text,
} from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
const connectOpts = { connectHost: "127.0.0.1" };

beforeAll(async () => {
  server = await startSmpTestServer();
});
afterAll(async () => {
  await server?.close();
});

function keys() {
  const rcvAuth = ed25519.utils.randomSecretKey();
  const rcvDh = x25519.utils.randomSecretKey();
  return {
    rcvAuth,
    rcvAuthPub: ed25519.getPublicKey(rcvAuth),
    rcvDh,
    rcvDhPub: x25519.getPublicKey(rcvDh),
  };
}

async function newQueue(c: SmpTestClient, subscribe = false) {
  const k = keys();
  const r = await c.command(new Uint8Array(0), cmd.new(k.rcvAuthPub, k.rcvDhPub, subscribe), {
    ed25519: k.rcvAuth,
  });
  expect(r.tag, text(r)).toBe("IDS");
  const ids = parseIds(r.params);
  return { ...k, ...ids, boxKey: boxBeforeNm(ids.srvDh, k.rcvDh) };
}

describe("SMP listener", () => {
  it("HSalsa20 of the test client matches NaCl's crypto_box_beforenm vector", () => {
    // NaCl's box test (tests/box.c): Alice's secret key, Bob's public key → the beforenm key.
    const alice = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const bob = Buffer.from("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "hex");
    expect(Buffer.from(boxBeforeNm(bob, alice)).toString("hex")).toBe(
      "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
    );
    expect(hsalsa20(new Uint8Array(32), new Uint8Array(16)).length).toBe(32);
  });

  it("serves its smp:// address in the relay's /health and checks the CA fingerprint", async () => {
    const res = await fetch(`http://127.0.0.1:${server.relay.port}/health`);
    const health = (await res.json()) as {
      services: { relay: { smp: { address: string; versions: string } } };
    };
    expect(health.services.relay.smp.address).toBe(server.address);
    expect(health.services.relay.smp.versions).toBe("6-7");
    const a = parseAddress(server.address);
    expect(a.fingerprint.length).toBe(32);
    // A wrong fingerprint in the address: the client refuses the server.
    const wrong = server.address.replace(
      /^smp:\/\/[^@]+/,
      `smp://${Buffer.alloc(32, 7).toString("base64url")}=`,
    );
    await expect(SmpTestClient.connect(wrong, connectOpts)).rejects.toThrow(/fingerprint/);
  });

  it("closes a client whose hello names another server identity", async () => {
    const c = await SmpTestClient.connect(server.address, { ...connectOpts, keyHash: new Uint8Array(32) });
    expect(await c.waitClosed()).toBe(true);
  });

  it("without ALPN offers v6 only; with smp/1 offers 6–7", async () => {
    const plain = await SmpTestClient.connect(server.address, { ...connectOpts, alpn: false });
    expect(plain.serverRange).toEqual([6, 6]);
    expect(plain.version).toBe(6);
    expect((await plain.command(new Uint8Array(0), cmd.ping())).tag).toBe("PONG");
    plain.close();
    const alpn = await SmpTestClient.connect(server.address, connectOpts);
    expect(alpn.serverRange).toEqual([6, 7]);
    expect(alpn.serverSessionKey?.length).toBe(32);
    alpn.close();
  });

  for (const version of [6, 7]) {
    it(`v${version}: NEW → KEY → SEND → SUB/MSG → ACK → DEL`, async () => {
      const rcv = await SmpTestClient.connect(server.address, { ...connectOpts, version });
      const snd = await SmpTestClient.connect(server.address, { ...connectOpts, version });
      expect(rcv.version).toBe(version);
      const q = await newQueue(rcv);
      // The sender's first message before the queue is secured: unsigned.
      expect(text(await snd.command(q.sndId, cmd.send(bytes("hello, unsecured"))))).toBe("OK");
      const senderKey = ed25519.utils.randomSecretKey();
      expect(
        text(await rcv.command(q.rcvId, cmd.key(ed25519.getPublicKey(senderKey)), { ed25519: q.rcvAuth })),
      ).toBe("OK");
      // Secured: unsigned SEND refused, signed accepted.
      expect(text(await snd.command(q.sndId, cmd.send(bytes("no signature"))))).toBe("ERR AUTH");
      expect(text(await snd.command(q.sndId, cmd.send(bytes("signed"), true), { ed25519: senderKey }))).toBe(
        "OK",
      );
      expect(text(await rcv.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("OK");
      const first = await rcv.nextPush((r) => r.tag === "MSG");
      expect(Buffer.from(first.entityId).equals(Buffer.from(q.rcvId))).toBe(true);
      expect(first.params.length).toBe(1 + 24 + 16 + 16106);
      const m1 = openMsg(first.params, q.boxKey);
      expect(Buffer.from(m1.body).toString()).toBe("hello, unsecured");
      expect(Math.abs(m1.timestamp - Date.now() / 1000)).toBeLessThan(3600);
      // One message at a time: the second comes after the ACK.
      expect(rcv.pushes.filter((p) => p.tag === "MSG")).toHaveLength(0);
      expect(text(await rcv.command(q.rcvId, cmd.ack(m1.msgId), { ed25519: q.rcvAuth }))).toBe("OK");
      const m2 = openMsg((await rcv.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
      expect(Buffer.from(m2.body).toString()).toBe("signed");
      // ACK of a message not delivered: NO_MSG; of the right one: OK.
      expect(text(await rcv.command(q.rcvId, cmd.ack(m1.msgId), { ed25519: q.rcvAuth }))).toBe("ERR NO_MSG");
      expect(text(await rcv.command(q.rcvId, cmd.ack(m2.msgId), { ed25519: q.rcvAuth }))).toBe("OK");
      expect(text(await rcv.command(q.rcvId, cmd.del(), { ed25519: q.rcvAuth }))).toBe("OK");
      // Deleted: every command on it is AUTH, like an unknown queue.
      expect(text(await rcv.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("ERR AUTH");
      expect(text(await snd.command(q.sndId, cmd.send(bytes("late")), { ed25519: senderKey }))).toBe(
        "ERR AUTH",
      );
      rcv.close();
      snd.close();
    });
  }

  it("NEW with subscribe mode S pushes at once; GET and SUB exclude each other on one connection", async () => {
    const c = await SmpTestClient.connect(server.address, connectOpts);
    const q = await newQueue(c, true);
    const snd = await SmpTestClient.connect(server.address, connectOpts);
    expect(text(await snd.command(q.sndId, cmd.send(bytes("pushed"))))).toBe("OK");
    expect(
      Buffer.from(openMsg((await c.nextPush((r) => r.tag === "MSG")).params, q.boxKey).body).toString(),
    ).toBe("pushed");
    expect(text(await c.command(q.rcvId, cmd.get(), { ed25519: q.rcvAuth }))).toBe("ERR CMD PROHIBITED");
    // GET on another connection: the message again (not acknowledged), with GET's correlation id.
    const g = await SmpTestClient.connect(server.address, connectOpts);
    const got = await g.command(q.rcvId, cmd.get(), { ed25519: q.rcvAuth });
    expect(got.tag).toBe("MSG");
    const m = openMsg(got.params, q.boxKey);
    expect(Buffer.from(m.body).toString()).toBe("pushed");
    expect(text(await g.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("ERR CMD PROHIBITED");
    expect(text(await g.command(q.rcvId, cmd.ack(m.msgId), { ed25519: q.rcvAuth }))).toBe("OK");
    expect(text(await g.command(q.rcvId, cmd.get(), { ed25519: q.rcvAuth }))).toBe("OK");
    for (const x of [c, g, snd]) x.close();
  });

  it("OFF suspends sending; messages stored stay readable", async () => {
    const c = await SmpTestClient.connect(server.address, connectOpts);
    const q = await newQueue(c);
    expect(text(await c.command(q.sndId, cmd.send(bytes("before off"))))).toBe("OK");
    expect(text(await c.command(q.rcvId, cmd.off(), { ed25519: q.rcvAuth }))).toBe("OK");
    expect(text(await c.command(q.sndId, cmd.send(bytes("after off"))))).toBe("ERR AUTH");
    const got = await c.command(q.rcvId, cmd.get(), { ed25519: q.rcvAuth });
    expect(Buffer.from(openMsg(got.params, q.boxKey).body).toString()).toBe("before off");
    c.close();
  });

  it("SUB on a second SMP connection moves the subscription: END to the first", async () => {
    const a = await SmpTestClient.connect(server.address, connectOpts);
    const b = await SmpTestClient.connect(server.address, connectOpts);
    const q = await newQueue(a, true);
    expect(text(await b.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("OK");
    const end = await a.nextPush((r) => r.tag === "END");
    expect(Buffer.from(end.entityId).equals(Buffer.from(q.rcvId))).toBe(true);
    expect(text(await a.command(q.sndId, cmd.send(bytes("to b"))))).toBe("OK");
    expect(
      Buffer.from(openMsg((await b.nextPush((r) => r.tag === "MSG")).params, q.boxKey).body).toString(),
    ).toBe("to b");
    a.close();
    b.close();
  });

  it("batches: several transmissions in one block are answered in order", async () => {
    const c = await SmpTestClient.connect(server.address, connectOpts);
    const q = await newQueue(c);
    const answers = await c.batch([
      { entityId: new Uint8Array(0), command: cmd.ping() },
      { entityId: q.sndId, command: cmd.send(bytes("one")) },
      { entityId: q.sndId, command: cmd.send(bytes("two")) },
      { entityId: q.rcvId, command: cmd.get(), signer: { ed25519: q.rcvAuth } },
    ]);
    expect(answers.map((r) => r.tag)).toEqual(["PONG", "OK", "OK", "MSG"]);
    expect(Buffer.from(openMsg(answers[3]!.params, q.boxKey).body).toString()).toBe("one");
    c.close();
  });

  it("a WebSocket mailbox client and the SMP client meet in one queue", async () => {
    // The SMP recipient creates the queue and secures it with an Ed25519 key the WebSocket
    // sender holds; the WebSocket sender signs SEND in its own protocol with that key.
    const smp = await SmpTestClient.connect(server.address, connectOpts);
    const q = await newQueue(smp);
    const wsSenderKey = ed25519.utils.randomSecretKey();
    expect(
      text(await smp.command(q.rcvId, cmd.key(ed25519.getPublicKey(wsSenderKey)), { ed25519: q.rcvAuth })),
    ).toBe("OK");
    const got: string[] = [];
    const ws = await connectRelay(server.relay.url, {
      onMessage: (m) => got.push(Buffer.from(m.body).toString()),
    });
    try {
      await ws.send(
        { senderId: q.sndId, senderAuthSecret: wsSenderKey },
        bytes("from the WebSocket mailbox"),
      );
      expect(text(await smp.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("OK");
      const m = openMsg((await smp.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
      expect(Buffer.from(m.body).toString()).toBe("from the WebSocket mailbox");
      expect(m.notify).toBe(false);
      expect(text(await smp.command(q.rcvId, cmd.ack(m.msgId), { ed25519: q.rcvAuth }))).toBe("OK");
      // The other way: the recipient reads its SMP queue over the WebSocket with the same Ed25519
      // key; the store's server→recipient key of an SMP queue is the crypto_box key, which the
      // WebSocket layer uses as its XChaCha20-Poly1305 key. The subscription moves: END over SMP.
      expect(text(await smp.command(q.sndId, cmd.send(bytes("over SMP")), { ed25519: wsSenderKey }))).toBe(
        "OK",
      );
      await ws.subscribe({
        recipientId: q.rcvId,
        senderId: q.sndId,
        recipientAuthSecret: q.rcvAuth,
        rcvKey: q.boxKey,
      });
      await smp.nextPush((r) => r.tag === "END");
      await expect.poll(() => got, { timeout: 10_000 }).toEqual(["over SMP"]);
    } finally {
      ws.close();
      smp.close();
    }
  });

  it("SUB over SMP takes a queue's subscription from a WebSocket subscriber, which is told END", async () => {
    const ends: string[] = [];
    const ws = await connectRelay(server.relay.url, {
      onEnd: (rid) => ends.push(Buffer.from(rid).toString("hex")),
    });
    const smp = await SmpTestClient.connect(server.address, connectOpts);
    try {
      const q = await newQueue(smp);
      await ws.subscribe({
        recipientId: q.rcvId,
        senderId: q.sndId,
        recipientAuthSecret: q.rcvAuth,
        rcvKey: q.boxKey,
      });
      expect(text(await smp.command(q.rcvId, cmd.sub(), { ed25519: q.rcvAuth }))).toBe("OK");
      await expect.poll(() => ends, { timeout: 10_000 }).toEqual([Buffer.from(q.rcvId).toString("hex")]);
      expect(text(await smp.command(q.sndId, cmd.send(bytes("now over SMP"))))).toBe("OK");
      const m = openMsg((await smp.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
      expect(Buffer.from(m.body).toString()).toBe("now over SMP");
    } finally {
      ws.close();
      smp.close();
    }
  });

  it("ids are fresh random 24-byte values and the per-queue DH key differs per queue", async () => {
    const c = await SmpTestClient.connect(server.address, connectOpts);
    const a = await newQueue(c);
    const b = await newQueue(c);
    expect(a.rcvId.length).toBe(24);
    expect(a.sndId.length).toBe(24);
    expect(
      Buffer.from(concatBytes(a.rcvId, a.srvDh)).equals(Buffer.from(concatBytes(b.rcvId, b.srvDh))),
    ).toBe(false);
    c.close();
    expect(randomBytes(1).length).toBe(1);
  });
});
