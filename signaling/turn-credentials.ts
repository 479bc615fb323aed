/**
 * Time-limited TURN credentials in coturn's REST-API scheme (coturn `use-auth-secret` +
 * `static-auth-secret`; docs/protocol/signaling.md "ICE_SERVERS", docs/operations-signaling.md
 * "TURN"): the username is `<expiry, Unix seconds>:<tag>` and the password is the base64 of
 * HMAC-SHA1(secret, username). The TURN server checks the HMAC with the same secret and refuses a
 * username whose expiry has passed, so nothing long-lived ever reaches a browser.
 *
 * The tag is random per connection, not the identity: the TURN operator's logs then do not tie
 * allocations to Loft identities.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { IceServerEntry } from "../core/wire/signaling.ts";

export interface TurnRestConfig {
  /** STUN/TURN URLs handed out (`turn:host:3478?transport=udp`, `turns:…`, `stun:…`). */
  urls: string[];
  /** The secret shared with the TURN server (coturn `static-auth-secret`); empty: no credentials. */
  secret: string;
  /** Lifetime of one set of credentials (seconds). */
  ttlSeconds: number;
}

export interface IssuedIceServers {
  servers: IceServerEntry[];
  /** Unix ms after which the TURN server refuses the credentials. */
  expiresAt: number;
}

/** Whether `url` names a TURN server (`turn:`/`turns:`), which needs credentials; else STUN. */
export const isTurnUrl = (url: string): boolean => /^turns?:/.test(url);

/** A tag for one connection's TURN usernames: 9 random bytes, base64url (12 characters). */
export function turnTag(): string {
  return randomBytes(9).toString("base64url");
}

/** The coturn REST credential for `username` under `secret`. */
export function turnPassword(secret: string, username: string): string {
  return createHmac("sha1", secret).update(username).digest("base64");
}

/**
 * The servers to push at `nowMs`: TURN URLs with credentials expiring `ttlSeconds` from now,
 * STUN URLs without. Undefined when the operator configured none.
 */
export function issueIceServers(
  config: TurnRestConfig,
  tag: string,
  nowMs: number,
): IssuedIceServers | undefined {
  if (config.urls.length === 0) return undefined;
  const expirySeconds = Math.floor(nowMs / 1000) + config.ttlSeconds;
  const stun = config.urls.filter((u) => /^stuns?:/.test(u));
  const turn = config.urls.filter(isTurnUrl);
  const servers: IceServerEntry[] = [];
  if (stun.length > 0) servers.push({ urls: stun });
  if (turn.length > 0 && config.secret) {
    const username = `${expirySeconds}:${tag}`;
    servers.push({ urls: turn, username, credential: turnPassword(config.secret, username) });
  }
  return servers.length > 0 ? { servers, expiresAt: expirySeconds * 1000 } : undefined;
}

/** Re-issue once half the lifetime of what the connection holds has passed (or it holds none). */
export function needsIceRenewal(
  config: TurnRestConfig,
  heldUntil: number | undefined,
  nowMs: number,
): boolean {
  return heldUntil === undefined || heldUntil - nowMs < (config.ttlSeconds * 1000) / 2;
}
