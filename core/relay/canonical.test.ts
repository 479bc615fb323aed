import { describe, expect, it } from "vitest";
import { decodeServerFrame } from "./protocol.ts";

describe("relay frames are accepted only in canonical form", () => {
  it("a relay frame with a duplicate key is refused, not read as its last value (fuzz regression)", () => {
    // { e: "AUTH", k: 5, k: "ERR" } — found by test/fuzz/relay-codecs.test.ts
    const dup = Uint8Array.from([131, 161, 101, 164, 65, 85, 84, 72, 161, 107, 5, 161, 107, 163, 69, 82, 82]);
    expect(decodeServerFrame(dup)).toMatchObject({ ok: false, error: { code: "LOFT_ERR_MALFORMED" } });
  });
});
