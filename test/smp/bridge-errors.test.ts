/**
 * The SMP bridge's refusals (docs/protocol/smp.md, "The bridge", errors; docs/operations.md, "SMP
 * bridge"): each bad request gets its ERROR code and the bridge keeps serving; any first frame
 * (fuzzed) gets an ERROR, never a crash.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { parseSmpServerAddress } from "../../core/smp/address.ts";
import { type BridgeFrame, decodeBridgeFrame, encodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import { connectSmpBridge } from "../../core/smp/bridge-link.ts";
import { SmpClientError, verifiedSessionKey } from "../../core/smp/client.ts";
import { base64url } from "../../core/smp/encoding.ts";
import { encodeSpki } from "../../core/smp/keys.ts";
import { parsePatterns } from "../../smp/bridge/config.ts";
import { DestinationPolicy, isNonPublicAddress } from "../../smp/bridge/policy.ts";
import { loadOrCreateCredentials, signedPublicKey } from "../../smp/server/certs.ts";
import { startTestBridge, type TestBridge } from "./bridge-testing.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
let bridge: TestBridge;
/** The same bridge on the `ws` package's server layer (`--ws-impl ws`, host/websocket-server.ts). */
let wsBridge: TestBridge;

beforeAll(async () => {
  server = await startSmpTestServer();
  bridge = await startTestBridge();
  wsBridge = await startTestBridge({}, { wsImpl: "ws" });
});

afterAll(async () => {
  await wsBridge?.close();
  await bridge?.close();
  await server?.close();
});

const webSocket = (url: string) => new WebSocket(url) as never;

/** The bridge error a connection attempt ends with. */
async function bridgeError(url: string, address: string): Promise<string> {
  try {
    const { client } = await connectSmpBridge(url, address, { webSocket, connectTimeoutMs: 20_000 });
    client.close();
    return "connected";
  } catch (e) {
    if (!(e instanceof SmpClientError)) throw e;
    return e.detail?.bridgeError ?? e.code;
  }
}

