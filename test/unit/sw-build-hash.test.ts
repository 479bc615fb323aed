/**
 * The build hash is one definition on both sides: scripts/build-hash.ts (Node, `npm run build`)
 * and sw/build-integrity.ts (the Service Worker, WebCrypto) give the same hash for the same
 * manifest, whatever the order of its entries — and any change to an entry changes it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildHash } from "../../scripts/build-hash.ts";
import { manifestHash } from "../../sw/build-integrity.ts";

const entry = fc.record({
  url: fc.stringMatching(/^[a-z0-9/._-]{1,30}$/),
  revision: fc.option(fc.stringMatching(/^[0-9a-f]{32}$/), { nil: null }),
  integrity: fc.base64String({ minLength: 44, maxLength: 44 }).map((b) => `sha256-${b}`),
});

describe("build hash: npm run build and the Service Worker agree", () => {
  it("same hash on both sides, independent of entry order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(entry, { selector: (e) => e.url, maxLength: 12 }), async (entries) => {
        const node = buildHash(entries);
        expect(await manifestHash(entries)).toBe(node);
        expect(await manifestHash([...entries].reverse())).toBe(node);
      }),
      { numRuns: 100 },
    );
  });

  it("a changed integrity value changes the hash", async () => {
    const a = [{ url: "index.html", revision: "00", integrity: "sha256-AAAA" }];
    const b = [{ url: "index.html", revision: "00", integrity: "sha256-AAAB" }];
    expect(await manifestHash(a)).not.toBe(await manifestHash(b));
    expect(buildHash(a)).toBe(await manifestHash(a));
  });
});
