/**
 * Registers the Service Worker (sw/index.ts, built to /sw.js) with workbox-window and exposes the
 * honest update flow (docs/decisions.md "Honest updates"): when a new version is installed and
 * waiting, `pendingUpdate()` holds its build hash; the app shows "Update available" with that
 * hash and nothing changes until the person accepts. `applyUpdate()` asks the waiting worker to
 * check itself once more and activate, then reloads once it controls the page — or, when it
 * refuses (its files don't match the hash it announced), `refusedUpdate()` says so and the
 * running version stays. `runningBuild()` is the hash of the build running now (Settings).
 *
 * Finding a new build: the browser looks for one only when the app is loaded (a navigation), and
 * an open Loft tab may go days without one. So the app asks too (`signalingReached()`,
 * web/src/update-checks.ts): each time the signaling server is reached again after a drop
 * (web/src/main.tsx) — a deploy restarts the server, so its coming back is when a new build
 * appears (docs/operations.md, "Upgrading") — when the tab is shown again, and every hour. A
 * check made while another one is under way is merged into it by the browser (it waits for that
 * one's answer, which may be the build served before), which is why no single check is relied on.
 */
import { createSignal } from "solid-js";
import { Workbox } from "workbox-window";
import { realClock, UpdateChecks, updateCheckIntervals } from "./update-checks.ts";

export interface RefusedUpdate {
  hash: string;
  reason: string;
}

const [pendingUpdate, setPendingUpdate] = createSignal<string | undefined>();
const [refusedUpdate, setRefusedUpdate] = createSignal<RefusedUpdate | undefined>();
const [runningBuild, setRunningBuild] = createSignal<string | undefined>();
/**
 * "Update now" found a newer build waiting than the one on screen, and that build did not say
 * which it is within `askBuild`'s bound: nothing was activated, and the banner says so and what to
 * do (web/src/update/UpdateBanner.tsx). Cleared by the next announcement, which replaces it.
 */
const [unansweredUpdate, setUnansweredUpdate] = createSignal(false);

export { pendingUpdate, refusedUpdate, runningBuild, unansweredUpdate };

/** Ask one worker for the build hash it announces. */
function askBuild(sw: ServiceWorker): Promise<string | undefined> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(undefined), 5000);
    channel.port1.onmessage = (e: MessageEvent<{ hash?: unknown }>) => {
      clearTimeout(timer);
      resolve(typeof e.data?.hash === "string" ? e.data.hash : undefined);
    };
    sw.postMessage({ type: "GET_BUILD" }, [channel.port2]);
  });
}

/** The app's registration once registered: what a look for a new build asks. */
let registration: ServiceWorkerRegistration | undefined;
/** When to look (web/src/update-checks.ts: each trigger bounded). */
const checks = new UpdateChecks(
  // A failed look (server unreachable, offline) is simply the next one's job.
  () => void registration?.update().catch(() => undefined),
  realClock,
  updateCheckIntervals(),
);

/**
 * The signaling server is reached (at start, or back after a drop: a deploy restarts it; see
 * web/src/main.tsx). Back after a drop, or after it was unreachable, look for a new build — at
 * most once per `reconnectMinMs`, a sooner one moved to the end of it; the first time, at the
 * page's start, no (the page load just looked: `UpdateChecks.signalingReached`). Counted even
 * before the app's registration is there (a look then finds none to ask, and the registering is
 * the look). A build found installs in the background and is announced by `followInstalls`.
 */
export function signalingReached(): void {
  checks.signalingReached();
}

/** The signaling server could not be reached (web/src/main.tsx): its next reach is a reconnect. */
export function signalingUnreachable(): void {
  checks.signalingUnreachable();
}

/**
 * Announce every build that finishes installing while this page is open, each with its own hash.
 * Not workbox-window's "waiting" event: it stops listening for new builds after the first one it
 * takes for another tab's (any build found more than a minute after the page registered), so a
 * second build published while the tab stayed open was never announced, and "Update now" then
 * activated that build under the first one's hash.
 */
