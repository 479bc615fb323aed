/**
 * Entry: opens storage, registers the Service Worker, takes a contact link from the URL fragment
 * (`#c=…`, never sent to any server), ties the screens to the URL and history (app/navigation.ts)
 * and renders the app.
 */
import { createEffect, createRoot, createSignal } from "solid-js";
import { render } from "solid-js/web";
import { AppModel } from "./app/model.ts";
import { roomsOf } from "./app/rooms.ts";
import { startProxy } from "./proxy/start.ts";
import { LoftStorage } from "./storage/storage.ts";
import { registerServiceWorker, signalingReached, signalingUnreachable } from "./sw-client.ts";
import { App } from "./ui/App.tsx";
import "./styles.css";

/** Take `#c=…` out of the address bar (so it isn't bookmarked or re-shared) and return it. */
function takeLinkFromHash(): string | undefined {
  if (!/^#c=/.test(location.hash)) return undefined;
  const text = location.href;
  history.replaceState(history.state, "", location.pathname + location.search);
  return text;
}

/** Take a room link (`#room=…&k=…&h=…`, docs/protocol/rooms.md §1) out of the address bar. */
function takeRoomFromHash(): string | undefined {
  if (!/^#room=/.test(location.hash)) return undefined;
  const text = location.hash;
  history.replaceState(history.state, "", location.pathname + location.search);
  return text;
}

async function main() {
  registerServiceWorker();
  const root = document.getElementById("root")!;
  let storage: LoftStorage;
  let deletedElsewhere: (() => void) | undefined;
  try {
    // Another tab needs the database: a newer schema (reload into it), or Delete identity there
    // (this tab locks and says why, in case that tab's message came later: app/other-tabs.ts).
    storage = await LoftStorage.open(undefined, (deleting) => {
      if (!deleting) location.reload();
      else deletedElsewhere?.();
    });
  } catch (e) {
    root.textContent = `Loft can't open its storage in this browser (${(e as Error).message}). Private windows and some privacy settings block it.`;
    return;
  }
  const app = createRoot(() => new AppModel(storage));
  deletedElsewhere = () => app.closeForOtherTab("identity-deleted");
  startProxy(app); // answers the Service Worker's /peer/… requests (docs/protocol/proxy.md)
  // Links taken from the address bar wait here until the app (and, for a room, the engine) is ready.
  const [pendingLink, setPendingLink] = createSignal(takeLinkFromHash());
  const [pendingRoom, setPendingRoom] = createSignal(takeRoomFromHash());
  const joinRoom = (text: string) =>
    roomsOf(app)
      .join(text)
      .then(
        (room) => app.go({ name: "room", room: room.id }),
        (e: Error) => app.setNotice(e.message),
      );
  app.attachHistory();
  createRoot(() => app.attachPage());
  createRoot(() =>
    createEffect(() => {
      const text = pendingLink();
      if (text && app.phase() === "ready") {
        setPendingLink(undefined);
        app.go({ name: "add", text });
      }
    }),
  );
  // A room link waits for the engine (rooms live there): `service` changes once it runs.
  createRoot(() =>
    createEffect(() => {
      app.service();
      const text = pendingRoom();
      if (text && app.phase() === "ready" && app.engine?.rooms) {
        setPendingRoom(undefined);
        void joinRoom(text);
      }
    }),
  );
  // The signaling server reached (at start, or back after a drop: a deploy restarts it): back
  // after a drop or after it was unreachable, look for a new build — a first reach with none of
  // these before it is the page load, which just looked (update-checks.ts `signalingReached`;
  // docs/operations.md, "Upgrading").
  createRoot(() => {
    let connected = false;
    createEffect(() => {
      const state = app.service().signaling;
      if (state === "unreachable") signalingUnreachable();
      const now = state === "connected";
      if (now && !connected) signalingReached();
      connected = now;
    });
  });
  window.addEventListener("hashchange", () => {
    const room = takeRoomFromHash();
    if (room) setPendingRoom(room);
    else {
      const text = takeLinkFromHash();
      if (text) setPendingLink(text);
    }
  });
  // A notification was clicked (sw/index.ts): open the screen it names.
  navigator.serviceWorker?.addEventListener("message", (e: MessageEvent) => {
    const d = e.data as { type?: unknown; path?: unknown } | null;
    if (d?.type === "loft-open" && typeof d.path === "string") app.openPath(d.path);
  });
  render(() => <App app={app} />, root);
  await app.boot();
}

void main();
