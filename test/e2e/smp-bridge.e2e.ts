/**
 * The SMP bridge in real Chromium (docs/protocol/smp.md, "The bridge"; issue #14): a page — built
 * from the real core/smp modules (bench/page-bundle.ts; nothing mocked) — creates a queue on a
 * second Loft instance's SMP listener through the first instance's `/smp-bridge`; the spec-written
 * SMP client (test/smp/client.ts) sends to it over its own TLS connection, and the page receives.
 * Both instances are `npm start` child processes. Neither the frames the page exchanged with the
 * bridge, nor the bytes between the bridge and the listener (through a recording TCP relay), nor
 * the bridging instance's debug logs contain the message.
 */
import { rm } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPage, repoModule, servePage } from "../../bench/page-bundle.ts";
import { fromHex } from "../../core/bytes.ts";
import { cmd, SmpTestClient } from "../smp/client.ts";
import { loggedSmpAddress } from "../smp/logged-address.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const PAGE_SOURCE = `
import { connectSmpBridge } from ${repoModule("core/smp/bridge-link.ts")};
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const received = [];
let client, queue;
window.loftSmp = {
  async open(bridgeUrl, address) {
    const r = await connectSmpBridge(bridgeUrl, address, { webSocket: (u) => new WebSocket(u) });
    client = r.client;
    client.onPush((p) => {
      if (p.tag !== "MSG") return;
      received.push(new TextDecoder().decode(p.message.body));
      client.ack(queue, p.message.msgId).catch(() => {});
    });
    return { tls: r.tls, version: client.version };
  },
  async createQueue() {
    queue = await client.createQueue(true);
    return hex(queue.sndId);
  },
  received: () => received.slice(),
  async error(bridgeUrl, address) {
    try {
      const r = await connectSmpBridge(bridgeUrl, address, { webSocket: (u) => new WebSocket(u) });
      r.client.close();
      return "connected";
    } catch (e) {
      return e.detail?.bridgeError ?? e.code;
    }
  },
};
`;

const outDir = join(tmpdir(), `loft-e2e-smp-bridge-${process.pid}`);
const dataDirs = [
  join(tmpdir(), `loft-e2e-smp-a-${process.pid}`),
  join(tmpdir(), `loft-e2e-smp-b-${process.pid}`),
];
let browser: Browser;
let site: { url: string; close: () => void };
let bridging: LoftProcess;
let listening: LoftProcess;
let tap: Server;
const tapped: Buffer[] = [];
let smpAddress: string;
/** The listener's address with the recording TCP relay's port: what the page asks the bridge for. */
let tappedAddress: string;

beforeAll(async () => {
  await buildPage(PAGE_SOURCE, outDir);
  site = await servePage(outDir);
  browser = await launchChromium();
  listening = await startLoft({
    args: [
      "--serve-static",
      "false",
      "--relay-data-dir",
      dataDirs[1]!,
      "--smp-port",
      "0",
      "--smp-host",
      "127.0.0.1",
      "--smp-address-host",
      "localhost",
    ],
  });
  smpAddress = await loggedSmpAddress(listening);
  const smpPort = Number(smpAddress.split(":").at(-1));
  // Bytes between the bridge and the listener, both ways.
  tap = createServer((inbound) => {
    const outbound = createConnection(smpPort, "127.0.0.1");
    inbound.on("data", (d: Buffer) => tapped.push(d));
    outbound.on("data", (d: Buffer) => tapped.push(d));
    inbound.pipe(outbound).pipe(inbound);
    inbound.on("error", () => outbound.destroy());
    outbound.on("error", () => inbound.destroy());
  });
  await new Promise<void>((resolve) => tap.listen(0, "127.0.0.1", resolve));
  const tapPort = (tap.address() as { port: number }).port;
  tappedAddress = smpAddress.replace(/:\d+$/, `:${tapPort}`);
  bridging = await startLoft({
    args: [
      "--serve-static",
      "false",
      "--relay-data-dir",
      dataDirs[0]!,
      "--allowed-origins",
      site.url,
      // Loopback is refused unless listed by name: only the tapped listener is.
      "--smp-bridge-allow",
      `localhost:${tapPort}`,
    ],
    env: { LOG_LEVEL: "debug" },
  });
});

afterAll(() =>
  tearDown(
    () => closeBrowser(browser),
    () => site?.close(),
    () => tap?.close(),
    () => bridging?.stop(),
    () => listening?.stop(),
    ...[outDir, ...dataDirs].map((d) => () => rm(d, { recursive: true, force: true })),
  ),
);

type SmpPage = {
  open(u: string, a: string): Promise<{ tls: string; version: number }>;
  createQueue(): Promise<string>;
  received(): string[];
  error(u: string, a: string): Promise<string>;
};

describe("SMP bridge from a browser", () => {
  it("a page creates a queue on another instance's SMP listener through its relay's bridge and receives what an SMP client sends; no plaintext in the bridge's traffic or logs", async () => {
    const page = await browser.newPage();
    const frames: Buffer[] = [];
    page.on("websocket", (ws) => {
      ws.on("framereceived", (f) => frames.push(Buffer.from(f.payload)));
      ws.on("framesent", (f) => frames.push(Buffer.from(f.payload)));
    });
    await page.goto(site.url);
    await page.waitForFunction(() => "loftSmp" in window);
    const bridgeUrl = `${bridging.url.replace(/^http/, "ws")}/smp-bridge`;
    const smp = () => page.evaluate.bind(page);
    const call = <T>(fn: keyof SmpPage, ...args: unknown[]) =>
      smp()(
        ([f, a]) =>
          (window as unknown as { loftSmp: Record<string, (...x: unknown[]) => unknown> }).loftSmp[
            f as string
          ]!(...(a as unknown[])),
        [fn, args] as const,
      ) as Promise<T>;

    // The operator's policy and the address check, as the page sees them.
    expect(await call<string>("error", bridgeUrl, smpAddress)).toBe("DENIED");
    const wrong = tappedAddress.replace(/smp:\/\/[^@]+@/, `smp://${"A".repeat(43)}=@`);
    expect(await call<string>("error", bridgeUrl, wrong)).toBe("FINGERPRINT");

    const opened = await call<{ tls: string; version: number }>("open", bridgeUrl, tappedAddress);
    expect(opened).toEqual({ tls: "TLSv1.3", version: 7 });
    const sndId = fromHex(await call<string>("createQueue"));

    const words = "the relay in the middle never reads this";
    const sender = await SmpTestClient.connect(smpAddress, { connectHost: "127.0.0.1" });
    try {
      expect((await sender.command(sndId, cmd.send(new TextEncoder().encode(words)))).tag).toBe("OK");
      await expect.poll(() => call<string[]>("received")).toEqual([words]);
    } finally {
      sender.close();
    }
    const needle = Buffer.from(words);
    expect(frames.length).toBeGreaterThan(3);
    for (const f of frames) expect(f.includes(needle)).toBe(false);
    expect(tapped.length).toBeGreaterThan(0);
    expect(Buffer.concat(tapped).includes(needle)).toBe(false);
    // The relay's log reaches us through a pipe: wait for its line rather than read it once.
    await expect.poll(() => bridging.output()).toContain("smp bridge");
    const logs = bridging.output();
    expect(logs).not.toContain(words);
    expect(logs).not.toMatch(/127\.0\.0\.1|localhost:\d/);
    await page.close();
  });
});
