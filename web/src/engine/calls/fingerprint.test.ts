/**
 * SDP fingerprints against the one sent in the session (calls/fingerprint.ts,
 * docs/protocol/calls.md §3): equal passes; another certificate, a missing line, another hash or
 * a malformed digest is refused; arbitrary SDP text never throws.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  certificateFingerprint,
  formatFingerprint,
  parseFingerprintHex,
  sdpFingerprints,
  sdpMatchesFingerprint,
} from "./fingerprint.ts";

const fp = new Uint8Array(32).map((_, i) => i * 7);
const other = fp.map((b) => b ^ 0xff);
const sdp = (...lines: string[]) => ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", ...lines, ""].join("\r\n");

describe("DTLS fingerprints in SDP", () => {
  it("format and parse are inverse; lowercase hex is accepted", () => {
    expect(parseFingerprintHex(formatFingerprint(fp))).toEqual(fp);
    expect(parseFingerprintHex(formatFingerprint(fp).toLowerCase())).toEqual(fp);
    expect(parseFingerprintHex(formatFingerprint(fp).slice(3))).toBeUndefined();
    expect(parseFingerprintHex(`${formatFingerprint(fp)}:00`)).toBeUndefined();
  });

  it("an SDP whose every fingerprint is the session's passes", () => {
    const s = sdp(
      `a=fingerprint:sha-256 ${formatFingerprint(fp)}`,
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      `a=fingerprint:SHA-256 ${formatFingerprint(fp)}`,
    );
    expect(sdpMatchesFingerprint(s, fp).ok).toBe(true);
  });

  it("another certificate anywhere in the SDP is refused", () => {
    const s = sdp(
      `a=fingerprint:sha-256 ${formatFingerprint(fp)}`,
      "m=video 9 UDP/TLS/RTP/SAVPF 96",
      `a=fingerprint:sha-256 ${formatFingerprint(other)}`,
    );
    const r = sdpMatchesFingerprint(s, fp);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("a refusal does not quote the peer's SDP (it is logged: calls.ts, room-call.ts)", () => {
    const quoted = "PEER-WROTE-THIS";
    for (const line of [
      `a=fingerprint:${quoted} 00`,
      `a=fingerprint:sha-256 ${formatFingerprint(fp)} ${quoted}`,
    ]) {
      const r = sdpMatchesFingerprint(sdp(line), fp);
      expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_MALFORMED");
      if (!r.ok) expect(r.error.message).not.toContain(quoted);
    }
  });

  it("no fingerprint, another hash or a malformed digest is refused", () => {
    expect(sdpFingerprints(sdp("m=audio 9 UDP/TLS/RTP/SAVPF 111")).ok).toBe(false);
    expect(
      sdpMatchesFingerprint(sdp(`a=fingerprint:sha-1 ${formatFingerprint(fp).slice(0, 59)}`), fp).ok,
    ).toBe(false);
    expect(sdpMatchesFingerprint(sdp("a=fingerprint:sha-256 ZZ:00"), fp).ok).toBe(false);
    expect(sdpMatchesFingerprint(sdp(`a=fingerprint:sha-256 ${formatFingerprint(fp)} extra`), fp).ok).toBe(
      false,
    );
  });

  it("a certificate's fingerprint is the SHA-256 of its DER bytes", async () => {
    const der = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]);
    const expected = createHash("sha256").update(der).digest();
    expect(await certificateFingerprint(der.buffer)).toEqual(new Uint8Array(expected));
  });

  it("never throws on arbitrary SDP text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const r = sdpMatchesFingerprint(`a=fingerprint:${text}\r\n${text}`, fp);
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
