/**
 * Property tests of the serving side's input handling: the path normalizer, the Range parser and
 * the multiplexer's entry point (`ProxyServer.receive`) take anything without throwing, and what
 * they let through is always safe — names without traversal, ranges inside the file, DATA never
 * past the credit the requester granted.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { concatBytes } from "../bytes.ts";
import { decodeFrame, encodeFrame, METHODS, type ProxyFrame } from "./frames.ts";
import { normalizePath, parseRange } from "./paths.ts";
import { isPortRequest } from "./port.ts";
import { ProxyServer } from "./server.ts";
import { MemoryFileSource, shareHandler } from "./share.ts";

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
      { numRuns: FUZZ_RUNS },
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
      { numRuns: FUZZ_RUNS },
    );
  });

  it("isPortRequest accepts only well-formed requests", () => {
    fc.assert(
      fc.property(fc.anything(), (d) => {
        if (isPortRequest(d)) expect(d.path.startsWith("/")).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
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
    // The server's work for a frame (the share handler, its reads, its DATA) is promises only, run
    // out by the next macrotask: setImmediate, not setTimeout(0) — which waits ≥ 1 ms in Node, a
    // dozen times the case's cost. With a fixed seed both sent the same DATA (309 931 bytes over
    // 2 000 cases), the setTimeout one 12× slower.
    const settle = () => new Promise<void>((res) => setImmediate(res));
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
            await settle();
          }
          for (let i = 0; i < 5; i++) await settle();
          for (const [id, n] of sent) expect(n).toBeLessThanOrEqual(granted.get(id) ?? 0);
          server.close();
        },
      ),
      // A case is a whole session of up to 20 frames (~4.8 on average) with the server's async work
      // run out between them: ~1.5 ms each on a loaded 2-core machine, so a quarter of the budget —
      // which still feeds ProxyServer.receive over 10⁴ frames (test/support/fuzz.ts's floor).
      { numRuns: Math.ceil(FUZZ_RUNS / 4) },
    );
  });
});
