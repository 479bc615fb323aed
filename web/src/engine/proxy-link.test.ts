/**
 * The E2EE fetch proxy over a contact's live session (proxy-link.ts; docs/protocol/proxy.md
 * §Carrying frames over a session): two engines, real signaling, real Noise sessions over the
 * harness's in-memory links, and the real proxy multiplexers and share handler on both ends.
 * Bob shares files; Alice requests them through `proxyClient(bob)` — bytes, Range, per-share
 * access, the per-contact rate limit, the owner's access log, backpressure across the session, and
 * a protocol violation or a session's end failing what is open.
 */
import { describe, expect, it } from "vitest";
import { TAGLEN } from "../../../core/noise/primitives.ts";
import { readAll } from "../../../core/proxy/body.ts";
import { ProxyResetError } from "../../../core/proxy/client.ts";
import { proxyDataExtension } from "../../../core/proxy/endpoint.ts";
import { MAX_CHUNK } from "../../../core/proxy/frames.ts";
import { TokenBucket } from "../../../core/proxy/rate-limit.ts";
import type { AccessRecord } from "../../../core/proxy/server.ts";
import { MemoryFileSource, type Share, shareHandler } from "../../../core/proxy/share.ts";
import { SEAL_BATCH } from "../../../core/session/session.ts";
import {
  type EngineNode,
  engineHarnessPerSuite,
  FAST_ENGINE,
  handedSizes,
  sealGate,
  sessionPair,
  until,
} from "../../../test/support/engine.ts";
import { fileTransfers } from "../../../test/support/files.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import type { EngineContext, Peer } from "./context.ts";
import { proxyClientOf, proxyWindowFor, receiveProxy, serveProxy } from "./proxy-link.ts";
import { newLive } from "./session.ts";
import { decodeSessionFrame, encodeProxyFrame, FRAME } from "./wire.ts";

const text = (s: string) => new TextEncoder().encode(s);
/** Byte equality without a per-element deep compare (megabytes). */
const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));
const bytesOf = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

/** A context with nothing but the engine's default config: enough for proxy-link.ts's endpoints. */
const bareContext = () =>
  ({ cfg: { ...DEFAULT_ENGINE_CONFIG, log: () => undefined } }) as unknown as EngineContext;

const get = (path: string, headers: [string, string][] = []) => ({ method: "GET" as const, path, headers });

