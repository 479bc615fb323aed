/**
 * Issue #17 (signaling part) against the real service on loopback: each finding as the attacker
 * would try it — a captured REGISTER replayed elsewhere or after a restart, a nonce table filled
 * by others, a flood of badly signed REGISTERs, a replayed envelope, fine-grained last-seen, a
 * foreign web page, a client inventing its own X-Forwarded-For.
 */
import { afterEach, describe, expect, it } from "vitest";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { SignalingClient } from "../core/signaling/client.ts";
import { type ClientMessage, type ServerMessage, signEnvelope } from "../core/wire/signaling.ts";
import type { SignalingConfig } from "./config.ts";
import { ENVELOPE_NONCE_ENTRY_BYTES, VERIFY_COST_MS } from "./limits.ts";
import {
  makeUser,
  RawClient,
  type RunningSignaling,
  registerOn,
  startSignaling,
  wsFactory,
} from "./testing.ts";

const running: RunningSignaling[] = [];
const raws: RawClient[] = [];
async function server(overrides: Partial<SignalingConfig> = {}, port = 0): Promise<RunningSignaling> {
  const s = await startSignaling(overrides, port);
  running.push(s);
  return s;
}
async function hello(
  url: string,
  options: ConstructorParameters<typeof RawClient>[1] = {},
): Promise<RawClient> {
  const c = await RawClient.hello(url, options);
  raws.push(c);
  return c;
}
afterEach(async () => {
  for (const c of raws.splice(0)) c.close();
  for (const s of running.splice(0)) await s.close();
});

const codeOf = (m: ServerMessage) => (m.t === "ERROR" ? m.code : m.t);

/** Send a request; its reply, and the pushes (frames without an id) that arrived before it. */
async function withPushes(c: RawClient, m: ClientMessage & { id: number }) {
  c.send(m);
  const pushes: ServerMessage[] = [];
  for (let i = 0; i < 100; i++) {
    const f = await c.next();
    if ("id" in f && f.id === m.id) return { reply: f, pushes };
    if (!("id" in f) || f.id === undefined) pushes.push(f);
  }
  throw new Error("no reply");
}

describe("a signed REGISTER is bound to one connection of one server", () => {
  it("cannot be replayed on the same connection, on another, after a restart, or at another server", async () => {
    const alice = makeUser("alice");
    const s1 = await server();
    const c1 = await hello(s1.url);
    const req = await registerOn(c1, alice, { id: 1 });
    expect(codeOf(await c1.request(req))).toBe("REGISTER_RESPONSE");
    // The same bytes again on the same connection (an on-path replay).
    expect(codeOf(await c1.request({ ...req, id: 2 } as ClientMessage))).toBe("REPLAY");

    const c2 = await hello(s1.url);
    expect(codeOf(await c2.request({ ...req, id: 3 } as ClientMessage))).not.toBe("REGISTER_RESPONSE");

    // Restart on the same port: the server remembers nothing, and still refuses it.
    const port = s1.port;
    await s1.close();
    running.splice(running.indexOf(s1), 1);
    const s1again = await server({}, port);
    const c3 = await hello(s1again.url);
    expect(codeOf(await c3.request({ ...req, id: 4 } as ClientMessage))).not.toBe("REGISTER_RESPONSE");

    // Another server.
    const s2 = await server();
    const c4 = await hello(s2.url);
    expect(codeOf(await c4.request({ ...req, id: 5 } as ClientMessage))).not.toBe("REGISTER_RESPONSE");
    expect(s1again.service.stats().registrations + s2.service.stats().registrations).toBe(0);
  });

  it("requires an audience naming this server by default; the core client sends it", async () => {
    const s = await server();
    const c = await hello(s.url);
    const user = makeUser("bob");
    const none = await registerOn(c, user, { id: 1 });
    delete (none as { audience?: string }).audience;
    // Unsigned change: re-sign without the audience.
    const { signRegisterRequest } = await import("../core/wire/signed.ts");
    const unsigned = await signRegisterRequest(nobleCrypto, user, {
      ttl_seconds: 60,
      timestamp: Date.now(),
      nonce: (await c.challenged)!,
      id: 1,
    });
    expect(codeOf(await c.request(unsigned))).toBe("WRONG_AUDIENCE");
    const elsewhere = await registerOn(c, user, { id: 2, audience: "wss://other.example/signal" });
    expect(codeOf(await c.request(elsewhere))).toBe("WRONG_AUDIENCE");

    const client = new SignalingClient({ url: s.url, user, connect: wsFactory(), reconnect: false });
    try {
      await client.start();
      expect(client.state).toBe("registered");
    } finally {
      client.close();
    }
  });

  it("accepts the operator's configured public URL as audience, and only it", async () => {
    const s = await server({ audience: ["wss://loft.example/signal"] });
    const user = makeUser("carol");
    const c = await hello(s.url);
    expect(codeOf(await c.request(await registerOn(c, user, { id: 1 })))).toBe("WRONG_AUDIENCE");
    const ok = await registerOn(c, user, { id: 2, audience: "wss://loft.example/signal" });
    expect(codeOf(await c.request(ok))).toBe("REGISTER_RESPONSE");
  });
});