function followInstalls(reg: ServiceWorkerRegistration): void {
  const follow = (sw: ServiceWorker | null) => {
    if (!sw) return;
    const onState = () => {
      if (sw.state === "installing") return;
      sw.removeEventListener("statechange", onState);
      // The first build of a first visit passes "installed" too, on its way to active at once:
      // it is no update (nothing runs yet to update from).
      if (sw.state === "installed" && reg.active && reg.active !== sw) void announceWaiting(sw);
    };
    sw.addEventListener("statechange", onState);
  };
  reg.addEventListener("updatefound", () => follow(reg.installing));
  follow(reg.installing);
}

export function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator) || import.meta.env.DEV) return;
  const wb = new Workbox("/sw.js", { scope: "/" });
  navigator.serviceWorker.addEventListener("message", (e: MessageEvent) => {
    const d = e.data as { type?: unknown; hash?: unknown; reason?: unknown } | null;
    if (d?.type === "loft-update-refused" && typeof d.hash === "string" && typeof d.reason === "string") {
      setRefusedUpdate({ hash: d.hash, reason: d.reason });
      if (pendingUpdate() === d.hash) setPendingUpdate(undefined);
    }
  });
  void wb.register().then(async (reg) => {
    if (!reg) return;
    registration = reg;
    followInstalls(reg);
    checks.start();
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") checks.shown();
    });
    const running = navigator.serviceWorker.controller ?? reg.active;
    if (running) setRunningBuild(await askBuild(running));
    if (reg.waiting) await announceWaiting(reg.waiting);
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    const c = navigator.serviceWorker.controller;
    if (c) void askBuild(c).then(setRunningBuild);
  });
}

/**
 * Show the hash of `waiting`, the build installed and waiting. Its answer counts only while it still
 * waits: a newer build that installed meanwhile replaced it (its own announcement follows).
 */
async function announceWaiting(waiting: ServiceWorker): Promise<boolean> {
  const hash = await askBuild(waiting);
  if (hash && waiting.state === "installed") {
    announced = waiting;
    setUnansweredUpdate(false);
    setPendingUpdate(hash);
    return true;
  }
  return false;
}

/** The worker whose hash `pendingUpdate()` shows: the only one "Update now" may activate. */
let announced: ServiceWorker | undefined;

/** The person accepted the update: the waiting build checks itself, then takes over (or refuses). */
export async function applyUpdate(): Promise<void> {
  const reg = await navigator.serviceWorker?.getRegistration();
  const waiting = reg?.waiting;
  if (!waiting) {
    location.reload();
    return;
  }
  // A newer build installed after the banner's and its own announcement is still under way: the
  // person accepted the hash on screen, not this one — show this one's hash and activate nothing
  // (docs/decisions.md, "Honest updates"); the next "Update now" is for what they then see.
  if (waiting !== announced) {
    // Unanswered (the worker did not say its hash in time): the banner says nothing was activated
    // and what to do — unless a newer build was announced meanwhile or this one went (it is then
    // no longer what waits). A later "Update now" asks it again.
    if (!(await announceWaiting(waiting)) && waiting !== announced && waiting.state === "installed")
      setUnansweredUpdate(true);
    return;
  }
  // Taken now: the worker's own refusal broadcast (`loft-update-refused`, handled in
  // registerServiceWorker) may arrive before its reply below and clear `pendingUpdate()`.
  const hash = pendingUpdate() ?? "";
  navigator.serviceWorker.addEventListener("controllerchange", () => location.reload(), { once: true });
  const channel = new MessageChannel();
  const answer = new Promise<{ ok: boolean; reason?: string }>((resolve) => {
    channel.port1.onmessage = (e: MessageEvent<{ ok: boolean; reason?: string }>) => resolve(e.data);
  });
  waiting.postMessage({ type: "SKIP_WAITING" }, [channel.port2]);
  const result = await answer;
  if (!result.ok) {
    setRefusedUpdate({ hash, reason: result.reason ?? "it does not match its hash" });
    setPendingUpdate(undefined);
  }
}
