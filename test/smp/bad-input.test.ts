/**
 * Bad, replayed and out-of-order input to the SMP listener (docs/protocol/smp.md, "Errors"): the
 * spec's ERR codes, the connection surviving where the spec says so, the session binding refusing
 * replays on other connections, v7 authenticators, and the shared per-source and queue limits.
 */
import { ed448 } from "@noble/curves/ed448.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRelay, relayCounter } from "../../relay-ws/testing.ts";
import {
  BLOCK,
  boxBeforeNm,
  bytes,
  cmd,
  openMsg,
  padded,
  parseIds,
  type Signer,
  SmpTestClient,
  short,
  text,
} from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
const via = { connectHost: "127.0.0.1" };
const none = new Uint8Array(0);

beforeAll(async () => {
  server = await startSmpTestServer({ ratePerSecond: 0 });
});
afterAll(async () => {
  await server?.close();
});

async function newQueue(c: SmpTestClient, authKeyType: "ed25519" | "x25519" | "ed448" = "ed25519") {
  const curve = authKeyType === "ed25519" ? ed25519 : authKeyType === "ed448" ? ed448 : x25519;
  const rcvAuth = curve.utils.randomSecretKey();
  const rcvAuthPub = curve.getPublicKey(rcvAuth);
  const rcvDh = x25519.utils.randomSecretKey();
  const signer: Signer = { [authKeyType]: rcvAuth };
  const r = await c.command(
    none,
    cmd.new(rcvAuthPub, x25519.getPublicKey(rcvDh), false, authKeyType),
    signer,
  );
  expect(r.tag, text(r)).toBe("IDS");
  const ids = parseIds(r.params);
  return { ...ids, signer, boxKey: boxBeforeNm(ids.srvDh, rcvDh) };
}

async function alive(c: SmpTestClient): Promise<void> {
  expect((await c.command(none, cmd.ping())).tag).toBe("PONG");
}

