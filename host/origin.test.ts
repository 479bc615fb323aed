import type { IncomingMessage } from "node:http";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allowedOriginsOption, originAllowed } from "./origin.ts";

const req = (origin?: string, host = "loft.example:8080") =>
  ({ headers: { host, ...(origin === undefined ? {} : { origin }) } }) as unknown as IncomingMessage;

describe("WebSocket origin check", () => {
  it("accepts the server's own origin and clients without Origin", () => {
    expect(originAllowed(req("http://loft.example:8080"), [])).toBe(true);
    expect(originAllowed(req("https://LOFT.example:8080"), [])).toBe(true);
    expect(originAllowed(req(undefined), [])).toBe(true);
  });

  it("refuses other pages unless listed", () => {
    expect(originAllowed(req("https://evil.example"), [])).toBe(false);
    expect(originAllowed(req("https://loft.example"), [])).toBe(false); // another port is another origin
    expect(originAllowed(req("null"), [])).toBe(false);
    expect(originAllowed(req("not a url"), [])).toBe(false);
    const allowed = allowedOriginsOption.parse("https://app.example, http://127.0.0.1:5173");
    expect(originAllowed(req("https://app.example"), allowed)).toBe(true);
    expect(originAllowed(req("http://127.0.0.1:5173"), allowed)).toBe(true);
    expect(originAllowed(req("https://evil.example"), allowedOriginsOption.parse("*"))).toBe(true);
  });

  it("refuses bad --allowed-origins entries at start", () => {
    expect(() => allowedOriginsOption.parse("app.example")).toThrow(/not a URL/);
    expect(() => allowedOriginsOption.parse("https://app.example/path")).toThrow(/without a path/);
    expect(() => allowedOriginsOption.parse("ftp://app.example")).toThrow(/http\(s\) origin/);
  });

  it("never throws on arbitrary Origin and Host headers", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (origin, host) => {
        expect(typeof originAllowed(req(origin, host), [])).toBe("boolean");
      }),
      { numRuns: 2_000 },
    );
  });
});
