/**
 * bench:calls — one-to-one calls in real Chromium through the real server and the real app, inside
 * the test network namespace (`npm run bench:calls [-- --json] [-- --quick]`, which runs
 * `scripts/e2e.mjs --bench`). Chromium uses its fake camera and microphone.
 *
 *  (a) setup_ms: from the callee's click on "Accept with video" to the first decoded video frame
 *      on the callee's side — getUserMedia, the call's certificate, the answer sealed by the
 *      ratchet and sent through the chat session, trickled ICE, DTLS, the fingerprint check, the
 *      first frame. Median of several calls, measured in the callee's page with its own clock.
 *      Baseline: a bare RTCPeerConnection pair between the same two pages with the same fake
 *      devices and no Loft in between (offer and answer handed across by the bench itself, ICE
 *      gathered before the exchange), from the answering side's getUserMedia to its first frame.
 *  (b) cpu_call_cores: CPU of the whole browser (every process, CDP SystemInfo.getProcessInfo)
 *      while the two pages are in a Loft voice call, in cores, over the same window as the
 *      baseline: the same two pages in a bare voice RTCPeerConnection call; and, for scale, the
 *      two pages idle in their chat.
 *
 *  (c) `--room`: room voice calls (a full mesh, docs/protocol/calls.md §7). Six members in one
 *      room; CPU of the whole browser while 3, then 6 of them are in the room's call, per member
 *      in the call (÷ n), next to the baseline of the same six pages in the room with no call.
 *      This sets `ROOM_CALL_LIMIT` (web/src/engine/calls/room-call.ts).
 *
 * Figures: bench/README.md.
 */
import type { CDPSession, Locator, Page } from "playwright-core";
import { byId, createIdentity, introduce, openChat } from "../test/support/loft-ui.ts";
import { startTwoBrowsers } from "../test/support/two-browsers.ts";
import { log, median, QUICK, report } from "./harness.ts";

const RUNS = QUICK ? 2 : 5;
const CPU_WINDOW_MS = QUICK ? 3_000 : 10_000;

// tsx keeps function names with an \`__name\` helper that page.evaluate'd functions would call.
const RECORD_PCS = `(() => {
  globalThis.__name ??= (f) => f;
  const Orig = globalThis.RTCPeerConnection;
  if (!Orig) return;
  const pcs = [];
  globalThis.__loftPcs = pcs;
  globalThis.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args);
      this.__media = Boolean(args[0] && args[0].certificates);
      pcs.push(this);
    }
  };
})();`;

