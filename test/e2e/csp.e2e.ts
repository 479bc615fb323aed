/**
 * The real app under the host's Content-Security-Policy and Permissions-Policy, in real Chromium
 * through the real server (`npm run build` first; `node scripts/e2e.mjs test/e2e/csp.e2e.ts`):
 * Alice and Bob each create an identity, open each other's links (QR code and all), chat both
 * ways until "delivered", export a backup from Settings, and the Service Worker takes control and
 * precaches the shell (served brotli-compressed) — with zero CSP violation reports and no policy
 * errors on the console of any page or worker. A positive control proves the listener would have
 * seen one: an injected inline script is refused and reported, to the page and to the server's
 * counter. Federation: under the default policy a page may open a WebSocket to a relay on another
 * origin (a contact's relay); a server started with `--csp-connect-src` pinned to other servers
 * refuses it, and says so.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, incoming, sendText, startChatting, waitForState } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

/** Every `securitypolicyviolation` event of every document, kept on window and logged. */
const RECORD_VIOLATIONS = `
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    const v = e.violatedDirective + " " + (e.blockedURI || "inline") + " @" + e.sourceFile + ":" + e.lineNumber;
    window.__cspViolations.push(v);
    console.error("CSP violation: " + v);
  });
`;

/** Console lines that mean a policy refused something or could not be parsed. */
const POLICY_PROBLEM = /Content Security Policy|Refused to|Permissions[- ]Policy|permissions policy/i;

/**
 * Open a WebSocket from the page: "open", "closed" (refused, by the server or by the CSP, which
 * Chromium reports as an error event) or "blocked" (the constructor threw).
 */
const probeSocket = (page: Page, url: string) =>
  page.evaluate(
    (u) =>
      new Promise<string>((resolve) => {
        let ws: WebSocket;
        try {
          ws = new WebSocket(u);
        } catch {
          return resolve("blocked");
        }
        ws.onopen = () => {
          ws.close();
          resolve("open");
        };
        ws.onerror = () => resolve("closed");
        ws.onclose = () => resolve("closed");
        setTimeout(() => resolve("no answer"), 15_000); // bounded: never hang the test
      }),
    url,
  );

