/**
 * SMP server addresses and queue addresses (simplexmq `protocol/simplex-messaging.md`, "SMP server
 * URI" and "SMP queue URI"; docs/protocol/smp.md, "Addresses"):
 *
 *   server = "smp://" base64url(CA fingerprint, 32 bytes) [":" password] "@" host *("," host) [":" port]
 *   queue  = server "/" base64url(sender id) "#/?v=" min["-"max] "&dh=" base64url(X25519 SPKI)
 *
 * Several hosts name one server (a public name and an onion address, as SimpleX servers publish
 * them): one port for all, tried in order. The password (SMP basic auth, simplexmq
 * `rfcs/done/2022-11-11-smp-basic-auth.md`) only authorizes NEW; a queue address never carries
 * one. IPv6 hosts are bracketed (`[2001:db8::1]`), so that the port stays unambiguous.
 *
 * Pure and isomorphic: the browser parses what a person pastes, the bridge parses what a browser
 * asks for. Every parser returns undefined for anything that is not exactly such an address.
 */
import { base64url, fromBase64url } from "./encoding.ts";
import { decodeSpki, encodeSpki } from "./keys.ts";

/** SMP's usual port, when an address names none. */
export const SMP_DEFAULT_PORT = 5223;
/** Longest address accepted (a DNS name is at most 253 characters). */
export const SMP_ADDRESS_MAX = 512;

/** Most hosts one address names. */
export const SMP_MAX_HOSTS = 8;

export interface SmpServerAddress {
  /** SHA-256 of the server's offline CA certificate (the server identity). */
  fingerprint: Uint8Array;
  /** The first of `hosts`: a DNS name, an IPv4 address, or an IPv6 address without brackets. */
  host: string;
  /** Every host, in the order they are tried (`hosts[0] === host`); absent means `[host]`. */
  hosts?: string[];
  port: number;
  /**
   * The server's password for NEW (SMP basic auth), printable ASCII without space, `@`, `:`, `/`;
   * 1–255 bytes (a `shortString` in NEW). Only in an address a person configures for creating
   * queues; never sent to a bridge, never in a queue address.
   */
  password?: string;
}

/** The hosts of an address, in order. */
export function smpHosts(a: SmpServerAddress): string[] {
  return a.hosts && a.hosts.length > 0 ? a.hosts : [a.host];
}

const PASSWORD = /^[!-~]{1,255}$/;
/** A password as the address grammar takes it (what the reference's BasicAuth parser accepts). */
export function isSmpPassword(s: string): boolean {
  return PASSWORD.test(s) && !/[@:/]/.test(s);
}

