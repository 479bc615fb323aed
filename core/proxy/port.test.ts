import { describe, expect, it } from "vitest";
import { hasContentOrigin, isPortRequest } from "./port.ts";

describe("hasContentOrigin", () => {
  it("is true for a name, false for an IP address or localhost (no same-site peer. subdomain)", () => {
    for (const h of ["loft.example.com", "example.org", "chat.loft.example"])
      expect(hasContentOrigin(h), h).toBe(true);
    for (const h of [
      "127.0.0.1",
      "198.18.0.1",
      "[::1]",
      "[2001:db8::1]",
      "localhost",
      "LOCALHOST",
      "app.localhost",
    ])
      expect(hasContentOrigin(h), h).toBe(false);
  });
});

describe("isPortRequest", () => {
  const base = { type: "loft-proxy", contact: "a".repeat(64), method: "POST", path: "/echo", headers: [] };
  it("takes a request with no body, a whole body, or a streamed upload — never both", () => {
    expect(isPortRequest(base)).toBe(true);
    expect(isPortRequest({ ...base, body: new Uint8Array(3) })).toBe(true);
    expect(isPortRequest({ ...base, upload: true })).toBe(true);
    expect(isPortRequest({ ...base, upload: true, body: new Uint8Array(3) })).toBe(false);
    expect(isPortRequest({ ...base, upload: "yes" })).toBe(false);
    expect(isPortRequest({ ...base, contact: "A".repeat(64) })).toBe(false);
    expect(isPortRequest({ ...base, path: "echo" })).toBe(false);
  });
});
