/**
 * SMP server addresses and queue addresses (simplexmq `protocol/simplex-messaging.md`, "SMP server
 * URI" and "SMP queue URI"; docs/protocol/smp.md, "Addresses"):
 *
 *   server = "smp://" base64url(CA fingerprint, 32 bytes) "@" host [":" port]      ; port 5223
 *   queue  = server "/" base64url(sender id) "#/?v=" min["-"max] "&dh=" base64url(X25519 SPKI)
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

export interface SmpServerAddress {
  /** SHA-256 of the server's offline CA certificate (the server identity). */
  fingerprint: Uint8Array;
  /** A DNS name, an IPv4 address, or an IPv6 address without brackets. */
  host: string;
  port: number;
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

function parseHostPort(s: string): { host: string; port: number } | undefined {
  let host: string;
  let portText: string | undefined;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return undefined;
    host = s.slice(1, end);
    if (!IPV6.test(host) || !host.includes(":")) return undefined;
    const rest = s.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    portText = rest ? rest.slice(1) : undefined;
  } else {
    const parts = s.split(":");
    if (parts.length > 2) return undefined;
    host = parts[0]!;
    portText = parts[1];
    if (!isHostName(host)) return undefined;
  }
  let port = SMP_DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  return { host: host.toLowerCase(), port };
}

/** `smp://<fingerprint>@host[:port]`; undefined for anything else (a queue address included). */
export function parseSmpServerAddress(address: string): SmpServerAddress | undefined {
  if (address.length > SMP_ADDRESS_MAX || !address.startsWith("smp://")) return undefined;
  const rest = address.slice(6);
  const at = rest.indexOf("@");
  if (at < 0) return undefined;
  const fingerprint = fromBase64url(rest.slice(0, at));
  if (fingerprint?.length !== 32) return undefined;
  const hp = parseHostPort(rest.slice(at + 1));
  return hp ? { fingerprint, ...hp } : undefined;
}

export function formatSmpServerAddress(a: SmpServerAddress): string {
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return `smp://${base64url(a.fingerprint)}@${host}:${a.port}`;
}

/** A queue address as a SimpleX-protocol client shares it; undefined unless it is exactly one. */
export function parseSmpQueueAddress(address: string): SmpQueueAddress | undefined {
  if (address.length > SMP_ADDRESS_MAX * 2) return undefined;
  const slash = address.indexOf("/", 6);
  const hash = address.indexOf("#/?");
  if (slash < 0 || hash < slash) return undefined;
  const server = parseSmpServerAddress(address.slice(0, slash));
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
  return `${formatSmpServerAddress(q.server)}/${base64url(q.senderId)}#/?v=${v}&dh=${dh}`;
}