describe("SMP listener: malformed input", () => {
  it("a block whose length header runs past its end: ERR BLOCK, and the connection stays", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const block = new Uint8Array(BLOCK);
    block[0] = 0xff;
    block[1] = 0xff;
    c.sendRaw(block);
    const err = await c.nextPush((r) => r.tag === "ERR");
    expect(text(err)).toBe("ERR BLOCK");
    expect(err.corrId.length).toBe(0);
    // A batch with zero transmissions, and one whose transmission runs past the content.
    c.sendRaw(padded(bytes([0])));
    expect(text(await c.nextPush((r) => r.tag === "ERR"))).toBe("ERR BLOCK");
    c.sendRaw(padded(bytes([1, 0x10, 0x00], "short")));
    expect(text(await c.nextPush((r) => r.tag === "ERR"))).toBe("ERR BLOCK");
    await alive(c);
    c.close();
  });

  it("an authorization of a size no algorithm has: ERR BLOCK with the correlation id", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const r = await c.command(none, cmd.ping(), { raw: new Uint8Array(10) });
    expect(text(r)).toBe("ERR BLOCK");
    await alive(c);
    c.close();
  });

  it("command errors: UNKNOWN, SYNTAX, NO_AUTH, HAS_AUTH, NO_ENTITY", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(c);
    const key = ed25519.utils.randomSecretKey();
    expect(text(await c.command(none, bytes("FOO")))).toBe("ERR CMD UNKNOWN");
    expect(text(await c.command(q.sndId, bytes("SEND")))).toBe("ERR CMD SYNTAX");
    expect(text(await c.command(q.sndId, bytes("SEND X hi")))).toBe("ERR CMD SYNTAX");
    expect(text(await c.command(q.rcvId, bytes("ACK ")))).toBe("ERR CMD SYNTAX");
    expect(text(await c.command(q.rcvId, bytes("SUB extra"), q.signer))).toBe("ERR CMD SYNTAX");
    expect(text(await c.command(none, bytes("NEW ", short(new Uint8Array(3)), "C"), { ed25519: key }))).toBe(
      "ERR CMD SYNTAX",
    );
    expect(
      text(
        await c.command(
          none,
          cmd.new(ed25519.getPublicKey(key), x25519.getPublicKey(x25519.utils.randomSecretKey())),
        ),
      ),
    ).toBe("ERR CMD NO_AUTH");
    expect(text(await c.command(q.rcvId, cmd.sub()))).toBe("ERR CMD NO_AUTH");
    expect(text(await c.command(q.rcvId, cmd.ping()))).toBe("ERR CMD HAS_AUTH");
    expect(text(await c.command(none, cmd.send(bytes("x"))))).toBe("ERR CMD NO_ENTITY");
    await alive(c);
    c.close();
  });

  it("wrong signature and unknown queue: the same ERR AUTH", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(c);
    const stranger = { ed25519: ed25519.utils.randomSecretKey() };
    const wrong = await c.command(q.rcvId, cmd.sub(), stranger);
    const unknown = await c.command(new Uint8Array(24), cmd.sub(), q.signer);
    expect(text(wrong)).toBe("ERR AUTH");
    expect(text(unknown)).toBe("ERR AUTH");
    // A sender id used for a recipient command, a recipient id for SEND: AUTH.
    expect(text(await c.command(q.sndId, cmd.sub(), q.signer))).toBe("ERR AUTH");
    expect(text(await c.command(q.rcvId, cmd.send(bytes("x"))))).toBe("ERR AUTH");
    // SKEY is v9; no queue accepts it at v6–v7.
    const sk = ed25519.utils.randomSecretKey();
    expect(
      text(
        await c.command(
          q.sndId,
          bytes(
            "SKEY ",
            short(bytes(Buffer.from("302a300506032b6570032100", "hex"), ed25519.getPublicKey(sk))),
          ),
          { ed25519: sk },
        ),
      ),
    ).toBe("ERR AUTH");
    await alive(c);
    c.close();
  });

  it("a message over 16 088 bytes: ERR LARGE_MSG; 16 088 bytes: stored", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(c);
    expect(text(await c.command(q.sndId, cmd.send(new Uint8Array(16089))))).toBe("ERR LARGE_MSG");
    expect(text(await c.command(q.sndId, cmd.send(new Uint8Array(16088).fill(7))))).toBe("OK");
    const got = await c.command(q.rcvId, cmd.get(), q.signer);
    expect(openMsg(got.params, q.boxKey).body.length).toBe(16088);
    c.close();
  });

  it("v6: a transmission carrying another session id gets ERR SESSION", async () => {
    const c = await SmpTestClient.connect(server.address, { ...via, version: 6 });
    const corrId = new Uint8Array(24).fill(1);
    const answer = c.answerTo(corrId);
    c.sendTransmissions([
      bytes(short(none), short(new Uint8Array(32).fill(9)), short(corrId), short(none), "PING"),
    ]);
    expect(text(await answer)).toBe("ERR SESSION");
    await alive(c);
    c.close();
  });

  it("an 80-byte authenticator at v6 is malformed (BLOCK); at v7 it authorizes an X25519 queue key", async () => {
    const v7 = await SmpTestClient.connect(server.address, { ...via, version: 7 });
    const q = await newQueue(v7, "x25519");
    expect(text(await v7.command(q.rcvId, cmd.sub(), q.signer))).toBe("OK");
    // The wrong X25519 key: AUTH.
    expect(text(await v7.command(q.rcvId, cmd.off(), { x25519: x25519.utils.randomSecretKey() }))).toBe(
      "ERR AUTH",
    );
    // An Ed25519 signature on an X25519-keyed queue: AUTH.
    expect(text(await v7.command(q.rcvId, cmd.off(), { ed25519: ed25519.utils.randomSecretKey() }))).toBe(
      "ERR AUTH",
    );
    const v6 = await SmpTestClient.connect(server.address, { ...via, version: 6 });
    expect(text(await v6.command(q.rcvId, cmd.off(), { raw: new Uint8Array(80) }))).toBe("ERR BLOCK");
    v6.close();
    v7.close();
  });
});

