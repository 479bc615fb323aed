import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { parseRoute, type Route, routeAddress, routePath } from "./routes.ts";

const ID = "ab".repeat(32);
const ROOM = "0123456789abcdef0123456789abcdef";

describe("routes: screens as URL paths", () => {
  it("maps every screen to a path and back", () => {
    const routes: Route[] = [
      { name: "home" },
      { name: "my-link" },
      { name: "add" },
      { name: "settings" },
      { name: "contact", id: ID },
      { name: "safety", id: ID },
      { name: "chat", id: ID },
      { name: "pair-device" },
      { name: "device", id: ID },
      { name: "new-room" },
      { name: "room", room: ROOM },
    ];
    for (const r of routes) expect(parseRoute(routePath(r))).toEqual(r);
    expect(routePath({ name: "chat", id: ID })).toBe(`/chat#${ID}`);
    expect(routePath({ name: "contact", id: ID })).toBe(`/contact#${ID}`);
    expect(routePath({ name: "safety", id: ID })).toBe(`/safety#${ID}`);
    expect(routePath({ name: "device", id: ID })).toBe(`/device#${ID}`);
  });

  it("accepts a trailing slash and upper-case hex, and /index.html as home", () => {
    expect(parseRoute(`/chat/${ID.toUpperCase()}/`)).toEqual({ name: "chat", id: ID });
    expect(parseRoute(`/chat#${ID.toUpperCase()}`)).toEqual({ name: "chat", id: ID });
    expect(parseRoute("/settings/")).toEqual({ name: "settings" });
    expect(parseRoute(`/device/${ID.toUpperCase()}/`)).toEqual({ name: "device", id: ID });
    expect(parseRoute("/index.html")).toEqual({ name: "home" });
  });

  it("refuses paths that are not screens: unknown names, bad ids, extra segments", () => {
    for (const p of [
      "/nope",
      "/chat",
      "/chat#",
      `/chat#${ID}0`,
      `/chat#${ID.slice(2)}`,
      `/chat#c=${ID}`,
      `/contact#${ID}/safety`,
      `/safety#${ID}x`,
      "/safety",
      "/chat/",
      "/chat/xyz",
      `/chat/${ID}0`,
      `/chat/${ID}/safety`,
      `/contact/${ID}/other`,
      `/contact/${ID}/safety/x`,
      "/settings/x",
      "/health",
      "/device",
      "/device#",
      `/device#${ID}0`,
      `/device#${ID}/x`,
      `/device/${ID}/x`,
      "/device/xyz",
      "/pair-device/x",
    ])
      expect(parseRoute(p), p).toBeUndefined();
  });

  it("never throws and only returns well-formed routes for any path", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const r = parseRoute(`/${s}`);
        if (r && "id" in r) expect(r.id).toMatch(/^[0-9a-f]{64}$/);
        if (r) expect(parseRoute(routePath(r))).toEqual(r);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a room's id is in the fragment, never the path (a reload asks the server for the path)", () => {
    const address = routePath({ name: "room", room: ROOM });
    expect(address).toBe(`/room#${ROOM}`);
    expect(new URL(address, "https://loft.example").pathname).toBe("/room");
    expect(parseRoute(`/room#${ROOM.toUpperCase()}`)).toEqual({ name: "room", room: ROOM });
    // The address rooms had before still opens the room.
    expect(parseRoute(`/room/${ROOM}`)).toEqual({ name: "room", room: ROOM });
    for (const p of [
      "/room",
      "/room#",
      "/room#abc",
      `/room#${ROOM}0`,
      `/room#room=${ROOM}`,
      `/room/#${ROOM}x`,
    ])
      expect(parseRoute(p), p).toBeUndefined();
    // The page's query goes before the route's own fragment, and a fragment the route does not use
    // is kept only where the route has none.
    expect(routeAddress({ name: "room", room: ROOM }, "?x=1", "#other")).toBe(`/room?x=1#${ROOM}`);
    expect(routeAddress({ name: "settings" }, "?x=1", "#other")).toBe("/settings?x=1#other");
  });

  it("any address's room route carries its id only after the #", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 }), (a, b) => {
        const r = parseRoute(`/${a}#${b}`);
        if (r?.name === "room") expect(routePath(r).split("#")[0]).toBe("/room");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a contact's id is in the fragment, never the path; the older paths still open their screens", () => {
    for (const [route, path] of [
      [{ name: "chat", id: ID }, "/chat"],
      [{ name: "contact", id: ID }, "/contact"],
      [{ name: "safety", id: ID }, "/safety"],
      [{ name: "device", id: ID }, "/device"],
    ] as const) {
      const address = routePath(route);
      expect(new URL(address, "https://loft.example").pathname).toBe(path);
      expect(new URL(address, "https://loft.example").hash).toBe(`#${ID}`);
      expect(routeAddress(route, "?x=1", "#other")).toBe(`${path}?x=1#${ID}`);
    }
    expect(parseRoute(`/chat/${ID}`)).toEqual({ name: "chat", id: ID });
    expect(parseRoute(`/contact/${ID}`)).toEqual({ name: "contact", id: ID });
    expect(parseRoute(`/contact/${ID}/safety`)).toEqual({ name: "safety", id: ID });
    expect(parseRoute(`/device/${ID}`)).toEqual({ name: "device", id: ID });
  });

  it("no route's path carries an id: a reload without the Service Worker shows the server none", () => {
    // Addresses of every form that names an id, today's and older ones, any case, with or without
    // a trailing slash: whichever screen they open, its address keeps the id out of the path.
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
    const address = fc.oneof(
      fc.tuple(fc.constantFrom("/chat#", "/contact#", "/safety#", "/device#"), hex(64), fc.constant("")),
      fc.tuple(
        fc.constantFrom("/chat/", "/contact/", "/device/"),
        hex(64),
        fc.constantFrom("", "/", "/safety"),
      ),
      fc.tuple(fc.constantFrom("/room#", "/room/"), hex(32), fc.constantFrom("", "/")),
    );
    fc.assert(
      fc.property(address, ([before, id, after]) => {
        const r = parseRoute(before + id + after);
        if (!r) return;
        expect(routePath(r).split("#")[0]).not.toMatch(/[0-9a-f]{32}/i);
        expect(routePath(r).split("#")[1]).toBe(id.toLowerCase());
      }),
      { numRuns: FUZZ_RUNS },
    );
    for (const r of [
      { name: "chat", id: ID },
      { name: "contact", id: ID },
      { name: "safety", id: ID },
      { name: "device", id: ID },
      { name: "room", room: ROOM },
    ] as Route[])
      expect(routePath(r).split("#")[0]).not.toMatch(/[0-9a-f]{32}/);
  });
});