/** In the callee's page: click Accept, then wait for the first decoded frame; returns ms. */
function acceptAndTime(page: Page): Promise<number> {
  return page.evaluate(async () => {
    type Pc = RTCPeerConnection & { __media: boolean };
    const pcs = () =>
      ((globalThis as unknown as { __loftPcs: Pc[] }).__loftPcs ?? []).filter((p) => p.__media);
    const before = pcs().length;
    const button = document.querySelector<HTMLButtonElement>("[data-testid=call-accept-video]");
    if (!button) throw new Error("no Accept button");
    const t0 = performance.now();
    button.click();
    for (let i = 0; i < 6000; i++) {
      const pc = pcs()[before];
      if (pc) {
        let frames = 0;
        (await pc.getStats()).forEach((s: Record<string, unknown>) => {
          if (s.type === "inbound-rtp" && s.kind === "video") frames += Number(s.framesDecoded ?? 0);
        });
        if (frames > 0) return performance.now() - t0;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error("no decoded frame within 30 s");
  });
}

/** The bare baseline: two RTCPeerConnections, one per page, no Loft. Returns answerer ms. */
async function bareCall(a: Page, b: Page, video: boolean): Promise<number> {
  const offer = await a.evaluate(async (video) => {
    const g = globalThis as unknown as { __bare?: RTCPeerConnection; __bareStream?: MediaStream };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    g.__bare = pc;
    g.__bareStream = stream;
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((r) => {
      if (pc.iceGatheringState === "complete") r();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
    });
    return pc.localDescription?.sdp ?? "";
  }, video);
  const { answer, t0 } = await b.evaluate(
    async ({ offer, video }) => {
      const g = globalThis as unknown as {
        __bare?: RTCPeerConnection;
        __bareStream?: MediaStream;
        __t0?: number;
      };
      const t0 = performance.now();
      g.__t0 = t0;
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      g.__bare = pc;
      g.__bareStream = stream;
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      await pc.setLocalDescription(await pc.createAnswer());
      await new Promise<void>((r) => {
        if (pc.iceGatheringState === "complete") r();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
      });
      return { answer: pc.localDescription?.sdp ?? "", t0 };
    },
    { offer, video },
  );
  await a.evaluate(async (sdp) => {
    await (globalThis as unknown as { __bare: RTCPeerConnection }).__bare.setRemoteDescription({
      type: "answer",
      sdp,
    });
  }, answer);
  if (!video) return 0;
  return b.evaluate(async (t0) => {
    const pc = (globalThis as unknown as { __bare: RTCPeerConnection }).__bare;
    for (let i = 0; i < 6000; i++) {
      let frames = 0;
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += Number(s.framesDecoded ?? 0);
      });
      if (frames > 0) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error("no decoded frame within 30 s");
  }, t0);
}

async function hangUpBare(pages: Page[]): Promise<void> {
  for (const p of pages)
    await p.evaluate(() => {
      const g = globalThis as unknown as { __bare?: RTCPeerConnection; __bareStream?: MediaStream };
      g.__bare?.close();
      for (const t of g.__bareStream?.getTracks() ?? []) t.stop();
    });
}

/** Cores the whole browser used over `ms` (sum of every process's CPU time). */
async function browserCores(cdp: CDPSession, ms: number): Promise<number> {
  const total = async () => {
    const info = (await cdp.send("SystemInfo.getProcessInfo")) as { processInfo: { cpuTime: number }[] };
    return info.processInfo.reduce((s, p) => s + p.cpuTime, 0);
  };
  const c0 = await total();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return ((await total()) - c0) / ((performance.now() - t0) / 1000);
}

async function closeEnded(page: Page): Promise<void> {
  await byId(page, "call-ended").waitFor({ timeout: 45_000 });
  await byId(page, "call-close").click();
}

async function main(): Promise<void> {
  const env = await startTwoBrowsers({
    initScript: RECORD_PCS,
    chromiumArgs: () => ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  });
  try {
    const { a, b } = env;
    // Not startChatting: its waits are vitest polls, which need a test runner.
    const [aliceId, bobId] = await introduce(a, b, env.loft.url);
    await openChat(a, bobId);
    await openChat(b, aliceId);
    for (const page of [a, b])
      await page.waitForFunction(
        () => document.querySelector("[data-testid=chat-presence]")?.textContent?.startsWith("online"),
        undefined,
        { timeout: 60_000 },
      );
    const cdp = await env.browser.newBrowserCDPSession();

    const loft: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await byId(a, "call-video").click();
      await byId(b, "call-accept-video").waitFor({ timeout: 45_000 });
      loft.push(await acceptAndTime(b));
      await byId(a, "call-hangup").click();
      await closeEnded(a);
      await closeEnded(b);
      bare.push(await bareCall(a, b, true));
      await hangUpBare([a, b]);
      log(
        `setup run ${i + 1}/${RUNS}: loft ${loft.at(-1)?.toFixed(0)} ms, bare ${bare.at(-1)?.toFixed(0)} ms`,
      );
    }

    const idle = await browserCores(cdp, CPU_WINDOW_MS);
    await byId(a, "call-voice").click();
    await byId(b, "call-accept").click({ timeout: 45_000 });
    await byId(a, "call-screen").and(a.locator("[data-phase=active]")).waitFor({ timeout: 45_000 });
    const inCall = await browserCores(cdp, CPU_WINDOW_MS);
    await byId(a, "call-hangup").click();
    await closeEnded(a);
    await closeEnded(b);
    await bareCall(a, b, false);
    await b.waitForFunction(
      () => (globalThis as unknown as { __bare?: RTCPeerConnection }).__bare?.connectionState === "connected",
      undefined,
      { timeout: 45_000 },
    );
    const bareCpu = await browserCores(cdp, CPU_WINDOW_MS);
    await hangUpBare([a, b]);

    const setup = median(loft);
    const baseSetup = median(bare);
    report(
      "bench:calls — one-to-one calls, two Chromium pages, fake camera and microphone",
      [
        {
          name: "setup: Accept → first decoded frame",
          value: setup,
          unit: "ms",
          baseline: { name: "bare RTCPeerConnection pair", value: baseSetup },
        },
        {
          name: "CPU during a voice call (whole browser)",
          value: inCall,
          unit: "cores",
          baseline: { name: "bare RTCPeerConnection voice call", value: bareCpu },
        },
        { name: "CPU with both chats open, no call", value: idle, unit: "cores" },
      ],
      {
        setup_ms: setup,
        setup_runs_ms: loft,
        bare_setup_ms: baseSetup,
        bare_setup_runs_ms: bare,
        setup_vs_bare: setup / baseSetup,
        cpu_call_cores: inCall,
        cpu_bare_call_cores: bareCpu,
        cpu_call_vs_bare: inCall / bareCpu,
        cpu_idle_cores: idle,
      },
    );
  } finally {
    await env.close();
  }
}

