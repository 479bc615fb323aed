/**
 * "Read more" for very long messages: a text over FOLD_CHARS characters or FOLD_LINES lines shows
 * an excerpt until the reader unfolds it (Bubble.tsx), so one pasted document doesn't push the
 * conversation out of sight.
 */

/** Texts longer than this (characters or lines) are folded behind "Read more". */
export const FOLD_CHARS = 1200;
export const FOLD_LINES = 18;
/** What a folded text shows: about this many characters, cut at a word or line break. */
const EXCERPT_CHARS = 700;
const EXCERPT_LINES = 10;

export function isLong(text: string): boolean {
  if (text.length > FOLD_CHARS) return true;
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1 && lines <= FOLD_LINES; i = text.indexOf("\n", i + 1)) lines++;
  return lines > FOLD_LINES;
}

/** The start of a long text, cut at a line break or space near the excerpt length. */
export function excerpt(text: string): string {
  let end = Math.min(text.length, EXCERPT_CHARS);
  let atLineBreak = false;
  let nl = -1;
  for (let i = 0; i < EXCERPT_LINES; i++) {
    nl = text.indexOf("\n", nl + 1);
    if (nl === -1 || nl >= end) break;
    if (i === EXCERPT_LINES - 1) {
      end = nl;
      atLineBreak = true;
    }
  }
  if (!atLineBreak && end < text.length) {
    const space = text.lastIndexOf(" ", end);
    if (space > end * 0.6) end = space;
  }
  // Never split a surrogate pair (an emoji) in two.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end).trimEnd()}…`;
}
