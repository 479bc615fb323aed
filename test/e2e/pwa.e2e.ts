/**
 * The Service Worker in real Chromium against the real server: it installs and precaches the
 * shell, the app starts offline after the server is stopped, `/peer/...` is answered by the
 * Service Worker (never the network; the proxy itself: proxy.e2e.ts), a new version deployed with
 * a server restart is found by the open page itself and shows "Update available", which activates
 * it and sweeps the old version's cache, and every later build is announced with its own hash —
 * one that does not say its hash when "Update now" asks is said too, with what to do.
 *
 * The server serves a private copy of web/dist (`--static-dir`), so the test can publish a "new
 * version" of sw.js without touching the shared build. data-testids: see onboarding.e2e.ts.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildHash } from "../../scripts/build-hash.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { createIdentity } from "../support/loft-ui.ts";
import {
  BANNER_AFTER_RESTART_MS,
  lookForNewBuild,
  openServiceWorker,
  publishBuild,
  servedBuildHash,
  showTabAgain,
  useUpdateChecks,
} from "../support/publish-build.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DIST = fileURLToPath(new URL("../../web/dist", import.meta.url));

const shellCaches = (page: Page) =>
  page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith("loft-shell-")));

describe("PWA: service worker, offline start, update flow", () => {
  let dir: string;
  let loft: LoftProcess;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loft-pwa-"));
    await cp(DIST, dir, { recursive: true });
    loft = await startLoft({ args: ["--static-dir", dir] });
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
      dir ? () => rm(dir, { recursive: true, force: true }) : undefined,
    ),
  );

  it("the built sw.js is sealed: its source hash and build hash recompute from the file", async () => {
    // Runs after `npm run build` (the e2e runner builds first), so a stale or missing build can't
    // make it pass or fail by accident.
    const sw = await openServiceWorker(DIST);
    expect(sw.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(buildHash(sw.entries, sw.source)).toBe(sw.hash);
  });

  it("installs the service worker, which takes control and precaches the shell in a versioned cache", async () => {
    await createIdentity(page, loft.url, "Dana");
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    const names = await shellCaches(page);
    expect(names).toHaveLength(1);
    const urls = await page.evaluate(async (name) => {
      const cache = await caches.open(name);
      return (await cache.keys()).map((r) => new URL(r.url).pathname);
    }, names[0]!);
    expect(urls).toContain("/index.html");
    expect(urls.some((u) => u.startsWith("/assets/") && u.endsWith(".js"))).toBe(true);
    expect(urls).toContain("/manifest.webmanifest");
  });

  it("Settings shows the build hash `npm run build` prints: a second build of the same source, elsewhere, prints it", async () => {
    // README "Checking the build", step by step: build the source again (into a folder of its own:
    // web/dist, which this run serves from its copy, stays as it is), read the line it prints, and
    // compare it with what Settings → This build shows a person, as they would read it. The build
    // runs with this process's environment, NODE_ENV=test included (Vitest's): the hash must not
    // depend on the shell it was built from (web/vite.config.ts).
    const out = await mkdtemp(join(tmpdir(), "loft-rebuild-"));
    try {
      const printed = await new Promise<string>((resolve, reject) =>
        execFile("npm", ["run", "-s", "build", "--", "--outDir", out], { cwd: ROOT }, (e, stdout, stderr) =>
          e ? reject(new Error(`npm run build failed: ${stderr}`)) : resolve(stdout),
        ),
      );
      const lines = printed.match(/^build hash: ([0-9a-f]{64})$/gm) ?? [];
      expect(lines).toHaveLength(1);
      const hash = lines[0]!.slice("build hash: ".length);
      await page.goto(`${loft.url}/settings`);
      const shown = page.getByTestId("build-hash");
      await expect.poll(async () => (await shown.textContent())?.replace(/\s/g, "")).toBe(hash);
      expect(await shown.getAttribute("data-hash")).toBe(hash);
      // What the person compares is what the worker in control runs: the hash names its cache.
      expect(await shellCaches(page)).toEqual([`loft-shell-${hash.slice(0, 12)}`]);
      await page.goto(loft.url);
      await page.getByTestId("my-username").waitFor();
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it("is installable: Chromium reports no installability errors for the manifest + service worker", async () => {
    const cdp = await page.context().newCDPSession(page);
    const { installabilityErrors } = (await cdp.send("Page.getInstallabilityErrors")) as {
      installabilityErrors: { errorId: string }[];
    };
    // Playwright contexts are off-the-record; that one is about the profile, not the app.
    expect(installabilityErrors.map((e) => e.errorId).filter((e) => e !== "in-incognito")).toEqual([]);
    await cdp.detach();
  });

  it("answers /peer/... in the Service Worker, without reaching the server", async () => {
    const res = await page.evaluate(async () => {
      const r = await fetch("/peer/some-contact/index.html");
      return { status: r.status, error: r.headers.get("x-loft-proxy-error"), text: await r.text() };
    });
    // Contacts' pages live on the content origin (peer.<host>, docs/protocol/proxy.md §Isolation);
    // this server is reached by IP, which has none: the worker says so itself.
    expect(res.status).toBe(503);
    expect(res.error).toBe("no_content_origin");
    expect(res.text).toContain("Shared pages need Loft&#39;s content address");
  });

  it("starts offline from the precache after the server is stopped, with its data", async () => {
    await loft.stop();
    await page.reload();
    expect(await page.getByTestId("my-username").textContent()).toBe("Dana");
    // A deep link offline gets the shell too.
    await page.goto(`${loft.url}/some/client/route`);
    expect(await page.getByTestId("my-username").textContent()).toBe("Dana");
    // The server really is gone: a request the SW doesn't handle fails.
    const health = await page.evaluate(() =>
      fetch("/health").then(
        (r) => r.status,
        () => "unreachable",
      ),
    );
    expect(health).toBe("unreachable");
  });

  it(
    "shows 'Update available' when a new version is waiting; reload activates it and sweeps the old cache",
    async () => {
      const [oldCache] = await shellCaches(page);
      const oldVersion = oldCache!.slice("loft-shell-".length);
      const sw = await readFile(join(dir, "sw.js"), "utf8");
      expect(sw).toContain(oldVersion);
      // In place before the server starts, as a deploy does: every look from now on sees it, and the
      // page looks by itself once its signaling server is back (web/src/sw-client.ts), then installs
      // it — nobody calls `update()`. The page started while the server was down: its first
      // signaling connection is a reconnect, not the page's start (update-checks.ts
      // `signalingReached`; with the first one never looking, this waited out its bound). How long that may take is read from the code
      // (BANNER_AFTER_RESTART_MS: reconnect backoff, reconnect look interval, install).
      const next = await publishBuild(dir, "e2e next version");
      // No banner yet: with the server still down, no look can have found the build.
      expect(await page.getByTestId("update-banner").count()).toBe(0);
      loft = await startLoft({ port: loft.port, args: ["--static-dir", dir] });

      await page.getByTestId("update-banner").waitFor({ timeout: BANNER_AFTER_RESTART_MS });
      expect(await page.getByTestId("update-banner").textContent()).toContain("Update available");

      await Promise.all([page.waitForEvent("load"), page.getByTestId("update-reload").click()]);
      await page.getByTestId("home").waitFor();
      expect(await page.getByTestId("update-banner").count()).toBe(0);
      await expect.poll(() => shellCaches(page)).toEqual([`loft-shell-${next.slice(0, 12)}`]);
      expect(await page.getByTestId("my-username").textContent()).toBe("Dana");
    },
    BANNER_AFTER_RESTART_MS + 30_000,
  );

  it("every build published while the tab stays open is announced with its own hash, and that one runs", async () => {
    const announced = async () =>
      (await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, ""));
    const builds: string[] = [];
    for (const n of [1, 2, 3]) {
      const hash = await publishBuild(dir, `e2e build ${n} while the tab stays open`);
      builds.push(hash);
      // Looked for until announced (lookForNewBuild: one look may be merged into one under way).
      await expect
        .poll(async () => {
          await lookForNewBuild(page);
          return announced();
        })
        .toEqual([hash]);
      // "Later" hides this build only: the next one is announced again.
      if (n === 1) {
        await page.getByTestId("update-later").click();
        await expect.poll(announced).toEqual([]);
      }
    }
    await Promise.all([page.waitForEvent("load"), page.getByTestId("update-reload").click()]);
    await page.getByTestId("home").waitFor();
    await expect.poll(() => shellCaches(page)).toEqual([`loft-shell-${builds[2]!.slice(0, 12)}`]);
    await page.goto(`${loft.url}/settings`);
    await expect.poll(() => page.getByTestId("build-hash").getAttribute("data-hash")).toBe(builds[2]);
  });

  /** A new build published, looked for until `page`'s banner shows its hash (the page reloaded first). */
  async function announcedBuild(description: string): Promise<string> {
    await page.goto(loft.url);
    await page.getByTestId("home").waitFor();
    const onScreen = await publishBuild(dir, description);
    await expect
      .poll(async () => {
        await lookForNewBuild(page);
        return (await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, ""));
      })
      .toEqual([onScreen]);
    return onScreen;
  }

  /**
   * A newer build published and looked for until it waits, installed, while the page's questions to
   * it are held (below). The page is marked, so a reload shows (its mark gone).
   */
  async function installUnannounced(description: string): Promise<string> {
    // The window between a newer build's install and its announcement, held open: the page's
    // questions to a worker ("which build are you?", sw-client.ts `askBuild`) are held and posted
    // only once released — answered late, as a busy worker answers — and every message the page
    // posts to a worker is counted by type. The test decides only when a question is posted; the
    // worker's answer, and what the page makes of it, are the product's.
    await page.evaluate(() => {
      const post = ServiceWorker.prototype.postMessage as (this: ServiceWorker, ...a: unknown[]) => void;
      const held: (() => void)[] = [];
      const w = globalThis as unknown as {
        loftPosted: Record<string, number>;
        loftHolding: boolean;
        loftReleaseAsks: () => void;
        loftPost: typeof post;
        loftPageMark: number;
      };
      w.loftPost = post;
      w.loftPosted = {};
      w.loftHolding = true;
      w.loftReleaseAsks = () => {
        w.loftHolding = false;
        for (const go of held.splice(0)) go();
      };
      ServiceWorker.prototype.postMessage = function (this: ServiceWorker, ...args: unknown[]) {
        const type = String((args[0] as { type?: unknown } | undefined)?.type);
        w.loftPosted[type] = (w.loftPosted[type] ?? 0) + 1;
        if (type === "GET_BUILD" && w.loftHolding) held.push(() => post.apply(this, args));
        else post.apply(this, args);
      } as typeof ServiceWorker.prototype.postMessage;
      w.loftPageMark = 1;
    });
    const newer = await publishBuild(dir, description);
    await expect
      .poll(async () => {
        await lookForNewBuild(page);
        return page.evaluate(
          async (cache) => {
            const reg = await navigator.serviceWorker.getRegistration();
            return (
              !reg?.installing && reg?.waiting?.state === "installed" && (await caches.keys()).includes(cache)
            );
          },
          `loft-shell-${newer.slice(0, 12)}`,
        );
      })
      .toBe(true);
    return newer;
  }

  /** How many messages of `type` the page posted to a worker since `installUnannounced`. */
  const posted = (type: string) =>
    page.evaluate(
      (type) => (globalThis as unknown as { loftPosted: Record<string, number> }).loftPosted[type] ?? 0,
      type,
    );

  /** The page's questions to workers go at once from now on, and those held are posted (late). */
  async function releaseBuildQuestions(): Promise<void> {
    await page.evaluate(() => (globalThis as unknown as { loftReleaseAsks: () => void }).loftReleaseAsks());
  }

  it("'Update now' activates only the build whose hash is on screen: a newer one installed meanwhile is shown first", async () => {
    const onScreen = await announcedBuild("e2e build on screen");
    const newer = await installUnannounced("e2e build installed while the banner shows the one before");
    // The page did ask the newer build which it is (its announcement is under way), and has no answer.
    await expect.poll(() => posted("GET_BUILD")).toBeGreaterThan(0);
    expect((await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, ""))).toEqual(
      [onScreen],
    );
    // From here the page's new questions go at once (the one "Update now" asks must not outlive
    // `askBuild`'s own bound); the announcement's stays held until after the click.
    await page.evaluate(() => {
      (globalThis as unknown as { loftHolding: boolean }).loftHolding = false;
    });
    // Accepted while the screen says `onScreen`: the newer build is not activated under that hash;
    // its own hash is shown, and the page has not reloaded.
    await page.getByTestId("update-reload").click();
    await expect
      .poll(async () =>
        (await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, "")),
      )
      .toEqual([newer]);
    // Nothing was activated: no SKIP_WAITING went to a worker, and the page has not reloaded.
    expect(await posted("SKIP_WAITING")).toBe(0);
    expect(await page.evaluate(() => (globalThis as { loftPageMark?: number }).loftPageMark)).toBe(1);
    // The announcement's answer, come late, changes nothing: the newer build's hash stays on screen.
    // Released, then one more question of the test's own to the same worker: it answers in order,
    // so the page has had the held answer by the time this one comes.
    await page.evaluate(async () => {
      const w = globalThis as unknown as {
        loftReleaseAsks: () => void;
        loftPost: (this: ServiceWorker, ...a: unknown[]) => void;
      };
      w.loftReleaseAsks();
      const waiting = (await navigator.serviceWorker.getRegistration())?.waiting;
      if (!waiting) throw new Error("the newer build no longer waits");
      await new Promise<void>((resolve) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => resolve();
        w.loftPost.call(waiting, { type: "GET_BUILD" }, [channel.port2]);
      });
    });
    expect((await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, ""))).toEqual(
      [newer],
    );
    // Accepted again, now for what is on screen: it runs.
    await Promise.all([page.waitForEvent("load"), page.getByTestId("update-reload").click()]);
    await page.getByTestId("home").waitFor();
    await expect.poll(() => shellCaches(page)).toEqual([`loft-shell-${newer.slice(0, 12)}`]);
  });

  it("'Update now' when the newer build installed meanwhile does not say its hash: the banner says nothing was updated and what to do; asked again, it shows the hash", async () => {
    await announcedBuild("e2e build on screen, then a silent newer one");
    const newer = await installUnannounced("e2e build that does not say its hash when asked");
    // Accepted while the newer build does not answer (the question is held past its bound): no
    // hash to show, nothing activated — and the person is told so, not left on a button that did
    // nothing.
    await page.getByTestId("update-reload").click();
    const unanswered = page.getByTestId("update-unanswered");
    await unanswered.waitFor();
    expect(await unanswered.textContent()).toContain("nothing was updated");
    expect(await page.getByTestId("update-hash").count()).toBe(0);
    expect(await page.getByTestId("update-reload").isEnabled()).toBe(true);
    expect(await page.evaluate(() => (globalThis as { loftPageMark?: number }).loftPageMark)).toBe(1);
    await expectNoAxeViolations(page, "update banner (a newer build did not say its hash)");
    // It answers again: "Update now" asks once more, and its announcement replaces the notice.
    await releaseBuildQuestions();
    await page.getByTestId("update-reload").click();
    await expect
      .poll(async () =>
        (await page.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, "")),
      )
      .toEqual([newer]);
    expect(await unanswered.count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { loftPageMark?: number }).loftPageMark)).toBe(1);
    await Promise.all([page.waitForEvent("load"), page.getByTestId("update-reload").click()]);
    await page.getByTestId("home").waitFor();
    await expect.poll(() => shellCaches(page)).toEqual([`loft-shell-${newer.slice(0, 12)}`]);
  });

  /**
   * A page of its own (a fresh context: its own Service Worker registration), on the app's start
   * screen: no identity, so no signaling connection and no reconnect's look — each look for a new
   * build below is the one under test. Returns once the worker controls the page and has answered
   * a message sent after the first build's "installed" (workers answer in order): any announcement
   * of that build would be on screen by then.
   */
  async function freshPage(intervals: Parameters<typeof useUpdateChecks>[1] = {}): Promise<Page> {
    const context = await browser.newContext();
    await useUpdateChecks(context, intervals);
    const fresh = await context.newPage();
    await fresh.goto(loft.url);
    await fresh.getByTestId("username-input").waitFor();
    await fresh.waitForFunction(() => navigator.serviceWorker.controller !== null);
    const hash = await fresh.evaluate(
      () =>
        new Promise<unknown>((resolve) => {
          const channel = new MessageChannel();
          channel.port1.onmessage = (e: MessageEvent<{ hash?: unknown }>) => resolve(e.data?.hash);
          navigator.serviceWorker.controller!.postMessage({ type: "GET_BUILD" }, [channel.port2]);
        }),
    );
    expect(hash).toBe(await servedBuildHash(dir));
    return fresh;
  }

  const announcedOn = async (p: Page) =>
    (await p.getByTestId("update-hash").allTextContents()).map((t) => t.replace(/ /g, ""));

  it("a first visit shows no update banner (its build is no update), nor does a reload of the same build", async () => {
    const fresh = await freshPage();
    try {
      expect(await fresh.getByTestId("update-banner").count()).toBe(0);
      await fresh.reload();
      await fresh.getByTestId("username-input").waitFor();
      await fresh.waitForFunction(() => navigator.serviceWorker.controller !== null);
      expect(
        await fresh.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.waiting ?? null),
      ).toBe(null);
      expect(await fresh.getByTestId("update-banner").count()).toBe(0);
    } finally {
      await fresh.context().close();
    }
  });

  it("a tab shown again looks for a new build by itself", async () => {
    // Every showing may look (shownAgainMs: 1 ms); the hourly look is out of reach.
    const fresh = await freshPage({ shownAgainMs: 1, hourlyMs: 10 * 60 * 60 * 1000 });
    try {
      const next = await publishBuild(dir, "e2e build found when the tab is shown again");
      // Shown again until announced: a look may be merged into one under way (lookForNewBuild).
      await expect
        .poll(async () => {
          await showTabAgain(fresh);
          return announcedOn(fresh);
        })
        .toEqual([next]);
    } finally {
      await fresh.context().close();
    }
  });

  it("an open tab looks for a new build every hour by itself", async () => {
    // The hour made 2 s; a tab shown again never looks here.
    const fresh = await freshPage({ hourlyMs: 2_000, shownAgainMs: 10 * 60 * 60 * 1000 });
    try {
      const next = await publishBuild(dir, "e2e build found by the hourly look");
      await expect.poll(() => announcedOn(fresh), { timeout: 60_000 }).toEqual([next]);
    } finally {
      await fresh.context().close();
    }
  });
});
