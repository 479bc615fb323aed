/**
 * The headless peer (`loft`, cli/) with a real browser contact, through the real server
 * (`npm run build` first; `node scripts/e2e.mjs test/e2e/cli.e2e.ts`). Each `loft` command is a
 * real process (`tsx cli/main.ts`) with its sealed identity and state files:
 * - `loft id`, `loft accept <Alice's link>`, `loft link` (Alice adds it in the app): contacts both
 *   ways; `loft listen --json` prints Alice's message as a JSON line and Alice sees it delivered,
 *   the chat live through the relay (a Node peer has no direct path; Alice's direct offers are
 *   answered `no-direct` at once, never left to her fallback timer); `loft send` while `listen` runs is handed to it (cli/duplex.ts)
 *   and reaches Alice, and a `loft send` on its own reaches her too;
 * - `npx loft expose http://127.0.0.1:PORT --to Alice` (as the user guide writes it) serves a
 *   test HTTP server to Alice: she opens `/peer/<the CLI's id>/index.html` in a tab — it renders,
 *   its script fetches JSON, a file and a 1.5 MiB POSTed body (streamed by the Service Worker,
 *   which once refused more than 1 MiB) come back byte for byte, as does a body the page streams
 *   with a pause longer than the requester's head bound between two pieces (one that stops handing
 *   pieces over is told "Request cancelled" with the reason) — and the CLI prints
 *   each request for its owner; a path the service never answers shows "No answer in time" with the
 *   requester's own reason (its head timeout, set short here: `PROXY_HEAD_TIMEOUT_MS`), not the
 *   Service Worker's bound; none of the service is readable in Alice's WebSocket traffic with the
 *   servers or in the relay's store.
 *
 * The app is opened as `loft.example.com:<port>` with its content origin `peer.loft.example.com`
 * (as in proxy.e2e.ts); the CLI reaches the same names with LOFT_RESOLVE (cli/resolve.ts).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { useEngineTimings } from "../support/engine-timings.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addByLink,
  createIdentity,
  incoming,
  myLink,
  openChat,
  sendText,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { expectNoneOf, readTree, recordWebSockets } from "../support/server-traffic.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const APP_HOST = "loft.example.com";
const PASS = "seven unrelated words make a passphrase";
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/**
 * Alice's proxy requests wait this long for a response head (web/src/page-timings.ts
 * `proxyHeadTimeoutMs`; 30 s by default), so the never-answered request ends in seconds rather than
 * after the Service Worker's 35 s would — and its page must then name the requester's reason.
 * Long enough for every answered request of the test, on a loaded machine, to get its head: the
 * 1.5 MiB echo gets it only once its whole body went up through the relay (3–4 s at load 10–18 on
 * 2 cores, session 22), but its wait starts afresh at each CREDIT, at each piece the page hands
 * over and at its END, and is stopped while the page's next piece is awaited (core/proxy/client.ts
 * `#awaitHead`): only the serving side's gaps between them and the origin's answer count.
 */
const PROXY_HEAD_TIMEOUT_MS = 10_000;
/**
 * How long a streamed POST's page pauses between its two pieces: past the requester's head bound
 * (so before session 23 it ended "No answer in time"), short of the Service Worker's 35 s and the
 * window's bound without a message from the worker (PROXY_IDLE_MS below).
 */
const PAUSE_MS = 1.5 * PROXY_HEAD_TIMEOUT_MS;
/**
 * How long the window carrying a request lets the Service Worker go silent (web/src/page-timings.ts
 * `PROXY_IDLE_MS`, 120 s by default): past PAUSE_MS with a margin for a loaded machine's
 * messages, so the paused POST is never the one ended, while a POST whose page stops handing its
 * body over is ended — and its page told — inside the test.
 */
const PROXY_IDLE_MS = 2.5 * PROXY_HEAD_TIMEOUT_MS;

/** A `loft` process that keeps running (listen, expose): its output lines as they come. */
interface Running {
  child: ChildProcess;
  how: "node" | "npx";
  lines: string[];
  err: string[];
  exited: Promise<number | null>;
}

