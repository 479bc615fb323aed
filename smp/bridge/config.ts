/**
 * SMP bridge options (docs/operations.md, "SMP bridge"): flags and environment variables through
 * host/config.ts, read by `npm start` (server/main.ts) and `npm run relay` (relay-ws/main.ts).
 */
import { bool, ConfigError, int, list } from "../../host/config.ts";

/** A destination pattern: `host`, `*.domain`, either with `:port`; IPv6 literals in brackets. */
export interface DestinationPattern {
  /** Lower-case host name or address; a leading "*." matches any subdomain (not the domain itself). */
  host: string;
  /** Undefined: any port. */
  port?: number;
}

export function parsePatterns(raw: string): DestinationPattern[] {
  return list(raw).map((entry) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9*.-]+)(?::([0-9]{1,5}))?$/.exec(entry);
    const host = m?.[1]?.replace(/^\[|\]$/g, "").toLowerCase();
    const port = m?.[2] === undefined ? undefined : Number(m[2]);
    if (
      !host ||
      (host.includes("*") && !/^\*\.[a-z0-9.-]+$/.test(host)) ||
      (port !== undefined && (port < 1 || port > 65535))
    )
      throw new ConfigError(
        `SMP bridge destination "${entry}": expected host, *.domain, host:port or [v6]:port`,
      );
    return port === undefined ? { host } : { host, port };
  });
}

export const smpBridgeOptions = {
  smpBridge: {
    flag: "smp-bridge",
    env: "LOFT_SMP_BRIDGE",
    default: true,
    parse: bool,
    help: "carry browsers' SMP connections to SMP servers (WebSocket /smp-bridge)",
  },
  smpBridgeAllow: {
    flag: "smp-bridge-allow",
    env: "LOFT_SMP_BRIDGE_ALLOW",
    default: [] as DestinationPattern[],
    parse: parsePatterns,
    help: "comma-separated destinations the bridge may reach (host, *.domain, host:port); empty: any public address. Listed hosts may be private addresses",
  },
  smpBridgeDeny: {
    flag: "smp-bridge-deny",
    env: "LOFT_SMP_BRIDGE_DENY",
    default: [] as DestinationPattern[],
    parse: parsePatterns,
    help: "comma-separated destinations the bridge refuses (checked before the allowlist)",
  },
  smpBridgePrivate: {
    flag: "smp-bridge-private",
    env: "LOFT_SMP_BRIDGE_PRIVATE",
    default: false,
    parse: bool,
    help: "let the bridge reach loopback, private and link-local addresses that are not on the allowlist",
  },
  smpBridgeMaxPerSource: {
    flag: "smp-bridge-max-per-source",
    env: "LOFT_SMP_BRIDGE_MAX_PER_SOURCE",
    default: 8,
    parse: int(1, 10_000),
    help: "bridged SMP connections one client address may hold at once",
  },
  smpBridgeMaxConnections: {
    flag: "smp-bridge-max-connections",
    env: "LOFT_SMP_BRIDGE_MAX_CONNECTIONS",
    default: 1000,
    parse: int(1, 1_000_000),
    help: "bridged SMP connections the relay holds at once",
  },
};

export interface SmpBridgeConfig {
  smpBridge: boolean;
  smpBridgeAllow: DestinationPattern[];
  smpBridgeDeny: DestinationPattern[];
  smpBridgePrivate: boolean;
  smpBridgeMaxPerSource: number;
  smpBridgeMaxConnections: number;
}
