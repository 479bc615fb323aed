/**
 * How large the proxy's DATA frames are on each path (proxy-link.ts `proxyChunkFor`;
 * docs/protocol/proxy.md §Carrying frames over a session): on the live relay link every PROXY
 * session message of a body, sealed in its Noise frame, fills whole relay pieces — four for a
 * peer that accepts DATA of a session frame's size, one for a peer that takes 16 KiB (core/relay/
 * live-link.ts cuts link messages into `MAX_BODY - 5`-byte pieces after a flags byte and a u32
 * sequence number, one relay message each), so a body never costs an extra relay message per
 * DATA for a few bytes' tail; on a direct link DATA fills a
 * whole session frame (MAX_CHUNK) when the peer announced it accepts that (`proxy.data`), and
 * stays at 16 KiB for a peer that did not (docs/protocol/proxy.md, "DATA size"). A real Noise
 * session pair carries the frames; the serving side is the engine's (serveProxy, receiveProxy).
 */
import { describe, expect, it } from "vitest";
import { TAGLEN } from "../../../core/noise/primitives.ts";
import { bytesBody } from "../../../core/proxy/body.ts";
import { proxyDataExtension, proxyFlagsExtension } from "../../../core/proxy/endpoint.ts";
import { decodeFrame, encodeFrame, LEGACY_CHUNK, MAX_CHUNK } from "../../../core/proxy/frames.ts";
import { TokenBucket } from "../../../core/proxy/rate-limit.ts";
import { MAX_BODY } from "../../../core/relay/protocol.ts";
import { MAX_DATA_PAYLOAD } from "../../../core/session/frames.ts";
import { sessionPair } from "../../../test/support/engine.ts";
import type { LinkPath } from "./api.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import type { EngineContext, Peer } from "./context.ts";
import { proxyChunkFor, proxyClientOf, receiveProxy, serveProxy } from "./proxy-link.ts";
import { newLive } from "./session.ts";
import { decodeSessionFrame } from "./wire.ts";

/** The proxy endpoint reads its head bound from the engine's config; nothing else of the context is used here. */
const CONTEXT = { cfg: DEFAULT_ENGINE_CONFIG } as unknown as EngineContext;

/** The bytes a session message takes on the link: the session frame's type byte and the AEAD tag. */
const onTheLink = (message: Uint8Array) => 1 + message.length + TAGLEN;
/** docs/protocol/relay.md §Live links: `flags(1) ‖ seq(4) ‖ piece` in one relay body. */
const RELAY_PIECE = MAX_BODY - 1 - 4;

async function servedChunks(
  path: LinkPath,
  size: number,
  announced = true,
): Promise<{ sizes: number[]; bytes: number }> {
  const [mine, theirs] = await sessionPair(announced ? proxyDataExtension() : {});
  const ctx = CONTEXT;
  const body = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
  serveProxy(ctx, {
    handler: async (request) => {
      request.body.cancel("no body");
      return { status: 200, headers: [["content-type", "application/octet-stream"]], body: bytesBody(body) };
    },
    limiter: new TokenBucket(1000, 1000),
    log: () => {},
  });
  const live = newLive(mine, path);
  const peer = { id: "b".repeat(64) } as Peer;
  const request = encodeFrame({
    type: "request",
    id: 1,
    method: "GET",
    window: 1024 * 1024,
    path: "/big",
    headers: [],
  });
  receiveProxy(ctx, peer, live, Uint8Array.of(0x00, ...request));
  const sizes: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 1000; i++) {
    const message = await theirs.receive();
    const session = decodeSessionFrame(message);
    if (!session.ok || session.value.type !== "proxy") throw new Error("not a PROXY frame");
    sizes.push(onTheLink(message));
    const frame = decodeFrame(session.value.message.subarray(1));
    if (!frame.ok) throw frame.error;
    if (frame.value.type === "data") bytes += frame.value.bytes.length;
    if (frame.value.type === "end") break;
  }
  mine.close("stopped");
  theirs.close("stopped");
  return { sizes, bytes };
}

