import type { IncomingMessage } from "node:http";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clientAddress, sourceKey, sourceOf, trustedProxies, trustProxyOption } from "./client-source.ts";

const req = (remoteAddress: string, xff?: string | string[]) =>
  ({
    socket: { remoteAddress },
    headers: xff === undefined ? {} : { "x-forwarded-for": xff },
  }) as unknown as IncomingMessage;

describe("client source", () => {
  it("ignores X-Forwarded-For from an untrusted peer", () => {
    expect(clientAddress(req("203.0.113.7", "1.2.3.4"), trustedProxies([]))).toBe("203.0.113.7");
    expect(clientAddress(req("203.0.113.7", "1.2.3.4"), trustedProxies(["127.0.0.1"]))).toBe("203.0.113.7");
  });

  it("reads the right-most untrusted hop behind trusted proxies", () => {
    const t = trustedProxies(["loopback", "10.0.0.0/8"]);
    expect(clientAddress(req("127.0.0.1", "198.51.100.9"), t)).toBe("198.51.100.9");
    // a client-supplied left-most entry is not believed
    expect(clientAddress(req("::ffff:127.0.0.1", "6.6.6.6, 198.51.100.9, 10.1.2.3"), t)).toBe("198.51.100.9");
    expect(clientAddress(req("127.0.0.1", ["6.6.6.6", "198.51.100.9"]), t)).toBe("198.51.100.9");
    // garbage stops the walk at the last trusted hop
    expect(clientAddress(req("127.0.0.1", "198.51.100.9, not-an-ip"), t)).toBe("127.0.0.1");
    expect(clientAddress(req("127.0.0.1"), t)).toBe("127.0.0.1");
  });

  it("keys IPv6 by /64 and IPv4 by address", () => {
    expect(sourceKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(sourceKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceKey("::1")).toBe("0:0:0:0::/64");
    expect(sourceKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(sourceKey("192.0.2.1")).toBe("192.0.2.1");
    expect(sourceOf(req("fe80::1%eth0"), trustedProxies([]))).toBe("fe80:0:0:0::/64");
  });

  it("refuses bad --trust-proxy entries at start", () => {
    expect(() => trustProxyOption.parse("10.0.0.0/33")).toThrow(/prefix/);
    expect(() => trustProxyOption.parse("proxy.example")).toThrow(/not an IP/);
    expect(() => trustProxyOption.parse("1.2.3.4/8/9")).toThrow(/not an IP/);
    expect(trustProxyOption.parse("loopback, 10.0.0.0/8")).toEqual(["loopback", "10.0.0.0/8"]);
  });

  it("never throws on arbitrary headers and always returns a source", () => {
    const t = trustedProxies(["loopback"]);
    fc.assert(
      fc.property(fc.string(), fc.oneof(fc.constant("127.0.0.1"), fc.ipV4(), fc.ipV6()), (xff, peer) => {
        const s = sourceOf(req(peer, xff), t);
        expect(s.length).toBeGreaterThan(0);
      }),
      { numRuns: 2_000 },
    );
  });
});
