import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error — a plain .mjs script without type declarations
import { distStaleness, newestInput } from "../../scripts/dist-freshness.mjs";

const roots: string[] = [];
function tree(files: Record<string, number>): string {
  const root = mkdtempSync(join(tmpdir(), "loft-dist-"));
  roots.push(root);
  for (const [path, seconds] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), "x");
    utimesSync(join(root, path), seconds, seconds);
  }
  return root;
}
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe("scripts/dist-freshness.mjs: build before browser tests when needed", () => {
  it("says the build is missing when web/dist does not exist", () => {
    const root = tree({ "web/src/main.tsx": 1000 });
    expect(distStaleness(root)).toMatch(/missing/);
  });

  it("says it is stale when a source is newer than the build", () => {
    const root = tree({
      "web/dist/index.html": 2000,
      "web/dist/sw.js": 2000,
      "web/src/main.tsx": 1000,
      "sw/index.ts": 3000,
    });
    expect(distStaleness(root)).toMatch(/older/);
  });

  it("is satisfied by a build newer than every source, ignoring tests and dependencies", () => {
    const root = tree({
      "web/dist/index.html": 2000,
      "web/dist/sw.js": 2000,
      "web/src/main.tsx": 1000,
      "core/bytes.ts": 1500,
      "core/bytes.test.ts": 9000,
      "web/node_modules/x/index.js": 9000,
    });
    expect(distStaleness(root)).toBeUndefined();
    expect(newestInput(root)).toBe(1_500_000);
  });

  it("needs a complete build: index.html without sw.js is missing", () => {
    const root = tree({ "web/dist/index.html": 2000, "web/src/main.tsx": 1000 });
    expect(distStaleness(root)).toMatch(/missing/);
  });
});
