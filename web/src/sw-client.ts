/**
 * Registers the Service Worker (sw/index.ts, built to /sw.js) with workbox-window and exposes the
 * update flow: when a new version is installed and waiting, `updateReady()` turns true; the app
 * shows "Update available — reload", and `applyUpdate()` tells the waiting worker to skip waiting,
 * then reloads once it controls the page (Workbox "offer a page reload" recipe).
 */
import { createSignal } from "solid-js";
import { Workbox } from "workbox-window";

const [updateReady, setUpdateReady] = createSignal(false);

export { updateReady };

let wb: Workbox | undefined;

export function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator) || import.meta.env.DEV) return;
  wb = new Workbox("/sw.js", { scope: "/" });
  wb.addEventListener("waiting", () => setUpdateReady(true));
  void wb.register();
}

/** Check the server for a new Service Worker now (the browser also checks on navigation). */
export async function checkForUpdate(): Promise<void> {
  await wb?.update();
}

export function applyUpdate(): void {
  if (!wb) {
    location.reload();
    return;
  }
  wb.addEventListener("controlling", () => location.reload());
  wb.messageSkipWaiting();
}