describe("the fetch proxy over a contact's live session (engines, real signaling, real Noise)", () => {
  const { h } = engineHarnessPerSuite(FAST_ENGINE);

  /** Bob shares a site with Alice (and a private folder with nobody); Alice is online with him. */
  async function sharing(
    limiter = new TokenBucket(200, 100),
    before?: (a: EngineNode, b: EngineNode) => Promise<void>,
  ) {
    const [a, b] = await h.pair();
    await until(() => h.online(a, b) && h.online(b, a), "both online");
    await before?.(a, b);
    const source = new MemoryFileSource();
    const big = bytesOf(2_000_000);
    source.put("site", ["index.html"], text("<h1>Bob's site</h1>"));
    source.put("site", ["clip.webm"], big);
    source.put("private", ["notes.txt"], text("not for Alice"));
    const shares: Share[] = [
      { mount: [], root: "site", contacts: new Set([a.id]) },
      { mount: ["private"], root: "private", contacts: new Set<string>() },
    ];
    const log: AccessRecord[] = [];
    b.engine.serveProxy({
      handler: shareHandler({ shares: () => shares, isContact: (id) => id === a.id }, source),
      limiter,
      log: (r) => log.push(r),
    });
    return { a, b, source, big, log };
  }

  const clientOf = (from: EngineNode, to: EngineNode) => {
    const c = from.engine.proxyClient(to.id);
    if (!c) throw new Error("no live session");
    return c;
  };

  it("serves a contact's share end to end: bytes, a Range seek, refusals, and the owner's log", async () => {
    const { a, b, big, log } = await sharing();
    const client = clientOf(a, b);
    const page = await client.request(get("/index.html"));
    expect(page.status).toBe(200);
    expect(page.headers).toContainEqual(["content-type", "text/html; charset=utf-8"]);
    expect(new TextDecoder().decode(await readAll(page.body))).toBe("<h1>Bob's site</h1>");
    // A video seek: exactly the bytes asked for.
    const seek = await client.request(get("/clip.webm", [["range", "bytes=1000000-1000499"]]));
    expect(seek.status).toBe(206);
    expect(seek.headers).toContainEqual(["content-range", `bytes 1000000-1000499/${big.length}`]);
    expect(same(await readAll(seek.body), big.subarray(1_000_000, 1_000_500))).toBe(true);
    // The whole 2 MB body, several windows, arrives intact.
    const whole = await client.request(get("/clip.webm"));
    expect(same(await readAll(whole.body), big)).toBe(true);
    // Not shared with Alice, traversal, nothing there: one answer, and nothing else learned.
    for (const path of ["/private/notes.txt", "/%2e%2e/private/notes.txt", "/nothing.html"])
      await expect(client.request(get(path)), path).rejects.toMatchObject({ code: "not_shared" });
    await until(() => log.length === 6, "six access records");
    expect(log.every((r) => r.peer === a.id)).toBe(true);
    expect(log.filter((r) => r.outcome === "served").map((r) => r.path)).toEqual([
      "/index.html",
      "/clip.webm",
      "/clip.webm",
    ]);
    expect(log.filter((r) => r.outcome === "refused")).toHaveLength(3);
    // Both ways on one session: Bob asks Alice, who serves nothing.
    await expect(clientOf(b, a).request(get("/"))).rejects.toMatchObject({ code: "not_shared" });
    // The chat still works alongside.
    const m = await a.engine.send(b.id, "still chatting");
    await until(() => h.stateOf(a, m) === "delivered", "delivered");
  });

  it("a slow reader holds the serving side back across the session: at most one window read ahead", async () => {
    const { a, b, source } = await sharing();
    const res = await clientOf(a, b).request(get("/clip.webm"));
    const first = await res.body.read();
    expect(first).not.toBeNull();
    const body = res.body as unknown as { buffered: number };
    // The window (1 MiB on this direct link) fills, then nothing more is read from Bob's source
    // while Alice reads nothing.
    const window = proxyWindowFor("direct");
    expect(window).toBe(1024 * 1024);
    await until(() => first!.length + body.buffered >= window, "window full");
    const reads = source.reads;
    expect(reads * 64 * 1024).toBeLessThanOrEqual(window + 2 * 64 * 1024);
    const m = await a.engine.send(b.id, "a round trip on the same session");
    await until(() => h.stateOf(a, m) === "delivered", "delivered");
    expect(source.reads).toBe(reads);
    expect(first!.length + (await readAll(res.body)).length).toBe(2_000_000);
  });

  it("rate-limits per contact, across sessions", async () => {
    const { a, b, log } = await sharing(new TokenBucket(3, 0.001));
    for (let i = 0; i < 3; i++) await readAll((await clientOf(a, b).request(get("/index.html"))).body);
    await expect(clientOf(a, b).request(get("/index.html"))).rejects.toMatchObject({ code: "rate_limited" });
    await until(() => log.at(-1)?.refused === "rate_limited", "logged");
  });

  it("proxy frames are bulk: behind a file window queued in the session, and a chat message sent after them goes first", async () => {
    // docs/protocol/session.md §5, "Bulk frames"; proxy.md §Flow control. Bob's first chunk-sized
    // Noise seal waits at a gate (`sealGate`: every seal the real one), so his session queues a
    // window of 64 file chunks (no bulk lane: inside the session), then a response to Alice, then
    // a chat message. Bulk frames leave in order among themselves and after the chat message;
    // marked anything but bulk, the response would leave before the window and the chat message.
    const gate = sealGate();
    const [a, b] = await h.pair(false, true, { crypto: gate.provider });
    const source = new MemoryFileSource();
    const note = bytesOf(10_000);
    source.put("site", ["note.bin"], note);
    b.engine.serveProxy({
      handler: shareHandler(
        {
          shares: () => [{ mount: [], root: "site", contacts: new Set([a.id]) }],
          isContact: (id) => id === a.id,
        },
        source,
      ),
      limiter: new TokenBucket(200, 100),
      log: () => {},
    });
    const link = h.hub.links.find((l) => l.owner === b.id && l.state === "open");
    if (!link) throw new Error("no link");
    // What Bob's link is handed: a file chunk ("big"), the response's DATA, the chat message.
    const handed = handedSizes(link, { proxy: [10_000, 12_000], chat: [20_000, 60_000] });
    const CHUNKS = 64;
    gate.arm();
    const sent = await b.engine.sendFile(a.id, new Blob([bytesOf(CHUNKS * 65_024)]), "window.bin");
    const offered = () => [...fileTransfers(a).values()].find((t) => t.key.endsWith(`/in/${sent.id}`));
    await until(() => offered()?.state === "offered", "the offer arrives");
    const inKey = offered()?.key ?? "";
    await a.engine.acceptFile(inKey);
    await until(gate.held, "Bob's send chain waits at the gate, sealing the first chunks");
    await until(
      () => gate.seals.filter((x) => x.ad === "file").length === 2 * CHUNKS,
      "the window queued in the session",
    );
    const response = clientOf(a, b).request(get("/note.bin"));
    await until(() => source.reads > 0, "Bob read the body: its frames queued in the session");
    const before = b.storage.sessions.get(a.id);
    const sending = b.engine.send(a.id, "é".repeat(16_000));
    await until(
      () =>
        gate.seals.some((x) => x.ad === "other" && x.length > 20_000) &&
        b.storage.sessions.get(a.id) !== before,
      "the chat message queued",
    );
    gate.release();
    const res = await response;
    expect(same(await readAll(res.body), note)).toBe(true);
    const id = await sending;
    await until(() => h.stateOf(b, id) === "delivered", "the chat message delivered");
    await until(() => fileTransfers(a).get(inKey)?.state === "done", "the file done");
    expect(handed.filter((x) => x === "big")).toHaveLength(CHUNKS);
    expect(handed.filter((x) => x === "proxy")).toHaveLength(1);
    // The chat message after at most the run held at the gate; the response after every chunk
    // queued before it (bulk frames in order among themselves), so after the chat message too.
    expect(handed.slice(0, handed.indexOf("chat")).filter((x) => x === "big").length).toBeLessThanOrEqual(
      SEAL_BATCH,
    );
    expect(handed.indexOf("proxy")).toBeGreaterThan(handed.lastIndexOf("big"));
  });

  it("the rate limit holds on a session whose first request came before the app served anything", async () => {
    const refusedFirst = async (a: EngineNode, b: EngineNode) => {
      await expect(clientOf(a, b).request(get("/index.html"))).rejects.toMatchObject({ code: "not_shared" });
    };
    const { a, b, log } = await sharing(new TokenBucket(3, 0.001), refusedFirst);
    for (let i = 0; i < 3; i++) await readAll((await clientOf(a, b).request(get("/index.html"))).body);
    await expect(clientOf(a, b).request(get("/index.html"))).rejects.toMatchObject({ code: "rate_limited" });
    await until(() => log.at(-1)?.refused === "rate_limited", "logged");
  });

  it("nothing served until the app says what: a contact's request is refused not_shared", async () => {
    const [a, b] = await h.pair();
    await until(() => h.online(a, b) && h.online(b, a), "both online");
    const err = await clientOf(a, b)
      .request(get("/index.html"))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyResetError);
    expect((err as ProxyResetError).code).toBe("not_shared");
  });

  it("a request the contact never answers is reset `timeout` after the engine's proxyHeadTimeoutMs", async () => {
    // The bound the page's "No answer in time" comes from (docs/protocol/proxy.md §Streams); a
    // browser test sets it short (web/src/page-timings.ts) instead of waiting out the 30 s.
    const [a, b] = await h.pair(false, false, { proxyHeadTimeoutMs: 200 });
    const log: AccessRecord[] = [];
    b.engine.serveProxy({
      handler: () => new Promise(() => undefined),
      limiter: new TokenBucket(200, 100),
      log: (r) => log.push(r),
    });
    let err: unknown;
    void clientOf(a, b)
      .request(get("/never"))
      .catch((e: unknown) => {
        err = e;
      });
    // `until`'s bound (15 s) is well short of the 30 s default: with the engine's setting not
    // reaching the client, this wait fails instead of passing late.
    await until(() => err !== undefined, "the request reset by Alice's head timeout");
    expect(err).toBeInstanceOf(ProxyResetError);
    expect(err).toMatchObject({ code: "timeout", reason: "no response head in time" });
    // The RESET reached Bob: his side gave the request up and logged it.
    await until(
      () => log.some((r) => r.path === "/never" && r.outcome === "cancelled"),
      "Bob logged the request given up",
    );
  });

  it("the session's end fails what is open, and an offline contact has no client", async () => {
    const { a, b } = await sharing();
    const res = await clientOf(a, b).request(get("/clip.webm"));
    await res.body.read();
    a.engine.disconnect(b.id);
    await expect(readAll(res.body)).rejects.toThrow();
    await until(() => a.engine.proxyClient(b.id) === undefined, "no client once the session is gone");
  });
});

