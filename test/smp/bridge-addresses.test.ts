/**
 * SMP addresses with several hosts and with a server password (docs/protocol/smp.md,
 * "Addresses"; SMP spec, "SMP server URI"; simplexmq rfcs/done/2022-11-11-smp-basic-auth.md),
 * against the real listener over TLS through the real bridge: hosts are tried in order (a refused
 * or denied host gives way to the next), the password goes into NEW and never to the bridge, and
 * a listener with `--smp-password` refuses NEW without it (`ERR AUTH`) while every other command
 * works as before.
 */
import { createServer } from "node:net";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromUtf8, utf8 } from "../../core/bytes.ts";
import { formatSmpServerAddress, parseSmpServerAddress, smpHosts } from "../../core/smp/address.ts";
import { decodeBridgeFrame, encodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import { connectSmpBridge } from "../../core/smp/bridge-link.ts";
import { SmpClientError, type SmpPush } from "../../core/smp/client.ts";
import { parsePatterns } from "../../smp/bridge/config.ts";
import { smpAddress } from "../../smp/server/certs.ts";
import { recordingWebSocket, startTestBridge, type TestBridge } from "./bridge-testing.ts";
import { cmd, SmpTestClient, text } from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

const PASSWORD = "s3cret-for-NEW";
let server: SmpTestServer;
let guarded: SmpTestServer;
let bridge: TestBridge;

beforeAll(async () => {
  server = await startSmpTestServer();
  guarded = await startSmpTestServer({}, { password: PASSWORD });
  bridge = await startTestBridge();
});

afterAll(async () => {
  await bridge?.close();
  await server?.close();
  await guarded?.close();
});

/** The address with other hosts (in this order) and the same fingerprint and port. */
function withHosts(address: string, hosts: string[], password?: string): string {
  const a = parseSmpServerAddress(address)!;
  return formatSmpServerAddress({
    fingerprint: a.fingerprint,
    host: hosts[0]!,
    hosts,
    port: a.port,
    ...(password ? { password } : {}),
  });
}

/** A port on 127.0.0.1 nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

async function outcome(url: string, address: string): Promise<string> {
  try {
    const { client } = await connectSmpBridge(url, address, {
      webSocket: recordingWebSocket().factory,
      connectTimeoutMs: 20_000,
    });
    await client.ping();
    client.close();
    return "connected";
  } catch (e) {
    if (!(e instanceof SmpClientError)) throw e;
    return e.detail?.bridgeError ?? e.code;
  }
}

describe("several hosts in one address", () => {
  it("are tried in order: a host that refuses the connection gives way to the next", async () => {
    // The listener binds 127.0.0.1 only: 127.0.0.2 (loopback too) refuses at once.
    expect(await outcome(bridge.url, withHosts(server.address, ["127.0.0.2", "localhost"]))).toBe(
      "connected",
    );
    expect(await outcome(bridge.url, withHosts(server.address, ["localhost", "127.0.0.2"]))).toBe(
      "connected",
    );
  });

  it("a host the operator denies gives way to the next; all refused or denied is the last reason", async () => {
    const port = parseSmpServerAddress(server.address)!.port;
    const denying = await startTestBridge({ smpBridgeDeny: parsePatterns("127.0.0.3") });
    try {
      expect(await outcome(denying.url, withHosts(server.address, ["127.0.0.3", "localhost"]))).toBe(
        "connected",
      );
      expect(await outcome(denying.url, withHosts(server.address, ["127.0.0.3"]))).toBe("DENIED");
      expect(await outcome(denying.url, withHosts(server.address, ["127.0.0.3", "127.0.0.2"]))).toBe(
        "UNREACHABLE",
      );
    } finally {
      await denying.close();
    }
    const nothing = await closedPort();
    const dead = server.address.replace(`:${port}`, `:${nothing}`);
    expect(await outcome(bridge.url, withHosts(dead, ["127.0.0.2", "127.0.0.1"]))).toBe("UNREACHABLE");
  });

  it("a wrong fingerprint on the first host that answers ends it (no other host is tried)", async () => {
    const other = parseSmpServerAddress(guarded.address)!;
    const mine = parseSmpServerAddress(server.address)!;
    // The guarded listener answers first with its own certificate: not this address's server.
    const mixed = formatSmpServerAddress({
      fingerprint: mine.fingerprint,
      host: "localhost",
      port: other.port,
    });
    expect(await outcome(bridge.url, mixed)).toBe("FINGERPRINT");
  });
});

describe("the listener's printed address", () => {
  it("brackets IPv6 hosts and lists several hosts in order (--smp-address-host a,b); it parses back", () => {
    const fp = new Uint8Array(32).fill(9);
    for (const [hosts, hostsBack] of [
      ["relay.example", ["relay.example"]],
      ["2001:db8::7", ["2001:db8::7"]],
      ["[2001:db8::7]", ["2001:db8::7"]],
      ["relay.example, 2001:db8::7,abc.onion", ["relay.example", "2001:db8::7", "abc.onion"]],
    ] as const) {
      const text = smpAddress(fp, hosts, 5223);
      const back = parseSmpServerAddress(text);
      expect(back && smpHosts(back), text).toEqual(hostsBack);
      expect(text.includes("[2001:db8::7]")).toBe(hosts.includes("2001"));
    }
  });
});

describe("a server password (SMP basic auth) for NEW", () => {
  it("goes into NEW, never to the bridge; a guarded listener refuses NEW without it and serves everything else", async () => {
    const rec = recordingWebSocket();
    const withPassword = withHosts(guarded.address, ["localhost"], PASSWORD);
    const { client } = await connectSmpBridge(bridge.url, withPassword, { webSocket: rec.factory });
    const q = await client.createQueue(true);
    const got: string[] = [];
    client.onPush((p: SmpPush) => {
      if (p.tag !== "MSG") return;
      got.push(fromUtf8(p.message.body));
      client.ack(q, p.message.msgId).catch(() => {});
    });
    // A sender needs no password: SEND on another connection without one.
    const { client: sender } = await connectSmpBridge(bridge.url, guarded.address, {
      webSocket: recordingWebSocket().factory,
    });
    await sender.send(q.sndId, utf8("through a guarded server"));
    await expect.poll(() => got, { timeout: 10_000 }).toEqual(["through a guarded server"]);
    // NEW without the password, or with another one: ERR AUTH.
    await expect(sender.createQueue(true)).rejects.toMatchObject({
      code: "SMP",
      detail: { smpError: { type: "AUTH" } },
    });
    const { client: wrong } = await connectSmpBridge(
      bridge.url,
      withHosts(guarded.address, ["localhost"], "not-it"),
      { webSocket: recordingWebSocket().factory },
    );
    await expect(wrong.createQueue(true)).rejects.toMatchObject({ detail: { smpError: { type: "AUTH" } } });
    // The OPEN frame named the server without its password.
    const open = rec.sent.map((b) => decodeBridgeFrame(b)).find((f) => f?.kind === "OPEN");
    expect(open?.kind === "OPEN" && open.address).toBe(guarded.address);
    for (const c of [client, sender, wrong]) c.close();
  });

  it("the spec-written client: NEW with `A` and the password creates, without it or with another is ERR AUTH", async () => {
    const c = await SmpTestClient.connect(guarded.address, { connectHost: "127.0.0.1" });
    try {
      const attempt = async (password?: string) => {
        const rcvAuth = ed25519.utils.randomSecretKey();
        const dh = x25519.getPublicKey(x25519.utils.randomSecretKey());
        const r = await c.command(
          new Uint8Array(0),
          cmd.new(ed25519.getPublicKey(rcvAuth), dh, false, "ed25519", password),
          { ed25519: rcvAuth },
        );
        return r.tag === "IDS" ? "IDS" : text(r);
      };
      expect(await attempt(PASSWORD)).toBe("IDS");
      expect(await attempt()).toBe("ERR AUTH");
      expect(await attempt("not-it")).toBe("ERR AUTH");
      expect(await attempt(`${PASSWORD}x`)).toBe("ERR AUTH");
    } finally {
      c.close();
    }
    // A listener without a password takes NEW with or without one.
    const open = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
    try {
      for (const password of [undefined, "anything"]) {
        const rcvAuth = ed25519.utils.randomSecretKey();
        const dh = x25519.getPublicKey(x25519.utils.randomSecretKey());
        const r = await open.command(
          new Uint8Array(0),
          cmd.new(ed25519.getPublicKey(rcvAuth), dh, false, "ed25519", password),
          { ed25519: rcvAuth },
        );
        expect(r.tag).toBe("IDS");
      }
    } finally {
      open.close();
    }
  });

  it("the bridge refuses an OPEN that carries a password (BAD_ADDRESS)", async () => {
    const { default: WebSocket } = await import("ws");
    const ws = new WebSocket(bridge.url);
    const frames: string[] = [];
    ws.on("message", (d: Buffer) => {
      const f = decodeBridgeFrame(new Uint8Array(d));
      if (f?.kind === "ERROR") frames.push(f.error);
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.send(encodeBridgeFrame({ kind: "OPEN", address: withHosts(server.address, ["localhost"], "pw") }));
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 10_000);
      ws.once("close", () => {
        clearTimeout(t);
        resolve();
      });
    });
    expect(frames).toEqual(["BAD_ADDRESS"]);
  });
});
