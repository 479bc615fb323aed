/**
 * Links in message text: the text is split into plain parts and link parts, which the bubble
 * builds as DOM nodes (text nodes and `<a>` elements — never HTML from the message). Only
 * `http:`, `https:` and `mailto:` become links, and only what the URL parser accepts with one of
 * those schemes; anything else (`javascript:`, `data:`, look-alikes) stays plain text.
 */

export type TextPart = { text: string } | { text: string; href: string };

/** Schemes a message may link to. */
const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

/** Candidates: an explicit http(s)/mailto scheme, or a bare `www.` host. */
const CANDIDATE = /\b(?:https?:\/\/|mailto:|www\.)[^\s<>"'`]+/gi;

/** Trailing characters that end a sentence rather than a URL. */
const TRAILING = /[.,;:!?'"»”’]+$/;

/** Longest text turned into one link; longer runs stay text (no giant anchors). */
const MAX_LINK_CHARS = 2048;

/** Strip trailing punctuation and a closing bracket that has no opening one inside the URL. */
function trimCandidate(raw: string): string {
  let s = raw;
  for (let i = 0; i < 8; i++) {
    const before = s;
    s = s.replace(TRAILING, "");
    for (const [open, close] of [
      ["(", ")"],
      ["[", "]"],
    ] as const) {
      if (s.endsWith(close) && s.split(open).length < s.split(close).length) s = s.slice(0, -1);
    }
    if (s === before) break;
  }
  return s;
}

/** The href for a candidate, or undefined when it is not a safe, well-formed link. */
export function safeHref(candidate: string): string | undefined {
  if (candidate.length > MAX_LINK_CHARS) return undefined;
  const withScheme = /^www\./i.test(candidate) ? `https://${candidate}` : candidate;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (!SAFE_SCHEMES.has(url.protocol)) return undefined;
  if (url.protocol === "mailto:") return /^mailto:[^\s@]+@[^\s@]+$/i.test(withScheme) ? url.href : undefined;
  return url.hostname ? url.href : undefined;
}

/** Split `text` into plain and link parts; joined, the parts' `text` is `text` unchanged. */
export function linkify(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const start = match.index;
    const candidate = trimCandidate(match[0]);
    const href = candidate.length > 0 ? safeHref(candidate) : undefined;
    if (!href) continue;
    if (start > last) parts.push({ text: text.slice(last, start) });
    parts.push({ text: candidate, href });
    last = start + candidate.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}
