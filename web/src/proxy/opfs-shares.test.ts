/**
 * The OPFS share's handle cache key (opfs-shares.ts `fileKey`): one key per (root, path), whatever
 * the segments hold — a "/" inside a name must not reach another path's cached handle.
 */
import { describe, expect, it } from "vitest";
import { fileKey } from "./opfs-shares.ts";

describe("the OPFS handle cache key", () => {
  it("tells a segment holding the separator of a join from two segments", () => {
    expect(fileKey("r", ["a/b"])).not.toBe(fileKey("r", ["a", "b"]));
    expect(fileKey("r/a", ["b"])).not.toBe(fileKey("r", ["a", "b"]));
    expect(fileKey("r", ["a", "b"])).toBe(fileKey("r", ["a", "b"]));
    expect(fileKey("r", ["a", "b"])).not.toBe(fileKey("r", ["b", "a"]));
  });
});