describe("replay memory and verification cost are bounded per source", () => {
  it("others filling replay memory never refuse an innocent REGISTER", async () => {
    const s = await server({ connBurst: 200, connRate: 200 });
    const base = Date.now();
    // Four attacker sources, each sending validly signed REGISTERs with fresh nonces as fast
    // as its limits allow: 160, more than the 100 the old global nonce table held when this
    // test set it (that table and --signal-max-nonces are gone).
    for (let a = 2; a <= 5; a++) {
      const user = makeUser(`attacker${a}`);
      const c = await hello(s.url, { localAddress: `127.0.0.${a}` });
      for (let i = 0; i < 40; i++) {
        const nonce = crypto.getRandomValues(new Uint8Array(16));
        await c.request(await registerOn(c, user, { id: i + 1, timestamp: base + i, nonce }));
      }
    }
    const innocent = await hello(s.url);
    const reply = await innocent.request(await registerOn(innocent, makeUser("innocent"), { id: 1 }));
    expect(codeOf(reply)).toBe("REGISTER_RESPONSE");
  });

  it("a source flooding badly signed REGISTERs is refused cheaply once over its CPU budget; others are served", async () => {
    const s = await server({
      sourceCpuMs: 1,
      sourceCpuBurstMs: 2,
      connBurst: 1_000,
      connRate: 1_000,
      maxViolations: 10_000,
    });
    const flooder = await hello(s.url, { localAddress: "127.0.0.2" });
    const user = makeUser("mallory");
    const codes = new Map<string, number>();
    const base = Date.now();
    for (let i = 0; i < 200; i++) {
      const req = (await registerOn(flooder, user, { id: i + 1, timestamp: base + i })) as ClientMessage & {
        signature: Uint8Array;
      };
      const bad = { ...req, signature: req.signature.slice() };
      bad.signature[0]! ^= 1;
      const code = codeOf(await flooder.request(bad));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(codes.get("BUSY") ?? 0).toBeGreaterThan(100);
    expect(codes.get("BAD_SIGNATURE") ?? 0).toBeLessThan(100);

    const innocent = await hello(s.url);
    expect(codeOf(await innocent.request(await registerOn(innocent, makeUser("ivy"), { id: 1 })))).toBe(
      "REGISTER_RESPONSE",
    );
  });
});

describe("verification is charged a fixed cost per check kind", () => {
  it("whatever else the process is doing: the budget admits exactly what the documented costs allow", async () => {
    // The clock is pinned (no refill), so the count depends only on what each check is charged.
    // Measured CPU time would vary with load, GC and the process's other threads.
    const pinned = Date.now();
    const s = await startSignaling(
      { sourceCpuMs: 1, sourceCpuBurstMs: 20, connBurst: 1_000, sourceBurst: 1_000, maxViolations: 10_000 },
      0,
      () => pinned,
    );
    running.push(s);
    const alice = makeUser("alice");
    const nobody = makeUser("nobody");
    const a = await hello(s.url);
    // A first-seen identity: 20 − 0.75 = 19.25 ms left.
    const reg = await a.request(await registerOn(a, alice, { id: 1, timestamp: pinned }));
    expect(codeOf(reg)).toBe("REGISTER_RESPONSE");
    expect(VERIFY_COST_MS.firstSeenIdentity).toBe(0.75);
    expect(VERIFY_COST_MS.signature).toBe(0.25);
    const codes: string[] = [];
    for (let i = 0; i < 100; i++) {
      const envelope = await signEnvelope(nobleCrypto, alice.privateIdentityKey, {
        from: alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
        to: nobody.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
        kind: "ice",
        payload: new Uint8Array([1]),
        timestamp: pinned,
        nonce: crypto.getRandomValues(new Uint8Array(16)),
      });
      codes.push(codeOf(await a.request({ t: "SIGNAL", id: i + 2, envelope })));
    }
    // Checks run while the balance is not negative: 19.25 / 0.25 = 77 more after the first.
    expect(codes.slice(0, 78).every((c) => c === "PEER_OFFLINE")).toBe(true);
    expect(codes.slice(78).every((c) => c === "BUSY")).toBe(true);
  });
});

describe("a busy server is retried, not abandoned", () => {
  it("the core client registers once its network address has verification budget again", async () => {
    const s = await server({ sourceCpuMs: 2, sourceCpuBurstMs: 1, connBurst: 1_000, connRate: 1_000 });
    // Someone at the same address spends the budget.
    const noisy = await hello(s.url, { localAddress: "127.0.0.7" });
    const base = Date.now();
    let busy = false;
    for (let i = 0; i < 200 && !busy; i++) {
      const req = (await registerOn(noisy, makeUser(`n${i}`), {
        id: i + 1,
        timestamp: base + i,
      })) as ClientMessage & {
        signature: Uint8Array;
      };
      busy =
        codeOf(await noisy.request({ ...req, signature: new Uint8Array(64) } as ClientMessage)) === "BUSY";
    }
    expect(busy).toBe(true);
    const client = new SignalingClient({
      url: s.url,
      user: makeUser("patient"),
      connect: wsFactory({ localAddress: "127.0.0.7" }),
    });
    const errors: string[] = [];
    client.on((e) => {
      if (e.type === "error") errors.push(e.error.wire ?? e.error.code);
    });
    try {
      await client.start().catch(() => {}); // the first attempt may be answered BUSY
      await expect.poll(() => client.state, { timeout: 30_000 }).toBe("registered");
      expect(errors).toContain("BUSY");
    } finally {
      client.close();
    }
  });
});

describe("envelopes and presence", () => {
  it("refuses an envelope whose nonce this sender already used", async () => {
    const s = await server();
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const a = await hello(s.url);
    const b = await hello(s.url);
    expect(codeOf(await a.request(await registerOn(a, alice, { id: 1 })))).toBe("REGISTER_RESPONSE");
    expect(codeOf(await b.request(await registerOn(b, bob, { id: 1 })))).toBe("REGISTER_RESPONSE");
    const envelope = await signEnvelope(nobleCrypto, alice.privateIdentityKey, {
      from: alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
      to: bob.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
      kind: "offer",
      payload: new Uint8Array([1]),
      timestamp: Date.now(),
      nonce: crypto.getRandomValues(new Uint8Array(16)),
    });
    expect(codeOf(await a.request({ t: "SIGNAL", id: 2, envelope }))).toBe("SIGNAL_ACK");
    expect(codeOf(await a.request({ t: "SIGNAL", id: 3, envelope }))).toBe("REPLAY");
  });

  it("envelope-nonce memory is bounded per connection and in total, and a full total never refuses anyone", async () => {
    // 3 senders' worth of nonces in total (a dial uses 10–20 envelopes; 64 are kept per sender).
    const s = await server({
      envelopeNonceBytes: 3 * 64 * ENVELOPE_NONCE_ENTRY_BYTES,
      ...{ connBurst: 1_000, sourceBurst: 1_000, sourceCpuMs: 1_000, sourceCpuBurstMs: 60_000 },
    });
    const envelopeFrom = (u: ReturnType<typeof makeUser>, to: ReturnType<typeof makeUser>) =>
      signEnvelope(nobleCrypto, u.privateIdentityKey, {
        from: u.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
        to: to.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
        kind: "ice",
        payload: new Uint8Array([1]),
        timestamp: Date.now(),
        nonce: crypto.getRandomValues(new Uint8Array(16)),
      });
    const nobody = makeUser("nobody");
    let id = 10;
    // Five senders, 100 envelopes each: more than a connection keeps, more than the total holds.
    for (let n = 0; n < 5; n++) {
      const user = makeUser(`sender${n}`);
      const c = await hello(s.url, { localAddress: `127.0.0.${n + 2}` });
      expect(codeOf(await c.request(await registerOn(c, user, { id: 1 })))).toBe("REGISTER_RESPONSE");
      for (let i = 0; i < 100; i++) {
        const reply = await c.request({ t: "SIGNAL", id: ++id, envelope: await envelopeFrom(user, nobody) });
        expect(codeOf(reply)).toBe("PEER_OFFLINE"); // checked, remembered, nobody to forward to
      }
      expect(s.service.stats().envelopeNonces).toBeLessThanOrEqual(3 * 64);
    }
    // A newcomer is still served, and its own recent envelope is still refused when replayed.
    const ivy = makeUser("ivy");
    const c = await hello(s.url);
    expect(codeOf(await c.request(await registerOn(c, ivy, { id: 1 })))).toBe("REGISTER_RESPONSE");
    const envelope = await envelopeFrom(ivy, nobody);
    expect(codeOf(await c.request({ t: "SIGNAL", id: 2, envelope }))).toBe("PEER_OFFLINE");
    expect(codeOf(await c.request({ t: "SIGNAL", id: 3, envelope }))).toBe("REPLAY");
    expect(s.service.stats().envelopeNonces).toBeLessThanOrEqual(3 * 64);
  });

  it("a peer that shows itself only to whom it watches is offline to everyone else", async () => {
    const s = await server();
    const [tina, ann, stranger] = [makeUser("tina"), makeUser("ann"), makeUser("stranger")];
    const keyOf = (u: ReturnType<typeof makeUser>) =>
      u.identity.verified.identity_key as Uint8Array<ArrayBuffer>;
    const t = await hello(s.url);
    const a = await hello(s.url);
    const x = await hello(s.url);
    // The watchers register first and watch Tina before she is online.
    expect(codeOf(await a.request(await registerOn(a, ann, { id: 1 })))).toBe("REGISTER_RESPONSE");
    expect(codeOf(await x.request(await registerOn(x, stranger, { id: 1 })))).toBe("REGISTER_RESPONSE");
    await a.request({ t: "SUBSCRIBE", id: 2, keys: [keyOf(tina)] });
    await x.request({ t: "SUBSCRIBE", id: 2, keys: [keyOf(tina)] });
    // Tina watches only Ann, privately, then registers.
    const sub = await t.request({
      t: "SUBSCRIBE",
      id: 1,
      keys: [keyOf(ann)],
      only_watched: true,
    } as ClientMessage);
    expect(codeOf(sub)).toBe("PRESENCE");
    const annSees = a.until("PRESENCE", (m) => m.peers.some((p) => p.online));
    expect(codeOf(await t.request(await registerOn(t, tina, { id: 2 })))).toBe("REGISTER_RESPONSE");
    await annSees;

    // The stranger: offline by SUBSCRIBE (and never pushed "online"), absent from LOOKUP,
    // unreachable by SIGNAL.
    const { reply: state, pushes: early } = await withPushes(x, {
      t: "SUBSCRIBE",
      id: 3,
      keys: [keyOf(tina)],
    });
    expect(early.filter((m) => m.t === "PRESENCE")).toEqual([]);
    expect(state.t === "PRESENCE" && state.peers[0]!.online).toBe(false);
    const lookup = await x.request({
      t: "LOOKUP_REQUEST",
      id: 4,
      target_identity: keyOf(tina),
      list_all: false,
    });
    expect(lookup.t === "LOOKUP_RESPONSE" && lookup.peers.length).toBe(0);
    const probe = await signEnvelope(nobleCrypto, stranger.privateIdentityKey, {
      from: keyOf(stranger),
      to: keyOf(tina),
      kind: "offer",
      payload: new Uint8Array([1]),
      timestamp: Date.now(),
      nonce: crypto.getRandomValues(new Uint8Array(16)),
    });
    expect(codeOf(await x.request({ t: "SIGNAL", id: 5, envelope: probe }))).toBe("PEER_OFFLINE");
    // Ann: online, found, reachable.
    const seen = await a.request({
      t: "LOOKUP_REQUEST",
      id: 6,
      target_identity: keyOf(tina),
      list_all: false,
    });
    expect(seen.t === "LOOKUP_RESPONSE" && seen.peers.length).toBe(1);
    // Tina leaves: Ann is told; the stranger, who never saw her, is told nothing.
    const annOffline = a.until("PRESENCE", (m) => m.peers.some((p) => !p.online));
    t.close();
    await annOffline;
    const { pushes } = await withPushes(x, { t: "LIST_SERVERS_REQUEST", id: 7 });
    expect(pushes.filter((m) => m.t === "PRESENCE")).toEqual([]); // never saw her: told nothing
  });

  it("core clients in 'watched' presence see each other; a stranger's lookup finds nobody", async () => {
    const s = await server();
    const [ann, ben, eve] = [makeUser("ann"), makeUser("ben"), makeUser("eve")];
    const key = (u: ReturnType<typeof makeUser>) => u.identity.verified.identity_key;
    const client = (user: ReturnType<typeof makeUser>, presence: "public" | "watched") =>
      new SignalingClient({ url: s.url, user, connect: wsFactory(), reconnect: false, presence });
    const [a, b, e] = [client(ann, "watched"), client(ben, "watched"), client(eve, "public")];
    try {
      await Promise.all([a.start(), b.start(), e.start()]);
      expect((await a.subscribe([key(ben)]))[0]!.online).toBe(false); // Ben shows himself to nobody yet
      const annSeesBen = new Promise<void>((resolve) =>
        a.on((ev) => ev.type === "presence" && ev.online && resolve()),
      );
      // Ben watches Ann: each now sees the other (Ann by a push, Ben in the answer).
      expect((await b.subscribe([key(ann)]))[0]!.online).toBe(true);
      await annSeesBen;
      expect((await a.lookup(key(ben))).online).toBe(true);
      expect((await e.lookup(key(ann))).online).toBe(false);
      expect((await e.lookup(key(ben))).online).toBe(false);
    } finally {
      for (const c of [a, b, e]) c.close();
    }
  });

  it("LOOKUP's last_seen is coarse: whole minutes", async () => {
    const s = await server();
    const alice = makeUser("alice");
    const a = await hello(s.url);
    expect(codeOf(await a.request(await registerOn(a, alice, { id: 1 })))).toBe("REGISTER_RESPONSE");
    const reply = await a.request({
      t: "LOOKUP_REQUEST",
      id: 2,
      target_identity: alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>,
      list_all: false,
    });
    if (reply.t !== "LOOKUP_RESPONSE") throw new Error(`unexpected ${reply.t}`);
    expect(reply.peers).toHaveLength(1);
    expect(reply.peers[0]!.last_seen % 60_000).toBe(0);
  });
});

describe("who may connect", () => {
  it("accepts pages of other origins by default, on a per-source budget apart from its own pages", async () => {
    // Users may pick this server in another deployment's Settings (docs/user-guide.md): their
    // page has that deployment's origin. A hostile page could only spend its own, separate budget.
    const s = await server({ allowedOrigins: ["https://app.example"], maxConnectionsPerSource: 1 });
    raws.push(await RawClient.connect(s.url, { headers: { origin: `http://127.0.0.1:${s.port}` } }));
    const foreign = await RawClient.connect(s.url, { headers: { origin: "https://other.example" } });
    raws.push(foreign);
    // The foreign page speaks the protocol like any client.
    const first = await foreign.nextFrame();
    expect(first).toBeDefined();
    // Its budget (1 connection) is spent; its own pages' budget was spent separately.
    await expect(
      RawClient.connect(s.url, { headers: { origin: "https://another.example" } }),
    ).rejects.toThrow("HTTP 429");
    await expect(RawClient.connect(s.url, { headers: { origin: "https://app.example" } })).rejects.toThrow(
      "HTTP 429",
    );
  });

  it("with --signal-cross-origin-pages refuse: foreign pages get 403; its own origin, configured ones and non-browser clients are accepted", async () => {
    const s = await server({ allowedOrigins: ["https://app.example"], crossOriginPages: "refuse" });
    await expect(RawClient.connect(s.url, { headers: { origin: "https://evil.example" } })).rejects.toThrow(
      "HTTP 403",
    );
    raws.push(await RawClient.connect(s.url, { headers: { origin: `http://127.0.0.1:${s.port}` } }));
    raws.push(await RawClient.connect(s.url, { headers: { origin: "https://app.example" } }));
    raws.push(await RawClient.connect(s.url)); // not a browser page
  });

  it("believes X-Forwarded-For only from a configured proxy", async () => {
    // The peer (127.0.0.1) is not the trusted proxy: the header is the client's own invention.
    const s = await server({ trustProxy: ["10.0.0.1"], maxConnectionsPerSource: 1 });
    raws.push(await RawClient.connect(s.url, { headers: { "x-forwarded-for": "203.0.113.1" } }));
    await expect(RawClient.connect(s.url, { headers: { "x-forwarded-for": "203.0.113.2" } })).rejects.toThrow(
      "HTTP 429",
    );

    const p = await server({ trustProxy: ["loopback"], maxConnectionsPerSource: 1 });
    raws.push(await RawClient.connect(p.url, { headers: { "x-forwarded-for": "203.0.113.1" } }));
    raws.push(await RawClient.connect(p.url, { headers: { "x-forwarded-for": "203.0.113.2" } }));
    await expect(RawClient.connect(p.url, { headers: { "x-forwarded-for": "203.0.113.2" } })).rejects.toThrow(
      "HTTP 429",
    );
  });
});