describe("the serving side respects the link's backpressure (live.drain)", () => {
  it("16 concurrent large responses never put more than the drain threshold + one DATA each into the link", async () => {
    const [bobSession, aliceSession] = await sessionPair(proxyDataExtension());
    const bobLive = newLive(bobSession, "direct");
    const aliceLive = newLive(aliceSession, "direct");
    const bobCtx = bareContext();
    const aliceCtx = bareContext();
    const bob = { id: "b".repeat(64), live: aliceLive } as Peer;
    const alice = { id: "a".repeat(64), live: bobLive } as Peer;
    const source = new MemoryFileSource();
    // Over one window each, so every body has more to send than its credit allows at first.
    const big = bytesOf(1_100_000);
    source.put("site", ["clip.webm"], big);
    serveProxy(bobCtx, {
      handler: shareHandler(
        { shares: () => [{ mount: [], root: "site", contacts: new Set([alice.id]) }], isContact: () => true },
        source,
      ),
      limiter: new TokenBucket(200, 100),
      log: () => undefined,
    });
    // Bob's link as a data channel whose buffer the test empties: every message Bob sends is
    // counted in it, drain() waits while it holds more than the threshold (webrtc-link.ts).
    const threshold = 1024 * 1024;
    let queued = 0;
    let most = 0;
    const waiters: (() => void)[] = [];
    const send = bobSession.sendParts.bind(bobSession);
    bobSession.sendParts = (parts) => {
      queued += parts.reduce((n, p) => n + p.length, 0) + 1 + TAGLEN;
      most = Math.max(most, queued);
      send(parts);
    };
    bobLive.drain = () => (queued <= threshold ? Promise.resolve() : new Promise((r) => waiters.push(r)));
    const flush = () => {
      queued = 0;
      for (const w of waiters.splice(0)) w();
    };
    // Each session's messages to its endpoint (what session.ts does for a PROXY frame).
    const pump = async (session: typeof bobSession, ctx: EngineContext, peer: Peer, live: typeof bobLive) => {
      for (;;) {
        const m = await session.receive().catch(() => null);
        if (!m) return;
        const frame = decodeSessionFrame(m);
        if (frame.ok && frame.value.type === "proxy") receiveProxy(ctx, peer, live, frame.value.message);
      }
    };
    void pump(bobSession, bobCtx, alice, bobLive);
    void pump(aliceSession, aliceCtx, bob, aliceLive);
    try {
      const client = proxyClientOf(aliceCtx, bob);
      if (!client) throw new Error("no client");
      const responses = await Promise.all(
        Array.from({ length: 16 }, () => client.request(get("/clip.webm"))),
      );
      // Nobody drains the link: Bob stops at the threshold, though 16 × 1 MiB of credit is open.
      await until(() => queued > threshold, "the link fills past the threshold");
      for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 1));
      const oneData = MAX_CHUNK + 64;
      expect(most).toBeLessThanOrEqual(threshold + 16 * oneData);
      // The link drains bit by bit: every body arrives whole, the bound held throughout.
      const reading = Promise.all(responses.map((r) => readAll(r.body)));
      let done = false;
      void reading.finally(() => (done = true));
      while (!done) {
        flush();
        await new Promise((r) => setTimeout(r, 1));
      }
      for (const body of await reading) expect(same(body, big)).toBe(true);
      expect(most).toBeLessThanOrEqual(threshold + 16 * oneData);
    } finally {
      bobSession.close("stopped");
      aliceSession.close("stopped");
    }
  });
});