export interface SmpQueueAddress {
  server: SmpServerAddress;
  /** The queue's sender id: what `SEND` names. */
  senderId: Uint8Array;
  /** SMP versions the queue's server serves. */
  versions: { min: number; max: number };
  /** The recipient's X25519 key for end-to-end encryption above SMP (raw 32 bytes). */
  dhKey: Uint8Array;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

/** RFC 1123 host name, checked label by label (linear: the relay parses addresses pages send). */
function isHostName(host: string): boolean {
  if (host.length < 1 || host.length > 253) return false;
  return host.split(".").every((label) => label.length <= 63 && LABEL.test(label));
}
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

function parseHost(s: string): string | undefined {
  if (s.startsWith("[")) {
    if (!s.endsWith("]")) return undefined;
    const host = s.slice(1, -1);
    return IPV6.test(host) && host.includes(":") ? host.toLowerCase() : undefined;
  }
  return isHostName(s) ? s.toLowerCase() : undefined;
}

/** `host *("," host) [":" port]`; a bracketed IPv6 host may hold colons, nothing else may. */
function parseHostsPort(s: string): { hosts: string[]; port: number } | undefined {
  let portText: string | undefined;
  let hostsText = s;
  const lastColon = s.lastIndexOf(":");
  if (lastColon >= 0 && lastColon > s.lastIndexOf("]")) {
    portText = s.slice(lastColon + 1);
    hostsText = s.slice(0, lastColon);
  }
  const parts = hostsText.split(",");
  if (parts.length > SMP_MAX_HOSTS) return undefined;
  const hosts: string[] = [];
  for (const part of parts) {
    const host = parseHost(part);
    if (!host) return undefined;
    hosts.push(host);
  }
  let port = SMP_DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  return { hosts, port };
}

/**
 * `smp://<fingerprint>[:password]@host[,host…][:port]`; undefined for anything else (a queue
 * address included).
 */
export function parseSmpServerAddress(address: string): SmpServerAddress | undefined {
  if (address.length > SMP_ADDRESS_MAX || !address.startsWith("smp://")) return undefined;
  const rest = address.slice(6);
  const at = rest.indexOf("@");
  if (at < 0) return undefined;
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(":");
  const fingerprint = fromBase64url(colon < 0 ? userinfo : userinfo.slice(0, colon));
  if (fingerprint?.length !== 32) return undefined;
  const password = colon < 0 ? undefined : userinfo.slice(colon + 1);
  if (password !== undefined && !isSmpPassword(password)) return undefined;
  const hp = parseHostsPort(rest.slice(at + 1));
  if (!hp) return undefined;
  return {
    fingerprint,
    host: hp.hosts[0]!,
    ...(hp.hosts.length > 1 ? { hosts: hp.hosts } : {}),
    port: hp.port,
    ...(password !== undefined ? { password } : {}),
  };
}

/** The address without its password: what goes to a bridge, into a queue address, into logs. */
export function withoutPassword(a: SmpServerAddress): SmpServerAddress {
  const { password: _, ...rest } = a;
  return rest;
}

export function formatSmpServerAddress(a: SmpServerAddress): string {
  const hosts = smpHosts(a)
    .map((h) => (h.includes(":") ? `[${h}]` : h))
    .join(",");
  const password = a.password === undefined ? "" : `:${a.password}`;
  return `smp://${base64url(a.fingerprint)}${password}@${hosts}:${a.port}`;
}

/** A queue address as a SimpleX-protocol client shares it; undefined unless it is exactly one. */
export function parseSmpQueueAddress(address: string): SmpQueueAddress | undefined {
  if (address.length > SMP_ADDRESS_MAX * 2) return undefined;
  const slash = address.indexOf("/", 6);
  const hash = address.indexOf("#/?");
  if (slash < 0 || hash < slash) return undefined;
  const server = parseSmpServerAddress(address.slice(0, slash));
  // A queue address is shared with senders: it never carries the server's password.
  if (server?.password !== undefined) return undefined;
  const senderId = fromBase64url(address.slice(slash + 1, hash));
  if (!server || !senderId || senderId.length === 0 || senderId.length > 255) return undefined;
  const params = new Map<string, string>();
  for (const pair of address.slice(hash + 3).split("&")) {
    const eq = pair.indexOf("=");
    if (eq <= 0 || params.has(pair.slice(0, eq))) return undefined;
    params.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const v = /^([0-9]{1,4})(?:-([0-9]{1,4}))?$/.exec(params.get("v") ?? "");
  const dhDer = fromBase64url(params.get("dh") ?? "");
  const dh = dhDer ? decodeSpki(dhDer) : undefined;
  if (!v || dh?.alg !== "x25519") return undefined;
  const min = Number(v[1]);
  const max = v[2] === undefined ? min : Number(v[2]);
  if (min < 1 || min > max) return undefined;
  return { server, senderId, versions: { min, max }, dhKey: dh.raw };
}

export function formatSmpQueueAddress(q: SmpQueueAddress): string {
  const v = q.versions.min === q.versions.max ? `${q.versions.min}` : `${q.versions.min}-${q.versions.max}`;
  const dh = base64url(encodeSpki({ alg: "x25519", raw: q.dhKey }));
  return `${formatSmpServerAddress(withoutPassword(q.server))}/${base64url(q.senderId)}#/?v=${v}&dh=${dh}`;
}
