/**
 * Screens as URL paths (History API), so Back/Forward, reloads and deep links work:
 *
 *   /                      home
 *   /my-link               my contact link
 *   /add                   add a contact (the pasted link stays in the history entry, not the URL)
 *   /contact#<id>          one contact
 *   /safety#<id>           the safety code with that contact
 *   /chat#<id>             the conversation
 *   /settings              settings
 *   /share                 files shared to Loft from the system: pick the contact (sw/share-target.ts)
 *   /rooms/new             a new room: its link, QR code, copy (docs/protocol/rooms.md)
 *   /room#<room id>        a room: members and chat (`<room id>` 32 lowercase hex, in the
 *                          fragment: docs/protocol/rooms.md §2 — no server sees it)
 *   /pair-device           pair a device over a USB cable (docs/device.md)
 *   /device#<id>           a paired device: telemetry and console while attached
 *
 * `<id>` is a ContactId (64 lowercase hex). Contact links keep using the `#c=` fragment, which
 * never reaches a server (main.tsx). The host and the Service Worker serve index.html for any
 * other path, so every route loads the app.
 *
 * A room's id stays in the fragment because a reload without an active Service Worker (a first
 * visit, a hard reload, a worker being replaced) asks the HTTP server for the path: a room id
 * there would sit in its access log, though signaling is only ever shown the id's hash
 * (docs/protocol/rooms.md §2). A contact's id likewise: the path would tell the server's log which
 * identity this browser talks to, which the server otherwise learns only from presence it is asked
 * for; a paired device's id (a contact's: docs/device.md §7) no less. The older `/room/<room id>`,
 * `/chat/<id>`, `/contact/<id>`, `/contact/<id>/safety` and `/device/<id>` still
 * open their screens (links, bookmarks and notifications from before), and the app's own address
 * for each is the fragment form (app/navigation.ts rewrites an older one it is opened at).
 */
import type { ContactId } from "../engine/api.ts";

export type Route =
  | { name: "home" }
  | { name: "my-link" }
  | { name: "add"; text?: string }
  | { name: "contact"; id: ContactId }
  | { name: "safety"; id: ContactId }
  | { name: "chat"; id: ContactId }
  | { name: "settings" }
  | { name: "share" }
  | { name: "new-room" }
  | { name: "room"; room: string }
  | { name: "pair-device" }
  | { name: "device"; id: ContactId };

const CONTACT_ID = /^[0-9a-f]{64}$/;

/**
 * The address of a route without the page's query (what the address bar shows): its path, and
 * for a room, a contact or a device the fragment that holds the id (`/room#<id>`, `/chat#<id>`;
 * `routeAddress` adds the query).
 */
export function routePath(route: Route): string {
  switch (route.name) {
    case "home":
      return "/";
    case "my-link":
      return "/my-link";
    case "add":
      return "/add";
    case "contact":
      return `/contact#${route.id}`;
    case "safety":
      return `/safety#${route.id}`;
    case "chat":
      return `/chat#${route.id}`;
    case "settings":
      return "/settings";
    case "share":
      return "/share";
    case "new-room":
      return "/rooms/new";
    case "room":
      return `/room#${route.room}`;
    case "pair-device":
      return "/pair-device";
    case "device":
      return `/device#${route.id}`;
  }
}

/**
 * The route of a path (with its fragment, if any: `location.pathname + location.hash`), or
 * undefined for a path that is not a screen of Loft.
 */
export function parseRoute(address: string): Route | undefined {
  const cut = address.indexOf("#");
  const pathname = cut < 0 ? address : address.slice(0, cut);
  const hash = cut < 0 ? "" : address.slice(cut);
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
  if (path === "/room") {
    const id = /^#([0-9a-fA-F]{32})$/.exec(hash);
    return id ? { name: "room", room: id[1]!.toLowerCase() } : undefined;
  }
  if (path === "/chat" || path === "/contact" || path === "/safety" || path === "/device") {
    const id = /^#([0-9a-fA-F]{64})$/.exec(hash);
    return id
      ? { name: path.slice(1) as "chat" | "contact" | "safety" | "device", id: id[1]!.toLowerCase() }
      : undefined;
  }
  if (path === "/" || path === "" || path === "/index.html") return { name: "home" };
  if (path === "/my-link") return { name: "my-link" };
  if (path === "/add") return { name: "add" };
  if (path === "/settings") return { name: "settings" };
  if (path === "/share") return { name: "share" };
  if (path === "/rooms/new") return { name: "new-room" };
  // The address rooms had before (kept so old links and bookmarks open the room).
  const room = /^\/room\/([0-9a-fA-F]{32})$/.exec(path);
  if (room) return { name: "room", room: room[1]!.toLowerCase() };
  if (path === "/pair-device") return { name: "pair-device" };
  // The address a device had before (kept so old bookmarks open it).
  const device = /^\/device\/([0-9a-fA-F]{64})$/.exec(path);
  if (device) return { name: "device", id: device[1]!.toLowerCase() };
  // The addresses contacts had before (kept so old links, bookmarks and notifications open them).
  const m = /^\/(contact|chat)\/([^/]+)(\/safety)?$/.exec(path);
  if (!m) return undefined;
  const id = m[2]!.toLowerCase();
  if (!CONTACT_ID.test(id)) return undefined;
  if (m[3]) return m[1] === "contact" ? { name: "safety", id } : undefined;
  return m[1] === "chat" ? { name: "chat", id } : { name: "contact", id };
}

/**
 * The address to show for `route` with the page's query (`search`, with its "?") and a fragment
 * the route does not use (`hash`, with its "#"): a route whose address has a fragment of its own
 * (a room, a contact, a device) drops `hash`.
 */
export function routeAddress(route: Route, search = "", hash = ""): string {
  const path = routePath(route);
  const cut = path.indexOf("#");
  return cut < 0 ? path + search + hash : path.slice(0, cut) + search + path.slice(cut);
}

/** The contact a route is about, if any. */
export function routeContact(route: Route): ContactId | undefined {
  return "id" in route ? route.id : undefined;
}