/** Send raw frames on a fresh socket; what the bridge answered, until it closed (bounded). */
async function raw(
  url: string,
  frames: (Uint8Array | string)[],
): Promise<{ frames: BridgeFrame[]; code: number }> {
  const ws = new WebSocket(url);
  const got: BridgeFrame[] = [];
  ws.on("message", (d: Buffer) => {
    const f = decodeBridgeFrame(new Uint8Array(d));
    if (f) got.push(f);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  for (const f of frames) ws.send(f);
  const code = await new Promise<number>((resolve) => {
    const t = setTimeout(() => {
      ws.terminate();
      resolve(-1);
    }, 20_000);
    ws.once("close", (c: number) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  return { frames: got, code };
}

const errorOf = (r: { frames: BridgeFrame[] }) => {
  const e = r.frames.find((f) => f.kind === "ERROR");
  return e?.kind === "ERROR" ? e.error : "none";
};

function withHostPort(address: string, host: string, port: number): string {
  return address.replace(/@.*$/, `@${host}:${port}`);
}

describe("SMP bridge refusals", () => {
  it("an address that is not smp://<fingerprint>@host[:port]: BAD_ADDRESS", async () => {
    for (const a of ["smp://nope", "https://example.org", `${server.address}/queue#/?v=6`])
      expect(errorOf(await raw(bridge.url, [encodeBridgeFrame({ kind: "OPEN", address: a })])), a).toBe(
        "BAD_ADDRESS",
      );
  });

  it("another server's fingerprint: FINGERPRINT", async () => {
    const wrong = server.address.replace(/smp:\/\/[^@]+@/, `smp://${base64url(new Uint8Array(32).fill(7))}@`);
    expect(await bridgeError(bridge.url, wrong)).toBe("FINGERPRINT");
  });

  it("nothing listening: UNREACHABLE", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    expect(await bridgeError(bridge.url, withHostPort(server.address, "127.0.0.1", port))).toBe(
      "UNREACHABLE",
    );
  });

  it("a server of SMP versions the bridge does not carry: VERSION", async () => {
    const v8 = await startSmpTestServer({}, { versions: { min: 8, max: 8 } });
    try {
      expect(await bridgeError(bridge.url, v8.address)).toBe("VERSION");
    } finally {
      await v8.close();
    }
  });

  it("the operator's denylist, allowlist and the private-address rule: DENIED; a listed host passes", async () => {
    const port = Number(server.address.split(":").at(-1));
    const denied = await startTestBridge({ smpBridgeDeny: parsePatterns("localhost") });
    const allowOther = await startTestBridge({ smpBridgeAllow: parsePatterns("*.example.org") });
    const publicOnly = await startTestBridge({ smpBridgePrivate: false });
    const listed = await startTestBridge({
      smpBridgePrivate: false,
      smpBridgeAllow: parsePatterns(`localhost:${port}`),
    });
    try {
      expect(await bridgeError(denied.url, server.address)).toBe("DENIED");
      expect(await bridgeError(allowOther.url, server.address)).toBe("DENIED");
      expect(await bridgeError(publicOnly.url, server.address)).toBe("DENIED");
      expect(await bridgeError(publicOnly.url, withHostPort(server.address, "127.0.0.1", port))).toBe(
        "DENIED",
      );
      expect(await bridgeError(listed.url, server.address)).toBe("connected");
    } finally {
      await Promise.all([denied.close(), allowOther.close(), publicOnly.close(), listed.close()]);
    }
  });

  it("more bridged connections than a user may hold: LIMIT, and the slot comes back on close", async () => {
    const one = await startTestBridge({ smpBridgeMaxPerSource: 1 });
    try {
      const { client } = await connectSmpBridge(one.url, server.address, { webSocket });
      expect(await bridgeError(one.url, server.address)).toBe("LIMIT");
      client.close();
      // The bridge has seen the close (bounded wait; it failed only later, at "connected", before).
      await expect.poll(() => one.service.connectionCount, { timeout: 10_000 }).toBe(0);
      expect(await bridgeError(one.url, server.address)).toBe("connected");
    } finally {
      await one.close();
    }
  });

  it("the server going away ends the session with CLOSED, the relay going away with GOING_AWAY; waiting commands are rejected", async () => {
    const ending = await startSmpTestServer();
    const leaving = await startTestBridge();
    try {
      const a = (await connectSmpBridge(bridge.url, ending.address, { webSocket })).client;
      const b = (await connectSmpBridge(leaving.url, server.address, { webSocket })).client;
      const failures = [a, b].map(
        (c) =>
          new Promise<string>((resolve, reject) => {
            let tries = 0;
            const poll = () => {
              if (c.closed) resolve("closed");
              else if (++tries > 500) reject(new Error("the session did not end"));
              else setTimeout(poll, 20);
            };
            poll();
          }),
      );
      await ending.close();
      await leaving.close();
      await Promise.all(failures);
      const reasons = await Promise.all(
        [a, b].map((c) =>
          c.ping().then(
            () => "pinged",
            (e: SmpClientError) => e.detail?.bridgeError ?? e.code,
          ),
        ),
      );
      expect(reasons).toEqual(["CLOSED", "GOING_AWAY"]);
    } finally {
      await leaving.close();
    }
  });

  it("frames out of order or of the wrong size: MALFORMED — on the lean and the ws server layer alike", async () => {
    for (const b of [bridge, wsBridge]) {
      const block = encodeBridgeFrame({ kind: "BLOCK", block: new Uint8Array(16_384) });
      expect(errorOf(await raw(b.url, [block]))).toBe("MALFORMED");
      expect(errorOf(await raw(b.url, ["a text frame"]))).toBe("MALFORMED");
      const open = encodeBridgeFrame({ kind: "OPEN", address: server.address });
      const r = await raw(b.url, [open, new Uint8Array([2, 0, 1])]);
      expect(errorOf(r)).toBe("MALFORMED");
      // OPEN replayed: the first one is being served.
      expect(errorOf(await raw(b.url, [open, open]))).toBe("MALFORMED");
      // Oversized: beyond one block, either layer closes the socket with 1009 (RFC 6455 §7.4.1)
      // before handing it over.
      const huge = await raw(b.url, [open, new Uint8Array(16_386).fill(2)]);
      expect(huge.code).toBe(1009);
      // A frame of exactly the largest size passes the layer and reaches the bridge's own check.
      const edge = await raw(b.url, [open, new Uint8Array(16_385).fill(2)]);
      expect(edge.code).toBe(1008);
      expect(errorOf(edge)).toBe("MALFORMED");
    }
    // And the ws layer still carries a whole session (the lean one does in every other test).
    expect(await bridgeError(wsBridge.url, server.address)).toBe("connected");
  });

  it("any first frame gets an ERROR and the bridge keeps serving (fuzzed)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
        const r = await raw(bridge.url, [bytes]);
        expect(r.code).not.toBe(-1);
        expect(["MALFORMED", "BAD_ADDRESS", "DENIED", "UNREACHABLE"]).toContain(errorOf(r));
      }),
      { numRuns: 60 },
    );
    expect(await bridgeError(bridge.url, server.address)).toBe("connected");
  });
});

