/**
 * The app's end of the content-origin bridge (docs/protocol/proxy.md §Isolation): contacts'
 * content is shown on `peer.<this host>`, never on the app's origin, and that origin's Service
 * Worker reaches this window through a hidden frame of its bridge page (sw/peer-bridge.ts).
 * Only messages from that frame's window and origin are taken, and only well-formed requests.
 */
import { hasContentOrigin, isPortRequest, type PortRequest } from "../../../core/proxy/port.ts";

/** The content origin for this app, or undefined when it has none (reached by an IP address, localhost). */
export function contentOrigin(loc: Location = location): string | undefined {
  if (!hasContentOrigin(loc.hostname)) return undefined;
  return `${loc.protocol}//peer.${loc.host}`;
}

/** Where `/peer/<contact>/<path>` is shown: on the content origin, or undefined when there is none. */
export function contentUrl(contact: string, path = "/"): string | undefined {
  const origin = contentOrigin();
  return origin === undefined ? undefined : `${origin}/peer/${contact}${path}`;
}

/**
 * How long the bridge page has, once its frame has loaded, to say it runs (ms). Its script posts
 * "loft-bridge-started" first thing, then "ready" when the worker is active or "failed" when it
 * is refused (a slow first registration may take longer: "started" stops this timer); silence
 * means the frame holds something else — the browser's error page when `peer.<host>` has no DNS
 * name or nothing answers there, or another server's page — and the content address is taken
 * as not answering (Settings says so, web/src/proxy/ShareFolder.tsx). A late "ready" still wins.
 */
export const BRIDGE_ANSWER_MS = 5_000;

/**
 * Frame the bridge page and hand each request it passes on to `onRequest` with its port.
 * `document.documentElement.dataset.contentOrigin` says "ready" once the content origin's Service
 * Worker is active (a shared page opened from then on is answered), "failed" if it could not start
 * or the bridge did not answer within BRIDGE_ANSWER_MS of its frame loading.
 */
export function mountBridge(onRequest: (req: PortRequest, port: MessagePort) => void): void {
  const origin = contentOrigin();
  if (origin === undefined) return;
  /** The bridge's script ran ("started"), or it said how its worker fared: no silence timeout. */
  let answered = false;
  const frame = document.createElement("iframe");
  frame.src = `${origin}/peer-bridge.html`;
  frame.title = "Loft content bridge";
  frame.hidden = true;
  frame.tabIndex = -1;
  frame.setAttribute("aria-hidden", "true");
  window.addEventListener("message", (e: MessageEvent) => {
    if (e.origin !== origin || e.source !== frame.contentWindow) return;
    const data = e.data as { type?: unknown } | null;
    if (data?.type === "loft-bridge-started") answered = true;
    else if (data?.type === "loft-bridge-ready" || data?.type === "loft-bridge-failed") {
      answered = true;
      document.documentElement.dataset.contentOrigin = data.type === "loft-bridge-ready" ? "ready" : "failed";
    } else if (isPortRequest(data) && e.ports[0]) onRequest(data, e.ports[0]);
  });
  // A frame whose address does not resolve or does not answer still loads (the browser's error
  // page) and never posts, not even "started": without this the note would wait forever for a
  // "failed" that never comes. The bridge's script runs before its frame has loaded, so its
  // "started" comes long before this timer ends whenever the bridge is there.
  frame.addEventListener(
    "load",
    () =>
      setTimeout(() => {
        if (!answered) document.documentElement.dataset.contentOrigin = "failed";
      }, BRIDGE_ANSWER_MS),
    { once: true },
  );
  document.body.append(frame);
}