/**
 * The `loft` process of `r`: the child itself, or under `npx` the innermost process whose command
 * line names `identity` (npm → sh → npm exec tsx → sh → tsx → node running the package's `loft`
 * bin link). It is the one stopped: npm passes a signal on but then exits by it, which would hide
 * loft's own exit status; stopped from inside, loft's status comes back up the chain.
 */
async function loftPid(r: Running, identity: string): Promise<number> {
  const root = r.child.pid!;
  if (r.how === "node") return root;
  const parentOf = new Map<number, number>();
  const cmdOf = new Map<number, string>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      cmdOf.set(Number(name), (await readFile(`/proc/${name}/cmdline`, "utf8")).replace(/\0/g, " "));
    } catch {
      // Ended while being read: not ours to stop.
    }
  }
  const depthUnderRoot = (pid: number): number => {
    let depth = 0;
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parentOf.get(p), depth++)
      if (p === root) return depth;
    return -1;
  };
  const ours = [...cmdOf]
    .filter(([pid, cmd]) => cmd.includes(identity) && depthUnderRoot(pid) > 0)
    .sort(([a], [b]) => depthUnderRoot(b) - depthUnderRoot(a));
  if (!ours[0]) throw new Error("no loft process under npx");
  return ours[0][0];
}

describe("loft, the headless peer, with a browser contact", () => {
  let loft: LoftProcess;
  let dataDir: string;
  let cliDir: string;
  let browser: Browser;
  let context: BrowserContext;
  let a: Page;
  let app: string;
  let content: string;
  let origin: Server;
  let cliId: string;
  let aliceId: string;
  const big = randomBytes(256 * 1024);
  /** Responses the origin holds unanswered (`/slow`), ended once the test has seen the timeout. */
  const held: ServerResponse[] = [];
  const running: Running[] = [];
  /** Alice's console: her engine's log lines (web/src/engine/config.ts `log`). */
  const aliceLog: string[] = [];

  const env = () => ({
    PATH: process.env.PATH ?? "",
    LOFT_PASSPHRASE: PASS,
    LOFT_RESOLVE: `${APP_HOST}=127.0.0.1`,
  });
  const args = (list: string[], identity = "bot.json") => [
    "--import",
    "tsx",
    "cli/main.ts",
    ...list,
    "--identity",
    join(cliDir, identity),
  ];
  /** One command to its end (with the identity file `identity` in the CLI's folder). */
  const run = (list: string[], identity?: string) =>
    new Promise<{ code: number; out: string; err: string }>((resolve) => {
      execFile(process.execPath, args(list, identity), { cwd: ROOT, env: env() }, (e, out, err) =>
        resolve({ code: e ? (e.code as number) : 0, out, err }),
      );
    });
  /**
   * A long-running command; resolves once it says on stderr that it is up (`ready`). With `npx`,
   * run as the user guide writes it — `npx loft …` in the checkout, which npm resolves to
   * package.json's `bin` (cli/main.ts) — offline, so npm never asks a registry for a "loft".
   */
  const start = async (list: string[], ready: RegExp, how: "node" | "npx" = "node"): Promise<Running> => {
    const child =
      how === "npx"
        ? spawn("npx", ["loft", ...args(list).slice(3)], {
            cwd: ROOT,
            env: { ...env(), HOME: process.env.HOME ?? tmpdir(), npm_config_offline: "true" },
          })
        : spawn(process.execPath, args(list), { cwd: ROOT, env: env() });
    const r: Running = {
      child,
      how,
      lines: [],
      err: [],
      exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
    };
    let buffered = "";
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      r.lines.push(...parts);
    });
    child.stderr.on("data", (d: Buffer) => r.err.push(d.toString()));
    running.push(r);
    await expect.poll(() => r.err.join("") + (child.exitCode ?? ""), { timeout: 60_000 }).toMatch(ready);
    return r;
  };
  const stop = async (r: Running) => {
    process.kill(await loftPid(r, join(cliDir, "bot.json")), "SIGTERM");
    const code = await r.exited;
    running.splice(running.indexOf(r), 1);
    return code;
  };
  const jsonLines = (r: Running) => r.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "loft-e2e-cli-"));
    cliDir = await mkdtemp(join(tmpdir(), "loft-e2e-cli-id-"));
    loft = await startLoft({ args: ["--relay-data-dir", dataDir] });
    app = `http://${APP_HOST}:${loft.port}`;
    content = `http://peer.${APP_HOST}:${loft.port}`;
    browser = await launchChromium([
      "--host-resolver-rules=MAP *.example.com 127.0.0.1",
      `--unsafely-treat-insecure-origin-as-secure=${app},${content}`,
    ]);
    context = await browser.newContext();
    await useEngineTimings(context, {
      proxyHeadTimeoutMs: PROXY_HEAD_TIMEOUT_MS,
      proxyIdleMs: PROXY_IDLE_MS,
    });
    a = await context.newPage();
    a.on("console", (m) => aliceLog.push(m.text()));
    // The service `loft expose` makes reachable: a page whose script fetches JSON, a large file, an echo.
    origin = createServer((req, res) => {
      if (req.url === "/index.html") {
        res.setHeader("content-type", "text/html; charset=utf-8");
        res.end(
          `<!doctype html><title>Bot's service</title><p id="data">loading</p><script src="app.js"></script>`,
        );
      } else if (req.url === "/app.js") {
        res.setHeader("content-type", "text/javascript");
        res.end(
          `fetch("data.json").then((r) => r.json()).then((j) => { document.getElementById("data").textContent = j.says; });`,
        );
      } else if (req.url === "/data.json") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ says: "served by loft expose" }));
      } else if (req.url === "/big.bin") {
        res.setHeader("content-type", "application/octet-stream");
        res.end(big);
      } else if (req.url === "/slow") {
        held.push(res);
      } else if ((req.url === "/echo" || req.url === "/stalled") && req.method === "POST") {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          res.setHeader("content-type", "application/octet-stream");
          res.end(Buffer.concat(chunks));
        });
      } else {
        res.statusCode = 404;
        res.end("not here");
      }
    });
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  });
  afterAll(() =>
    tearDown(
      // The CLI processes first: like Chromium, they are clients of the server.
      async () => {
        for (const r of running.splice(0)) {
          const inner = await loftPid(r, join(cliDir, "bot.json")).catch(() => undefined);
          if (inner !== undefined) process.kill(inner, "SIGKILL");
          r.child.kill("SIGKILL");
          await r.exited;
        }
      },
      () => closeBrowser(browser),
      () => loft?.stop(),
      // Not started when the set-up failed before it: a close of nothing would never call back.
      origin ? () => new Promise((resolve) => origin.close(resolve)) : undefined,
      dataDir ? () => rm(dataDir, { recursive: true, force: true }) : undefined,
      cliDir ? () => rm(cliDir, { recursive: true, force: true }) : undefined,
    ),
  );

  it("loft accept / link / listen --json / send, with Alice in the browser", async () => {
    // Alice in the browser and the bot's identity are made at the same time.
    const [, made] = await Promise.all([
      createIdentity(a, app, "Alice"),
      run(["id", "--name", "cli-bot", "--server", app]),
    ]);
    expect(made.code, made.err).toBe(0);
    cliId = made.out.split(/\s+/)[0]!;
    expect(cliId).toMatch(/^[0-9a-f]{64}$/);
    const aliceLink = await myLink(a, true);

    const accepted = await run(["accept", aliceLink]);
    expect(accepted.code, accepted.err).toBe(0);
    aliceId = accepted.out.split(/\s+/)[1]!;
    // The link waits for the relay's contact address (no warning on stderr): up to 60 s on a loaded machine.
    const link = await run(["link", "--timeout", "60"]);
    expect(link.err).toBe("");
    expect(link.code, link.err).toBe(0);
    expect(await addByLink(a, link.out.trim())).toBe(cliId);

    const listen = await start(["listen", "--json"], /listening as/);
    await openChat(a, cliId);
    await sendText(a, "hello from the browser");
    await expect
      .poll(() => jsonLines(listen).find((l) => l.type === "message"), { timeout: 60_000 })
      .toMatchObject({ type: "message", from: aliceId, name: "Alice", text: "hello from the browser" });
    await waitForState(a, "hello from the browser", "delivered");
    // Live through the relay: a Node peer has no WebRTC.
    await waitForPresence(a, /^online/);
    // While listen holds the identity, `loft send` hands its message to it (cli/duplex.ts).
    const handed = await run(["send", "Alice", "handed to the listener", "--json"]);
    expect(handed.code, handed.err).toBe(0);
    expect(JSON.parse(handed.out.trim())).toMatchObject({ type: "sent", to: aliceId });
    await incoming(a, "handed to the listener").waitFor({ timeout: 60_000 });
    expect(await stop(listen)).toBe(0);

    const sent = await run(["send", "Alice", "hello from the command line", "--json"]);
    expect(sent.code, sent.err).toBe(0);
    expect(JSON.parse(sent.out.trim())).toMatchObject({ type: "sent", to: aliceId });
    await incoming(a, "hello from the command line").waitFor({ timeout: 60_000 });
  });

  it("loft expose serves a local HTTP service to Alice at /peer/<its id>/", async () => {
    const port = (origin.address() as AddressInfo).port;
    // What Alice's page exchanges with signaling and the relay from here on (CDP, as Chromium sees it).
    const traffic = await recordWebSockets([a]);
    const expose = await start(
      ["expose", `http://127.0.0.1:${port}`, "--to", "Alice", "--json"],
      /exposing/,
      "npx",
    );
    await openChat(a, cliId);
    await waitForPresence(a, /^online/);
    await a.waitForFunction(() => document.documentElement.dataset.contentOrigin === "ready");

    const site = await context.newPage();
    await site.goto(`${content}/peer/${cliId}/index.html`);
    await site.locator("#data", { hasText: "served by loft expose" }).waitFor({ timeout: 60_000 });
    expect(await site.title()).toBe("Bot's service");
    // A service that never answers, asked now in a tab of its own: the requester's head timeout
    // (PROXY_HEAD_TIMEOUT_MS) runs while the checks below do, instead of after them.
    const waiting = await context.newPage();
    const slowNavigation = waiting.goto(`${content}/peer/${cliId}/slow`, { timeout: 90_000 });
    // Awaited at the end; a failure before then must not count as unhandled.
    slowNavigation.catch(() => undefined);
    // A body the page makes as it goes (the user typing, recording): a piece, a pause longer than
    // the requester's head bound, then the rest. The wait for the answer is stopped while the page's
    // next piece is awaited (docs/protocol/proxy.md §Streams, "The head wait"): it is echoed whole,
    // not ended "No answer in time" (before session 23 it was, a bound after the first piece's
    // CREDIT). Run beside the checks below, as the slow navigation is.
    const paused = site.evaluate(async (pauseMs) => {
      const pieces = ["typed, ", "then more"].map((t) => new TextEncoder().encode(t));
      let step = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (step === 1) await new Promise((r) => setTimeout(r, pauseMs));
          const piece = pieces[step++];
          if (piece) c.enqueue(piece);
          else c.close();
        },
      });
      const res = await fetch("echo", { method: "POST", body, duplex: "half" } as RequestInit);
      return { status: res.status, text: await res.text() };
    }, PAUSE_MS);
    paused.catch(() => undefined);
    // A page that hands one piece over and then nothing, never ending its body: the window ends it
    // after PROXY_IDLE_MS without a message from the worker and tells the page why — before, the
    // worker's wait for the head stayed stopped on the page and its fetch never settled.
    const stalled = site.evaluate(async () => {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode("one piece, then nothing"));
        },
      });
      const res = await fetch("stalled", { method: "POST", body, duplex: "half" } as RequestInit);
      return { status: res.status, error: res.headers.get("x-loft-proxy-error"), text: await res.text() };
    });
    stalled.catch(() => undefined);
    // 1.5 MiB: over the 1 MiB the Service Worker once read whole; streamed now.
    const postedSize = 1.5 * 1024 * 1024;
    const posted = Uint8Array.from({ length: postedSize }, (_, i) => (i * 31 + 7) & 0xff);
    const got = await site.evaluate(async (size) => {
      const body = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
      const hex = async (b: ArrayBuffer) =>
        [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))]
          .map((x) => x.toString(16).padStart(2, "0"))
          .join("");
      const bigFile = await (await fetch("big.bin")).arrayBuffer();
      const echo = await fetch("echo", { method: "POST", body });
      const missing = await fetch("nothing-here");
      return {
        big: await hex(bigFile),
        echo: await hex(await echo.arrayBuffer()),
        missing: missing.status,
      };
    }, postedSize);
    expect(got).toEqual({ big: sha256(big), echo: sha256(posted), missing: 404 });
    // The owner sees every request, served or not.
    const paths = () =>
      jsonLines(expose)
        .filter((l) => l.type === "access")
        .map((l) => `${l.method} ${l.path} ${l.status}`);
    await expect
      .poll(paths, { timeout: 30_000 })
      .toEqual(
        expect.arrayContaining([
          "GET /index.html 200",
          "GET /big.bin 200",
          "POST /echo 200",
          "GET /nothing-here 404",
        ]),
      );
    expect(jsonLines(expose).every((l) => l.type !== "access" || l.name === "Alice")).toBe(true);
    // The service's pages, its JSON, a slice of big.bin and the posted body crossed the relay as
    // Noise ciphertext: none of it is readable in what Alice's page exchanged with the servers, nor
    // in what the relay stored.
    const wire = traffic();
    expect(wire.length).toBeGreaterThan(postedSize);
    const stored = await readTree(dataDir);
    expect(stored.length).toBeGreaterThan(0);
    const markers = [
      "served by loft expose",
      "Bot's service",
      "text/html",
      "/index.html",
      "data.json",
      big.subarray(100_000, 100_032).toString("latin1"),
      Buffer.from(posted.subarray(500_000, 500_032)).toString("latin1"),
    ];
    expectNoneOf(wire, markers);
    expectNoneOf(stored, markers);
    // Alice's direct offers to the bot — her first dial when her key is the lower one, and the
    // tries at a direct path while on the relay (directRetryMs) — were each answered at once with
    // `bye` `no-direct` (cli/no-direct.ts, chat.md §1), a path failure; none waited out her
    // fallback timer ("not open in time").
    const aboutBot = () => aliceLog.filter((l) => l.includes(cliId.slice(0, 8)));
    await expect
      .poll(() => aboutBot().filter((l) => l.includes("bye-no-direct")).length, { timeout: 30_000 })
      .toBeGreaterThan(0);
    expect(aboutBot().filter((l) => l.includes("not open in time"))).toEqual([]);
    // The service that never answers: after the requester's head timeout the tab shows "No
    // answer in time" (504) — the real path, not a page built for the test — with the requester's
    // reason as its details (web/src/proxy/host.ts passes it on; the Service Worker's own 35 s
    // bound shows the same title and status, without them), and the owner sees the request given up.
    const slow = await slowNavigation;
    expect(slow?.status()).toBe(504);
    expect(await slow?.headerValue("x-loft-proxy-error")).toBe("timeout");
    expect(await waiting.locator("h1").textContent()).toBe("No answer in time");
    expect(await waiting.locator("p.code").allTextContents()).toEqual([
      "Details: no response head in time",
      "Error 504 · timeout",
    ]);
    await expect
      .poll(() => jsonLines(expose).find((l) => l.type === "access" && l.path === "/slow"), {
        timeout: 30_000,
      })
      .toMatchObject({ method: "GET", outcome: "cancelled", name: "Alice" });
    expect(await paused).toEqual({ status: 200, text: "typed, then more" });
    await expect
      .poll(() => jsonLines(expose).filter((l) => l.type === "access" && l.path === "/echo").length, {
        timeout: 30_000,
      })
      .toBe(2);
    const ended = await stalled;
    expect(ended).toMatchObject({ status: 400, error: "cancelled" });
    expect(ended.text).toContain(
      `Details: the page sent no more of its request body for ${PROXY_IDLE_MS / 1000} s`,
    );
    await expect
      .poll(() => jsonLines(expose).find((l) => l.type === "access" && l.path === "/stalled"), {
        timeout: 30_000,
      })
      .toMatchObject({ method: "POST", outcome: "cancelled", name: "Alice" });
    for (const res of held.splice(0)) res.end();
    await site.close();
    await waiting.close();
    expect(await stop(expose)).toBe(0);
  });
});
