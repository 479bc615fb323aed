import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { parseRoute, type Route, routePath } from "./routes.ts";

const ID = "ab".repeat(32);

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
    ];
    for (const r of routes) expect(parseRoute(routePath(r))).toEqual(r);
    expect(routePath({ name: "chat", id: ID })).toBe(`/chat/${ID}`);
    expect(routePath({ name: "safety", id: ID })).toBe(`/contact/${ID}/safety`);
  });

  it("accepts a trailing slash and upper-case hex, and /index.html as home", () => {
    expect(parseRoute(`/chat/${ID.toUpperCase()}/`)).toEqual({ name: "chat", id: ID });
    expect(parseRoute("/settings/")).toEqual({ name: "settings" });
    expect(parseRoute(`/device/${ID.toUpperCase()}/`)).toEqual({ name: "device", id: ID });
    expect(parseRoute("/index.html")).toEqual({ name: "home" });
  });

  it("refuses paths that are not screens: unknown names, bad ids, extra segments", () => {
    for (const p of [
      "/nope",
      "/chat",
      "/chat/",
      "/chat/xyz",
      `/chat/${ID}0`,
      `/chat/${ID}/safety`,
      `/contact/${ID}/other`,
      `/contact/${ID}/safety/x`,
      "/settings/x",
      "/health",
      "/device",
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
});
