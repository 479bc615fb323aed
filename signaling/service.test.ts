/**
 * The signaling service over real WebSockets on loopback: rendezvous, forwarding and presence
 * between real clients, and every class of bad input answered with its typed error or close code.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { equalBytes } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { decodeVersionHeader, encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { LoftError } from "../core/errors.ts";
import { encodeIdentity, updateIdentity } from "../core/identity/identity.ts";
import { SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import { CLOSE, type ClientMessage, clientCodec, signEnvelope } from "../core/wire/signaling.ts";
import { signRegisterRequest } from "../core/wire/signed.ts";
import { metricValue } from "../test/support/metrics.ts";
import {
  makeUser,
  RawClient,
  type RunningSignaling,
  registerOn,
  startSignaling,
  wsFactory,
} from "./testing.ts";

const nonce = () => crypto.getRandomValues(new Uint8Array(16));

function register(
  c: RawClient,
  user: ReturnType<typeof makeUser>,
  id: number,
  extra: { timestamp?: number; ttl?: number } = {},
) {
  return registerOn(c, user, { id, ...extra });
}

async function envelope(
  signer: ReturnType<typeof makeUser>,
  from: Uint8Array,
  to: Uint8Array,
  id: number,
  payload = new Uint8Array([1, 2, 3]),
): Promise<Extract<ClientMessage, { t: "SIGNAL" }> & { id: number }> {
  return {
    t: "SIGNAL",
    id,
    envelope: await signEnvelope(nobleCrypto, signer.privateIdentityKey, {
      from: from as Uint8Array<ArrayBuffer>,
      to: to as Uint8Array<ArrayBuffer>,
      kind: "offer",
      payload: payload as Uint8Array<ArrayBuffer>,
      timestamp: Date.now(),
      nonce: nonce(),
    }),
  };
}

/** Resolve with the first event matching `pred`. */
function nextEvent<E extends SignalingEvent>(
  c: SignalingClient,
  pred: (e: SignalingEvent) => e is E,
): Promise<E>;
function nextEvent(c: SignalingClient, pred: (e: SignalingEvent) => boolean): Promise<SignalingEvent>;
function nextEvent(c: SignalingClient, pred: (e: SignalingEvent) => boolean): Promise<SignalingEvent> {
  return new Promise((resolve) => {
    const off = c.on((e) => {
      if (pred(e)) {
        off();
        resolve(e);
      }
    });
  });
}

const keyOf = (u: ReturnType<typeof makeUser>) => u.identity.verified.identity_key;

