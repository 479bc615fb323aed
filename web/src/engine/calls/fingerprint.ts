/**
 * DTLS certificate fingerprints of a call's media connection (docs/protocol/calls.md §3): the
 * SHA-256 fingerprint each side sends inside the ratchet session (`fp`), read from SDP
 * `a=fingerprint` lines (RFC 8122 §5: hash name, then the digest as colon-separated uppercase hex)
 * and from the certificate the DTLS peer actually presented. The SDP functions are pure; the
 * certificate ones (`newDtlsCertificate`, `remoteCertificates`, `dtlsPeerMatches`) use WebRTC.
 */
import { equalBytes, toHex } from "../../../../core/bytes.ts";
import { err, ok, type Result } from "../../../../core/errors.ts";
import { FINGERPRINT_BYTES } from "./wire.ts";

const HEX_PAIRS = new RegExp(`^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){${FINGERPRINT_BYTES - 1}}$`);

/** `"AB:CD:…"` (32 pairs) → 32 bytes, or undefined if it is not a SHA-256 fingerprint. */
export function parseFingerprintHex(text: string): Uint8Array<ArrayBuffer> | undefined {
  const t = text.trim();
  if (!HEX_PAIRS.test(t)) return undefined;
  const out = new Uint8Array(FINGERPRINT_BYTES);
  for (let i = 0; i < FINGERPRINT_BYTES; i++) out[i] = Number.parseInt(t.slice(i * 3, i * 3 + 2), 16);
  return out;
}

/** 32 bytes → `"AB:CD:…"`, as SDP writes it. */
export function formatFingerprint(fp: Uint8Array): string {
  return [...fp].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(":");
}

/**
 * Every `a=fingerprint:` line of an SDP, session or media level. A line with another hash than
 * sha-256, or a digest that does not parse, makes the whole SDP unusable: we only accept what we
 * can compare.
 */
export function sdpFingerprints(sdp: string): Result<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (!line.startsWith("a=fingerprint:")) continue;
    const [hash, digest, ...rest] = line.slice("a=fingerprint:".length).trim().split(/\s+/);
    // Not quoting the line: it is the peer's text, and the refusal is logged (calls.ts, room-call.ts).
    if (hash?.toLowerCase() !== "sha-256" || digest === undefined || rest.length > 0)
      return err("LOFT_ERR_MALFORMED", "a fingerprint line that is not `sha-256 <digest>`");
    const fp = parseFingerprintHex(digest);
    if (!fp) return err("LOFT_ERR_MALFORMED", "fingerprint digest is not 32 bytes of hex");
    out.push(fp);
  }
  if (out.length === 0) return err("LOFT_ERR_MALFORMED", "the SDP has no DTLS fingerprint");
  return ok(out);
}

/**
 * The SDP's fingerprints are all exactly `expected` (the one sent inside the session): an SDP
 * naming any other certificate would let whoever holds that certificate terminate the media.
 */
export function sdpMatchesFingerprint(sdp: string, expected: Uint8Array): Result<true> {
  const fps = sdpFingerprints(sdp);
  if (!fps.ok) return fps;
  for (const fp of fps.value)
    if (!equalBytes(fp, expected))
      return err("LOFT_ERR_BAD_SIGNATURE", "the SDP's DTLS fingerprint is not the one sent in the session");
  return ok(true);
}

/** The SHA-256 fingerprint of one DER certificate (what `RTCDtlsTransport.getRemoteCertificates` gives). */
export async function certificateFingerprint(
  der: ArrayBuffer,
  subtle: Pick<SubtleCrypto, "digest"> = globalThis.crypto.subtle,
): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-256", der));
}

type DtlsWithCertificates = RTCDtlsTransport & { getRemoteCertificates?: () => ArrayBuffer[] };

/**
 * The DER certificates the connection's DTLS peer presented, or undefined where the browser does
 * not expose them (`getRemoteCertificates` is Chromium's). "connected" can be reported a moment
 * before the DTLS transport has them: an empty list is read again, every 50 ms for at most
 * `waitMs` (bounded in count and time), before it counts as no certificate.
 */
async function remoteCertificates(pc: RTCPeerConnection, waitMs = 5_000): Promise<ArrayBuffer[] | undefined> {
  const transport = [
    ...pc.getSenders().map((s) => s.transport),
    ...pc.getReceivers().map((r) => r.transport),
  ].find((t) => t) as DtlsWithCertificates | null | undefined;
  if (!transport?.getRemoteCertificates) return undefined;
  const until = Date.now() + waitMs;
  for (let i = 0; i < Math.ceil(waitMs / 50); i++) {
    const certs = transport.getRemoteCertificates();
    if (
      certs.length > 0 ||
      Date.now() > until ||
      transport.state === "failed" ||
      transport.state === "closed"
    )
      return certs;
    await new Promise((r) => setTimeout(r, 50));
  }
  return transport.getRemoteCertificates();
}

/** A fresh ECDSA P-256 DTLS certificate for one media connection, and its SHA-256 fingerprint. */
export async function newDtlsCertificate(): Promise<{ cert: RTCCertificate; fp: Uint8Array<ArrayBuffer> }> {
  const cert = await RTCPeerConnection.generateCertificate({
    name: "ECDSA",
    namedCurve: "P-256",
  } as EcKeyGenParams);
  const fp = cert
    .getFingerprints()
    .filter((f) => f.algorithm?.toLowerCase() === "sha-256")
    .map((f) => parseFingerprintHex(f.value ?? ""))
    .find((b) => b !== undefined);
  if (!fp) throw new Error("the browser gave no SHA-256 certificate fingerprint");
  return { cert, fp };
}

/**
 * The certificate the connection's DTLS peer presented hashes to `expected`, the fingerprint sent
 * in the session (calls.md §3). Browsers without `getRemoteCertificates` rely on their own check
 * of the SDP fingerprint, which was compared with the session's before it was applied. `log` hears
 * what was presented instead, on a mismatch.
 */
export async function dtlsPeerMatches(
  pc: RTCPeerConnection,
  expected: Uint8Array | undefined,
  log?: (message: string) => void,
): Promise<boolean> {
  const certs = await remoteCertificates(pc);
  if (!certs) return true;
  const [first] = certs;
  if (!first || !expected) return false;
  const got = await certificateFingerprint(first);
  if (equalBytes(got, expected)) return true;
  log?.(`DTLS peer ${toHex(got).slice(0, 16)}…, sent ${toHex(expected).slice(0, 16)}…`);
  return false;
}