describe("destination policy", () => {
  it("refuses loopback, private, link-local, CGNAT, multicast and mapped forms; passes public addresses", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.20.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
      "not-an-ip",
    ])
      expect(isNonPublicAddress(a), a).toBe(true);
    for (const a of ["93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1"])
      expect(isNonPublicAddress(a), a).toBe(false);
  });

  it("a name resolving to a private address is refused unless listed; a name that does not resolve is UNREACHABLE", async () => {
    const resolve = async (host: string) => {
      if (host === "rebind.example")
        return [
          { address: "93.184.216.34", family: 4 },
          { address: "10.0.0.5", family: 4 },
        ];
      if (host === "smp.example") return [{ address: "93.184.216.34", family: 4 }];
      throw new Error("ENOTFOUND");
    };
    const open = new DestinationPolicy(
      { smpBridgeAllow: [], smpBridgeDeny: [], smpBridgePrivate: false },
      resolve,
    );
    expect(await open.admit("rebind.example", 5223)).toMatchObject({ ok: false, reason: "DENIED" });
    expect(await open.admit("smp.example", 5223)).toEqual({ ok: true, address: "93.184.216.34", family: 4 });
    expect(await open.admit("nowhere.example", 5223)).toMatchObject({ ok: false, reason: "UNREACHABLE" });
    const listed = new DestinationPolicy(
      { smpBridgeAllow: parsePatterns("rebind.example:5223"), smpBridgeDeny: [], smpBridgePrivate: false },
      resolve,
    );
    expect((await listed.admit("rebind.example", 5223)).ok).toBe(true);
    expect(await listed.admit("rebind.example", 443)).toMatchObject({ ok: false, reason: "DENIED" });
    const deny = new DestinationPolicy(
      {
        smpBridgeAllow: parsePatterns("*.example"),
        smpBridgeDeny: parsePatterns("smp.example"),
        smpBridgePrivate: true,
      },
      resolve,
    );
    expect(await deny.admit("smp.example", 5223)).toMatchObject({ ok: false, reason: "DENIED" });
    expect(await deny.admit("example", 5223)).toMatchObject({ ok: false, reason: "DENIED" });
  });

  it("patterns: bad entries are configuration errors", () => {
    expect(parsePatterns("a.example, *.b.example:5223, [::1]:443")).toEqual([
      { host: "a.example" },
      { host: "*.b.example", port: 5223 },
      { host: "::1", port: 443 },
    ]);
    for (const bad of ["a*.example", "host:99999", "smp://x@y", "*"])
      expect(() => parsePatterns(bad), bad).toThrow();
  });

  it("server addresses parse exactly", () => {
    expect(parseSmpServerAddress(server.address)?.port).toBe(server.smp.port);
    expect(parseSmpServerAddress(server.address.replace(/:\d+$/, ""))?.port).toBe(5223);
  });
});

describe("the v7 hello's signed session key, as the page checks it", () => {
  it("verifies with the listener's real certificates; any flipped byte, a swapped certificate or another key fails", () => {
    const dir = mkdtempSync(join(tmpdir(), "loft-smp-certs-"));
    try {
      const creds = loadOrCreateCredentials(dir, "localhost");
      const other = loadOrCreateCredentials(join(dir, "other"), "localhost");
      const [online, ca] = creds.chainDer as [Uint8Array, Uint8Array];
      const session = x25519.getPublicKey(x25519.utils.randomSecretKey());
      const signed = signedPublicKey(encodeSpki({ alg: "x25519", raw: session }), creds.onlineKey);
      expect(verifiedSessionKey(online, ca, signed)).toEqual(session);
      for (const at of [0, 13, 30, signed.length - 1]) {
        const bad = signed.slice();
        bad[at]! ^= 1;
        expect(verifiedSessionKey(online, ca, bad), `byte ${at}`).toBeUndefined();
      }
      const badCert = online.slice();
      badCert[online.length - 10]! ^= 1;
      expect(verifiedSessionKey(badCert, ca, signed)).toBeUndefined();
      expect(verifiedSessionKey(online, other.chainDer[1]!, signed)).toBeUndefined();
      expect(verifiedSessionKey(other.chainDer[0]!, other.chainDer[1]!, signed)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
