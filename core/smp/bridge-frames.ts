/**
 * The SMP bridge's WebSocket frames (docs/protocol/smp.md, "The bridge"): a browser, which cannot
 * open TLS over TCP, asks its relay to open an SMP connection for it and then exchanges SMP's
 * 16 384-byte blocks with the server through it. One frame per binary WebSocket message, the kind
 * in the first byte:
 *
 *   OPEN   0x01 ‖ address (UTF-8, `smp://<fingerprint>@host[:port]`)    browser → relay, first
 *   BLOCK  0x02 ‖ block (16 384 bytes)                                      both ways
 *   READY  0x03 ‖ TLS version (ASCII, e.g. "TLSv1.3")                       relay → browser, once
 *   ERROR  0x04 ‖ code (1 byte) ‖ detail (UTF-8, ≤ 200 bytes)               relay → browser, last
 *
 * The relay sends READY once the TLS connection is up and the server proved the address's
 * identity, then the server hello as the first BLOCK. Decoders take any bytes and return a frame
 * or undefined; they never throw.
 */
import { concatBytes, cutUtf8, fromUtf8, utf8 } from "../bytes.ts";
import { SMP_ADDRESS_MAX } from "./address.ts";
import { SMP_BLOCK_SIZE } from "./transport.ts";

export const BRIDGE_FRAME = { OPEN: 0x01, BLOCK: 0x02, READY: 0x03, ERROR: 0x04 } as const;

/** Why a bridged connection failed or ended (the ERROR frame's code byte). */
export const BRIDGE_ERRORS = {
  /** A frame that does not parse, or one out of order. */
  MALFORMED: 1,
  /** OPEN's address is not an `smp://` server address. */
  BAD_ADDRESS: 2,
  /** The operator's allowlist/denylist refuses the destination. */
  DENIED: 3,
  /** This user (source address) has as many bridged connections as allowed, or the relay is full. */
  LIMIT: 4,
  /** DNS failed, the TCP connection was refused or timed out, or TLS failed. */
  UNREACHABLE: 5,
  /** The server's CA certificate does not hash to the address's fingerprint. */
  FINGERPRINT: 6,
  /** The server serves no SMP version this bridge carries (6–7), or its hello does not parse. */
  VERSION: 7,
  /** The SMP server closed the connection. */
  CLOSED: 8,
  /** The relay is shutting down. */
  GOING_AWAY: 9,
} as const;

export type BridgeErrorName = keyof typeof BRIDGE_ERRORS;
const ERROR_NAMES = new Map<number, BridgeErrorName>(
  Object.entries(BRIDGE_ERRORS).map(([k, v]) => [v, k as BridgeErrorName]),
);
export const BRIDGE_DETAIL_MAX = 200;
const TLS_VERSION_MAX = 16;

export type BridgeFrame =
  | { kind: "OPEN"; address: string }
  | { kind: "BLOCK"; block: Uint8Array }
  | { kind: "READY"; tls: string }
  | { kind: "ERROR"; error: BridgeErrorName; detail: string };

export function encodeBridgeFrame(f: BridgeFrame): Uint8Array {
  switch (f.kind) {
    case "OPEN":
      return withKind(BRIDGE_FRAME.OPEN, utf8(f.address));
    case "BLOCK":
      if (f.block.length !== SMP_BLOCK_SIZE) throw new RangeError(`block of ${f.block.length} bytes`);
      return withKind(BRIDGE_FRAME.BLOCK, f.block);
    case "READY":
      return withKind(BRIDGE_FRAME.READY, utf8(f.tls.slice(0, TLS_VERSION_MAX)));
    case "ERROR":
      return withKind(
        BRIDGE_FRAME.ERROR,
        Uint8Array.of(BRIDGE_ERRORS[f.error]),
        cutUtf8(f.detail, BRIDGE_DETAIL_MAX),
      );
  }
}

function withKind(kind: number, ...parts: Uint8Array[]): Uint8Array {
  return concatBytes(Uint8Array.of(kind), ...parts);
}

const PRINTABLE = /^[\x21-\x7e]*$/;

function text(bytes: Uint8Array, max: number): string | undefined {
  if (bytes.length > max) return undefined;
  try {
    return fromUtf8(bytes);
  } catch {
    return undefined;
  }
}

/** One frame; undefined when the bytes are not exactly one well-formed frame. */
export function decodeBridgeFrame(bytes: Uint8Array): BridgeFrame | undefined {
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case BRIDGE_FRAME.OPEN: {
      const address = text(body, SMP_ADDRESS_MAX);
      return address !== undefined && address.length > 0 && PRINTABLE.test(address)
        ? { kind: "OPEN", address }
        : undefined;
    }
    case BRIDGE_FRAME.BLOCK:
      return body.length === SMP_BLOCK_SIZE ? { kind: "BLOCK", block: body } : undefined;
    case BRIDGE_FRAME.READY: {
      const tls = text(body, TLS_VERSION_MAX);
      return tls !== undefined && PRINTABLE.test(tls) ? { kind: "READY", tls } : undefined;
    }
    case BRIDGE_FRAME.ERROR: {
      const error = ERROR_NAMES.get(body[0] ?? 0);
      const detail = text(body.subarray(1), BRIDGE_DETAIL_MAX);
      return error && detail !== undefined && body.length >= 1 ? { kind: "ERROR", error, detail } : undefined;
    }
    default:
      return undefined;
  }
}

/** For people: what each bridge error means. */
export function describeBridgeError(e: BridgeErrorName): string {
  switch (e) {
    case "MALFORMED":
      return "the bridge received a malformed frame";
    case "BAD_ADDRESS":
      return "not an smp:// server address";
    case "DENIED":
      return "this relay does not bridge to that server";
    case "LIMIT":
      return "too many bridged SMP connections; close one and retry";
    case "UNREACHABLE":
      return "the SMP server is unreachable";
    case "FINGERPRINT":
      return "the server's certificate does not match the address's fingerprint";
    case "VERSION":
      return "the SMP server serves no protocol version this bridge supports (6–7)";
    case "CLOSED":
      return "the SMP server closed the connection";
    case "GOING_AWAY":
      return "the relay is shutting down";
  }
}
