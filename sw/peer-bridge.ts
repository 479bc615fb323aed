/**
 * The bridge page on the content origin (docs/protocol/proxy.md §Isolation): a Loft window frames
 * `peer.<app host>/peer-bridge.html`, hidden; the page registers the content origin's Service
 * Worker (sw/peer-origin.ts) and passes each request's MessagePort from that worker to the Loft
 * window that frames it — to the app's origin only (`postMessage` with that target origin), so
 * a page framing it elsewhere gets nothing.
 *
 * One source for both ways it is served: the host serves the files the build writes from these
 * strings (web/vite.config.ts), and the content origin's Service Worker serves the same strings
 * from its own code, so the bridge starts offline too — and nothing a contact's page can reach
 * (this origin's Cache Storage) holds it.
 */

/** What the bridge uses of its window (this file is typed for workers, which have none). */
interface BridgeWindow {
  readonly parent: BridgeWindow;
  postMessage(message: unknown, targetOrigin: string, transfer?: Transferable[]): void;
}

/** Runs in the bridge page. Self-contained: it is shipped as its own source text. */
function bridge(): void {
  const window = globalThis as unknown as BridgeWindow;
  if (window.parent === window) return;
  const app = `${location.protocol}//${location.host.replace(/^peer\./, "")}`;
  // First: this script runs, so the frame holds the bridge and not an error page — the app stops
  // its silence timer (web/src/proxy/bridge.ts BRIDGE_ANSWER_MS); a slow first registration is
  // not taken for a content address that does not answer.
  window.parent.postMessage({ type: "loft-bridge-started" }, app);
  const sw = navigator.serviceWorker as ServiceWorkerContainer | undefined;
  if (!sw) {
    window.parent.postMessage({ type: "loft-bridge-failed", reason: "no Service Worker here" }, app);
    return;
  }
  sw.addEventListener("message", (e: MessageEvent) => {
    const data = e.data as { type?: unknown } | null;
    if (data?.type !== "loft-proxy" || !e.ports[0]) return;
    window.parent.postMessage(data, app, [e.ports[0]]);
  });
  sw.startMessages();
  void sw
    .register("/peer-sw.js", { scope: "/" })
    .then(() => sw.ready)
    .then(
      () => window.parent.postMessage({ type: "loft-bridge-ready" }, app),
      (err: unknown) => window.parent.postMessage({ type: "loft-bridge-failed", reason: String(err) }, app),
    );
}

export const BRIDGE_JS = `(${bridge.toString()})();\n`;

export const BRIDGE_HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Loft content bridge</title>
<script src="/peer-bridge.js"></script></head><body></body></html>
`;
