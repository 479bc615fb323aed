/** The relay's native hex is exactly core's `toHex` (ids from both meet as the same map keys). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex as coreHex } from "../core/bytes.ts";
import { toHex } from "./hex.ts";

describe("relay hex", () => {
  it("equals core/bytes toHex for any bytes, views into larger buffers included", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(8), (bytes, offset) => {
        const big = new Uint8Array(offset + bytes.length + 3);
        big.set(bytes, offset);
        const view = big.subarray(offset, offset + bytes.length);
        expect(toHex(bytes)).toBe(coreHex(bytes));
        expect(toHex(view)).toBe(coreHex(view));
      }),
    );
  });
});
