import { describe, expect, it } from "vitest";
import { hasContentOrigin } from "./port.ts";

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
