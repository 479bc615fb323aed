/**
 * Which destinations the SMP bridge may reach (docs/operations.md, "SMP bridge"): the operator's
 * denylist first, then the allowlist (when there is one), then the address check — by default
 * the bridge never connects to loopback, private, link-local, multicast or reserved addresses
 * (it would otherwise let any browser probe the operator's own network), unless the destination
 * is on the allowlist by name or `--smp-bridge-private` is set. The check runs on every address
 * DNS gives, and the bridge connects to the checked address, never resolving twice (no DNS
 * rebinding between check and connect).
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import type { DestinationPattern, SmpBridgeConfig } from "./config.ts";

const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const)
  NOT_PUBLIC.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
  ["64:ff9b:1::", 48],
] as const)
  NOT_PUBLIC.addSubnet(net, bits, "ipv6");

/** True for an address the bridge does not reach unless allowed by name (IPv4-mapped IPv6 as IPv4). */
export function isNonPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return NOT_PUBLIC.check(mapped[1]!, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return NOT_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

function matches(p: DestinationPattern, host: string, port: number): boolean {
  if (p.port !== undefined && p.port !== port) return false;
  if (p.host.startsWith("*.")) return host.endsWith(p.host.slice(1));
  return p.host === host;
}

export type Admission =
  | { ok: true; address: string; family: 4 | 6 }
  | { ok: false; reason: "DENIED" | "UNREACHABLE"; detail: string };

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

export class DestinationPolicy {
  constructor(
    private readonly config: Pick<SmpBridgeConfig, "smpBridgeAllow" | "smpBridgeDeny" | "smpBridgePrivate">,
    private readonly resolve: Resolver = systemResolver,
  ) {}

  /** Where to connect for `host:port`, or why not. */
  async admit(host: string, port: number): Promise<Admission> {
    if (this.config.smpBridgeDeny.some((p) => matches(p, host, port)))
      return { ok: false, reason: "DENIED", detail: "destination on the operator's denylist" };
    const listed = this.config.smpBridgeAllow.some((p) => matches(p, host, port));
    if (this.config.smpBridgeAllow.length > 0 && !listed)
      return { ok: false, reason: "DENIED", detail: "destination not on the operator's allowlist" };
    let addresses: { address: string; family: number }[];
    if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
    else {
      try {
        addresses = await this.resolve(host);
      } catch {
        return { ok: false, reason: "UNREACHABLE", detail: "the server's name does not resolve" };
      }
    }
    if (addresses.length === 0)
      return { ok: false, reason: "UNREACHABLE", detail: "the server's name does not resolve" };
    // Every address must pass: a name that resolves to a public and a private address could be
    // made to connect to either.
    if (!listed && !this.config.smpBridgePrivate && addresses.some((a) => isNonPublicAddress(a.address)))
      return { ok: false, reason: "DENIED", detail: "destination is not a public address" };
    const first = addresses[0]!;
    return { ok: true, address: first.address, family: first.family === 6 ? 6 : 4 };
  }
}