describe("rendezvous and signaling between clients", () => {
  let server: RunningSignaling;
  const clients: SignalingClient[] = [];
  const client = (user: ReturnType<typeof makeUser>, url = server.url) => {
    const c = new SignalingClient({
      url,
      user,
      connect: wsFactory(),
      reconnect: { initialMs: 20, maxMs: 200 },
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startSignaling({ servers: ["wss://a.example/signal", "wss://b.example/signal"] });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  it("registers, looks up, forwards signed envelopes both ways and pushes presence", async () => {
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const carol = makeUser("carol");
    const a = client(alice);
    const b = client(bob);
    await Promise.all([a.start(), b.start()]);
    expect(server.service.stats().registrations).toBe(2);

    const found = await b.lookup(keyOf(alice));
    expect(found.online).toBe(true);
    expect(found.identity?.verified.username).toBe("alice");
    expect(equalBytes(found.identityBytes!, encodeIdentity(alice.identity))).toBe(true);
    expect((await b.lookup(keyOf(carol))).online).toBe(false);

    const states = await a.subscribe([keyOf(bob), keyOf(carol)]);
    expect(states.map((s) => s.online)).toEqual([true, false]);

    const offer = new TextEncoder().encode("v=0 offer sdp");
    const gotOffer = nextEvent(b, (e) => e.type === "signal");
    await a.signal(keyOf(bob), "offer", offer);
    const received = await gotOffer;
    if (received.type !== "signal") throw new Error("unreachable");
    expect(received.envelope.kind).toBe("offer");
    expect(equalBytes(received.envelope.payload, offer)).toBe(true);
    expect(equalBytes(received.envelope.from, keyOf(alice))).toBe(true);

    const gotAnswer = nextEvent(a, (e) => e.type === "signal" && e.envelope.kind === "answer");
    await b.signal(keyOf(alice), "answer", new Uint8Array([9]));
    await gotAnswer;
    const gotIce = nextEvent(a, (e) => e.type === "signal" && e.envelope.kind === "ice");
    await b.signal(keyOf(alice), "ice", new Uint8Array([7, 7]));
    await gotIce;

    const carolOnline = nextEvent(
      a,
      (e) => e.type === "presence" && e.online && equalBytes(e.key, keyOf(carol)),
    );
    const c = client(carol);
    await c.start();
    await carolOnline;
    const carolOffline = nextEvent(
      a,
      (e) => e.type === "presence" && !e.online && equalBytes(e.key, keyOf(carol)),
    );
    c.close();
    await carolOffline;

    const metrics = await server.metrics();
    expect(metricValue(metrics, "loft_signaling_envelopes_forwarded_total", 'kind="offer"')).toBe(1);
    expect(metricValue(metrics, "loft_signaling_envelopes_forwarded_total", 'kind="ice"')).toBe(1);
  });

  it("answers PEER_OFFLINE for an envelope to an offline identity", async () => {
    const a = client(makeUser("dave"));
    await a.start();
    const err = await a.signal(keyOf(makeUser("nobody")), "offer", new Uint8Array(1)).catch((e) => e);
    expect(err).toBeInstanceOf(LoftError);
    expect((err as LoftError).wire).toBe("PEER_OFFLINE");
    expect((err as LoftError).code).toBe("LOFT_ERR_SIGNALING_PEER_OFFLINE");
  });

  it("lists the operator's servers and refuses list_all unless enabled", async () => {
    const a = client(makeUser("erin"));
    await a.start();
    expect(await a.listServers()).toEqual(["wss://a.example/signal", "wss://b.example/signal"]);
    const err = await a.listAll().catch((e) => e);
    expect((err as LoftError).wire).toBe("LIST_ALL_DISABLED");

    const open = await startSignaling({ listAll: true });
    try {
      const x = client(makeUser("xavier"), open.url);
      const y = client(makeUser("yvonne"), open.url);
      await Promise.all([x.start(), y.start()]);
      const all = await x.listAll();
      expect(all.map((p) => p.identity.verified.username).sort()).toEqual(["xavier", "yvonne"]);
      x.close();
      y.close();
    } finally {
      await open.close();
    }
  });
});

describe("bad input gets typed errors and documented close codes", () => {
  let server: RunningSignaling;
  beforeAll(async () => {
    server = await startSignaling({ maxPayloadBytes: 1024, helloTimeoutMs: 300, maxSubscriptions: 4 });
  });
  afterAll(async () => {
    await server.close();
  });

  const expectError = async (c: RawClient, message: ClientMessage, code: string) => {
    const reply = await c.request(message);
    expect(reply.t === "ERROR" ? reply.code : reply.t).toBe(code);
  };

  it("refuses unsigned, wrongly signed, tampered, stale and replayed REGISTERs", async () => {
    const alice = makeUser("alice");
    const mallory = makeUser("mallory");
    const c = await RawClient.hello(server.url);

    const unsigned = {
      ...(await register(c, alice, 1)),
      signature: new Uint8Array(64) as Uint8Array<ArrayBuffer>,
    } as ClientMessage;
    await expectError(c, unsigned, "BAD_SIGNATURE");

    // Mallory signs a REGISTER carrying Alice's identity with her own key.
    const forged = await signRegisterRequest(
      nobleCrypto,
      { ...mallory, identity: alice.identity },
      { ttl_seconds: 60, timestamp: Date.now(), id: 2, nonce: c.challenge!, audience: server.url },
    );
    await expectError(c, forged, "BAD_SIGNATURE");

    const identity = encodeIdentity(alice.identity);
    identity[identity.length - 1]! ^= 1;
    await expectError(
      c,
      { ...(await register(c, alice, 3)), identity: identity as Uint8Array<ArrayBuffer> } as ClientMessage,
      "BAD_IDENTITY",
    );

    await expectError(
      c,
      await register(c, alice, 4, { timestamp: Date.now() - 10 * 60_000 }),
      "STALE_TIMESTAMP",
    );
    await expectError(
      c,
      await register(c, alice, 5, { timestamp: Date.now() + 10 * 60_000 }),
      "STALE_TIMESTAMP",
    );

    // A good REGISTER, then the same bytes replayed from another connection: refused (it signed
    // the first connection's challenge), and the registration stays bound to the first one.
    const good = await register(c, alice, 6);
    expect((await c.request(good)).t).toBe("REGISTER_RESPONSE");
    await expectError(c, good, "REPLAY");
    const thief = await RawClient.hello(server.url);
    // Each connection its own 16-byte challenge (derived from its number, stored nowhere).
    expect(thief.challenge).toHaveLength(16);
    expect(equalBytes(thief.challenge!, c.challenge!)).toBe(false);
    await expectError(thief, good, "BAD_CHALLENGE");
    const bob = makeUser("bob");
    expect((await thief.request(await register(thief, bob, 7))).t).toBe("REGISTER_RESPONSE");
    const gotIt = c.until("SIGNAL");
    expect((await thief.request(await envelope(bob, keyOf(bob), keyOf(alice), 8))).t).toBe("SIGNAL_ACK");
    expect(equalBytes((await gotIt).envelope.from, keyOf(bob))).toBe(true);

    // One identity per connection.
    await expectError(c, await register(c, bob, 9), "ALREADY_REGISTERED");
    c.close();
    thief.close();
    const metrics = await server.metrics();
    expect(metricValue(metrics, "loft_signaling_errors_total", 'code="REPLAY"')).toBeGreaterThanOrEqual(1);
  });

  it("refuses envelopes from someone else, unsigned, before REGISTER, oversized, or to an offline peer", async () => {
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const a = await RawClient.hello(server.url);
    const b = await RawClient.hello(server.url);
    await expectError(a, await envelope(alice, keyOf(alice), keyOf(bob), 1), "NOT_REGISTERED");
    await a.request(await register(a, alice, 2));
    await b.request(await register(b, bob, 3));
    // `from` names Bob (and is even signed by Bob): not the identity registered on this connection.
    await expectError(a, await envelope(bob, keyOf(bob), keyOf(alice), 4), "FROM_MISMATCH");
    // Signed by the wrong key.
    await expectError(a, await envelope(bob, keyOf(alice), keyOf(bob), 5), "BAD_SIGNATURE");
    await expectError(
      a,
      await envelope(alice, keyOf(alice), keyOf(bob), 6, new Uint8Array(2048)),
      "PAYLOAD_TOO_LARGE",
    );
    await expectError(a, await envelope(alice, keyOf(alice), keyOf(makeUser("zed")), 7), "PEER_OFFLINE");
    const stale = await envelope(alice, keyOf(alice), keyOf(bob), 8);
    const old = await signEnvelope(nobleCrypto, alice.privateIdentityKey, {
      ...stale.envelope,
      timestamp: Date.now() - 3_600_000,
    });
    await expectError(a, { t: "SIGNAL", id: 8, envelope: old }, "STALE_TIMESTAMP");
    expect((await a.request(await envelope(alice, keyOf(alice), keyOf(bob), 9))).t).toBe("SIGNAL_ACK");
    a.close();
    b.close();
  });

  it("answers garbage, unknown types and wrong shapes with typed errors, echoing the id", async () => {
    const c = await RawClient.hello(server.url);
    c.sendRaw(new Uint8Array([0xc1, 0xff, 0x00]));
    expect(await c.next()).toMatchObject({ t: "ERROR", code: "MALFORMED" });
    c.sendRaw(encodeCanonical({ t: "FLY_TO_MOON", id: 77 }));
    expect(await c.next()).toMatchObject({ t: "ERROR", code: "UNKNOWN_TYPE", id: 77 });
    c.sendRaw(
      encodeCanonical({ t: "LOOKUP_REQUEST", id: 78, target_identity: new Uint8Array(5), list_all: false }),
    );
    expect(await c.next()).toMatchObject({ t: "ERROR", code: "MALFORMED", id: 78 });
    c.sendRaw(encodeCanonical([1, 2, 3]));
    expect(await c.next()).toMatchObject({ t: "ERROR", code: "MALFORMED" });
    const keys = Array.from({ length: 5 }, () => keyOf(makeUser("k")) as Uint8Array<ArrayBuffer>);
    expect(await c.request({ t: "SUBSCRIBE", id: 79, keys })).toMatchObject({
      code: "TOO_MANY_SUBSCRIPTIONS",
    });
    // Still serving after all that.
    expect((await c.request({ t: "LIST_SERVERS_REQUEST", id: 80 })).t).toBe("LIST_SERVERS_RESPONSE");
    c.close();
  });

  it("closes on transport violations with the documented codes", async () => {
    const big = await RawClient.hello(server.url);
    big.sendRaw(new Uint8Array(70_000));
    expect((await big.closed).code).toBe(CLOSE.MESSAGE_TOO_BIG);

    const text = await RawClient.hello(server.url);
    text.sendRaw("hello");
    expect((await text.closed).code).toBe(CLOSE.UNSUPPORTED_DATA);

    const noHeader = await RawClient.connect(server.url);
    noHeader.send({ t: "LIST_SERVERS_REQUEST", id: 1 });
    expect((await noHeader.closed).code).toBe(CLOSE.VERSION_EXPECTED);

    // An app from before REGISTER needed the CHALLENGE and an audience (cached by an old Service
    // Worker) speaks signaling 1.0: told "incompatible version", not left failing silently.
    const old = await RawClient.connect(server.url);
    const serverHeader = await old.nextFrame();
    expect(decodeVersionHeader(serverHeader!.bytes, SIGNALING_VERSION).ok).toBe(true);
    expect(decodeVersionHeader(serverHeader!.bytes).ok).toBe(false); // an old app refuses it too
    old.sendRaw(encodeVersionHeader({ protocol_name: "SREMP", version_major: 1, version_minor: 0 }));
    expect((await old.closed).code).toBe(CLOSE.UNSUPPORTED_VERSION);

    const future = await RawClient.connect(server.url);
    future.sendRaw(encodeVersionHeader({ protocol_name: "SREMP", version_major: 2, version_minor: 0 }));
    expect((await future.closed).code).toBe(CLOSE.UNSUPPORTED_VERSION);

    const silent = await RawClient.connect(server.url);
    expect((await silent.closed).code).toBe(CLOSE.HELLO_TIMEOUT);
  });

  it("replaces a registration made elsewhere and refuses a lower identity version", async () => {
    const alice = makeUser("alice");
    const newer = updateIdentity(alice, { username: "alice2" }, Date.now());
    const first = await RawClient.hello(server.url);
    const second = await RawClient.hello(server.url);
    await first.request(await register(first, newer, 1));
    await expectError(second, await register(second, alice, 2), "STALE_IDENTITY");
    const ended = first.until("REGISTRATION_ENDED");
    expect((await second.request(await register(second, newer, 3))).t).toBe("REGISTER_RESPONSE");
    expect((await ended).reason).toBe("replaced");
    const lookup = await first.request({
      t: "LOOKUP_REQUEST",
      id: 4,
      target_identity: keyOf(alice) as Uint8Array<ArrayBuffer>,
      list_all: false,
    });
    expect(lookup.t === "LOOKUP_RESPONSE" && lookup.peers.length).toBe(1);
    // Closing the replaced connection does not take the identity offline.
    first.close();
    await first.closed;
    const again = await second.request({
      t: "LOOKUP_REQUEST",
      id: 5,
      target_identity: keyOf(alice) as Uint8Array<ArrayBuffer>,
      list_all: false,
    });
    expect(again.t === "LOOKUP_RESPONSE" && again.peers.length).toBe(1);
    second.close();
  });

  it("the client encodes only what the codec accepts", () => {
    expect(() =>
      clientCodec.encode({ t: "SUBSCRIBE", keys: [new Uint8Array(3) as Uint8Array<ArrayBuffer>] }),
    ).toThrow();
  });
});