/** Violation reports the server counted (host/csp-reports.ts), all directives. */
async function reportsCounted(loft: LoftProcess): Promise<number> {
  const text = await (await fetch(`${loft.metricsUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith("loft_host_csp_reports_total{"))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

const violations = (page: Page) =>
  page.evaluate(() => (window as unknown as { __cspViolations: string[] }).__cspViolations);

describe("the app under its Content-Security-Policy", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let a: Page;
  let b: Page;
  const problems: string[] = [];
  const encodings = new Map<string, string>();

  beforeAll(async () => {
    env = await startTwoBrowsers({ initScript: RECORD_VIOLATIONS });
    ({ loft, a, b } = env);
    for (const [name, ctx] of [
      ["alice", env.alice],
      ["bob", env.bob],
    ] as [string, BrowserContext][]) {
      ctx.on("console", (m) => {
        if (POLICY_PROBLEM.test(m.text())) problems.push(`${name}: ${m.text()}`);
      });
      ctx.on("weberror", (e) => problems.push(`${name} page error: ${e.error().message}`));
      ctx.on("serviceworker", (w) =>
        w.on("console", (m) => {
          if (POLICY_PROBLEM.test(m.text())) problems.push(`${name} sw: ${m.text()}`);
        }),
      );
      ctx.on("response", (r) => {
        const path = new URL(r.url()).pathname;
        if (path.startsWith("/assets/") && path.endsWith(".js"))
          encodings.set(path, r.headers()["content-encoding"] ?? "identity");
      });
    }
  });
  afterAll(async () => {
    await env?.close(problems.join("\n"));
  });

  it("serves the app with a CSP that has no inline script, no eval, and frames nothing", async () => {
    const res = await a.goto(loft.url);
    const csp = res?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(csp).toContain("report-uri /csp-report");
    // Calls use the camera and microphone on this origin only; what nothing uses stays off.
    expect(res?.headers()["permissions-policy"]).toContain("camera=(self)");
    expect(res?.headers()["permissions-policy"]).toContain("geolocation=()");
  });

  it("identities, links, a chat both ways and Settings work with zero violations", async () => {
    await startChatting(a, b, loft.url);
    await sendText(a, "hello Bob, under CSP");
    await incoming(b, "hello Bob, under CSP").waitFor({ timeout: 60_000 });
    await waitForState(a, "hello Bob, under CSP", "delivered");
    await sendText(b, "hello Alice");
    await incoming(a, "hello Alice").waitFor({ timeout: 60_000 });
    await waitForState(b, "hello Alice", "delivered");

    await a.goto(loft.url);
    await byId(a, "nav-settings").click();
    await byId(a, "settings").waitFor();
    // An encrypted backup leaves as a blob: download, which the policy must not stop.
    await byId(a, "backup-passphrase").fill("backup passphrase 1");
    const [download] = await Promise.all([a.waitForEvent("download"), byId(a, "export-backup").click()]);
    expect(await download.failure()).toBeNull();

    // The Service Worker (under the same policy) controls the page and has precached the shell.
    for (const page of [a, b]) {
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, {
        timeout: 60_000,
      });
      await expect
        .poll(() =>
          page.evaluate(async () => {
            let n = 0;
            for (const name of await caches.keys()) n += (await (await caches.open(name)).keys()).length;
            return n;
          }),
        )
        .toBeGreaterThan(5);
    }
    expect(await violations(a)).toEqual([]);
    expect(await violations(b)).toEqual([]);
    expect(problems).toEqual([]);
    expect(await reportsCounted(loft)).toBe(0);
    // The app's code came precompressed.
    expect(encodings.size).toBeGreaterThan(0);
    for (const [path, encoding] of encodings) expect(encoding, path).toBe("br");
  });

  it("positive control: an injected inline script is refused and reported", async () => {
    const ran = await a.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inlineRan = true;";
      document.head.append(s);
      return (window as unknown as { __inlineRan?: boolean }).__inlineRan === true;
    });
    expect(ran).toBe(false);
    await expect.poll(() => violations(a)).toEqual([expect.stringMatching(/^script-src-elem inline/)]);
    // …and the browser reported it to the server, which counted it by directive.
    await expect.poll(() => reportsCounted(loft), { timeout: 30_000 }).toBe(1);
  });

  it("federation: another origin's relay is reachable by default; a pinned --csp-connect-src refuses it", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "loft-csp-pinned-"));
    const pinned = await startLoft({
      args: ["--relay-data-dir", dataDir, "--csp-connect-src", "wss://relay.example"],
    });
    try {
      const before = (await violations(a)).length;
      // Alice's page (default policy) to the other server's relay: no CSP objection. Whether that
      // relay accepts a page from another origin is its own Origin check's business.
      expect(["open", "closed"]).toContain(await probeSocket(a, `${pinned.url.replace("http", "ws")}/relay`));
      expect((await violations(a)).length).toBe(before);

      // A page of the pinned server: the app still works on its own origin, but Alice's server is
      // not on its list.
      const page = await env.alice.newPage();
      env.watch("pinned", page);
      const res = await page.goto(pinned.url);
      expect(res?.headers()["content-security-policy"]).toContain("connect-src 'self' wss://relay.example;");
      await byId(page, "username-input").waitFor();
      expect(await violations(page)).toEqual([]);
      expect(await probeSocket(page, `${loft.url.replace("http", "ws")}/relay`)).not.toBe("open");
      await expect
        .poll(() => violations(page))
        .toEqual([expect.stringMatching(/^connect-src ws:\/\/127\.0\.0\.1/)]);
      await page.close();
    } finally {
      await pinned.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
