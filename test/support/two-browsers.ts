/**
 * The setup most browser tests share: the real server (with its own relay data folder), one
 * Chromium, and two browser contexts — Alice's and Bob's — each with one page whose console lines
 * are collected (timestamped) for assertions and, with LOFT_E2E_LOGS=1, printed at the end. A
 * failing test prints them by itself, with the server's output (test/support/failure-logs.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { launchChromium } from "./browser.ts";
import { showOnFailure, tailSince } from "./failure-logs.ts";
import { type LoftProcess, startLoft } from "./loft-process.ts";
import { closeBrowser, tearDown } from "./teardown.ts";

export interface TwoBrowsers {
  loft: LoftProcess;
  browser: Browser;
  alice: BrowserContext;
  bob: BrowserContext;
  a: Page;
  b: Page;
  /** Console lines of every watched page, `"<seconds> <name>: <text>"`. */
  logs: string[];
  /** The relay's data folder (removed by close()). */
  dataDir: string;
  /** Collect a further page's console lines under `name`. */
  watch(name: string, page: Page): void;
  /**
   * Print logs when LOFT_E2E_LOGS is set, close Chromium, stop the server (saying so when it did
   * not stop gracefully), remove the data.
   */
  close(extraLog?: string): Promise<void>;
}

export interface TwoBrowsersOptions {
  /** A script run in every page of both contexts before the app (Playwright addInitScript). */
  initScript?: string;
  /** More server flags. */
  loftArgs?: string[];
  /** More server environment variables (secrets, which a flag would show in `ps`). */
  loftEnv?: Record<string, string>;
  /** More Chromium flags, given the started server (its port). */
  chromiumArgs?: (loft: LoftProcess) => string[];
}

export async function startTwoBrowsers(options: TwoBrowsersOptions = {}): Promise<TwoBrowsers> {
  const dataDir = mkdtempSync(join(tmpdir(), "loft-e2e-"));
  const loft = await startLoft({
    args: ["--relay-data-dir", dataDir, ...(options.loftArgs ?? [])],
    ...(options.loftEnv ? { env: options.loftEnv } : {}),
  });
  const browser = await launchChromium(options.chromiumArgs?.(loft));
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  if (options.initScript) {
    await alice.addInitScript(options.initScript);
    await bob.addInitScript(options.initScript);
  }
  const logs: string[] = [];
  // What a failure report shows: the console lines, and between them what the page's own console
  // does not say — its WebSockets opening and closing, uncaught errors, a crashed renderer.
  const timeline: string[] = [];
  const watched = new Map<string, Page>();
  const watch = (name: string, page: Page) => {
    watched.set(name, page);
    const at = () => (performance.now() / 1000).toFixed(2);
    page.on("console", (m) => {
      const line = `${at()} ${name}: ${m.text()}`;
      logs.push(line);
      timeline.push(line);
    });
    const event = (text: string) => timeline.push(`${at()} ${name}: (page) ${text}`);
    page.on("pageerror", (e) => event(`uncaught ${e.name}: ${e.message}`));
    page.on("crash", () => event("the renderer crashed"));
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) event(`at ${f.url()}`);
    });
    page.on("websocket", (ws) => {
      event(`WebSocket ${ws.url()} opening`);
      ws.on("socketerror", (e) => event(`WebSocket ${ws.url()} error: ${e}`));
      ws.on("close", () => event(`WebSocket ${ws.url()} closed`));
    });
  };
  const stopShowing = [
    showOnFailure({
      name: "pages' console and WebSockets (seconds of the test process)",
      lines: () => timeline,
      snapshot: () => Promise.all([...watched].map(([name, page]) => pageState(name, page))),
    }),
    showOnFailure({
      name: `server ${loft.url}, stdout/stderr`,
      lines: () => loft.output().split("\n"),
      snapshot: () => serverState(loft),
    }),
  ];
  const a = await alice.newPage();
  const b = await bob.newPage();
  watch("alice", a);
  watch("bob", b);
  return {
    loft,
    browser,
    alice,
    bob,
    a,
    b,
    logs,
    dataDir,
    watch,
    async close(extraLog) {
      if (process.env.LOFT_E2E_LOGS) console.log(`${logs.join("\n")}${extraLog ? `\n${extraLog}` : ""}`);
      for (const stop of stopShowing) stop();
      // Every step tried in order even when one before it threw or hung (test/support/teardown.ts).
      await tearDown(
        () => closeBrowser(browser),
        async () => {
          const code = await loft.stop();
          // A graceful stop exits 0 (host/host.ts closeOnSignals). Anything else — its own stop
          // bound ran out (exit 1, with what was pending), or it ignored SIGTERM and got SIGKILL (a
          // blocked event loop) — says the server was not well during the tests, passing or not.
          if (code !== 0) {
            const how = code === null ? `signal ${loft.child.signalCode}` : `exit code ${code}`;
            const tail = tailSince(loft.output().split("\n"), 0, 40).join("\n");
            console.log(`server ${loft.url} did not stop gracefully (${how}); its last lines:\n${tail}`);
          }
        },
        () => rmSync(dataDir, { recursive: true, force: true }),
      );
    },
  };
}

