/**
 * `Accept-Encoding` negotiation (RFC 9110 §12.5.3) for the precompressed variants the build puts
 * beside the PWA's files: which of the encodings we hold the client accepts, best first. A
 * missing header, `identity` only, `q=0` and garbage all mean "send it as is".
 */

/** Encodings the host can serve, in the order it prefers them at equal weight (smaller first). */
export const CONTENT_ENCODINGS = ["br", "gzip"] as const;
export type ContentEncoding = (typeof CONTENT_ENCODINGS)[number];

/** Longest header we read; longer ones are not from a browser and get the file as is. */
const MAX_HEADER_CHARS = 1_024;

/** The weight of each coding named in `header` (lowercase), `*` included. */
function weights(header: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of header.split(",")) {
    const [name = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
    let q = 1;
    for (const p of params) {
      const m = /^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.exec(p);
      if (m) q = Number(m[1]);
      else if (p.startsWith("q=")) q = 0; // a malformed weight is not a yes
    }
    out.set(name, q);
  }
  return out;
}

/**
 * The encodings from `available` the client accepts, best first (by weight, then by our order).
 * Never throws; a header longer than 1 KiB is ignored.
 */
export function acceptedEncodings(
  header: string | string[] | undefined,
  available: readonly ContentEncoding[] = CONTENT_ENCODINGS,
): ContentEncoding[] {
  const raw = Array.isArray(header) ? header.join(",") : header;
  if (raw === undefined || raw.length > MAX_HEADER_CHARS) return [];
  const w = weights(raw);
  const star = w.get("*") ?? 0;
  return available
    .map((enc, order) => ({
      enc,
      order,
      q: w.get(enc) ?? (enc === "gzip" ? (w.get("x-gzip") ?? star) : star),
    }))
    .filter((e) => e.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order)
    .map((e) => e.enc);
}
