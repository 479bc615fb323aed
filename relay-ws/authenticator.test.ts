/**
 * Protocol 1.1 command authenticators (docs/protocol/relay.md §Command authorization): the relay's
 * node:crypto side against the core reference on every crypto backend, and a real relay on
 * loopback refusing a wrong authenticator, a replayed command, an authenticator made for another
 * connection, an unknown queue and an id out of order — each with `ERR AUTH`, at equal work —
 * while clients of 1.0 (signatures) are still served.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import {
  authenticateCommand,
  authPublicKey,
  deriveAuthKey,
  newAuthKeyPair,
  newDhKeyPair,
} from "../core/relay/crypto.ts";
import {
  type Command,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { buildRelayAuthVectors, RELAY_AUTH_VECTOR_FILE } from "../scripts/gen-relay-auth-vectors.ts";
import { AuthenticatorStats, ConnectionAuthenticator } from "./authenticator.ts";
import { connectRelay, RawSocket, relayCounter, startTestRelay, type TestRelay } from "./testing.ts";

const errCode = (f: ServerFrame) => (f.k === "ERR" ? f.e : `not an error: ${f.k}`);
const id = () => new Uint8Array(randomBytes(24));

describe("ConnectionAuthenticator against core's deriveAuthKey", () => {
  let node: CryptoProvider;
  beforeAll(async () => {
    node = await createNodeCryptoProvider();
  });

  it("accepts exactly the authenticator the client computes, with either backend", async () => {
    const stats = new AuthenticatorStats();
    const session = new Uint8Array(randomBytes(32));
    const relay = new ConnectionAuthenticator(session, stats, 8);
    for (const crypto of [nobleCrypto, node]) {
      const kp = newAuthKeyPair();
      const t = encodeCommand({ k: "GET", i: 7, q: id() });
      const key = await deriveAuthKey(crypto, kp.secretKey, kp.publicKey, relay.publicKey, session);
      if (!key.ok) throw key.error;
      const tag = await authenticateCommand(crypto, key.value, t);
      expect(tag.length).toBe(32);
      expect(relay.check("q1", kp.publicKey, t, tag)).toBe(true);
      // Bound to the command bytes, the queue key, the connection key and the session id.
      const t2 = encodeCommand({ k: "GET", i: 8, q: id() });
      expect(relay.check("q1", kp.publicKey, t2, tag)).toBe(false);
      expect(relay.check("q1", newAuthKeyPair().publicKey, t, tag)).toBe(false);
      const other = new ConnectionAuthenticator(session, stats, 8);
      expect(other.check("q1", kp.publicKey, t, tag)).toBe(false);
      const elsewhere = new ConnectionAuthenticator(new Uint8Array(randomBytes(32)), stats, 8);
      expect(elsewhere.check("q1", kp.publicKey, t, tag)).toBe(false);
      const flipped = tag.slice();
      flipped[31]! ^= 1;
      expect(relay.check("q1", kp.publicKey, t, flipped)).toBe(false);
      expect(relay.check("q1", undefined, t, tag)).toBe(false);
      expect(relay.check("q1", kp.publicKey, t, undefined)).toBe(false);
      expect(relay.check("q1", kp.publicKey, t, new Uint8Array(64))).toBe(false);
    }
  });

  it("one key agreement per (queue, key) on a connection, one HMAC per check, whatever the outcome", () => {
    const stats = new AuthenticatorStats();
    const relay = new ConnectionAuthenticator(new Uint8Array(32), stats, 4);
    const kp = newAuthKeyPair();
    const t = utf8("x");
    const cost = (f: () => void) => {
      const a = stats.agreements;
      const c = stats.checks;
      f();
      return { agreements: stats.agreements - a, checks: stats.checks - c };
    };
    const first = { agreements: 1, checks: 1 };
    const again = { agreements: 0, checks: 1 };
    // A real key, an unknown queue (dummy key) and a key that is no Ed25519 point: same work.
    expect(cost(() => relay.check("a", kp.publicKey, t, new Uint8Array(32)))).toEqual(first);
    expect(cost(() => relay.check("a", kp.publicKey, t, new Uint8Array(32)))).toEqual(again);
    expect(cost(() => relay.check("b", undefined, t, new Uint8Array(32)))).toEqual(first);
    expect(cost(() => relay.check("b", undefined, t, new Uint8Array(32)))).toEqual(again);
    // y = p is no canonical encoding: refused (one agreement tried), then the dummy's agreement.
    const notCanonical = new Uint8Array(32).fill(0xff);
    notCanonical[0] = 0xed;
    notCanonical[31] = 0x7f;
    expect(cost(() => relay.check("c", notCanonical, t, new Uint8Array(32))).checks).toBe(1);
    expect(relay.check("c", notCanonical, t, new Uint8Array(32))).toBe(false);
    // Bounded: a fifth slot evicts the oldest, which then costs an agreement again.
    relay.check("d", undefined, t, undefined);
    relay.check("e", undefined, t, undefined);
    expect(cost(() => relay.check("a", kp.publicKey, t, undefined))).toEqual(first);
  });

  it("request ids must grow on a connection", () => {
    const relay = new ConnectionAuthenticator(new Uint8Array(32), new AuthenticatorStats(), 4);
    expect(relay.admit(1)).toBe(true);
    expect(relay.admit(1)).toBe(false);
    expect(relay.admit(0)).toBe(false);
    expect(relay.admit(5)).toBe(true);
    expect(relay.admit(3)).toBe(false);
    expect(relay.admit(0xffff_ffff)).toBe(true);
  });
});

describe("docs/vectors/relay-auth-v1.1.json", () => {
  const v = JSON.parse(readFileSync(RELAY_AUTH_VECTOR_FILE, "utf8")) as {
    sessionId: string;
    relayConnectionSecret: string;
    relayConnectionKey: string;
    queueAuthSeed: string;
    queueAuthKey: string;
    authKey: string;
    cases: { t: string; a: string; frame: string }[];
  };
  const h = (x: string) => new Uint8Array(Buffer.from(x, "hex"));

  it("is what the generator writes", async () => {
    expect(`${JSON.stringify(await buildRelayAuthVectors(), null, 2)}\n`).toBe(
      readFileSync(RELAY_AUTH_VECTOR_FILE, "utf8"),
    );
  });

  it("replays on the relay's node:crypto side and on every client backend", async () => {
    const relay = new ConnectionAuthenticator(
      h(v.sessionId),
      new AuthenticatorStats(),
      4,
      h(v.relayConnectionSecret),
    );
    expect(Buffer.from(relay.publicKey).toString("hex")).toBe(v.relayConnectionKey);
    for (const c of v.cases) expect(relay.check("q", h(v.queueAuthKey), h(c.t), h(c.a))).toBe(true);
    for (const crypto of [nobleCrypto, await createNodeCryptoProvider()]) {
      const key = await deriveAuthKey(
        crypto,
        h(v.queueAuthSeed),
        h(v.queueAuthKey),
        h(v.relayConnectionKey),
        h(v.sessionId),
      );
      if (!key.ok) throw key.error;
      expect(Buffer.from(key.value).toString("hex")).toBe(v.authKey);
      for (const c of v.cases) {
        const a = await authenticateCommand(crypto, key.value, h(c.t));
        expect(Buffer.from(a).toString("hex")).toBe(c.a);
        expect(Buffer.from(encodeClientFrame(h(c.t), a)).toString("hex")).toBe(c.frame);
      }
    }
  });
});

describe("a relay serving 1.1 authenticators", () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startTestRelay({ ratePerSecond: 0, sourceCostRate: 0 });
  });
  afterAll(async () => {
    await relay.close();
  });

  /** A queue made over a 1.1 raw socket, with a message waiting in it. */
  async function queueWithMessage(s: RawSocket) {
    const rk = newAuthKeyPair();
    const ids = await s.authRequest(
      { k: "NEW", i: 1, rk: rk.publicKey, dk: newDhKeyPair().publicKey, sub: false },
      rk.secretKey,
    );
    if (ids.k !== "IDS") throw new Error(`NEW: ${ids.k} ${errCode(ids)}`);
    const sk = newAuthKeyPair();
    expect((await s.authRequest({ k: "SKEY", i: 2, q: ids.s, sk: sk.publicKey }, sk.secretKey)).k).toBe("OK");
    const send: Command = { k: "SEND", i: 3, q: ids.s, n: new Uint8Array(16).fill(1), b: utf8("hello") };
    expect((await s.authRequest(send, sk.secretKey)).k).toBe("OK");
    return { rid: ids.r, sid: ids.s, rk: rk.secretKey, sk: sk.secretKey, nextId: 4 };
  }

  it("HELLO carries the connection key under 1.1 only; 1.4 is refused with VERSION", async () => {
    const v11 = await RawSocket.open(relay.url, true, {}, "authenticator");
    const v10 = await RawSocket.open(relay.url);
    expect(v11.connectionKey?.length).toBe(32);
    expect(v10.connectionKey).toBeUndefined();
    const other = await RawSocket.open(relay.url, true, {}, "authenticator");
    expect(other.connectionKey).not.toEqual(v11.connectionKey);
    v11.close();
    v10.close();
    other.close();
    // 1.2 and 1.3 are served (relay-ws/bucketed.test.ts, relay-ws/batch.test.ts); 1.4 is not.
    const v14 = await RawSocket.open(relay.url, false);
    v14.send(encodeVersionHeader({ protocol_name: "SREMP", version_major: 1, version_minor: 4 }));
    await v14.next(); // the relay's header
    expect(errCode(await v14.nextFrame())).toBe("VERSION");
    await v14.closed;
    expect(v14.closeCode).toBe(1002);
  });

  it("a wrong authenticator, a signature and no authorization get AUTH; the right one gets the message", async () => {
    const s = await RawSocket.open(relay.url, true, {}, "authenticator");
    try {
      const q = await queueWithMessage(s);
      const get = (i: number): Command => ({ k: "GET", i, q: q.rid });
      const t = encodeCommand(get(10));
      const tag = await s.authenticator(t, q.rk);
      tag[0]! ^= 0x80;
      s.send(encodeClientFrame(t, tag));
      expect(errCode(await s.nextFrame())).toBe("AUTH");
      expect(errCode(await s.request(get(11), q.rk))).toBe("AUTH"); // a 1.0 signature on 1.1
      expect(errCode(await s.authRequest(get(12), newAuthKeyPair().secretKey))).toBe("AUTH");
      expect(errCode(await s.authRequest(get(13)))).toBe("AUTH");
      const m = await s.authRequest(get(14), q.rk);
      expect(m.k).toBe("MSG");
    } finally {
      s.close();
    }
  });

  it("the same frame twice, or an older id after a newer one, gets AUTH", async () => {
    const s = await RawSocket.open(relay.url, true, {}, "authenticator");
    try {
      const q = await queueWithMessage(s);
      const frame = await s.authFrame({ k: "GET", i: 20, q: q.rid }, q.rk);
      s.send(frame);
      const m = await s.nextFrame();
      if (m.k !== "MSG") throw new Error(`GET: ${errCode(m)}`);
      s.send(frame); // a replay of the very bytes
      expect(errCode(await s.nextFrame())).toBe("AUTH");
      // Out of order: id 30 then id 25, both well authenticated.
      const late = await s.authFrame({ k: "ACK", i: 25, q: q.rid, m: m.m }, q.rk);
      expect((await s.authRequest({ k: "PING", i: 29 })).k).toBe("OK"); // unauthenticated: not counted
      expect(errCode(await s.authRequest({ k: "OFF", i: 30, q: id() }, q.rk))).toBe("AUTH"); // unknown queue
      s.send(late);
      expect(errCode(await s.nextFrame())).toBe("AUTH");
      // …and the message is still there, acknowledged by a fresh id.
      expect((await s.authRequest({ k: "ACK", i: 31, q: q.rid, m: m.m }, q.rk)).k).toBe("OK");
    } finally {
      s.close();
    }
  });

  it("an authenticator made for another connection gets AUTH on this one", async () => {
    const a = await RawSocket.open(relay.url, true, {}, "authenticator");
    const b = await RawSocket.open(relay.url, true, {}, "authenticator");
    try {
      const q = await queueWithMessage(a);
      const t = encodeCommand({ k: "GET", i: 50, q: q.rid });
      // Made for a, sent on b; and the frame a would accept, replayed on b.
      const forA = await a.authenticator(t, q.rk);
      b.send(encodeClientFrame(t, forA));
      expect(errCode(await b.nextFrame())).toBe("AUTH");
      expect((await b.authRequest({ k: "GET", i: 51, q: q.rid }, q.rk)).k).toBe("MSG");
      // A 1.0 connection refuses 32-byte authenticators too.
      const old = await RawSocket.open(relay.url);
      old.send(encodeClientFrame(encodeCommand({ k: "GET", i: 52, q: q.rid }), forA));
      expect(errCode(await old.nextFrame())).toBe("AUTH");
      old.close();
    } finally {
      a.close();
      b.close();
    }
  });

  it("unknown queue and wrong authenticator: the same ERR bytes and the same work", async () => {
    const s = await RawSocket.open(relay.url, true, {}, "authenticator");
    try {
      const q = await queueWithMessage(s);
      const work = async (cmd: Command, key?: Uint8Array) => {
        const before = relay.service.diagnostics();
        s.send(await s.authFrame(cmd, key));
        const reply = await s.next();
        const after = relay.service.diagnostics();
        // Byte for byte the one ERR AUTH frame for this request id.
        expect(Buffer.from(reply!).toString("hex")).toBe(
          Buffer.from(encodeServerFrame({ k: "ERR", i: cmd.i, e: "AUTH" })).toString("hex"),
        );
        return {
          agreements: after.authAgreements - before.authAgreements,
          checks: after.authChecks - before.authChecks,
        };
      };
      const wrong = newAuthKeyPair().secretKey;
      const unknown = id();
      const first = { agreements: 1, checks: 1 };
      const later = { agreements: 0, checks: 1 };
      let i = 100;
      // First use of each queue id on the connection: one agreement (the queue's key or the
      // dummy key); every use after: one HMAC, known queue or not.
      for (const kind of ["GET", "OFF", "DEL", "GET"] as const) {
        const expected = i === 100 ? first : later;
        expect(await work({ k: kind, i: ++i, q: unknown }, wrong), `${kind} unknown`).toEqual(expected);
        expect(await work({ k: kind, i: ++i, q: q.rid }, wrong), `${kind} wrong key`).toEqual(expected);
        expect(await work({ k: kind, i: ++i, q: q.rid }), `${kind} none`).toEqual(later);
      }
      expect(await work({ k: "GET", i: ++i, q: id() }, wrong)).toEqual(first);
      // SEND to an unknown sender id, and PKGET: checked against the dummy key all the same.
      const send: Command = { k: "SEND", i: ++i, q: id(), n: new Uint8Array(16), b: utf8("x") };
      expect(await work(send, wrong)).toEqual(first);
      expect(await work({ k: "PKGET", i: ++i, q: id() })).toEqual(first);
    } finally {
      s.close();
    }
  });

  it("RelayClient speaks 1.1 by default and 1.0 on request, against the same queues", async () => {
    const v11 = await connectRelay(relay.url);
    const v10 = await connectRelay(relay.url, { auth: "signature" });
    try {
      expect(v11.hello.connectionKey?.length).toBe(32);
      expect(v10.hello.connectionKey).toBeUndefined();
      const q = await v10.createQueue({ subscribe: false });
      const sender = await v11.senderSecure({ senderId: q.senderId });
      await Promise.all(Array.from({ length: 20 }, (_, i) => v11.send(sender, utf8(`m${i}`))));
      // A queue made under 1.0 is used under 1.1 (its Ed25519 key, in Montgomery form).
      for (let i = 0; i < 20; i++) {
        const m = await v11.get(q);
        expect(new TextDecoder().decode(m?.body)).toBe(`m${i}`);
        await v11.ack(q, m!.msgId);
      }
      expect(await v11.get(q)).toBeUndefined();
      expect(authPublicKey(q.recipientAuthSecret).length).toBe(32);
      // Operators see the mix of versions and the authenticator work.
      expect(await relayCounter(relay, "loft_relay_openings_total", { version: "1.1" })).toBeGreaterThan(0);
      expect(await relayCounter(relay, "loft_relay_openings_total", { version: "1.0" })).toBeGreaterThan(0);
      const checks = await relayCounter(relay, "loft_relay_authenticator_checks_total");
      expect(checks).toBeGreaterThanOrEqual(41);
      expect(await relayCounter(relay, "loft_relay_authenticator_agreements_total")).toBeLessThan(checks);
    } finally {
      v11.close();
      v10.close();
    }
  });
});