/** Wait until `items` has at least `n` elements (60 s at most, then `what` as the error). */
async function atLeast(items: Locator, n: number, what: string): Promise<void> {
  await items
    .nth(n - 1)
    .waitFor({ state: "attached", timeout: 60_000 })
    .catch(() => {
      throw new Error(what);
    });
}

/** (c) Room voice calls: a 3- and a 6-member mesh against the same pages idle in the room. */
async function roomMain(): Promise<void> {
  const env = await startTwoBrowsers({
    initScript: RECORD_PCS,
    chromiumArgs: () => ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  });
  try {
    const names = ["Ann", "Bea", "Cat", "Dan", "Eve", "Fay"];
    const pages: Page[] = [env.a, env.b];
    for (let i = 2; i < names.length; i++) {
      const ctx = await env.browser.newContext();
      await ctx.addInitScript(RECORD_PCS);
      pages.push(await ctx.newPage());
    }
    for (const [i, p] of pages.entries()) await createIdentity(p, env.loft.url, names[i] ?? "X");
    const [host, ...rest] = pages;
    if (!host) throw new Error("no pages");
    await byId(host, "nav-new-room").click();
    const link = await byId(host, "room-link").inputValue({ timeout: 60_000 });
    await byId(host, "open-room").click();
    for (const p of rest) await p.goto(link);
    for (const p of pages)
      await atLeast(
        p.locator("[data-testid=room-member][data-state=online]"),
        pages.length - 1,
        "the room's members did not all connect within 60 s",
      );
    log("six members connected in the room");
    const cdp = await env.browser.newBrowserCDPSession();
    const idle = await browserCores(cdp, CPU_WINDOW_MS);

    const mesh = async (n: number): Promise<number> => {
      const inCall = pages.slice(0, n);
      for (const p of inCall) await byId(p, "room-call-join").click();
      for (const p of inCall)
        await atLeast(
          p.locator("[data-testid=room-call-member][data-connected=true]"),
          n - 1,
          `the ${n}-member mesh did not connect within 60 s`,
        );
      const cores = await browserCores(cdp, CPU_WINDOW_MS);
      for (const p of inCall) await byId(p, "room-call-leave").click();
      log(`${n}-member mesh: ${cores.toFixed(2)} cores (idle ${idle.toFixed(2)})`);
      return cores;
    };
    const three = await mesh(3);
    const six = await mesh(6);
    report(
      "bench:calls --room — room voice calls (full mesh), six Chromium pages in one room, fake microphones",
      [
        {
          name: "CPU, 3-member mesh voice call (whole browser)",
          value: three,
          unit: "cores",
          baseline: { name: "the six pages in the room, no call", value: idle },
        },
        {
          name: "CPU, 6-member mesh voice call (whole browser)",
          value: six,
          unit: "cores",
          baseline: { name: "the six pages in the room, no call", value: idle },
        },
        { name: "CPU per member in a 3-member call, above idle", value: (three - idle) / 3, unit: "cores" },
        { name: "CPU per member in a 6-member call, above idle", value: (six - idle) / 6, unit: "cores" },
      ],
      {
        cpu_room_idle_cores: idle,
        cpu_mesh3_cores: three,
        cpu_mesh6_cores: six,
        cpu_mesh3_per_member_cores: (three - idle) / 3,
        cpu_mesh6_per_member_cores: (six - idle) / 6,
        cpu_mesh6_vs_mesh3: (six - idle) / Math.max(three - idle, 1e-6),
      },
    );
  } finally {
    await env.close();
  }
}

await (process.argv.includes("--room") ? roomMain() : main());
