/**
 * Two contacts, each both requester and server on one session (core/proxy/endpoint.ts): requests
 * run both ways at once, each body reaches the right side, and a bad channel byte is refused; the
 * `proxy.data` handshake extension is read strictly (a malformed value counts as none).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { concatBytes, toHex } from "../bytes.ts";
import { readAll } from "./body.ts";
import {
  PROXY_DATA_EXTENSION,
  PROXY_FLAGS_EXTENSION,
  ProxyEndpoint,
  peerChunkLimit,
  peerReadsNoBody,
  proxyDataExtension,
  proxyFlagsExtension,
} from "./endpoint.ts";
import { type FrameParts, LEGACY_CHUNK, MAX_CHUNK } from "./frames.ts";
import { MemoryFileSource, shareHandler } from "./share.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);

function sideOf(peer: string, owner: string, text: string) {
  const source = new MemoryFileSource();
  source.put("r", ["f.txt"], new TextEncoder().encode(text.repeat(20_000)));
  return {
    peer,
    handler: shareHandler(
      { shares: () => [{ mount: [], root: "r", contacts: new Set([peer]) }], isContact: (p) => p !== owner },
      source,
    ),
  };
}

describe('proxy.data: the DATA size a peer announces (docs/protocol/proxy.md, "DATA size")', () => {
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };

  it("ours says MAX_CHUNK; a peer's is read back, capped at MAX_CHUNK, 16 KiB when absent", () => {
    expect(peerChunkLimit(proxyDataExtension())).toBe(MAX_CHUNK);
    expect(toHex(proxyDataExtension()[PROXY_DATA_EXTENSION]!)).toBe("0000ffe6");
    expect(peerChunkLimit({})).toBe(LEGACY_CHUNK);
    expect(peerChunkLimit({ "noise.suites": u32(MAX_CHUNK) })).toBe(LEGACY_CHUNK);
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: u32(4096) })).toBe(4096);
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: u32(1 << 20) })).toBe(MAX_CHUNK);
  });

  it("a malformed announcement (zero, not 4 bytes) reads as none: 16 KiB", () => {
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: u32(0) })).toBe(LEGACY_CHUNK);
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: Uint8Array.of(0xff, 0xe6) })).toBe(LEGACY_CHUNK);
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: new Uint8Array(5).fill(0xff) })).toBe(LEGACY_CHUNK);
    expect(peerChunkLimit({ [PROXY_DATA_EXTENSION]: new Uint8Array(0) })).toBe(LEGACY_CHUNK);
  });

  it("any bytes give a size in 1…MAX_CHUNK, never a throw (fuzzed)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 8 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        (any, four) => {
          for (const value of [any, four]) {
            const n = peerChunkLimit({ [PROXY_DATA_EXTENSION]: value });
            expect(Number.isInteger(n) && n >= 1 && n <= MAX_CHUNK).toBe(true);
          }
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe('proxy.flags: whether a peer reads NO_BODY (docs/protocol/proxy.md, "Body-less requests")', () => {
  it("ours says so; absent, a reserved bit alone, or anything but one byte reads as no", () => {
    expect(peerReadsNoBody(proxyFlagsExtension())).toBe(true);
    expect(toHex(proxyFlagsExtension()[PROXY_FLAGS_EXTENSION]!)).toBe("01");
    expect(peerReadsNoBody({})).toBe(false);
    expect(peerReadsNoBody(proxyDataExtension())).toBe(false);
    expect(peerReadsNoBody({ [PROXY_FLAGS_EXTENSION]: Uint8Array.of(0x02) })).toBe(false);
    expect(peerReadsNoBody({ [PROXY_FLAGS_EXTENSION]: Uint8Array.of(0xff) })).toBe(true);
    expect(peerReadsNoBody({ [PROXY_FLAGS_EXTENSION]: new Uint8Array(0) })).toBe(false);
    expect(peerReadsNoBody({ [PROXY_FLAGS_EXTENSION]: Uint8Array.of(1, 1) })).toBe(false);
  });

  it("any bytes give a boolean, never a throw; only one byte with bit 0x01 says yes (fuzzed)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6 }), (value) => {
        const yes = peerReadsNoBody({ [PROXY_FLAGS_EXTENSION]: value });
        expect(yes).toBe(value.length === 1 && (value[0]! & 1) === 1);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("proxy endpoint: both roles on one session", () => {
  it("requests run both ways at once and each body reaches the right side", async () => {
    let a!: ProxyEndpoint;
    let b!: ProxyEndpoint;
    const errors: string[] = [];
    const deliver = (to: () => ProxyEndpoint) => (parts: FrameParts) =>
      queueMicrotask(() => {
        const r = to().receive(concatBytes(...parts));
        if (!r.ok) errors.push(r.error.code);
      });
    a = new ProxyEndpoint(
      deliver(() => b),
      sideOf(B, A, "A"),
    );
    b = new ProxyEndpoint(
      deliver(() => a),
      sideOf(A, B, "B"),
    );
    const [fromB, fromA] = await Promise.all([
      a.client.request({ method: "GET", path: "/f.txt", headers: [] }).then((r) => readAll(r.body)),
      b.client.request({ method: "GET", path: "/f.txt", headers: [] }).then((r) => readAll(r.body)),
    ]);
    expect(new TextDecoder().decode(fromB)).toBe("B".repeat(20_000));
    expect(new TextDecoder().decode(fromA)).toBe("A".repeat(20_000));
    expect(errors).toEqual([]);
  });

  it("refuses an empty message and an unknown channel", () => {
    const e = new ProxyEndpoint(() => undefined, sideOf(B, A, "A"));
    const empty = e.receive(new Uint8Array(0));
    expect(empty.ok || empty.error.code).toBe("LOFT_ERR_MALFORMED");
    const bad = e.receive(Uint8Array.of(2, 1, 4, 0, 0, 0, 1));
    expect(bad.ok || bad.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
  });
});
