/**
 * Who is on the other end of a request, for per-source limits only (never logged or stored:
 * docs/design.md, "Operators" — "No IP addresses are stored or logged").
 *
 * Behind a reverse proxy every client arrives from the proxy's address, so one busy client would
 * exhaust everyone's per-source budget. `--trust-proxy` names the proxies (addresses or CIDRs);
 * only when the socket's peer is one of them is `X-Forwarded-For` read, from the right, skipping
 * further trusted hops, so a client cannot choose its own source by sending the header itself
 * (the same rule as nginx `real_ip_recursive` and Express `trust proxy` with a list).
 *
 * IPv6 sources are keyed by their /64: a single host normally gets a whole /64, so keying by full
 * address would let one client take 2^64 sources.
 */
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import { ConfigError } from "./config.ts";

/** The configured proxies; empty means X-Forwarded-For is never read. */
export interface TrustedProxies {
  readonly list: readonly string[];
  readonly matches: (address: string) => boolean;
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { list: [], matches: () => false };

/** Strip the IPv4-mapped prefix Node reports on dual-stack sockets (`::ffff:127.0.0.1`). */
function plain(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * Parse `--trust-proxy` entries: `127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`, or the word
 * `loopback` (127.0.0.0/8 and ::1). Throws a ConfigError naming the bad entry.
 */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  if (entries.length === 0) return NO_TRUSTED_PROXIES;
  const blocks = new BlockList();
  for (const entry of entries) {
    if (entry === "loopback") {
      blocks.addSubnet("127.0.0.0", 8, "ipv4");
      blocks.addAddress("::1", "ipv6");
      continue;
    }
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    if (family === 0 || extra !== undefined)
      throw new ConfigError(`trusted proxy "${entry}" is not an IP address or CIDR`);
    const type = family === 4 ? "ipv4" : "ipv6";
    if (bits === undefined) {
      blocks.addAddress(address, type);
      continue;
    }
    const prefix = Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128) || bits === "")
      throw new ConfigError(`trusted proxy "${entry}" has a bad prefix length`);
    blocks.addSubnet(address, prefix, type);
  }
  return {
    list: [...entries],
    matches: (a) => {
      const p = plain(a);
      const family = isIP(p);
      return family !== 0 && blocks.check(p, family === 4 ? "ipv4" : "ipv6");
    },
  };
}

/**
 * The client's address: the socket peer, or, when that peer is a trusted proxy, the right-most
 * `X-Forwarded-For` entry that is not itself a trusted proxy. A malformed entry stops the walk
 * at the last trusted hop (the proxy's own address is then the source: strict, never spoofable).
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies): string {
  let address = plain(req.socket.remoteAddress ?? "");
  if (!trusted.matches(address)) return address || "unknown";
  const header = req.headers["x-forwarded-for"];
  const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plain(hops[i]!);
    if (isIP(hop) === 0) break;
    address = hop;
    if (!trusted.matches(hop)) break;
  }
  return address || "unknown";
}

/** The key per-source limits count under: IPv4 as is, IPv6 by its /64. */
export function sourceKey(address: string): string {
  const a = plain(address);
  if (isIP(a) !== 6) return a;
  const groups = expandIpv6(a);
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, lowercase, without zone. */
function expandIpv6(address: string): string[] {
  const noZone = address.split("%")[0]!.toLowerCase();
  const [head = "", tail] = noZone.split("::");
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  let left = parse(head);
  let right = tail === undefined ? [] : parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) counts as two groups.
  const fix = (groups: string[]) => {
    const last = groups[groups.length - 1];
    if (last && isIP(last) === 4) {
      const [a, b, c, d] = last.split(".").map(Number) as [number, number, number, number];
      groups.splice(-1, 1, ((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
    }
    return groups;
  };
  if (tail === undefined) left = fix(left);
  else right = fix(right);
  const fill = 8 - left.length - right.length;
  return [...left, ...Array.from({ length: Math.max(0, fill) }, () => "0"), ...right].map((g) =>
    Number.parseInt(g, 16).toString(16),
  );
}

/** Both steps: the per-source key of a request. */
export function sourceOf(req: IncomingMessage, trusted: TrustedProxies): string {
  return sourceKey(clientAddress(req, trusted));
}

/** The shared `--trust-proxy` option, read by signaling, the relay and the combined server. */
export const trustProxyOption = {
  flag: "trust-proxy",
  env: "LOFT_TRUST_PROXY",
  default: [] as string[],
  parse: (raw: string): string[] => {
    const entries = raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    trustedProxies(entries); // fail at start, with the entry named
    return entries;
  },
  help: "comma-separated proxy addresses or CIDRs (or 'loopback') whose X-Forwarded-For is believed; per-source limits then count the client behind them",
};
