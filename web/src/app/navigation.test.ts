import { afterEach, describe, expect, it, vi } from "vitest";
import { Navigation } from "./navigation.ts";
import type { Route } from "./routes.ts";

const ROOM = "0123456789abcdef0123456789abcdef";
const room: Route = { name: "room", room: ROOM };
const home: Route = { name: "home" };
const settings: Route = { name: "settings" };

interface Entry {
  url: string;
  state: unknown;
  /** The document this entry shows: entries of one document traverse by `popstate`. */
  doc: number;
}

/**
 * One tab's session history as the HTML Living Standard's "Session history" has it, reduced to
 * what navigation.ts uses: pushState/replaceState keep the document; a reload gives the current
 * entry a new document; Back to an entry of the same document is a `popstate`, to an entry of
 * another document a page load (recorded: the app starts anew there, and this document is gone).
 */
class Tab {
  entries: Entry[] = [];
  index = 0;
  #docs = 0;
  /** Cross-document traversals: the addresses a new document was loaded for. */
  readonly loads: string[] = [];
  #listeners: ((e: { state: unknown }) => void)[] = [];
  #popstates: (() => void)[] = [];

  constructor(url: string) {
    this.entries = [{ url, state: null, doc: ++this.#docs }];
    const tab = this;
    vi.stubGlobal("location", {
      get pathname() {
        return new URL(tab.#current.url, "https://loft.test").pathname;
      },
      get search() {
        return new URL(tab.#current.url, "https://loft.test").search;
      },
      get hash() {
        return new URL(tab.#current.url, "https://loft.test").hash;
      },
    });
    vi.stubGlobal("history", {
      get state() {
        return tab.#current.state;
      },
      pushState(state: unknown, _: string, url: string) {
        tab.entries.splice(tab.index + 1, Infinity, {
          url,
          state: structuredClone(state),
          doc: tab.#current.doc,
        });
        tab.index += 1;
      },
      replaceState(state: unknown, _: string, url: string) {
        tab.entries[tab.index] = { url, state: structuredClone(state), doc: tab.#current.doc };
      },
      back() {
        tab.#traverse(-1);
      },
      forward() {
        tab.#traverse(1);
      },
    });
    vi.stubGlobal("window", {
      addEventListener(type: string, f: (e: { state: unknown }) => void) {
        if (type === "popstate") tab.#listeners.push(f);
      },
    });
  }

  get #current(): Entry {
    return this.entries[this.index]!;
  }

  get url(): string {
    return this.#current.url;
  }

  /** A new document for this entry: what listened before is gone. */
  reload(): Navigation {
    this.#current.doc = ++this.#docs;
    return this.#start();
  }

  /** The new document a cross-document traversal loaded. */
  loaded(): Navigation {
    return this.#start();
  }

  #start(): Navigation {
    this.#listeners = [];
    this.#popstates = [];
    const nav = new Navigation();
    nav.attach({ unknownPath: () => {}, popped: () => {} });
    return nav;
  }

  #traverse(delta: number): void {
    const target = this.index + delta;
    if (target < 0 || target >= this.entries.length) return;
    const sameDocument = this.entries[target]!.doc === this.#current.doc;
    this.index = target;
    if (sameDocument) {
      // Queued (a task, not at once), as the traversal is.
      const listeners = [...this.#listeners];
      this.#popstates.push(() => {
        for (const l of listeners) l({ state: this.#current.state });
      });
    } else {
      this.#listeners = [];
      this.loads.push(this.#current.url);
    }
  }

  /** Deliver the queued `popstate` events. */
  settle(): void {
    for (const p of this.#popstates.splice(0)) p();
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("navigation: the in-app ← Back", () => {
  it("is the browser's Back within one document: Home by popstate, Forward returns", () => {
    const tab = new Tab("/");
    const nav = tab.reload();
    nav.go(settings);
    nav.back(home);
    tab.settle();
    expect(nav.route()).toEqual(home);
    expect(tab.url).toBe("/");
    expect(tab.loads).toEqual([]);
    expect(tab.entries.map((e) => e.url)).toEqual(["/", "/settings"]);
  });

  it("after a reload, shows Home at once in this document: no cross-document traversal, no new page load", () => {
    const tab = new Tab("/");
    tab.reload().go(room);
    const nav = tab.reload();
    expect(nav.route()).toEqual(room);
    nav.back(home);
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(home);
    expect(tab.url).toBe("/");
    // The room's entry became Home; the one below it (the earlier document's) is still there, in the app.
    expect(tab.entries.map((e) => e.url)).toEqual(["/", "/"]);
  });

  it("after a reload, a screen opened in this document goes Back by popstate; the reloaded one's Back does not", () => {
    const tab = new Tab("/");
    tab.reload().go(room);
    const nav = tab.reload();
    nav.go(settings);
    nav.back(room);
    tab.settle();
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(room);
    expect(tab.entries.map((e) => e.url)).toEqual(["/", `/room#${ROOM}`, "/settings"]);
    // Back on the reloaded room's entry: the entry below is still the earlier document's.
    nav.back(home);
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(home);
  });

  it("a screen replaced after a reload keeps whose the entry below is", () => {
    const tab = new Tab("/");
    tab.reload().go(room);
    const nav = tab.reload();
    nav.go(settings, true);
    nav.back(home);
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(home);
  });

  it("a deep link (Home put below it by this document) goes Back by popstate", () => {
    const tab = new Tab(`/room#${ROOM}`);
    const nav = tab.reload();
    expect(tab.entries.map((e) => e.url)).toEqual(["/", `/room#${ROOM}`]);
    nav.back(home);
    tab.settle();
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(home);
    expect(tab.index).toBe(0);
  });

  it("an entry from an older version (no document in its state) is replaced, not traversed", () => {
    const tab = new Tab("/");
    tab.entries = [
      { url: "/", state: { loft: 1, depth: 0 }, doc: 99 },
      { url: `/room#${ROOM}`, state: { loft: 1, depth: 1, prev: "/" }, doc: 99 },
    ];
    tab.index = 1;
    const nav = tab.reload();
    nav.back(home);
    expect(tab.loads).toEqual([]);
    expect(nav.route()).toEqual(home);
  });

  it("the browser's own Back after a reload still loads Home below, in the app", () => {
    const tab = new Tab("/");
    tab.reload().go(room);
    tab.reload();
    history.back();
    expect(tab.loads).toEqual(["/"]);
    expect(tab.loaded().route()).toEqual(home);
  });
});