describe("SMP listener: key types and TLS versions", () => {
  it("Ed448 recipient keys sign commands (114-byte signatures)", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(c, "ed448");
    expect(text(await c.command(q.sndId, cmd.send(bytes("ed448 queue"))))).toBe("OK");
    const got = await c.command(q.rcvId, cmd.get(), q.signer);
    expect(Buffer.from(openMsg(got.params, q.boxKey).body).toString()).toBe("ed448 queue");
    expect(text(await c.command(q.rcvId, cmd.off(), { ed448: ed448.utils.randomSecretKey() }))).toBe(
      "ERR AUTH",
    );
    c.close();
  });

  it("TLS 1.2 with ECDHE-ECDSA-CHACHA20-POLY1305: the session id is the client's 12-byte Finished", async () => {
    const c = await SmpTestClient.connect(server.address, { ...via, tls12: true });
    expect(c.socket.getProtocol()).toBe("TLSv1.2");
    expect(c.socket.getCipher().standardName).toBe("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
    expect(c.sessionId.length).toBe(12);
    const q = await newQueue(c);
    expect(text(await c.command(q.sndId, cmd.send(bytes("over TLS 1.2"))))).toBe("OK");
    c.close();
  });
});

describe("SMP listener: replayed and out-of-order input", () => {
  for (const version of [6, 7]) {
    it(`v${version}: a signed transmission replayed on another connection is refused (session binding)`, async () => {
      const a = await SmpTestClient.connect(server.address, { ...via, version });
      const q = await newQueue(a);
      const senderKey = ed25519.utils.randomSecretKey();
      expect(text(await a.command(q.rcvId, cmd.key(ed25519.getPublicKey(senderKey)), q.signer))).toBe("OK");
      const corrId = new Uint8Array(24).fill(3);
      const captured = a.transmission(corrId, q.sndId, cmd.send(bytes("once")), { ed25519: senderKey });
      const first = a.answerTo(corrId);
      a.sendTransmissions([captured]);
      expect(text(await first)).toBe("OK");
      const b = await SmpTestClient.connect(server.address, { ...via, version });
      const replayed = b.answerTo(corrId);
      b.sendTransmissions([captured]);
      // v6 carries a's session id in the bytes (SESSION); v7 signs it implicitly (AUTH).
      expect(text(await replayed)).toBe(version === 6 ? "ERR SESSION" : "ERR AUTH");
      await alive(b);
      a.close();
      b.close();
    });
  }

  it("commands before the client hello: the connection is closed", async () => {
    const { connect } = await import("node:tls");
    const url = new URL(server.address.replace("smp://", "http://"));
    const socket = connect({
      host: "127.0.0.1",
      port: Number(url.port),
      rejectUnauthorized: false,
      ALPNProtocols: ["smp/1"],
    });
    await new Promise<void>((resolve) => socket.once("secureConnect", () => resolve()));
    // A batched PING block instead of the hello.
    socket.write(padded(bytes([1, 0, 6], short(none), short(none), short(none), "PI")));
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000);
      socket.on("data", () => {});
      socket.once("close", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    expect(closed).toBe(true);
  });

  it("a version outside the offered range: closed", async () => {
    for (const v of [5, 8]) {
      const c = await SmpTestClient.connect(server.address, { ...via, forceVersion: v });
      expect(await c.waitClosed()).toBe(true);
    }
  });

  it("ACK before any delivery, a second KEY with another key, KEY again with the same key", async () => {
    const c = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(c);
    expect(text(await c.command(q.rcvId, cmd.ack(new Uint8Array(24)), q.signer))).toBe("ERR NO_MSG");
    const k1 = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    const k2 = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    expect(text(await c.command(q.rcvId, cmd.key(k1), q.signer))).toBe("OK");
    expect(text(await c.command(q.rcvId, cmd.key(k1), q.signer))).toBe("OK");
    expect(text(await c.command(q.rcvId, cmd.key(k2), q.signer))).toBe("ERR AUTH");
    c.close();
  });

  it("a subscriber that reconnects gets the unacknowledged message again", async () => {
    const a = await SmpTestClient.connect(server.address, via);
    const q = await newQueue(a);
    expect(text(await a.command(q.sndId, cmd.send(bytes("again"))))).toBe("OK");
    expect(text(await a.command(q.rcvId, cmd.sub(), q.signer))).toBe("OK");
    const first = openMsg((await a.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
    a.close();
    const b = await SmpTestClient.connect(server.address, via);
    expect(text(await b.command(q.rcvId, cmd.sub(), q.signer))).toBe("OK");
    const second = openMsg((await b.nextPush((r) => r.tag === "MSG")).params, q.boxKey);
    expect(Buffer.from(second.msgId).equals(Buffer.from(first.msgId))).toBe(true);
    expect(text(await b.command(q.rcvId, cmd.ack(second.msgId), q.signer))).toBe("OK");
    b.close();
  });
});

describe("SMP listener: the WebSocket mailbox's limits", () => {
  it("the queue quota answers QUOTA; the per-source storage budget answers QUOTA too", async () => {
    const limited = await startSmpTestServer({ ratePerSecond: 0, queueQuota: 2 });
    try {
      const c = await SmpTestClient.connect(limited.address, via);
      const q = await newQueue(c);
      expect(text(await c.command(q.sndId, cmd.send(bytes("1"))))).toBe("OK");
      expect(text(await c.command(q.sndId, cmd.send(bytes("2"))))).toBe("OK");
      expect(text(await c.command(q.sndId, cmd.send(bytes("3"))))).toBe("ERR QUOTA");
      c.close();
    } finally {
      await limited.close();
    }
    // 256 B for the queue and about 512 B a message: the third write finds the budget spent.
    const budget = await startSmpTestServer({ ratePerSecond: 0, sourceStoreRate: 1, sourceStoreBurst: 1400 });
    try {
      const c = await SmpTestClient.connect(budget.address, via);
      const q = await newQueue(c);
      const answers: string[] = [];
      for (let i = 0; i < 4; i++) answers.push(text(await c.command(q.sndId, cmd.send(bytes(`m${i}`)))));
      expect(answers).toContain("ERR QUOTA");
      expect(answers[0]).toBe("OK");
      c.close();
    } finally {
      await budget.close();
    }
  });

  it("per-connection queue limit: NEW beyond it is refused", async () => {
    const limited = await startSmpTestServer({ ratePerSecond: 0, maxQueuesPerConnection: 2 });
    try {
      const c = await SmpTestClient.connect(limited.address, via);
      await newQueue(c);
      await newQueue(c);
      const k = ed25519.utils.randomSecretKey();
      const r = await c.command(
        none,
        cmd.new(ed25519.getPublicKey(k), x25519.getPublicKey(x25519.utils.randomSecretKey())),
        { ed25519: k },
      );
      expect(text(r)).toBe("ERR AUTH");
      c.close();
    } finally {
      await limited.close();
    }
  });

  it("connections per source are counted with the WebSocket's, at TCP accept, and given back on close", async () => {
    const limited = await startSmpTestServer({ ratePerSecond: 0, maxConnectionsPerSource: 2 });
    try {
      const ws = await connectRelay(limited.relay.url);
      const first = await SmpTestClient.connect(limited.address, via);
      // The third connection of 127.0.0.1 (one WebSocket, one SMP) is cut before TLS completes.
      await expect(SmpTestClient.connect(limited.address, via)).rejects.toThrow();
      first.close();
      await first.waitClosed();
      // The slot comes back once the socket is gone (bounded retries: the close is asynchronous).
      let again: SmpTestClient | undefined;
      for (let i = 0; i < 100 && !again; i++) {
        again = await SmpTestClient.connect(limited.address, via).catch(() => undefined);
        if (!again) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(again).toBeDefined();
      await alive(again!);
      again!.close();
      ws.close();
    } finally {
      await limited.close();
    }
  });

  it("a spent command budget slows the client down (backpressure), it is not refused", async () => {
    // 60 cost units a second with a burst of 60: ten SENDs (15 units each) need about 1.5 s of refill.
    const slow = await startSmpTestServer({ ratePerSecond: 0, sourceCostRate: 60, sourceCostBurst: 60 });
    try {
      const c = await SmpTestClient.connect(slow.address, via);
      const k = ed25519.utils.randomSecretKey();
      const created = await c.command(
        none,
        cmd.new(ed25519.getPublicKey(k), x25519.getPublicKey(x25519.utils.randomSecretKey())),
        { ed25519: k },
      );
      const q = parseIds(created.params);
      const answers = await c.batch(
        Array.from({ length: 10 }, (_, i) => ({ entityId: q.sndId, command: cmd.send(bytes(`m${i}`)) })),
      );
      expect(answers.map(text)).toEqual(Array(10).fill("OK"));
      expect(
        await relayCounter(slow.relay, "loft_relay_errors_total", { code: "SMP_BACKPRESSURE" }),
      ).toBeGreaterThan(0);
      c.close();
    } finally {
      await slow.close();
    }
  });
});