describe("proxy DATA sizes per path", () => {
  it("on the relay, every PROXY message of a 512 KiB body fills four whole relay pieces, no more", async () => {
    const { sizes, bytes } = await servedChunks("relay", 512 * 1024);
    expect(bytes).toBe(512 * 1024);
    // Four pieces: the most whole pieces one session frame holds.
    expect(4 * RELAY_PIECE).toBeLessThanOrEqual(MAX_DATA_PAYLOAD + 1 + TAGLEN);
    expect(5 * RELAY_PIECE).toBeGreaterThan(MAX_DATA_PAYLOAD + 1 + TAGLEN);
    expect(Math.max(...sizes)).toBe(4 * RELAY_PIECE);
    // …and uses them: all but the last DATA fill their four pieces exactly.
    const full = sizes.filter((s) => s === 4 * RELAY_PIECE).length;
    expect(full).toBe(Math.floor((512 * 1024) / (4 * RELAY_PIECE - 25)));
    expect(sizes.filter((s) => s % RELAY_PIECE !== 0).length).toBe(sizes.length - full);
  });

  it("on the relay, a peer that takes 16 KiB gets DATA that fill one piece exactly", async () => {
    const { sizes, bytes } = await servedChunks("relay", 100 * 1024, false);
    expect(bytes).toBe(100 * 1024);
    expect(Math.max(...sizes)).toBe(RELAY_PIECE);
    expect(sizes.filter((s) => s === RELAY_PIECE).length).toBe(Math.floor((100 * 1024) / (RELAY_PIECE - 25)));
  });

  it("proxyChunkFor: whole relay pieces within what the peer accepts; a direct link takes it all", () => {
    const whole = (pieces: number) => pieces * RELAY_PIECE - 25;
    expect(proxyChunkFor("relay", MAX_CHUNK)).toBe(whole(4));
    expect(proxyChunkFor("relay", LEGACY_CHUNK)).toBe(whole(1));
    expect(proxyChunkFor("relay", whole(3) + 10)).toBe(whole(3));
    // Less than one piece accepted: what the peer takes (a tail piece per DATA, as before).
    expect(proxyChunkFor("relay", 4096)).toBe(4096);
    expect(proxyChunkFor("direct", MAX_CHUNK)).toBe(MAX_CHUNK);
    expect(proxyChunkFor("direct", LEGACY_CHUNK)).toBe(LEGACY_CHUNK);
  });

  it("on a direct link, each DATA fills one whole session frame for a peer that accepts it", async () => {
    const { sizes, bytes } = await servedChunks("direct", 256 * 1024);
    expect(bytes).toBe(256 * 1024);
    expect(Math.max(...sizes)).toBe(onTheLink(new Uint8Array(2 + 6 + MAX_CHUNK)));
    // One Noise transport message: the largest the session's DATA frame holds (session.md).
    expect(1 + 2 + 6 + MAX_CHUNK).toBe(MAX_DATA_PAYLOAD + 1);
  });

  it("a peer that did not announce proxy.data gets DATA of 16 KiB at most, on either path", async () => {
    for (const path of ["direct", "relay"] as const) {
      const { sizes, bytes } = await servedChunks(path, 100 * 1024, false);
      expect(bytes).toBe(100 * 1024);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(onTheLink(new Uint8Array(2 + 6 + LEGACY_CHUNK)));
    }
  });
});

describe('body-less requests on a session (proxy.flags, docs/protocol/proxy.md "Body-less requests")', () => {
  /** The proxy frames the requester's engine sends for two GETs, as the other end of the session reads them. */
  async function requestFrames(extensions: Record<string, Uint8Array>): Promise<string[]> {
    const [mine, theirs] = await sessionPair(extensions);
    const peer = { id: "b".repeat(64), live: newLive(mine, "direct") } as Peer;
    const client = proxyClientOf(CONTEXT, peer);
    if (!client) throw new Error("no client");
    const pending = [1, 2].map(() =>
      client.request({ method: "GET", path: "/a", headers: [] }).catch(() => undefined),
    );
    const seen: string[] = [];
    const until = async (done: () => boolean) => {
      while (!done()) {
        const session = decodeSessionFrame(await theirs.receive());
        if (!session.ok || session.value.type !== "proxy") throw new Error("not a PROXY frame");
        const frame = decodeFrame(session.value.message.subarray(1));
        if (!frame.ok) throw frame.error;
        const f = frame.value;
        seen.push(
          f.type === "request" ? `request ${f.id}${f.noBody ? " NO_BODY" : ""}` : `${f.type} ${f.id}`,
        );
      }
    };
    const count = (prefix: string) => seen.filter((t) => t.startsWith(prefix)).length;
    // Both REQUESTs, then both requests reset from this side: whatever the requester sent
    // between (an END each, or nothing) is in order on the session before its RESET.
    await until(() => count("request") === 2);
    client.reset(1, "cancelled", "test");
    client.reset(2, "cancelled", "test");
    await until(() => count("reset") === 2);
    mine.close("stopped");
    theirs.close("stopped");
    await Promise.all(pending);
    return seen.sort();
  }

  it("to a peer that announced proxy.flags, each GET is one REQUEST with NO_BODY", async () => {
    expect(await requestFrames({ ...proxyDataExtension(), ...proxyFlagsExtension() })).toEqual([
      "request 1 NO_BODY",
      "request 2 NO_BODY",
      "reset 1",
      "reset 2",
    ]);
  });

  it("to a peer from before it (no proxy.flags), each GET is REQUEST then END, as before", async () => {
    expect(await requestFrames(proxyDataExtension())).toEqual([
      "end 1",
      "end 2",
      "request 1",
      "request 2",
      "reset 1",
      "reset 2",
    ]);
  });
});
