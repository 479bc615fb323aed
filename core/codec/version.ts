/**
 * SREMP §version: `VERSION_HEADER := { protocol_name: "SREMP", version_major: u8, version_minor: u8 }`,
 * the first frame each peer sends on every connection, before the Noise handshake (and bound into
 * the Noise prologue by core/noise, so a downgrade breaks the handshake).
 *
 * Loft 1.0 speaks exactly SREMP 1.0 between peers and with the relay; any other name or version is
 * LOFT_ERR_UNSUPPORTED_VERSION (docs/protocol/wire.md, "Version header"). The signaling service
 * speaks 1.1 (`SIGNALING_VERSION`): its REGISTER changed (the server's CHALLENGE and an audience are
 * required), and the bump gives apps from before that change a clear "incompatible version" close
 * (4426) instead of silent refusals (docs/protocol/signaling.md, "Versions"). The header is a regular tagged frame
 * (`t: "VERSION_HEADER"`, core/codec/envelope.ts) so a peer that opens with anything else gets a
 * clear error. Its bytes are fixed; for 1.0 they are
 * `84 ad "protocol_name" a5 "SREMP" a1 "t" ae "VERSION_HEADER" ad "version_major" 01 ad "version_minor" 00` (68 bytes).
 */
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { decodeRaw, encodeCanonical, uintSchema, validate } from "./codec.ts";

export interface VersionHeader {
  protocol_name: string;
  version_major: number;
  version_minor: number;
  /**
   * Peer sessions only (docs/protocol/noise.md, "Cipher suites"): the Noise cipher/hash suites
   * this side accepts, the initiator's in its order of preference. Absent = `ChaChaPoly_BLAKE2s`
   * only, the 1.0 header byte for byte. Names a peer does not know are ignored.
   */
  noise_suites?: string[];
}

export const PROTOCOL_NAME = "SREMP";
export const CURRENT_VERSION: Readonly<VersionHeader> = Object.freeze({
  protocol_name: PROTOCOL_NAME,
  version_major: 1,
  version_minor: 0,
});
/**
 * The signaling protocol's version (docs/protocol/signaling.md): 1.1 since REGISTER carries the
 * connection's CHALLENGE as its nonce and names the server as its audience. Its header is
 * `84 ad "protocol_name" a5 "SREMP" a1 "t" ae "VERSION_HEADER" ad "version_major" 01 ad "version_minor" 01`.
 */
export const SIGNALING_VERSION: Readonly<VersionHeader> = Object.freeze({
  protocol_name: PROTOCOL_NAME,
  version_major: 1,
  version_minor: 1,
});
/** Upper bound on an encoded header (the 1.0 header is 68 bytes, with two suites 115). */
export const MAX_VERSION_HEADER_BYTES = 256;
/** At most this many suite names, each 1–32 characters. */
export const MAX_NOISE_SUITES = 4;

export const versionHeaderSchema = v.strictObject({
  t: v.literal("VERSION_HEADER"),
  protocol_name: v.pipe(v.string(), v.minLength(1), v.maxLength(32)),
  version_major: uintSchema(255),
  version_minor: uintSchema(255),
  noise_suites: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.minLength(1), v.maxLength(32))),
      v.minLength(1),
      v.maxLength(MAX_NOISE_SUITES),
    ),
  ),
});

/** SREMP §version, canonical MessagePack. */
export function encodeVersionHeader(h: VersionHeader = CURRENT_VERSION): Uint8Array {
  const checked = validate({ t: "VERSION_HEADER", ...h }, versionHeaderSchema);
  if (!checked.ok) throw new RangeError(`version header: ${checked.error.message}`);
  return encodeCanonical(checked.value);
}

/** Whether a peer's announced version is exactly `expected` (Loft 1.0: SREMP 1.0; signaling 1.1). */
export function isSupportedVersion(h: VersionHeader, expected: VersionHeader = CURRENT_VERSION): boolean {
  return (
    h.protocol_name === expected.protocol_name &&
    h.version_major === expected.version_major &&
    h.version_minor === expected.version_minor
  );
}

/**
 * Decode a peer's first frame. Bad bytes → LOFT_ERR_MALFORMED, wrong shape → LOFT_ERR_SCHEMA,
 * oversize → LOFT_ERR_FRAME_TOO_LARGE, a well-formed header for another protocol or version →
 * LOFT_ERR_UNSUPPORTED_VERSION.
 */
export function decodeVersionHeader(
  bytes: Uint8Array,
  expected: VersionHeader = CURRENT_VERSION,
): Result<VersionHeader> {
  const raw = decodeRaw(bytes, {
    maxBytes: MAX_VERSION_HEADER_BYTES,
    maxArrayLength: MAX_NOISE_SUITES,
    maxMapLength: 8,
  });
  if (!raw.ok) return raw;
  const checked = validate(raw.value, versionHeaderSchema);
  if (!checked.ok) return checked;
  if (!equalBytes(encodeCanonical(checked.value), bytes))
    return err("LOFT_ERR_MALFORMED", "version header not in canonical MessagePack form");
  const { protocol_name, version_major, version_minor, noise_suites } = checked.value;
  const header: VersionHeader = { protocol_name, version_major, version_minor };
  if (noise_suites !== undefined) header.noise_suites = [...noise_suites];
  if (!isSupportedVersion(header, expected))
    return err(
      "LOFT_ERR_UNSUPPORTED_VERSION",
      `peer speaks ${JSON.stringify(protocol_name)} ${version_major}.${version_minor}; we speak ${expected.protocol_name} ${expected.version_major}.${expected.version_minor}`,
    );
  return ok(header);
}
