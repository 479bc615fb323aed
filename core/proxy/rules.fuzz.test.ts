/**
 * Property tests of the serving side's input handling: the path normalizer, the Range parser and
 * the multiplexer's entry point (`ProxyServer.receive`) take anything without throwing, and what
 * they let through is always safe — names without traversal, ranges inside the file, DATA never
 * past the credit the requester granted.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../bytes.ts";
import { decodeFrame, encodeFrame, METHODS, type ProxyFrame } from "./frames.ts";
import { normalizePath, parseRange } from "./paths.ts";
import { isPortRequest } from "./port.ts";
import { ProxyServer } from "./server.ts";
import { MemoryFileSource, shareHandler } from "./share.ts";

const runs = Number(process.env.FUZZ_RUNS ?? 300);
const pathChars = fc.constantFrom(
  "a",
  "b",
  ".",
  "/",
  "\\",
  "%",
  "2",
  "e",
  "f",
  "5",
  "c",
  "0",
  "?",
  "#",
  ":",
  "C",
  " ",
  "\u0000",
  "é",
);

describe("proxy rules under arbitrary input", () => {
  it("normalizePath never throws and never lets a traversal through", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.array(pathChars, { maxLength: 40 }).map((a) => `/${a.join("")}`),
        ),
        (p) => {
          const r = normalizePath(p);
          if (!r.ok) {
            expect(r.error.code).toBe("LOFT_ERR_SCHEMA");
            return;
          }
          for (const seg of r.value) {
            expect(seg).not.toBe("..");
            expect(seg).not.toBe(".");
            expect(seg.startsWith(".")).toBe(false);
            expect(seg.includes("/") || seg.includes("\\") || seg.includes("\u0000")).toBe(false);
            expect(seg.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: runs * 3 },
    );
  });

  it("parseRange returns only ranges inside the file", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes=${a}-${b}`),
        ),
        fc.nat(1e9),
        (h, size) => {
          const r = parseRange(h, size);
          if (typeof r === "object") {
            expect(r.start).toBeGreaterThanOrEqual(0);
            expect(r.end).toBeLessThanOrEqual(size);
            expect(r.start).toBeLessThan(r.end);
          }
        },
      ),
      { numRuns: runs * 3 },
    );
  });

  it("isPortRequest accepts only well-formed requests", () => {
    fc.assert(
      fc.property(fc.anything(), (d) => {
        if (isPortRequest(d)) expect(d.path.startsWith("/")).toBe(true);
      }),
      { numRuns: runs },
    );
  });

  it("ProxyServer.receive takes any frame sequence without throwing and never sends past the credit", async () => {
    const frame: fc.Arbitrary<ProxyFrame> = fc.oneof(
      fc.record({
        type: fc.constant("request" as const),
        id: fc.integer({ min: 1, max: 6 }),
        method: fc.constantFrom(...METHODS),
        window: fc.integer({ min: 0, max: 40_000 }),
        path: fc.constantFrom("/f", "/", "/../f", "/g"),
        headers: fc.constant([] as [string, string][]),
      }),
      // NO_BODY requests (docs/protocol/proxy.md §Body-less requests), then END, DATA or a replay of them.
      fc.record({
        type: fc.constant("request" as const),
        id: fc.integer({ min: 1, max: 6 }),
        method: fc.constantFrom(...METHODS),
        window: fc.integer({ min: 0, max: 40_000 }),
        path: fc.constantFrom("/f", "/g"),
        headers: fc.constant([] as [string, string][]),
        noBody: fc.constant(true as const),
      }),
      fc.record({
        type: fc.constant("data" as const),
        id: fc.integer({ min: 1, max: 6 }),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
      }),
      fc.record({ type: fc.constant("end" as const), id: fc.integer({ min: 1, max: 6 }) }),
      fc.record({
        type: fc.constant("credit" as const),
        id: fc.integer({ min: 1, max: 6 }),
        bytes: fc.integer({ min: 1, max: 50_000 }),
      }),
      fc.record({
        type: fc.constant("reset" as const),
        id: fc.integer({ min: 1, max: 6 }),
        code: fc.constant("cancelled" as const),
        reason: fc.constant(""),
      }),
    );
    const source = new MemoryFileSource();
    source.put("s", ["f"], new Uint8Array(100_000).fill(7));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(frame.map(encodeFrame), fc.uint8Array({ maxLength: 20 })), { maxLength: 20 }),
        async (frames) => {
          const granted = new Map<number, number>();
          const sent = new Map<number, number>();
          const server = new ProxyServer({
            peer: "p",
            send: (f) => {
              const d = decodeFrame(concatBytes(...f));
              expect(d.ok).toBe(true);
              if (d.ok && d.value.type === "data")
                sent.set(d.value.id, (sent.get(d.value.id) ?? 0) + d.value.bytes.length);
            },
            handler: shareHandler(
              { shares: () => [{ mount: [], root: "s", contacts: new Set(["p"]) }], isContact: () => true },
              source,
            ),
          });
          for (const f of frames) {
            const d = decodeFrame(f);
            if (d.ok && d.value.type === "request" && !granted.has(d.value.id))
              granted.set(d.value.id, d.value.window);
            if (d.ok && d.value.type === "credit")
              granted.set(d.value.id, (granted.get(d.value.id) ?? 0) + d.value.bytes);
            const r = server.receive(f);
            if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
            await new Promise((res) => setTimeout(res, 0));
          }
          for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 0));
          for (const [id, n] of sent) expect(n).toBeLessThanOrEqual(granted.get(id) ?? 0);
          server.close();
        },
      ),
      { numRuns: Math.min(runs, 3000) }, // ~15 ms a run (async, real timers): bounded under `npm run fuzz` too
    );
  });
});
