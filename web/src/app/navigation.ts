/**
 * Keeps the current screen (a Solid signal) and the browser history in step (HTML Living
 * Standard, "Session history": pushState/replaceState/popstate). Each in-app step is one history
 * entry, so the browser's and Android's Back and Forward move between screens; a reload reopens
 * the screen in the address bar; a deep link opens its screen with Home underneath, so Back from
 * it stays in the app.
 *
 * Each entry's `history.state` carries its depth, the path of the entry below it (to know when
 * the in-app ← Back can simply be the browser's Back) and, for /add, the pasted link text, which
 * is never put in the URL.
 */
import { type Accessor, createSignal } from "solid-js";
import { parseRoute, type Route, routeAddress, routePath } from "./routes.ts";

interface EntryState {
  loft: 1;
  /** How many in-app entries lie below this one. */
  depth: number;
  /** The path of the entry below, if it is ours. */
  prev?: string;
  /** /add: the link text being added. */
  text?: string;
}

function isEntry(s: unknown): s is EntryState {
  return typeof s === "object" && s !== null && (s as EntryState).loft === 1;
}

function entry(depth: number, route: Route, prev?: string): EntryState {
  const e: EntryState = { loft: 1, depth };
  if (prev !== undefined) e.prev = prev;
  if (route.name === "add" && route.text) e.text = route.text;
  return e;
}

export interface NavigationHooks {
  /** A path that is no screen of Loft was opened (the app shows Home). */
  unknownPath(path: string): void;
  /** The user moved through history (Back/Forward): the model may redirect an invalid route. */
  popped(route: Route): void;
}

/**
 * How long the in-app ← Back waits for the browser's Back it asked for to land (its popstate)
 * before it shows the screen in place (`back`). A same-document traversal lands in milliseconds,
 * a few hundred on a loaded machine; seconds mean it was dropped or is stuck.
 */
export const BACK_LANDS_WITHIN_MS = 3000;

export class Navigation {
  readonly route: Accessor<Route>;
  readonly #setRoute: (r: Route) => void;
  #depth = 0;
  #attached = false;
  /** The fallback of a ← Back not landed yet (`back`); any popstate or new screen ends it. */
  #backFallback: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    [this.route, this.#setRoute] = createSignal<Route>({ name: "home" });
  }

  /** Take the address bar as the first screen and follow Back/Forward from now on. */
  attach(hooks: NavigationHooks): void {
    if (this.#attached) return;
    this.#attached = true;
    const path = location.pathname;
    const parsed = parseRoute(path + location.hash);
    const state: unknown = history.state;
    const keep = location.search + location.hash;
    if (!parsed) {
      history.replaceState(entry(0, { name: "home" }), "", `/${keep}`);
      this.#setRoute({ name: "home" });
      hooks.unknownPath(path);
    } else if (isEntry(state)) {
      // A reload, or a return from another site: the entry is already ours. An older address of
      // the screen (a room's `/room/<id>`: routes.ts) becomes today's, so the next reload sends
      // the server nothing of it.
      this.#depth = state.depth;
      const here = routeAddress(parsed, location.search, location.hash);
      if (here !== path + keep) history.replaceState(state, "", here);
      this.#setRoute(withText(parsed, state));
    } else if (parsed.name !== "home") {
      // Opened straight at a screen (a bookmark, a notification, a typed address).
      history.replaceState(entry(0, { name: "home" }), "", "/");
      history.pushState(entry(1, parsed, "/"), "", routeAddress(parsed, location.search, location.hash));
      this.#depth = 1;
      this.#setRoute(parsed);
    } else {
      history.replaceState(entry(0, parsed), "", routeAddress(parsed, location.search, location.hash));
      this.#setRoute(parsed);
    }
    window.addEventListener("popstate", (e) => {
      this.#endBackFallback();
      const route = parseRoute(location.pathname + location.hash);
      const st: unknown = e.state;
      this.#depth = isEntry(st) ? st.depth : 0;
      if (!route) {
        history.replaceState(entry(this.#depth, { name: "home" }), "", "/");
        this.#setRoute({ name: "home" });
        hooks.unknownPath(location.pathname);
        return;
      }
      // An entry made before an address moved (`/chat/<id>`, kept in this tab's history across an
      // update) shows today's, as at a reload (`attach`): the next reload sends the server no id.
      const here = routeAddress(route, location.search, location.hash);
      if (here !== location.pathname + location.search + location.hash) history.replaceState(st, "", here);
      const r = isEntry(st) ? withText(route, st) : route;
      this.#setRoute(r);
      hooks.popped(r);
    });
  }

  /** Show a screen: a new history entry, or the current one replaced (same path, or `replace`). */
  go(route: Route, replace = false): void {
    this.#endBackFallback();
    if (!this.#attached) {
      this.#setRoute(route);
      return;
    }
    const path = routePath(route);
    const here = routePath(this.route());
    const st: unknown = history.state;
    if (replace || path === here) {
      history.replaceState(entry(this.#depth, route, isEntry(st) ? st.prev : undefined), "", path);
    } else {
      this.#depth += 1;
      history.pushState(entry(this.#depth, route, here), "", path);
    }
    this.#setRoute(route);
  }

  /**
   * The in-app ← Back: the browser's Back when the entry below is `to` (so history doesn't grow
   * with every round trip), else `to` in place of this entry.
   *
   * The browser's Back is asynchronous (HTML Living Standard, "Session history": `history.back()`
   * only queues a traversal), and CI once saw one never land: the room stayed on screen for a
   * minute after ← Back (rooms.e2e, "Bea names the room…"; not reproduced since, see
   * test/e2e/room-reload-back.e2e.ts). A person pressing ← Back must get `to` whatever the
   * browser did with it: when no popstate comes within `BACK_LANDS_WITHIN_MS`, `to` replaces
   * this entry, as when the entry below is not `to`. Should the traversal land after all, it lands
   * on the entry below, which is `to` too. The console line says it happened (a failure report
   * prints the page's console).
   */
  back(to: Route): void {
    const st: unknown = history.state;
    if (!(this.#attached && isEntry(st) && st.depth > 0 && st.prev === routePath(to))) {
      this.go(to, true);
      return;
    }
    this.#endBackFallback();
    // The screens' names, not their addresses: a contact's or room's id stays out of the console.
    const from = this.route().name;
    history.back();
    this.#backFallback = setTimeout(() => {
      this.#backFallback = undefined;
      console.warn(
        `navigation: the browser's Back from the ${from} screen did not land within ${BACK_LANDS_WITHIN_MS} ms; showing the ${to.name} screen in place`,
      );
      this.go(to, true);
    }, BACK_LANDS_WITHIN_MS);
  }

  #endBackFallback(): void {
    if (this.#backFallback === undefined) return;
    clearTimeout(this.#backFallback);
    this.#backFallback = undefined;
  }
}

function withText(route: Route, st: EntryState): Route {
  return route.name === "add" && st.text ? { name: "add", text: st.text } : route;
}
