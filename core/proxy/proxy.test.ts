import { describe, expect, it, onTestFinished, vi } from "vitest";
import { concatBytes, equalBytes } from "../bytes.ts";
import { type BodyReader, InboundBody, joinHeld, OutboundBody, readAll, TAIL_HOLD_MS } from "./body.ts";
import { ProxyClient, ProxyResetError } from "./client.ts";
import { decodeFrame, encodeFrame, LEGACY_CHUNK, MAX_CHUNK, REQUEST_BODY_WINDOW } from "./frames.ts";
import { connectProxy } from "./pair.ts";
import { normalizePath, parseRange } from "./paths.ts";
import { TokenBucket } from "./rate-limit.ts";
import { type AccessRecord, ProxyServer } from "./server.ts";
import { MemoryFileSource, type Share, shareHandler } from "./share.ts";

const ME = "a".repeat(64);
const FRIEND = "b".repeat(64);
const STRANGER = "c".repeat(64);
const bytesOf = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/**
 * Wait until `cond` holds, checked after each timer turn and bounded by a deadline — not by a count
 * of turns, which a loaded machine runs fewer of in the same time. A bound on a wait, not a timed
 * assertion: running out of it fails with what was awaited (the condition's source by default).
 */
async function until(cond: () => boolean, what = String(cond), ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`until: still not true after ${ms / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function site(peer = FRIEND, opts: { limiter?: TokenBucket; window?: number } = {}) {
  const source = new MemoryFileSource();
  const big = bytesOf(1_000_000);
  source.put("site", ["index.html"], new TextEncoder().encode("<h1>hi</h1>"));
  source.put("site", ["video.mp4"], big);
  source.put("site", ["data", "a.json"], new TextEncoder().encode('{"a":1}'));
  source.put("secret", ["key.txt"], new TextEncoder().encode("secret"));
  const shares: Share[] = [
    { mount: [], root: "site", contacts: new Set([FRIEND, ME]) },
    { mount: ["private"], root: "secret", contacts: new Set([ME]) },
  ];
  const log: AccessRecord[] = [];
  const pair = connectProxy(
    {
      peer,
      handler: shareHandler({ shares: () => shares, isContact: (p) => p === FRIEND || p === ME }, source),
      log: (r) => log.push(r),
      ...(opts.limiter ? { limiter: opts.limiter } : {}),
    },
    { window: opts.window ?? 64 * 1024 },
    true,
  );
  return { ...pair, source, big, log };
}

const get = (path: string, headers: [string, string][] = []) => ({ method: "GET" as const, path, headers });

describe("proxy over one session", () => {
  it("serves a file with its content type and logs it", async () => {
    const { client, log } = site();
    const res = await client.request(get("/index.html"));
    expect(res.status).toBe(200);
    expect(res.headers).toContainEqual(["content-type", "text/html; charset=utf-8"]);
    expect(new TextDecoder().decode(await readAll(res.body))).toBe("<h1>hi</h1>");
    await until(() => log.length === 1);
    expect(log[0]).toMatchObject({
      peer: FRIEND,
      path: "/index.html",
      outcome: "served",
      status: 200,
      bytes: 11,
    });
  });

  it("runs many requests concurrently, each body intact, frames interleaved", async () => {
    const { client, big, sent } = site();
    const results = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const res = await client.request(get(i % 2 ? "/video.mp4" : "/data/a.json"));
        return readAll(res.body);
      }),
    );
    for (let i = 0; i < 6; i++) expect(results[i]!.length).toBe(i % 2 ? big.length : 7);
    expect(Buffer.compare(Buffer.from(results[1]!), Buffer.from(big))).toBe(0);
    const ids = sent.down.map((f) => (decodeFrame(f) as { value: { id: number } }).value.id);
    const switches = ids.filter((id, i) => i > 0 && id !== ids[i - 1]).length;
    expect(switches).toBeGreaterThan(6); // the three big bodies interleave, none waits for another
  });

  it("answers Range requests (video seeks) with 206 and Content-Range, 416 past the end", async () => {
    const { client, big } = site();
    const res = await client.request(get("/video.mp4", [["range", "bytes=500000-500099"]]));
    expect(res.status).toBe(206);
    expect(res.headers).toContainEqual(["content-range", `bytes 500000-500099/${big.length}`]);
    expect(Buffer.from(await readAll(res.body))).toEqual(Buffer.from(big.subarray(500000, 500100)));
    const tail = await client.request(get("/video.mp4", [["range", "bytes=-10"]]));
    expect(Buffer.from(await readAll(tail.body))).toEqual(Buffer.from(big.subarray(big.length - 10)));
    const past = await client.request(get("/video.mp4", [["range", `bytes=${big.length}-`]]));
    expect(past.status).toBe(416);
    expect(past.headers).toContainEqual(["content-range", `bytes */${big.length}`]);
  });

  it("redirects a folder named without its trailing slash to the folder", async () => {
    const { client, source } = site();
    source.put("site", ["docs", "index.html"], new TextEncoder().encode("docs"));
    const res = await client.request(get("/docs?x=1"));
    expect(res.status).toBe(301);
    expect(res.headers).toContainEqual(["location", "docs/"]);
    const folder = await client.request(get("/docs/"));
    expect(new TextDecoder().decode(await readAll(folder.body))).toBe("docs");
    // A folder without an index.html is not a page.
    await expect(client.request(get("/data"))).rejects.toMatchObject({ code: "not_shared" });
  });

  it("answers HEAD with the head only, and 304 to a matching If-None-Match", async () => {
    const { client, source } = site();
    const head = await client.request({ method: "HEAD", path: "/video.mp4", headers: [] });
    expect(head.status).toBe(200);
    expect(head.headers).toContainEqual(["content-length", "1000000"]);
    expect((await readAll(head.body)).length).toBe(0);
    expect(source.reads).toBe(0);
    const etag = head.headers.find(([n]) => n === "etag")![1];
    const again = await client.request(get("/video.mp4", [["if-none-match", etag]]));
    expect(again.status).toBe(304);
    expect((await readAll(again.body)).length).toBe(0);
    const post = await client.request({ method: "POST", path: "/index.html", headers: [] });
    expect(post.status).toBe(405);
  });

  it("a slow consumer never makes the serving side read ahead more than one window", async () => {
    const window = 64 * 1024;
    const { client, source } = site(FRIEND, { window });
    const res = await client.request(get("/video.mp4"));
    const first = await res.body.read();
    expect(first).not.toBeNull();
    // Nothing more is read by the consumer: the source stops at the window (64 KiB chunks). The
    // window is full once it has all arrived (one chunk read, none consumed past window / 2, so no
    // more credit): from then on the serving side has nothing to read for.
    const body = res.body as unknown as { buffered: number };
    await until(() => first!.length + body.buffered >= window);
    const reads = source.reads;
    expect(reads * 64 * 1024).toBeLessThanOrEqual(window + 64 * 1024 + MAX_CHUNK);
    expect(body.buffered).toBeLessThanOrEqual(window);
    await new Promise((r) => setTimeout(r, 50));
    expect(source.reads).toBe(reads);
    // Reading on refills the window and the whole body arrives.
    const rest = await readAll(res.body);
    expect(first!.length + rest.length).toBe(1_000_000);
  });

  it("two bodies in flight on one session: one reader stalled holds one window, the other reads to its end", async () => {
    // docs/protocol/proxy.md §Flow control: credit is per stream, so a page that stops reading one
    // body (a paused video) neither stalls the others nor makes anything buffer more than its window.
    const window = 64 * 1024;
    const { client, big } = site(FRIEND, { window });
    const [stalled, flowing] = await Promise.all([
      client.request(get("/video.mp4")),
      client.request(get("/video.mp4")),
    ]);
    const held = stalled.body as unknown as { buffered: number };
    await until(() => held.buffered >= window);
    expect(equalBytes(await readAll(flowing.body), big)).toBe(true);
    expect(held.buffered).toBe(window);
    // The stalled one reads on, whole and in order.
    expect(equalBytes(await readAll(stalled.body), big)).toBe(true);
  });

  it("cancelling mid-body stops the source and logs the request cancelled", async () => {
    const { client, source, log, server } = site();
    const res = await client.request(get("/video.mp4"));
    await res.body.read();
    res.body.cancel("page closed");
    await until(() => server.open === 0);
    const reads = source.reads;
    await new Promise((r) => setTimeout(r, 30));
    expect(source.reads).toBe(reads);
    expect(reads).toBeLessThan(16);
    expect(log.at(-1)).toMatchObject({ outcome: "cancelled", path: "/video.mp4" });
    // The session still works after a cancel.
    const again = await client.request(get("/data/a.json"));
    expect(new TextDecoder().decode(await readAll(again.body))).toBe('{"a":1}');
  });

  it("refuses strangers, paths outside what is shared, and traversal — and logs each", async () => {
    const stranger = site(STRANGER);
    await expect(stranger.client.request(get("/index.html"))).rejects.toMatchObject({
      code: "not_a_contact",
    });
    const friend = site();
    for (const path of [
      "/private/key.txt",
      "/nothing.html",
      "/../secret/key.txt",
      "/%2e%2e/secret/key.txt",
      "/data/..%2f..%2fsecret",
      "/data\\..\\x",
      "//etc/passwd",
      "/a%00.html",
      "/C:/x",
      "/.git/config",
    ])
      await expect(friend.client.request(get(path)), path).rejects.toBeInstanceOf(ProxyResetError);
    await until(() => friend.log.length === 10);
    expect(friend.log.every((r) => r.outcome === "refused" && r.refused === "not_shared")).toBe(true);
    const me = site(ME);
    const mine = await me.client.request(get("/private/key.txt"));
    expect(new TextDecoder().decode(await readAll(mine.body))).toBe("secret");
  });

  it("rate-limits each contact with a token bucket, then lets them through again", async () => {
    let now = 0;
    const limiter = new TokenBucket(3, 1);
    const take = limiter.take.bind(limiter);
    limiter.take = (k: string) => take(k, now);
    const { client, log } = site(FRIEND, { limiter });
    for (let i = 0; i < 3; i++) await readAll((await client.request(get("/data/a.json"))).body);
    await expect(client.request(get("/data/a.json"))).rejects.toMatchObject({ code: "rate_limited" });
    now += 1000;
    await readAll((await client.request(get("/data/a.json"))).body);
    await until(() => log.length === 5);
    expect(log.map((r) => r.outcome)).toEqual(["served", "served", "served", "refused", "served"]);
  });

  it("refuses more concurrent requests than allowed without breaking the session", async () => {
    const source = new MemoryFileSource();
    source.put("s", ["f"], bytesOf(200_000));
    const frames: Uint8Array[] = [];
    const server = new ProxyServer({
      peer: FRIEND,
      maxConcurrent: 2,
      send: (f) => frames.push(concatBytes(...f)),
      handler: shareHandler(
        { shares: () => [{ mount: [], root: "s", contacts: new Set([FRIEND]) }], isContact: () => true },
        source,
      ),
    });
    for (let id = 1; id <= 3; id++)
      expect(
        server.receive(
          encodeFrame({ type: "request", id, method: "GET", window: 1000, path: "/f", headers: [] }),
        ).ok,
      ).toBe(true);
    const resets = frames.map((f) => decodeFrame(f)).filter((r) => r.ok && r.value.type === "reset");
    expect(resets.map((r) => r.ok && r.value)).toEqual([
      expect.objectContaining({ id: 3, code: "too_many_requests" }),
    ]);
  });
});

describe("what many requests hold at once (docs/protocol/proxy.md §Flow control)", () => {
  const requestsSent = (sent: Uint8Array[]) =>
    sent.map((f) => decodeFrame(f)).filter((r) => r.ok && r.value.type === "request").length;

  it("an ended body nobody reads keeps its slot: the 17th request waits until one is read or cancelled", async () => {
    const window = 64 * 1024;
    const source = new MemoryFileSource();
    // Just under the window: the worst case, every body ENDs while all of it is held unread.
    source.put("s", ["f"], bytesOf(window - 100));
    const { client, sent } = connectProxy(
      {
        peer: FRIEND,
        handler: shareHandler(
          { shares: () => [{ mount: [], root: "s", contacts: new Set([FRIEND]) }], isContact: () => true },
          source,
        ),
      },
      { window },
      true,
    );
    const bodies: BodyReader[] = [];
    for (let i = 0; i < 32; i++)
      void client.request(get("/f")).then(
        (r) => bodies.push(r.body),
        () => undefined,
      );
    await until(() => bodies.length === 16 && bodies.every((b) => (b as InboundBody).settled === false));
    await until(() => bodies.every((b) => (b as InboundBody).ended));
    // Every one of the 16 has ENDed, all of it held: nothing more is asked for.
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    expect(requestsSent(sent.up)).toBe(16);
    expect(client.open).toBe(16);
    const held = bodies.reduce((n, b) => n + (b as InboundBody).buffered, 0);
    expect(held).toBe(16 * (window - 100));
    expect(held).toBeLessThanOrEqual(16 * window);
    // Read one to its end: one slot frees, one more request goes.
    expect((await readAll(bodies[0]!)).length).toBe(window - 100);
    await until(() => requestsSent(sent.up) === 17);
    // Cancel another: one more.
    bodies[1]!.cancel("not wanted");
    await until(() => requestsSent(sent.up) === 18);
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    expect(requestsSent(sent.up)).toBe(18);
    // Reading everything lets every request through.
    for (let i = 2; i < 32; i++) {
      await until(() => bodies.length > i);
      expect((await readAll(bodies[i]!)).length).toBe(window - 100);
    }
    await until(() => client.open === 0);
    expect(requestsSent(sent.up)).toBe(32);
  });

  it("the serving side waits on the carrier's backpressure before each DATA: none while it is not ready", async () => {
    const source = new MemoryFileSource();
    source.put("s", ["f"], bytesOf(1_000_000));
    const frames: Uint8Array[] = [];
    const waiting: (() => void)[] = [];
    let asked = 0;
    const server = new ProxyServer({
      peer: FRIEND,
      maxChunk: MAX_CHUNK,
      send: (f) => frames.push(concatBytes(...f)),
      // The first DATA may go; after it, the link stays full until the test drains it.
      ready: () => (asked++ === 0 ? Promise.resolve() : new Promise<void>((r) => waiting.push(r))),
      handler: shareHandler(
        { shares: () => [{ mount: [], root: "s", contacts: new Set([FRIEND]) }], isContact: () => true },
        source,
      ),
    });
    const data = () =>
      frames.map((f) => decodeFrame(f)).filter((r) => r.ok && r.value.type === "data").length;
    expect(
      server.receive(
        encodeFrame({ type: "request", id: 1, method: "GET", window: 1_000_000, path: "/f", headers: [] }),
      ).ok,
    ).toBe(true);
    await until(() => waiting.length === 1);
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    expect(data()).toBe(1);
    waiting.shift()!();
    await until(() => data() === 2);
    // A RESET while it waits: nothing more goes, the request is logged cancelled.
    await until(() => waiting.length === 1);
    expect(server.receive(encodeFrame({ type: "reset", id: 1, code: "cancelled", reason: "" })).ok).toBe(
      true,
    );
    waiting.shift()!();
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
    expect(data()).toBe(2);
    expect(server.open).toBe(0);
  });
});

describe("DATA frames cut from a body (OutboundBody)", () => {
  /** A source of `chunks`; `ready` says whether it reports what it holds (`available`). */
  function source(chunks: number[], ready: boolean): BodyReader {
    let i = 0;
    const body: BodyReader = {
      read: async () => (i < chunks.length ? new Uint8Array(chunks[i++]!).fill(i & 0xff) : null),
      cancel: () => undefined,
    };
    if (ready) body.available = () => (i < chunks.length ? chunks[i]! : 0);
    return body;
  }
  async function cut(chunks: number[], ready: boolean, credit = 1 << 30, maxChunk = MAX_CHUNK, hold = 0) {
    const sizes: number[] = [];
    const out = new OutboundBody(source(chunks, ready), credit, maxChunk, undefined, hold);
    let ended = false;
    await out.pump(
      (parts) => sizes.push(parts.reduce((n, p) => n + p.length, 0)),
      () => (ended = true),
    );
    return { sizes, ended };
  }

  it("joins a 64 KiB chunk's tail to the next chunk the source already holds: full frames", async () => {
    const { sizes, ended } = await cut(Array(16).fill(65_536), true);
    expect(ended).toBe(true);
    expect(sizes.reduce((a, b) => a + b)).toBe(16 * 65_536);
    expect(sizes.slice(0, -1).every((n) => n === MAX_CHUNK)).toBe(true);
    expect(sizes).toHaveLength(Math.ceil((16 * 65_536) / MAX_CHUNK));
  });

  it("with a hold, a short tail waits a moment for the next chunk of a source that holds nothing ahead: full frames", async () => {
    // A socket's 64 KiB reads, the next one not in yet when a DATA is cut (TAIL_HOLD_MS).
    const { sizes, ended } = await cut([65_536, 65_536, 65_536], false, 1 << 30, MAX_CHUNK, TAIL_HOLD_MS);
    expect(ended).toBe(true);
    expect(sizes).toEqual([MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, 3 * 65_536 - 3 * MAX_CHUNK]);
  });

  it("a 1 MiB body read 64 KiB at a time, each read in just after its DATA: 17 DATA with a hold, 32 without", async () => {
    // What node:http gives `loft expose` (bench/README.md §bench:proxy, session 16): the origin
    // side holds (host/proxy-origin.ts), a browser's body does not (the default).
    const reads = Array<number>(16).fill(65_536);
    const held = await cut(reads, false, 1 << 30, MAX_CHUNK, TAIL_HOLD_MS);
    const plain = await cut(reads, false);
    expect(held.sizes).toHaveLength(17);
    expect(plain.sizes).toHaveLength(32);
    expect(plain.sizes.filter((n) => n === 26)).toHaveLength(16); // every chunk's 26-byte tail alone
    for (const { sizes } of [held, plain]) expect(sizes.reduce((a, b) => a + b)).toBe(1 << 20);
  });

  /** A source of `chunks` whose reads after the first wait until `release()`; `reads` counts calls. */
  function gated(chunks: number[]) {
    let i = 0;
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => (open = r));
    const counter = { reads: 0 };
    const body: BodyReader = {
      read: async () => {
        counter.reads++;
        if (i > 0) await gate;
        return i < chunks.length ? bytesOf(chunks[i++]!, i) : null;
      },
      cancel: () => undefined,
      available: () => 0,
    };
    return { body, release: () => open(), counter };
  }
  /** `hold`: OutboundBody's `tailHoldMs` (undefined: its default). */
  async function cutGated(chunks: number[], hold: number | undefined) {
    const g = gated(chunks);
    const sizes: number[] = [];
    const parts: Uint8Array[] = [];
    /** The source's reads so far at each DATA: a read before a DATA goes is a hold on it. */
    const readsAtData: number[] = [];
    let ended = false;
    const pumping = new OutboundBody(g.body, 1 << 30, MAX_CHUNK, undefined, hold).pump(
      (p) => {
        readsAtData.push(g.counter.reads);
        sizes.push(p.reduce((n, x) => n + x.length, 0));
        parts.push(concatBytes(...p));
      },
      () => (ended = true),
    );
    return { ...g, sizes, parts, readsAtData, pumping, ended: () => ended };
  }

  it("by default no tail is held: the short tail goes out before the source is read again", async () => {
    // A browser's timers fire a second late in a hidden tab (core/proxy/body.ts TAIL_HOLD_MS): an
    // upload or a share must not wait on one.
    const c = await cutGated([65_536, 65_536], undefined);
    await until(() => c.sizes.length === 2);
    expect(c.sizes).toEqual([MAX_CHUNK, 26]);
    expect(c.readsAtData).toEqual([1, 1]); // the tail went before the second read started
    c.release();
    await c.pumping;
    expect(c.sizes).toEqual([MAX_CHUNK, 26, MAX_CHUNK, 26]);
    expect(c.readsAtData).toEqual([1, 1, 2, 2]);
  });

  it("a response is held only when its handler asks (tailHoldMs: the node:http origin); a request body never", async () => {
    /** The source's reads so far at each DATA frame sent. */
    const dataAt = (g: ReturnType<typeof gated>, at: number[]) => (f: readonly Uint8Array[]) => {
      const r = decodeFrame(concatBytes(...f));
      if (r.ok && r.value.type === "data") at.push(g.counter.reads);
    };
    for (const hold of [undefined, TAIL_HOLD_MS]) {
      const g = gated([65_536, 65_536]);
      const readsAtData: number[] = [];
      const server = new ProxyServer({
        peer: FRIEND,
        maxChunk: MAX_CHUNK,
        send: dataAt(g, readsAtData),
        handler: async () => ({
          status: 200,
          headers: [],
          body: g.body,
          ...(hold ? { tailHoldMs: hold } : {}),
        }),
      });
      const request = encodeFrame({
        type: "request",
        id: 1,
        method: "GET",
        window: 1 << 20,
        path: "/f",
        headers: [],
      });
      expect(server.receive(request).ok).toBe(true);
      await until(() => readsAtData.length === 2);
      // Held: the 26-byte tail waited on the second read; not held: it went before it.
      expect(readsAtData).toEqual(hold ? [1, 2] : [1, 1]);
      g.release();
      await until(() => server.open === 0);
    }
    // The requesting side's upload (a browser's, sw/peer-proxy.ts) is never held.
    const g = gated([16_484, 16_484]);
    const readsAtData: number[] = [];
    const client = new ProxyClient(dataAt(g, readsAtData), { maxChunk: 16_384 });
    const asked = client.request({ method: "POST", path: "/up", headers: [] }, g.body).catch(() => undefined);
    await until(() => readsAtData.length === 2);
    expect(readsAtData).toEqual([1, 1]); // the 100-byte tail went before the second read
    client.close();
    g.release();
    await asked;
  });

  it("stop() ends a running hold at once: the pump settles and the hold's timer never fires", async () => {
    // Fake timers: the hold's 2 ms timer can only fire if the test advances time, which it never
    // does — so a pump that settles did so because stop() woke it (as it wakes a wait for credit).
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const g = gated([65_536, 65_536]);
      const out = new OutboundBody(g.body, 1 << 30, MAX_CHUNK, undefined, TAIL_HOLD_MS);
      const sizes: number[] = [];
      let ended = false;
      let settled = false;
      void out
        .pump(
          (p) => sizes.push(p.reduce((n, x) => n + x.length, 0)),
          () => (ended = true),
        )
        .then(() => (settled = true));
      const turns = async (done: () => boolean) => {
        for (let i = 0; i < 1000 && !done(); i++) await Promise.resolve();
      };
      await turns(() => vi.getTimerCount() === 1);
      expect(vi.getTimerCount()).toBe(1); // the tail is held
      expect(sizes).toEqual([MAX_CHUNK]);
      expect(g.counter.reads).toBe(2);
      out.stop("cancelled");
      await turns(() => settled);
      expect(settled).toBe(true);
      expect(vi.getTimerCount()).toBe(0); // cleared, never fired
      expect(sizes).toEqual([MAX_CHUNK]); // the held tail is not sent, nor an END
      expect(ended).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a source that gives nothing within the hold: the short tail goes out alone, the next chunk after it (read once)", async () => {
    const c = await cutGated([65_536, 65_536], TAIL_HOLD_MS);
    await until(() => c.sizes.length === 2);
    expect(c.sizes).toEqual([MAX_CHUNK, 26]);
    expect(c.readsAtData).toEqual([1, 2]); // the tail waited on the second read
    expect(c.counter.reads).toBe(2); // the read the hold started is the one the pump goes on with
    c.release();
    await c.pumping;
    expect(c.sizes).toEqual([MAX_CHUNK, 26, MAX_CHUNK, 26]);
    expect(c.ended()).toBe(true);
    expect(c.counter.reads).toBe(3);
    expect(equalBytes(concatBytes(...c.parts), concatBytes(bytesOf(65_536, 1), bytesOf(65_536, 2)))).toBe(
      true,
    );
  });

  it("a chunk read whole into one DATA is never held, however short (a server-sent event goes at once)", async () => {
    const c = await cutGated([10, 10], TAIL_HOLD_MS);
    await until(() => c.sizes.length === 1);
    expect(c.readsAtData).toEqual([1]);
    c.release();
    await c.pumping;
    expect(c.sizes).toEqual([10, 10]);
    expect(c.readsAtData).toEqual([1, 2]);
  });

  it("a long tail (a quarter of a DATA or more) is not held: it goes out at once", async () => {
    const c = await cutGated([100_000, 10], TAIL_HOLD_MS);
    await until(() => c.sizes.length === 2);
    expect(c.sizes).toEqual([MAX_CHUNK, 100_000 - MAX_CHUNK]); // before the source gives more
    expect(c.readsAtData).toEqual([1, 1]); // sent before the source was read again: not held
    c.release();
    await c.pumping;
    expect(c.sizes).toEqual([MAX_CHUNK, 100_000 - MAX_CHUNK, 10]);
  });

  it.each([
    ["the hold runs out", false],
    ["the next chunk comes", true],
  ])("stopped while a tail is held, then %s: nothing more is sent, no END", async (_, comes) => {
    const g = gated([65_536, 65_536]);
    const out = new OutboundBody(
      {
        ...g.body,
        // The pump's second read is the one the hold waits on: stopped the moment it starts.
        read: () => {
          const r = g.body.read();
          if (g.counter.reads === 2) out.stop("cancelled");
          return r;
        },
      },
      1 << 30,
      MAX_CHUNK,
      undefined,
      TAIL_HOLD_MS,
    );
    const sizes: number[] = [];
    let ended = false;
    const pumping = out.pump(
      (p) => sizes.push(p.reduce((n, x) => n + x.length, 0)),
      () => (ended = true),
    );
    if (comes) g.release();
    await pumping;
    expect(g.counter.reads).toBe(2);
    expect(sizes).toEqual([MAX_CHUNK]);
    expect(ended).toBe(false);
  });

  it("a tail is held once: empty chunks from the source do not start the hold again", async () => {
    // A page's streamed upload may give empty chunks (sw/peer-proxy.ts passes each one on): each
    // re-armed the 2 ms hold, so a source with an empty chunk every millisecond held the tail forever.
    const chunks = [65_536, 0, 0, 0, 0, 65_536];
    let i = 0;
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => (open = r));
    let reads = 0;
    const readsAtData: number[] = [];
    const sizes: number[] = [];
    const pumping = new OutboundBody(
      {
        read: async () => {
          reads++;
          if (i === chunks.length - 1) await gate; // the last real chunk only when released
          return i < chunks.length ? bytesOf(chunks[i++]!, i) : null;
        },
        cancel: () => undefined,
        available: () => 0,
      },
      1 << 30,
      MAX_CHUNK,
      undefined,
      TAIL_HOLD_MS,
    ).pump(
      (p) => {
        readsAtData.push(reads);
        sizes.push(p.reduce((n, x) => n + x.length, 0));
      },
      () => undefined,
    );
    await until(() => sizes.length === 2);
    // The hold took one read (the first empty chunk) and the tail went: not read on for more.
    expect(sizes).toEqual([MAX_CHUNK, 26]);
    expect(readsAtData).toEqual([1, 2]);
    open();
    await pumping;
    expect(sizes.reduce((a, b) => a + b)).toBe(2 * 65_536);
  });

  it("stays within the credit and the chunk size, and ends after the last bytes", async () => {
    const capped = await cut([10, 20, 30, 40_000], true, 1 << 30, 16_384);
    expect(capped.sizes).toEqual([16_384, 16_384, 7_292]);
    const out = new OutboundBody(source([1000, 1000, 1000], true), 1500);
    const sizes: number[] = [];
    const pumping = out.pump(
      (parts) => sizes.push(parts.reduce((n, p) => n + p.length, 0)),
      () => undefined,
    );
    await until(() => sizes.length === 1);
    expect(sizes).toEqual([1500]);
    out.addCredit(2000);
    await pumping;
    expect(sizes).toEqual([1500, 1500]);
  });
});

describe("joining what a body holds into larger chunks (joinHeld: the window → Service Worker path)", () => {
  /** An InboundBody fed by hand, as the session feeds one; `grants` records its CREDITs. */
  function inbound(window = 1 << 20) {
    const grants: number[] = [];
    const body = new InboundBody(
      window,
      (n) => grants.push(n),
      () => undefined,
    );
    return { body, grants };
  }
  const piece = (n: number, seed: number) => bytesOf(n, seed);

  it("joins relay-sized DATA it already holds up to one DATA's size, bytes in order, never more", async () => {
    const { body } = inbound();
    const pieces = Array.from({ length: 9 }, (_, i) => piece(16_314, i));
    for (const p of pieces) body.push(p);
    body.end();
    const joined = joinHeld(body, MAX_CHUNK);
    const sizes: number[] = [];
    const got: Uint8Array[] = [];
    for (let c = await joined.read(); c !== null; c = await joined.read()) {
      sizes.push(c.length);
      got.push(c);
      // Each chunk is a buffer of its own, whole: it can be transferred to another thread.
      expect(c.byteOffset).toBe(0);
      expect(c.buffer.byteLength).toBe(c.length);
    }
    expect(sizes).toEqual([4 * 16_314, 4 * 16_314, 16_314]);
    expect(equalBytes(concatBytes(...got), concatBytes(...pieces))).toBe(true);
    expect(await joined.read()).toBeNull();
  });

  it("never waits for more than the body holds: a lone chunk goes on alone, the next when it comes", async () => {
    const { body } = inbound();
    const joined = joinHeld(body, MAX_CHUNK);
    body.push(piece(1000, 1));
    expect(await joined.read()).toEqual(piece(1000, 1));
    const pending = joined.read();
    body.push(piece(500, 2));
    expect(await pending).toEqual(piece(500, 2));
    body.end();
    expect(await joined.read()).toBeNull();
  });

  it("a chunk that would not fit waits for the next read; reading grants credit as before", async () => {
    const { body, grants } = inbound(64 * 1024);
    body.push(piece(20_000, 1));
    body.push(piece(20_000, 2));
    body.push(piece(20_000, 3));
    const joined = joinHeld(body, 50_000);
    expect((await joined.read())?.length).toBe(40_000);
    // The third chunk was read ahead (still held for the caller) and credit came back as the
    // body's window was read, half a window at a time (40 000 bytes read past 32 KiB).
    expect(joined.available?.()).toBe(20_000);
    expect(grants).toEqual([40_000]);
    body.end();
    expect(await joined.read()).toEqual(piece(20_000, 3));
    expect(await joined.read()).toBeNull();
  });

  it("a body that fails rejects the read; cancel reaches the body", async () => {
    const { body } = inbound();
    body.push(piece(100, 1));
    const joined = joinHeld(body, MAX_CHUNK);
    expect((await joined.read())?.length).toBe(100);
    body.fail(new ProxyResetError("origin_error", "cut"));
    await expect(joined.read()).rejects.toMatchObject({ code: "origin_error" });
    let cancelled = "";
    const other = joinHeld({ read: async () => null, cancel: (r) => (cancelled = r ?? "") }, 10);
    other.cancel("tab closed");
    expect(cancelled).toBe("tab closed");
    expect(() => joinHeld(other, 0)).toThrow(RangeError);
  });
});

/** A serving side sharing one 100-byte file "/f" with FRIEND, and the frames it sends. */
function fileServer() {
  const out: Uint8Array[] = [];
  const source = new MemoryFileSource();
  source.put("s", ["f"], bytesOf(100));
  const s = new ProxyServer({
    peer: FRIEND,
    send: (f) => out.push(concatBytes(...f)),
    handler: shareHandler(
      { shares: () => [{ mount: [], root: "s", contacts: new Set([FRIEND]) }], isContact: () => true },
      source,
    ),
  });
  return { s, out };
}

describe("proxy protocol violations", () => {
  const req = (id: number) =>
    encodeFrame({ type: "request", id, method: "GET", window: 1000, path: "/f", headers: [] });

  it("a replayed request id is refused and ends the session", () => {
    const { s } = fileServer();
    expect(s.receive(req(5)).ok).toBe(true);
    const replay = s.receive(req(5));
    expect(replay.ok || replay.error.code).toBe("LOFT_ERR_REPLAY");
    expect(s.receive(req(6)).ok).toBe(false); // closed for good
  });

  it("an older request id after a newer one (out of order) is a replay", () => {
    const { s } = fileServer();
    expect(s.receive(req(7)).ok).toBe(true);
    const r = s.receive(req(3));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
  });

  it("DATA, END or CREDIT for a request never opened is out of order", () => {
    for (const frame of [
      encodeFrame({ type: "data", id: 9, bytes: new Uint8Array(3) }),
      encodeFrame({ type: "end", id: 9 }),
      encodeFrame({ type: "credit", id: 9, bytes: 10 }),
    ]) {
      const { s } = fileServer();
      const r = s.receive(frame);
      expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");
    }
  });

  it("a request body past its window, or a second END, is refused", () => {
    const { s } = fileServer();
    s.receive(req(1));
    let r = s.receive(encodeFrame({ type: "end", id: 1 }));
    expect(r.ok).toBe(true);
    r = s.receive(encodeFrame({ type: "end", id: 1 }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
    const t = fileServer();
    t.s.receive(req(1));
    let last = t.s.receive(encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(MAX_CHUNK) }));
    for (let i = 0; i < 4 && last.ok; i++)
      last = t.s.receive(encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(MAX_CHUNK) }));
    expect(last.ok || last.error.code).toBe("LOFT_ERR_SCHEMA");
  });

  it("the client refuses a response for a request it never sent, a second head, and DATA past its window", async () => {
    const sent: Uint8Array[] = [];
    let client = new ProxyClient((f) => sent.push(concatBytes(...f)), { window: 1000 });
    let r = client.receive(encodeFrame({ type: "response", id: 1, status: 200, headers: [] }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");

    client = new ProxyClient((f) => sent.push(concatBytes(...f)), { window: 1000 });
    const pending = client.request(get("/f"));
    await until(() => sent.length > 0);
    expect(client.receive(encodeFrame({ type: "response", id: 1, status: 200, headers: [] })).ok).toBe(true);
    const res = await pending;
    r = client.receive(encodeFrame({ type: "response", id: 1, status: 200, headers: [] }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
    await expect(res.body.read()).rejects.toMatchObject({ code: "LOFT_ERR_REPLAY" });

    client = new ProxyClient(() => undefined, { window: 1000 });
    const p2 = client.request(get("/f"));
    client.receive(encodeFrame({ type: "response", id: 1, status: 200, headers: [] }));
    await p2;
    r = client.receive(encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(1001) }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");
  });

  it("late frames for a request this side cancelled are dropped, not errors", async () => {
    const client = new ProxyClient(() => undefined, { window: 1000 });
    const p = client.request(get("/f"));
    client.reset(1, "cancelled", "page closed");
    await expect(p).rejects.toMatchObject({ code: "cancelled" });
    expect(client.receive(encodeFrame({ type: "response", id: 1, status: 200, headers: [] })).ok).toBe(true);
    expect(client.receive(encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(10) })).ok).toBe(true);
  });

  it("a path or head too large to send is refused too_large at once: nothing sent, the session unharmed", async () => {
    const sent: Uint8Array[] = [];
    const client = new ProxyClient((f) => sent.push(concatBytes(...f)), { headTimeoutMs: 5 });
    await expect(client.request(get(`/${"a".repeat(3000)}`))).rejects.toMatchObject({ code: "too_large" });
    const huge: [string, string][] = Array.from({ length: 3 }, () => ["if-none-match", "x".repeat(4000)]);
    await expect(client.request(get("/f", huge))).rejects.toMatchObject({ code: "too_large" });
    // Nothing went out for either — no REQUEST, and no RESET later for an id the peer never saw
    // (which it would take for a frame out of order, and close the session).
    await new Promise((r) => setTimeout(r, 20));
    expect(sent).toEqual([]);
    expect(client.open).toBe(0);
    // The next request is id 1, as if the refused ones had never been.
    void client.request(get("/ok")).catch(() => undefined);
    const first = decodeFrame(sent[0]!);
    expect(first.ok && first.value).toMatchObject({ type: "request", id: 1, path: "/ok" });
    client.close();
  });

  it("a too-long path through a real pair: too_large, and the next request is served", async () => {
    const { client, error } = site();
    await expect(client.request(get(`/${"a".repeat(2100)}`))).rejects.toMatchObject({ code: "too_large" });
    const res = await client.request(get("/index.html"));
    expect(res.status).toBe(200);
    expect(new TextDecoder().decode(await readAll(res.body))).toBe("<h1>hi</h1>");
    expect(error()).toBeUndefined();
  });

  it("a request with no response head in time is reset with timeout", async () => {
    const sent: Uint8Array[] = [];
    const client = new ProxyClient((f) => sent.push(concatBytes(...f)), { headTimeoutMs: 5 });
    await expect(client.request(get("/slow"))).rejects.toMatchObject({ code: "timeout" });
    const last = decodeFrame(sent.at(-1)!);
    expect(last.ok && last.value).toMatchObject({ type: "reset", code: "timeout" });
  });

  /**
   * A POST from a client whose head bound is `headMs`, under fake timers (time moves only as the
   * test says; real ones again when the test ends): the client, what it sent (decoded) and how the
   * request ended so far (undefined while it waits). Its body is `body`, or four request-body
   * windows the page holds already.
   */
  function upload(headMs: number, body?: BodyReader, signal?: AbortSignal) {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const sent: Uint8Array[] = [];
    const client = new ProxyClient((f) => sent.push(concatBytes(...f)), { headTimeoutMs: headMs });
    const chunks = Array.from({ length: 4 }, (_, i) => new Uint8Array(REQUEST_BODY_WINDOW).fill(i));
    body ??= {
      read: async () => chunks.shift() ?? null,
      cancel: () => undefined,
      available: () => chunks[0]?.length ?? 0,
    };
    let outcome: unknown;
    client.request({ method: "POST", path: "/upload", headers: [] }, body, signal).then(
      (r) => (outcome = r.status),
      (e: unknown) => (outcome = e),
    );
    const frames = () =>
      sent.map((b) => {
        const r = decodeFrame(b);
        if (!r.ok) throw r.error;
        return r.value;
      });
    const credit = () =>
      expect(client.receive(encodeFrame({ type: "credit", id: 1, bytes: REQUEST_BODY_WINDOW })).ok).toBe(
        true,
      );
    /** Lets the client's promise turns run until `done` (a bound on turns, not on time). */
    const turns = async (done: () => boolean) => {
      for (let i = 0; i < 1000 && !done(); i++) await Promise.resolve();
    };
    return { client, frames, credit, turns, outcome: () => outcome };
  }

  /**
   * The END goes, 0.9 of the bound passes without an outcome (the wait ran again from the END, not
   * from earlier), then the answer: 201, no RESET.
   */
  async function answeredAfterEnd(
    { client, frames, turns, outcome }: ReturnType<typeof upload>,
    headMs: number,
  ): Promise<void> {
    await turns(() => frames().some((f) => f.type === "end"));
    expect(frames().at(-1)).toMatchObject({ type: "end", id: 1 });
    vi.advanceTimersByTime(0.9 * headMs);
    expect(outcome()).toBeUndefined();
    expect(client.receive(encodeFrame({ type: "response", id: 1, status: 201, headers: [] })).ok).toBe(true);
    await turns(() => outcome() !== undefined);
    expect(outcome()).toBe(201);
    expect(frames().some((f) => f.type === "reset")).toBe(false);
    client.close();
  }

  it("an upload longer than the head timeout, taken all along, is not reset: the wait restarts at each CREDIT and at its END", async () => {
    // 0.9 of the bound between two signs of the serving side, four bounds in all, before the head comes.
    const HEAD = 1_000;
    const up = upload(HEAD);
    const { frames, credit, turns, outcome } = up;
    const bodySent = () => frames().reduce((n, f) => n + (f.type === "data" ? f.bytes.length : 0), 0);
    // The first window goes at once; each CREDIT lets the next one go, just inside the bound.
    for (let w = 1; w <= 4; w++) {
      await turns(() => bodySent() === w * REQUEST_BODY_WINDOW);
      expect(bodySent()).toBe(w * REQUEST_BODY_WINDOW);
      vi.advanceTimersByTime(0.9 * HEAD);
      expect(outcome()).toBeUndefined();
      credit();
    }
    // The END went with the last credit: the answer is due a whole bound after it, not before.
    await answeredAfterEnd(up, HEAD);
  });

  it("an upload the serving side stops taking is reset timeout a bound after its last CREDIT", async () => {
    const HEAD = 1_000;
    const { frames, credit, turns, outcome } = upload(HEAD);
    // The first window goes out before the serving side credits it (its CREDIT answers that DATA).
    await turns(
      () => frames().filter((f) => f.type === "data").length === REQUEST_BODY_WINDOW / LEGACY_CHUNK,
    );
    vi.advanceTimersByTime(0.9 * HEAD);
    credit();
    // No credit after that one: the wait runs out a bound after it (not a bound after the REQUEST).
    vi.advanceTimersByTime(0.9 * HEAD);
    expect(frames().map((f) => f.type)).not.toContain("reset");
    vi.advanceTimersByTime(0.1 * HEAD);
    await turns(() => outcome() !== undefined);
    expect(outcome()).toBeInstanceOf(ProxyResetError);
    expect(outcome()).toMatchObject({ code: "timeout", reason: "no response head in time" });
    expect(frames().at(-1)).toMatchObject({ type: "reset", id: 1, code: "timeout" });
  });
  /**
   * A page's body that hands over each piece only when the test says (`give`): a slow upload, or a
   * stream the page produces as the user types or records. `asked` counts the reads begun.
   */
  function slowPage() {
    let next: { resolve: (piece: Uint8Array | null) => void; reject: (e: Error) => void } | undefined;
    let asked = 0;
    let cancelled: string | undefined;
    const body: BodyReader = {
      read: () => {
        asked++;
        return new Promise((resolve, reject) => (next = { resolve, reject }));
      },
      cancel: (reason) => {
        cancelled = reason ?? "cancelled";
      },
    };
    const give = (piece: Uint8Array | null) => {
      const n = next;
      next = undefined;
      n?.resolve(piece);
    };
    /** The pending read rejects: the page's body failed. */
    const fail = (e: Error) => {
      const n = next;
      next = undefined;
      n?.reject(e);
    };
    return { body, give, fail, asked: () => asked, cancelled: () => cancelled };
  }

  it("a page whose body pauses twice the head timeout between pieces still gets its answer: the wait stops while the page is read", async () => {
    const HEAD = 1_000;
    const page = slowPage();
    const up = upload(HEAD, page.body);
    const { frames, turns, outcome } = up;
    const dataSent = () => frames().filter((f) => f.type === "data").length;
    // Three small pieces, well inside the first window: no CREDIT is needed, none comes.
    for (let i = 1; i <= 3; i++) {
      await turns(() => page.asked() === i);
      expect(page.asked()).toBe(i);
      vi.advanceTimersByTime(2 * HEAD); // the user is still typing
      expect(outcome()).toBeUndefined();
      page.give(bytesOf(100, i));
      await turns(() => dataSent() === i);
      expect(dataSent()).toBe(i);
    }
    await turns(() => page.asked() === 4);
    vi.advanceTimersByTime(2 * HEAD);
    page.give(null);
    await answeredAfterEnd(up, HEAD);
  });

  it("a whole body handed over and never answered is reset timeout exactly a bound after its END", async () => {
    const HEAD = 1_000;
    const page = slowPage();
    const { frames, turns, outcome } = upload(HEAD, page.body);
    await turns(() => page.asked() === 1);
    vi.advanceTimersByTime(3 * HEAD);
    page.give(bytesOf(100));
    await turns(() => page.asked() === 2);
    vi.advanceTimersByTime(3 * HEAD);
    page.give(null);
    await turns(() => frames().some((f) => f.type === "end"));
    // The exposing side has all it needs from here: a bound, not a moment more.
    vi.advanceTimersByTime(HEAD - 1);
    expect(outcome()).toBeUndefined();
    expect(frames().map((f) => f.type)).not.toContain("reset");
    vi.advanceTimersByTime(1);
    await turns(() => outcome() !== undefined);
    expect(outcome()).toMatchObject({ code: "timeout", reason: "no response head in time" });
    expect(frames().at(-1)).toMatchObject({ type: "reset", id: 1, code: "timeout" });
  });

  it("a page slow to hand over a whole window, then no CREDIT: the wait runs from the piece and fires a bound after it", async () => {
    const HEAD = 1_000;
    const page = slowPage();
    const { frames, turns, outcome } = upload(HEAD, page.body);
    await turns(() => page.asked() === 1);
    vi.advanceTimersByTime(2 * HEAD); // the page is slow: the wait is stopped
    expect(outcome()).toBeUndefined();
    // One whole window: nothing more goes, nor is read from the page, before the serving side's
    // CREDIT — which never comes: that is the serving side's to answer.
    page.give(new Uint8Array(REQUEST_BODY_WINDOW));
    const bodySent = () => frames().reduce((n, f) => n + (f.type === "data" ? f.bytes.length : 0), 0);
    await turns(() => bodySent() === REQUEST_BODY_WINDOW);
    expect(bodySent()).toBe(REQUEST_BODY_WINDOW);
    vi.advanceTimersByTime(HEAD - 1);
    expect(outcome()).toBeUndefined();
    expect(page.asked()).toBe(1);
    vi.advanceTimersByTime(1);
    await turns(() => outcome() !== undefined);
    expect(outcome()).toMatchObject({ code: "timeout" });
  });

  /**
   * Every way a request can end while the page's next piece is awaited (the head wait stopped):
   * it ends with the right RESET, the page's body is cancelled, the slot is freed and no wait is
   * left running — and the piece the page hands over late goes nowhere.
   */
  describe("a request ended while the page's next piece is awaited", () => {
    const HEAD = 1_000;
    async function pending(signal?: AbortSignal) {
      const page = slowPage();
      const u = upload(HEAD, page.body, signal);
      await u.turns(() => page.asked() === 1);
      page.give(bytesOf(100));
      await u.turns(() => page.asked() === 2);
      expect(vi.getTimerCount()).toBe(0); // the wait is stopped while the page is read
      return { page, ...u };
    }
    async function ended(p: Awaited<ReturnType<typeof pending>>) {
      await p.turns(() => p.outcome() !== undefined);
      expect(p.client.open).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
      const sent = p.frames().length;
      p.page.give(bytesOf(100, 2)); // late: nothing more goes out, no wait starts again
      await p.turns(() => false);
      expect(p.frames()).toHaveLength(sent);
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(10 * HEAD);
      expect(p.frames()).toHaveLength(sent);
    }

    it("the page drops the request: RESET cancelled, its body cancelled", async () => {
      const abort = new AbortController();
      const p = await pending(abort.signal);
      abort.abort();
      await ended(p);
      expect(p.outcome()).toMatchObject({ code: "cancelled" });
      expect(p.frames().filter((f) => f.type === "reset")).toMatchObject([{ id: 1, code: "cancelled" }]);
      expect(p.page.cancelled()).toBeDefined();
    });

    it("the page's body fails: RESET origin_error with its reason", async () => {
      const p = await pending();
      p.page.fail(new Error("the page's stream errored"));
      await ended(p);
      expect(p.outcome()).toMatchObject({ code: "origin_error", reason: "the page's stream errored" });
      expect(p.frames().filter((f) => f.type === "reset")).toMatchObject([
        { id: 1, code: "origin_error", reason: "the page's stream errored" },
      ]);
    });

    it("the serving side resets it: no RESET back, the page's body cancelled", async () => {
      const p = await pending();
      const r = p.client.receive(encodeFrame({ type: "reset", id: 1, code: "too_large", reason: "" }));
      expect(r.ok).toBe(true);
      await ended(p);
      expect(p.outcome()).toMatchObject({ code: "too_large" });
      expect(p.frames().some((f) => f.type === "reset")).toBe(false);
      expect(p.page.cancelled()).toBeDefined();
    });

    it("the session closes: the request fails, the page's body cancelled", async () => {
      const p = await pending();
      p.client.close();
      await ended(p);
      expect(p.outcome()).toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
      expect(p.page.cancelled()).toBeDefined();
    });

    it("the answer comes first: no wait starts again as the rest of the body goes up", async () => {
      const p = await pending();
      expect(p.client.receive(encodeFrame({ type: "response", id: 1, status: 413, headers: [] })).ok).toBe(
        true,
      );
      await p.turns(() => p.outcome() !== undefined);
      expect(p.outcome()).toBe(413);
      p.page.give(bytesOf(100, 2));
      await p.turns(() => p.page.asked() === 3);
      expect(p.frames().filter((f) => f.type === "data")).toHaveLength(2);
      expect(vi.getTimerCount()).toBe(0);
      p.page.give(null);
      await p.turns(() => p.frames().some((f) => f.type === "end"));
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(10 * HEAD);
      expect(p.frames().some((f) => f.type === "reset")).toBe(false);
      p.client.close();
    });
  });
});

describe('body-less requests: NO_BODY (docs/protocol/proxy.md, "Body-less requests")', () => {
  const framesOf = (sent: Uint8Array[]) =>
    sent.map((b) => {
      const r = decodeFrame(b);
      if (!r.ok) throw r.error;
      return r.value;
    });

  it("a GET to a peer that reads NO_BODY is one REQUEST frame, no END; to one that does not, REQUEST then END", async () => {
    for (const noBody of [true, false]) {
      const source = new MemoryFileSource();
      source.put("s", ["f"], bytesOf(5000));
      const seen: (Uint8Array | null)[] = [];
      const share = shareHandler(
        { shares: () => [{ mount: [], root: "s", contacts: new Set([FRIEND]) }], isContact: () => true },
        source,
      );
      const pair = connectProxy(
        {
          peer: FRIEND,
          // The request body the handler sees: ended at once with NO_BODY, after END without.
          handler: async (request) => {
            seen.push(await request.body.read());
            return share(request);
          },
        },
        { noBody },
        true,
      );
      for (let i = 0; i < 2; i++) {
        const res = await pair.client.request(get("/f"));
        expect(equalBytes(await readAll(res.body), bytesOf(5000))).toBe(true);
      }
      const up = framesOf(pair.sent.up);
      expect(up.map((f) => f.type)).toEqual(
        noBody ? ["request", "request"] : ["request", "end", "request", "end"],
      );
      expect(
        up
          .filter((f) => f.type === "request")
          .every((f) => f.type === "request" && f.noBody === (noBody || undefined)),
      ).toBe(true);
      expect(seen).toEqual([null, null]);
      expect(pair.error()).toBeUndefined();
    }
  });

  it("a request with a body keeps DATA and END, NO_BODY or not; the served side reads it whole", async () => {
    const got: Uint8Array[] = [];
    const pair = connectProxy(
      {
        peer: FRIEND,
        handler: async (request) => {
          got.push(await readAll(request.body));
          return { status: 200, headers: [], body: { read: async () => null, cancel: () => undefined } };
        },
      },
      { noBody: true },
      true,
    );
    const body = new InboundBody(
      1 << 20,
      () => undefined,
      () => undefined,
    );
    body.push(bytesOf(3000));
    body.end();
    const res = await pair.client.request({ method: "POST", path: "/up", headers: [] }, body);
    expect(await readAll(res.body)).toEqual(new Uint8Array(0));
    expect(equalBytes(got[0]!, bytesOf(3000))).toBe(true);
    const up = framesOf(pair.sent.up);
    expect(up.map((f) => f.type)).toEqual(["request", "data", "end"]);
    expect(up[0]!.type === "request" && up[0]!.noBody).toBeUndefined();
  });

  const bodiless = (id: number) =>
    encodeFrame({ type: "request", id, method: "GET", window: 1000, path: "/f", headers: [], noBody: true });

  it("an END after NO_BODY is a second END (replay); DATA after it is past the end; the session closes", () => {
    let { s } = fileServer();
    expect(s.receive(bodiless(1)).ok).toBe(true);
    let r = s.receive(encodeFrame({ type: "end", id: 1 }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
    expect(s.receive(bodiless(2)).ok).toBe(false); // closed for good
    ({ s } = fileServer());
    expect(s.receive(bodiless(1)).ok).toBe(true);
    r = s.receive(encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(3) }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");
  });

  it("a replayed or out-of-order NO_BODY request is a replay, and frames for an id never opened are out of order", () => {
    let { s } = fileServer();
    expect(s.receive(bodiless(4)).ok).toBe(true);
    let r = s.receive(bodiless(4));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
    ({ s } = fileServer());
    expect(s.receive(bodiless(4)).ok).toBe(true);
    r = s.receive(bodiless(2));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_REPLAY");
    ({ s } = fileServer());
    expect(s.receive(bodiless(4)).ok).toBe(true);
    r = s.receive(encodeFrame({ type: "end", id: 9 }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");
  });

  it("the NO_BODY request is served, with its END and nothing else from the served side's body", async () => {
    const { s, out } = fileServer();
    expect(s.receive(bodiless(1)).ok).toBe(true);
    await until(() => framesOf(out).some((f) => f.type === "end"));
    const down = framesOf(out);
    expect(down.map((f) => f.type)).toEqual(["response", "data", "end"]);
    // The served side never grants credit for a request body that does not exist.
    expect(down.some((f) => f.type === "credit")).toBe(false);
  });

  it("the client refuses CREDIT for a NO_BODY request's body, which does not exist", async () => {
    const sent: Uint8Array[] = [];
    const client = new ProxyClient((f) => sent.push(concatBytes(...f)), { window: 1000, noBody: true });
    const pending = client.request(get("/f"));
    pending.catch(() => undefined);
    await until(() => sent.length > 0);
    expect(framesOf(sent)).toMatchObject([{ type: "request", id: 1, noBody: true }]);
    const r = client.receive(encodeFrame({ type: "credit", id: 1, bytes: 10 }));
    expect(r.ok || r.error.code).toBe("LOFT_ERR_SCHEMA");
    await expect(pending).rejects.toMatchObject({ code: "LOFT_ERR_SCHEMA" });
  });
});

describe("share path rules", () => {
  it("normalizes plain paths and refuses every traversal form", () => {
    expect(normalizePath("/")).toEqual({ ok: true, value: ["index.html"] });
    expect(normalizePath("/docs/")).toEqual({ ok: true, value: ["docs", "index.html"] });
    expect(normalizePath("/a%20b/c.txt?x=1#y")).toEqual({ ok: true, value: ["a b", "c.txt"] });
    for (const bad of [
      "/..",
      "/a/../b",
      "/%2e%2e/x",
      "/%2E%2E/x",
      "/a/%2e/b",
      "/a%2fb",
      "/a%5cb",
      "/a\\b",
      "/a%00b",
      "/a\u0000b",
      "//etc/passwd",
      "/C:/Windows",
      "/.env",
      "/%zz",
      "relative",
    ])
      expect(normalizePath(bad).ok, bad).toBe(false);
  });

  it("parses single byte ranges; multi-ranges fall back to the whole file", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ start: 0, end: 10 });
    expect(parseRange("bytes=90-", 100)).toEqual({ start: 90, end: 100 });
    expect(parseRange("bytes=-5", 100)).toEqual({ start: 95, end: 100 });
    expect(parseRange("bytes=50-1000", 100)).toEqual({ start: 50, end: 100 });
    expect(parseRange("bytes=100-", 100)).toBe("unsatisfiable");
    expect(parseRange("bytes=0-1,5-6", 100)).toBe("none");
    expect(parseRange(undefined, 100)).toBe("none");
  });
});