/** Bounded: a page that hangs must not hang the failure report too. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

/**
 * A watched page at the failure: its address; whether it is in front (visible, focused), may
 * notify and has its Service Worker (a call's notification needs all three); what it shows of its
 * peers (the chat's presence, the room members' states); the engine problem Home shows (offline stand-in, another tab); the
 * Web Locks of its origin as the page sees them (the engine's lock, web/src/app/model.ts
 * `#takeEngineLock`); and the host addresses a new RTCPeerConnection gathers now — none means
 * Chromium sees no network for the direct path (the test address, test/support/test-network.ts).
 */
async function pageState(name: string, page: Page): Promise<string> {
  if (page.isClosed()) return `${name}: closed`;
  try {
    const state = await within(
      8_000,
      page.evaluate(async () => {
        const text = (id: string) => document.querySelector(`[data-testid=${id}]`)?.textContent ?? undefined;
        const states = (id: string, attr: string) =>
          [...document.querySelectorAll(`[data-testid=${id}]`)].map((e) => e.getAttribute(attr)).join(",");
        const locks = navigator.locks ? await navigator.locks.query() : undefined;
        const names = (list: LockInfo[] | undefined) => (list ?? []).map((l) => l.name).join(", ") || "none";
        const pc = new RTCPeerConnection();
        const hosts = new Set<string>();
        try {
          pc.createDataChannel("probe");
          const gathered = new Promise<void>((resolve) => {
            pc.onicecandidate = (e) => {
              if (!e.candidate) return resolve();
              if (e.candidate.type === "host") hosts.add(e.candidate.address ?? "?");
            };
            setTimeout(resolve, 3_000);
          });
          await pc.setLocalDescription(await pc.createOffer());
          await gathered;
        } finally {
          pc.close();
        }
        const sw = await navigator.serviceWorker?.getRegistration();
        // What the page shows and where it is in its history: a screen that never came (Home after
        // ← Back) reads here as the screen still shown, or none at all (a blank app, a load under way).
        const shown = [...document.querySelectorAll("main[data-testid]")].map((e) =>
          e.getAttribute("data-testid"),
        );
        return [
          `screen: ${shown.join(", ") || `none (${(document.body?.textContent ?? "").slice(0, 160).replace(/\s+/g, " ")})`}`,
          `history: ${history.length} entries, state ${JSON.stringify(history.state)}, ${document.readyState}, loaded ${Math.round(performance.now())} ms ago`,
          `${document.visibilityState}, ${document.hasFocus() ? "focused" : "not focused"}`,
          `notifications ${typeof Notification === "undefined" ? "unsupported" : Notification.permission}`,
          `service worker: ${sw ? (sw.active?.state ?? "none active") : "not registered"}`,
          `chat presence: ${text("chat-presence") ?? "(no chat open)"}`,
          `room members: ${states("room-member", "data-state") || "none shown"}`,
          `room call members connected: ${states("room-call-member", "data-connected") || "none shown"}`,
          `engine problem: ${text("engine-status") ?? "none shown"}`,
          `locks held: ${names(locks?.held)}; pending: ${names(locks?.pending)}`,
          `host candidates now: ${[...hosts].join(", ") || "none"}`,
        ].join("; ");
      }),
    );
    return `${name}: ${page.url()} — ${state}`;
  } catch (e) {
    return `${name}: ${page.url()} — (not readable: ${(e as Error).message})`;
  }
}

/**
 * Whether the server still runs, its detailed /health, and its signaling and relay samples that
 * are not zero (its /metrics): refusals, rate limits, closes by code and the relay's failovers say
 * whether the server turned pages away or was stuck.
 */
async function serverState(loft: LoftProcess): Promise<string[]> {
  const { child } = loft;
  if (child.exitCode !== null || child.signalCode !== null)
    return [`the server process has exited (code ${child.exitCode}, signal ${child.signalCode})`];
  if (!loft.metricsUrl) return [`the server process runs (pid ${child.pid}); no metrics listener`];
  // Each read bounded: a listener that does not answer is itself the finding (a blocked event loop).
  const read = (path: string) =>
    within(
      5_000,
      fetch(`${loft.metricsUrl}${path}`).then((r) => r.text()),
    ).catch((e: Error) => `(${path} did not answer: ${e.message})`);
  const [health, metrics] = await Promise.all([read("/health"), read("/metrics")]);
  return [
    `the server process runs (pid ${child.pid}); /health: ${health.trim()}`,
    ...metrics
      .split("\n")
      .filter((l) => /^loft_(signaling|relay)_/.test(l) && !/_bucket\{/.test(l) && !/ 0$/.test(l)),
  ];
}

/**
 * The setup for the tests of one `describe` (called in its body): started before the first test
 * (`started` then takes the parts it needs), closed after the last.
 */
export function twoBrowsersPerSuite(started: (env: TwoBrowsers) => void, options?: TwoBrowsersOptions): void {
  let env: TwoBrowsers | undefined;
  beforeAll(async () => {
    env = await startTwoBrowsers(options);
    started(env);
  });
  afterAll(async () => {
    await env?.close();
  });
}