describe("PROXY session frames (wire.ts 0x20) and what a bad one does", () => {
  it("decodes a PROXY frame to its message, whatever it holds (the endpoint judges it)", () => {
    const framed = encodeProxyFrame(Uint8Array.of(0, 1, 2));
    expect(framed[0]).toBe(FRAME.PROXY);
    expect(decodeSessionFrame(framed)).toEqual({
      ok: true,
      value: { type: "proxy", message: Uint8Array.of(0, 1, 2) },
    });
  });

  it("an empty message, an unknown channel or a bad frame closes the session with its code", async () => {
    for (const [message, code] of [
      [new Uint8Array(0), "LOFT_ERR_MALFORMED"],
      [Uint8Array.of(7, 1, 1, 0, 0, 0, 1), "LOFT_ERR_UNKNOWN_TYPE"],
      // DATA for a request never opened: out of order.
      [Uint8Array.of(1, 1, 3, 0, 0, 0, 9, 0xaa), "LOFT_ERR_SCHEMA"],
    ] as const) {
      const [mine, theirs] = await sessionPair();
      const live = newLive(mine, "direct");
      receiveProxy(bareContext(), { id: "b".repeat(64) } as Peer, live, message);
      expect(mine.state).toBe("closed");
      expect((await mine.closed).reason).toBe(code);
      theirs.close("stopped");
    }
  });
});
