/**
 * The content origin's Service Worker (`peer.<app host>/peer-sw.js`; docs/protocol/proxy.md
 * §Isolation): it answers `/peer/<contact>/…` through a Loft window (./peer-proxy.ts), and serves
 * the bridge page from its own code (./peer-bridge.ts), so it starts offline. It holds no secret and caches nothing — a contact's page
 * shares this origin with it — so it takes over at once when a new one is served; the app's own
 * Service Worker (./index.ts), which guards the app's code, keeps the honest-update rules.
 */
import { contentOriginPolicy, isPeerPath } from "../core/proxy/port.ts";
import { BRIDGE_HTML, BRIDGE_JS } from "./peer-bridge.ts";
import { APP_HOST, handlePeerRequest } from "./peer-proxy.ts";

declare const self: ServiceWorkerGlobalScope;

self.addEventListener("install", () => {
  void self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (isPeerPath(url.pathname)) event.respondWith(handlePeerRequest(event));
  else if (url.pathname === "/peer-bridge.html") event.respondWith(bridgeFile(BRIDGE_HTML, "text/html"));
  else if (url.pathname === "/peer-bridge.js") event.respondWith(bridgeFile(BRIDGE_JS, "text/javascript"));
});

/** The bridge's files, with the headers the host gives them (host/content-origin.ts). */
function bridgeFile(text: string, type: string): Response {
  return new Response(text, {
    headers: {
      "content-type": `${type}; charset=utf-8`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy": contentOriginPolicy(APP_HOST),
    },
  });
}
