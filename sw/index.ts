/**
 * Loft's Service Worker (Squoosh style: a short router, each branch returns early).
 * - precache: the app shell built by Vite, listed by workbox-build injectManifest into
 *   `self.__WB_MANIFEST`, in a cache named by this build's version;
 * - honest updates (docs/decisions.md "Honest updates"): a new version installs only if its
 *   manifest hashes to the build hash it announces (and the browser checks each precached file's
 *   SHA-256), then waits; the page shows "Update available" with that hash; only when the person
 *   accepts (SKIP_WAITING) does it check its cached files again and activate — or refuse and say
 *   so (`loft-update-refused`). On activate, caches of other versions are swept;
 * - offline start: navigations get the precached index.html;
 * - /peer/...: contacts' content is never shown on this origin: sent to the content origin
 *   (`peer.<this host>`, whose own Service Worker, ./peer-origin.ts, runs the E2EE fetch proxy;
 *   docs/protocol/proxy.md §Isolation);
 * - POST /share: the Web Share Target (./share-target.ts) keeps the shared files and redirects to
 *   the /share screen;
 * - notification clicks (web/src/app/notifications.ts): focus an open Loft window and tell it
 *   which screen to open, or open a new window at that screen.
 */
import { PrecacheController, PrecacheRoute } from "workbox-precaching";
import { NavigationRoute, Router } from "workbox-routing";
import { hasContentOrigin, isPeerPath } from "../core/proxy/port.ts";
import { checkCachedFiles, checkManifest } from "./build-integrity.ts";
import { errorPage } from "./peer-errors.ts";
import { receiveShare, SHARE_PATH } from "./share-target.ts";

declare const self: ServiceWorkerGlobalScope;
/** Set at build time (web/vite.config.ts): the build hash, SHA-256 of the precache manifest. */
declare const __SW_VERSION__: string;
/** Set at build time: SHA-256 of this file's text with both hashes as placeholders (scripts/build-hash.ts). */
declare const __SW_SOURCE__: string;
const BUILD_HASH = __SW_VERSION__;

const CACHE_PREFIX = "loft-shell-";
const CACHE = `${CACHE_PREFIX}${BUILD_HASH.slice(0, 12)}`;
/** Server endpoints that are never the app shell. */
const SERVER_PATHS = /^\/(health|metrics|signal|relay|peer)(\/|$)/;

const precache = new PrecacheController({ cacheName: CACHE });
const MANIFEST = self.__WB_MANIFEST;
precache.addToCacheList(MANIFEST);
const router = new Router();
router.registerRoute(new PrecacheRoute(precache, { ignoreURLParametersMatching: [/.*/] }));
router.registerRoute(
  new NavigationRoute(precache.createHandlerBoundToURL("/index.html"), { denylist: [SERVER_PATHS] }),
);

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const refused = await checkManifest(MANIFEST, __SW_SOURCE__, BUILD_HASH);
      if (refused) throw await refuse(refused);
      // Each file is fetched with its SHA-256 as subresource integrity: a swapped file fails here.
      await precache.install(event).catch(async (e: unknown) => {
        throw await refuse(
          `a file did not match its SHA-256 (${e instanceof Error ? e.message : "fetch failed"})`,
        );
      });
    })(),
  );
});

/** Tell every Loft window that this build will not run, and why; returns the error to throw. */
async function refuse(reason: string): Promise<Error> {
  for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true }))
    client.postMessage({ type: "loft-update-refused", hash: BUILD_HASH, reason });
  return new Error(`Loft build ${BUILD_HASH} refused: ${reason}`);
}

/** Check the waiting build once more, then activate it — only when the person asked for it. */
async function activateIfIntact(reply: MessagePort | undefined): Promise<void> {
  const refused =
    (await checkManifest(MANIFEST, __SW_SOURCE__, BUILD_HASH)) ??
    (await checkCachedFiles(MANIFEST, CACHE, (url) => precache.getCacheKeyForURL(url)));
  if (refused) {
    await refuse(refused);
    reply?.postMessage({ ok: false, reason: refused });
    return;
  }
  reply?.postMessage({ ok: true });
  await self.skipWaiting();
}

self.addEventListener("activate", (event) => {
  event.waitUntil(sweepOtherVersions().then(() => self.clients.claim()));
});

self.addEventListener("message", (event) => {
  const type = (event.data as { type?: unknown } | null)?.type;
  if (type === "SKIP_WAITING") event.waitUntil(activateIfIntact(event.ports[0]));
  else if (type === "GET_BUILD") event.ports[0]?.postMessage({ hash: BUILD_HASH });
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (isPeerPath(url.pathname)) return event.respondWith(toContentOrigin(url));
  if (url.pathname === SHARE_PATH && event.request.method === "POST")
    return event.respondWith(receiveShare(event.request));
  const handled = router.handleRequest({ event, request: event.request });
  if (handled) event.respondWith(handled);
});

/** `/peer/…` on the app's origin: the same address on the content origin, or a page saying why not. */
async function toContentOrigin(url: URL): Promise<Response> {
  if (!hasContentOrigin(url.hostname)) return errorPage("no_content_origin");
  return Response.redirect(`${url.protocol}//peer.${url.host}${url.pathname}${url.search}`, 302);
}

/**
 * Addresses a notification may open: Home or one chat, `/chat#<id>` (web/src/app/routes.ts), or
 * `/chat/<id>` from a notification shown before the id moved to the fragment. Anything else opens Home.
 */
const NOTIFICATION_PATH = /^\/(chat[/#][0-9a-f]{64})?$/;

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
