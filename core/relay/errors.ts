/**
 * Typed errors of the relay mailbox protocol (docs/protocol/relay.md §Errors).
 *
 * The relay answers a refused command with `ERR` and a short wire code (SMP's error names where
 * SMP has one: `AUTH`, `QUOTA`, `NO_MSG`, `LARGE_MSG` → `LARGE`, `PROHIBITED`, `INTERNAL`). The client
 * maps each wire code to a stable `LOFT_ERR_*` code with the one table below. Codes that already
 * exist for every layer (malformed, schema, frame too large, version, timeout, link closed) are
 * reused; the relay-only ones are `LOFT_ERR_RELAY_*`. Failures are thrown as core/errors.ts's
 * `LoftError`, like everywhere else.
 */
import type { LoftErrorCode } from "../errors.ts";

/**
 * Relay-specific failure classes (part of `LoftErrorCode`): AUTH — unknown queue, wrong key, bad or
 * missing signature, suspended queue, wrong id kind; QUOTA — the queue is full; FULL — the relay's
 * storage is full (global quota or disk), retry later; NO_MSG — ACK for a
 * message not in flight here; PROHIBITED — not allowed in this state; DUPLICATE — a send id the
 * queue already accepted; LIMIT — a per-connection limit; RATE — token bucket empty; NO_BUNDLE —
 * no prekey bundle published; INTERNAL — store failure, retry; UNAVAILABLE —
 * the relay's shared store (Redis, several instances) cannot be reached now, retry (or another relay); UNEXPECTED — a reply that does not
 * fit the command (client side); SOURCE_RATE — the command budget of the client's network
 * address (all its connections together) is spent; STORE_RATE — the storage budget of the
 * client's network address (bytes written per window) is spent.
 */
export type RelayOnlyErrorCode = Extract<LoftErrorCode, `LOFT_ERR_RELAY_${string}`>;

/** Any code a relay operation fails with: a `LoftErrorCode` (the names predate the merge). */
export type RelayErrorCode = LoftErrorCode;

/** Short codes carried in `ERR` frames, one per failure class. */
export const WIRE_ERROR_CODES = [
  "AUTH",
  "QUOTA",
  "FULL",
  "NO_MSG",
  "PROHIBITED",
  "DUPLICATE",
  "LIMIT",
  "RATE",
  "SOURCE_RATE",
  "STORE_RATE",
  "NO_BUNDLE",
  "INTERNAL",
  "UNAVAILABLE",
  "LARGE",
  "MALFORMED",
  "SCHEMA",
  "UNKNOWN",
  "VERSION",
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

const WIRE_TO_CODE: Record<WireErrorCode, RelayErrorCode> = {
  AUTH: "LOFT_ERR_RELAY_AUTH",
  QUOTA: "LOFT_ERR_RELAY_QUOTA",
  FULL: "LOFT_ERR_RELAY_FULL",
  NO_MSG: "LOFT_ERR_RELAY_NO_MSG",
  PROHIBITED: "LOFT_ERR_RELAY_PROHIBITED",
  DUPLICATE: "LOFT_ERR_RELAY_DUPLICATE",
  LIMIT: "LOFT_ERR_RELAY_LIMIT",
  RATE: "LOFT_ERR_RELAY_RATE",
  SOURCE_RATE: "LOFT_ERR_RELAY_SOURCE_RATE",
  STORE_RATE: "LOFT_ERR_RELAY_STORE_RATE",
  NO_BUNDLE: "LOFT_ERR_RELAY_NO_BUNDLE",
  INTERNAL: "LOFT_ERR_RELAY_INTERNAL",
  UNAVAILABLE: "LOFT_ERR_RELAY_UNAVAILABLE",
  LARGE: "LOFT_ERR_FRAME_TOO_LARGE",
  MALFORMED: "LOFT_ERR_MALFORMED",
  SCHEMA: "LOFT_ERR_SCHEMA",
  UNKNOWN: "LOFT_ERR_UNKNOWN_TYPE",
  VERSION: "LOFT_ERR_UNSUPPORTED_VERSION",
};

const CODE_TO_WIRE = new Map<RelayErrorCode, WireErrorCode>(
  Object.entries(WIRE_TO_CODE).map(([w, c]) => [c, w as WireErrorCode]),
);

/** What an `ERR` code looks like on the wire, known or not: upper case, at most 16 characters. */
export const WIRE_CODE_SHAPE = /^[A-Z][A-Z0-9_]{0,15}$/;

/** The `LoftErrorCode` of an `ERR` code; one this client does not know is UNRECOGNIZED, never a crash. */
export const codeForWire = (wire: string): RelayErrorCode =>
  Object.hasOwn(WIRE_TO_CODE, wire) ? WIRE_TO_CODE[wire as WireErrorCode] : "LOFT_ERR_RELAY_UNRECOGNIZED";

/** The wire code for a failure, or INTERNAL for codes that never go on the wire. */
export const wireForCode = (code: RelayErrorCode): WireErrorCode => CODE_TO_WIRE.get(code) ?? "INTERNAL";

/**
 * Refusals that say "not now" rather than "no": the relay rations commands and stored bytes per
 * connection (`RATE`) and per source address (`SOURCE_RATE`, `STORE_RATE`; docs/protocol/relay.md
 * §Limits). Nothing was stored; the same SEND (same send id) may be tried again after a pause.
 */
export const TEMPORARY_REFUSALS: ReadonlySet<string> = new Set<RelayErrorCode>([
  "LOFT_ERR_RELAY_RATE",
  "LOFT_ERR_RELAY_SOURCE_RATE",
  "LOFT_ERR_RELAY_STORE_RATE",
]);

/** Whether `code` (a relay error code or a close reason) is a temporary rate refusal. */
export const isTemporaryRefusal = (code: string): boolean => TEMPORARY_REFUSALS.has(code);
