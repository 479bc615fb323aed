/**
 * Registers the Service Worker (sw/index.ts, built to /sw.js) with workbox-window and exposes the
 * honest update flow (docs/decisions.md "Honest updates"): when a new version is installed and
 * waiting, `pendingUpdate()` holds its build hash; the app shows "Update available" with that
 * hash and nothing changes until the person accepts. `applyUpdate()` asks the waiting worker to
 * check itself once more and activate, then reloads once it controls the page — or, when it
 * refuses (its files don't match the hash it announced), `refusedUpdate()` says so and the
 * running version stays. `runningBuild()` is the hash of the build running now (Settings).
 */
import { createSignal } from "solid-js";
import { Workbox } from "workbox-window";

export interface RefusedUpdate {
  hash: string;
  reason: string;
}

const [pendingUpdate, setPendingUpdate] = createSignal<string | undefined>();
const [refusedUpdate, setRefusedUpdate] = createSignal<RefusedUpdate | undefined>();
const [runningBuild, setRunningBuild] = createSignal<string | undefined>();

export { pendingUpdate, refusedUpdate, runningBuild };

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

export function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator) || import.meta.env.DEV) return;
  const wb = new Workbox("/sw.js", { scope: "/" });
  wb.addEventListener("waiting", () => void announceWaiting());
  navigator.serviceWorker.addEventListener("message", (e: MessageEvent) => {
    const d = e.data as { type?: unknown; hash?: unknown; reason?: unknown } | null;
    if (d?.type === "loft-update-refused" && typeof d.hash === "string" && typeof d.reason === "string") {
      setRefusedUpdate({ hash: d.hash, reason: d.reason });
      if (pendingUpdate() === d.hash) setPendingUpdate(undefined);
    }
  });
  void wb.register().then(async (reg) => {
    const running = navigator.serviceWorker.controller ?? reg?.active;
    if (running) setRunningBuild(await askBuild(running));
    if (reg?.waiting) await announceWaiting();
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    const c = navigator.serviceWorker.controller;
    if (c) void askBuild(c).then(setRunningBuild);
  });
}

async function announceWaiting(): Promise<void> {
  const reg = await navigator.serviceWorker.getRegistration();
  if (!reg?.waiting) return;
  const hash = await askBuild(reg.waiting);
  if (hash) setPendingUpdate(hash);
}

/** The person accepted the update: the waiting build checks itself, then takes over (or refuses). */
export async function applyUpdate(): Promise<void> {
  const reg = await navigator.serviceWorker?.getRegistration();
  const waiting = reg?.waiting;
  if (!waiting) {
    location.reload();
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
