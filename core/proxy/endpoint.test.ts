/**
 * Two contacts, each both requester and server on one session (core/proxy/endpoint.ts): requests
 * run both ways at once, each body reaches the right side, and a bad channel byte is refused.
 */
import { describe, expect, it } from "vitest";
import { readAll } from "./body.ts";
import { ProxyEndpoint } from "./endpoint.ts";
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

describe("proxy endpoint: both roles on one session", () => {
  it("requests run both ways at once and each body reaches the right side", async () => {
    let a!: ProxyEndpoint;
    let b!: ProxyEndpoint;
    const errors: string[] = [];
    const deliver = (to: () => ProxyEndpoint) => (m: Uint8Array) =>
      queueMicrotask(() => {
        const r = to().receive(m);
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
