import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import {
  paddedBlockSize,
  paddedBucketSize,
  padToBlock,
  padToBucket,
  RELAY_BLOCK_BYTES,
  unpadBlock,
  unpadBucket,
} from "./padding.ts";

const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);

describe("padding (ISO/IEC 7816-4)", () => {
  it("block sizes: always at least one padding byte", () => {
    expect(paddedBlockSize(0)).toBe(RELAY_BLOCK_BYTES);
    expect(paddedBlockSize(RELAY_BLOCK_BYTES - 1)).toBe(RELAY_BLOCK_BYTES);
    expect(paddedBlockSize(RELAY_BLOCK_BYTES)).toBe(2 * RELAY_BLOCK_BYTES);
    const padded = padToBlock(new Uint8Array([1, 2, 3]), 8);
    expect([...padded]).toEqual([1, 2, 3, 0x80, 0, 0, 0, 0]);
  });

  it("bucket sizes: powers of two from the 256-byte minimum", () => {
    expect(paddedBucketSize(0)).toBe(256);
    expect(paddedBucketSize(255)).toBe(256);
    expect(paddedBucketSize(256)).toBe(512);
    expect(paddedBucketSize(1000)).toBe(1024);
    expect(paddedBucketSize(5, 16)).toBe(16);
    expect(() => paddedBucketSize(5, 24)).toThrow(RangeError);
  });

  it("data ending in 0x80 or 0x00 round-trips (the marker is always added)", () => {
    for (const data of [new Uint8Array([0x80]), new Uint8Array([0, 0]), new Uint8Array([1, 0x80, 0])]) {
      expect(unpadBlock(padToBlock(data, 4), 4)).toEqual({ ok: true, value: data });
      expect(unpadBucket(padToBucket(data, 4), 4)).toEqual({ ok: true, value: data });
    }
  });

  it("refuses sizes and layouts the scheme cannot produce with LOFT_ERR_PADDING", () => {
    expect(codeOf(unpadBlock(new Uint8Array(0), 8))).toBe("LOFT_ERR_PADDING");
    expect(codeOf(unpadBlock(new Uint8Array(9), 8))).toBe("LOFT_ERR_PADDING");
    expect(codeOf(unpadBlock(new Uint8Array(8), 8))).toBe("LOFT_ERR_PADDING"); // all zeros: no marker
    expect(codeOf(unpadBlock(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 8))).toBe("LOFT_ERR_PADDING");
    expect(codeOf(unpadBlock(new Uint8Array([1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 8))).toBe(
      "LOFT_ERR_PADDING",
    ); // a whole extra block of zeros
    expect(codeOf(unpadBucket(new Uint8Array(300)))).toBe("LOFT_ERR_PADDING");
    expect(codeOf(unpadBucket(new Uint8Array(128)))).toBe("LOFT_ERR_PADDING");
    const tooBig = new Uint8Array(512);
    tooBig[3] = 0x80; // 3 bytes of data belong in the 256 bucket
    expect(codeOf(unpadBucket(tooBig))).toBe("LOFT_ERR_PADDING");
  });

  it("round-trips and hides all but the bucket (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.constantFrom(1, 7, 64, 1024), (data, block) => {
        const padded = padToBlock(data, block);
        expect(padded.length % block).toBe(0);
        expect(padded.length).toBeGreaterThan(data.length);
        expect(unpadBlock(padded, block)).toEqual({ ok: true, value: data });
        const bucketed = padToBucket(data, 16);
        expect(bucketed.length & (bucketed.length - 1)).toBe(0);
        expect(unpadBucket(bucketed, 16)).toEqual({ ok: true, value: data });
      }),
      { numRuns: Math.floor(FUZZ_RUNS / 4) },
    );
  });

  it("unpad never throws on arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        for (const r of [unpadBlock(bytes, 8), unpadBucket(bytes, 16)]) {
          if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_PADDING");
          else expect(r.value.length).toBeLessThan(bytes.length);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
