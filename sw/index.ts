/**
 * Loft's Service Worker (Squoosh style: a short router, each branch returns early).
 * - precache: the app shell built by Vite, listed by workbox-build injectManifest into
 *   `self.__WB_MANIFEST`, in a cache named by this build's version;
 * - update flow: a new version installs and waits; the page shows "Update available — reload"
 *   and posts SKIP_WAITING (workbox-window `messageSkipWaiting`); on activate, caches of other
 *   versions are swept;
 * - offline start: navigations get the precached index.html;
 * - /peer/...: handed to the E2EE proxy module (a 501 stub for now);
 * - notification clicks (web/src/app/notifications.ts): focus an open Loft window and tell it
 *   which screen to open, or open a new window at that screen.
 */
import { PrecacheController, PrecacheRoute } from "workbox-precaching";
import { NavigationRoute, Router } from "workbox-routing";
import { handlePeerRequest } from "./peer-proxy.ts";

declare const self: ServiceWorkerGlobalScope;
/** Set at build time (web/vite.config.ts): a hash of the precache manifest. */
declare const __SW_VERSION__: string;

const CACHE_PREFIX = "loft-shell-";
const CACHE = `${CACHE_PREFIX}${__SW_VERSION__}`;
/** Server endpoints that are never the app shell. */
const SERVER_PATHS = /^\/(health|metrics|signal|relay|peer)(\/|$)/;

const precache = new PrecacheController({ cacheName: CACHE });
precache.addToCacheList(self.__WB_MANIFEST);
const router = new Router();
router.registerRoute(new PrecacheRoute(precache, { ignoreURLParametersMatching: [/.*/] }));
router.registerRoute(
  new NavigationRoute(precache.createHandlerBoundToURL("/index.html"), { denylist: [SERVER_PATHS] }),
);

self.addEventListener("install", (event) => {
  precache.install(event);
});

self.addEventListener("activate", (event) => {
  event.waitUntil(sweepOtherVersions().then(() => self.clients.claim()));
});

self.addEventListener("message", (event) => {
  if (event.data?.type === "SKIP_WAITING") void self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/peer/")) return event.respondWith(handlePeerRequest(event.request)); // E2EE proxy
  const handled = router.handleRequest({ event, request: event.request });
  if (handled) event.respondWith(handled);
});

/** Paths a notification may open: Home or one chat (anything else opens Home). */
const NOTIFICATION_PATH = /^\/(chat\/[0-9a-f]{64})?$/;

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data as { path?: unknown } | null;
  const path = typeof data?.path === "string" && NOTIFICATION_PATH.test(data.path) ? data.path : "/";
  event.waitUntil(openApp(path));
});

async function openApp(path: string): Promise<void> {
  // Windows showing the app (a tab on /health or /metrics is not one).
  const windows = (await self.clients.matchAll({ type: "window", includeUncontrolled: true })).filter(
    (c) => !SERVER_PATHS.test(new URL(c.url).pathname),
  );
  const client =
    windows.find((c) => c.focused) ?? windows.find((c) => c.visibilityState === "visible") ?? windows[0];
  if (client) {
    await client.focus().catch(() => undefined);
    client.postMessage({ type: "loft-open", path });
    return;
  }
  await self.clients.openWindow(path);
}

async function sweepOtherVersions(): Promise<void> {
  for (const name of await caches.keys())
    if (name !== CACHE && name.startsWith(CACHE_PREFIX)) await caches.delete(name);
}
