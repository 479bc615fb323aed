/**
 * A passphrase strength meter: a pure, conservative estimate of how many guesses an attacker who
 * knows how people choose passphrases needs, in bits (log2 of guesses), and a score for the UI.
 *
 * The estimate takes the smallest of three models of the passphrase:
 *  - characters: length × log2(size of the character classes used), after collapsing repeats
 *    ("aaaa") and runs ("abcd", "1234", "4321") to one character each — except that a run of four
 *    or more letters counts at most as one dictionary word per 8 letters (with a capital: one bit
 *    more), and four digits that look like a year as one of 200 years;
 *  - words: for a passphrase made of words separated by spaces, dashes, dots or underscores,
 *    about log2(20 000) bits per word of letters (a large dictionary, as attackers use) and the
 *    character model for other tokens (digits, symbols);
 *  - common passwords: a passphrase that is a very common password, optionally with digits or
 *    symbols appended ("password1!"), costs about log2(list size) plus the suffix.
 * Like every meter it can only over-estimate a passphrase drawn from a model it does not know
 * (a song line, a name and a date); it never claims a short or patterned one is strong.
 *
 * Scores: 0 too weak (< 28 bits: refused for new passphrases), 1 weak (< 36), 2 fair (< 50),
 * 3 good (< 64), 4 strong. With the passphrase KDF at about a second per guess on one CPU core
 * (vault.ts), 36 bits is over two thousand core-years of guessing.
 */

export interface PassphraseStrength {
  /** 0 too weak, 1 weak, 2 fair, 3 good, 4 strong. */
  score: 0 | 1 | 2 | 3 | 4;
  label: "too weak" | "weak" | "fair" | "good" | "strong";
  /** Estimated log2 of the guesses needed (rounded down). */
  bits: number;
  /** One sentence on how to make it stronger (empty when strong). */
  advice: string;
}

const LABELS = ["too weak", "weak", "fair", "good", "strong"] as const;
const THRESHOLDS = [28, 36, 50, 64] as const;
const WORD_BITS = Math.log2(20_000);

/** Some of the most common passwords (lower case); their variants are found by stripping suffixes. */
const COMMON = new Set([
  "password",
  "passw0rd",
  "passphrase",
  "123456",
  "12345678",
  "123456789",
  "1234567890",
  "qwerty",
  "qwertyuiop",
  "azerty",
  "abc123",
  "letmein",
  "iloveyou",
  "admin",
  "welcome",
  "monkey",
  "dragon",
  "football",
  "baseball",
  "sunshine",
  "princess",
  "master",
  "shadow",
  "superman",
  "trustno1",
  "starwars",
  "whatever",
  "loveme",
  "secret",
  "changeme",
  "default",
  "loft",
  "correcthorsebatterystaple",
]);
const COMMON_BITS = Math.log2(10_000); // the list stands for the attacker's top-10 000

function classSize(chars: readonly string[]): number {
  let size = 0;
  if (chars.some((c) => /[a-z]/.test(c))) size += 26;
  if (chars.some((c) => /[A-Z]/.test(c))) size += 26;
  if (chars.some((c) => /[0-9]/.test(c))) size += 10;
  if (chars.some((c) => /[ -/:-@[-`{-~]/.test(c))) size += 33;
  if (chars.some((c) => c.codePointAt(0)! > 0x7e)) size += 100;
  return Math.max(size, 1);
}

/** Characters after collapsing repeats and ascending/descending runs to their first character. */
function effectiveLength(chars: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < chars.length; i++) {
    const prev = chars[i - 1];
    const cur = chars[i]!;
    if (prev !== undefined) {
      const d = cur.codePointAt(0)! - prev.codePointAt(0)!;
      const before = chars[i - 2];
      const dPrev = before !== undefined ? prev.codePointAt(0)! - before.codePointAt(0)! : d;
      // The same character again, or the next/previous one continuing a run: nearly free to guess.
      if (d === 0 || ((d === 1 || d === -1) && d === dPrev)) continue;
    }
    n++;
  }
  return n;
}

function plainBits(chars: readonly string[]): number {
  if (chars.length === 0) return 0;
  return effectiveLength(chars) * Math.log2(classSize(chars));
}

/** The character model, with letter runs priced as dictionary words and years as years. */
function characterBits(text: string): number {
  const chars = [...text];
  if (chars.length === 0) return 0;
  const whole = plainBits(chars);
  const segments = text.match(/\p{L}+|[0-9]+|[^\p{L}0-9]+/gu) ?? [];
  let bits = segments.length > 1 ? Math.log2(segments.length) : 0;
  for (const seg of segments) {
    const c = [...seg];
    if (/^\p{L}{4,}$/u.test(seg)) {
      const words = Math.ceil(c.length / 8);
      bits += Math.min(plainBits(c), words * WORD_BITS + (/\p{Lu}/u.test(seg) ? 1 : 0));
    } else if (/^(19|20)[0-9]{2}$/.test(seg)) bits += Math.log2(200);
    else bits += plainBits(c);
  }
  return Math.min(whole, bits);
}

function wordBits(text: string): number | null {
  const tokens = text.split(/[\s\-_.]+/).filter((t) => t.length > 0);
  if (tokens.length < 2) return null;
  let bits = Math.log2(tokens.length); // where the separators go, roughly
  for (const t of tokens)
    bits += /^\p{L}{3,}$/u.test(t) ? Math.min(WORD_BITS, characterBits(t)) : characterBits(t);
  return bits;
}

function commonBits(text: string): number | null {
  const lower = text.toLowerCase().replace(/[\s\-_.]+/g, "");
  const m = /^(.*?)([0-9!@#$%^&*?.]*)$/.exec(lower);
  const base = m?.[1] ?? lower;
  const suffix = m?.[2] ?? "";
  if (!COMMON.has(base) && !COMMON.has(lower)) return null;
  return COMMON_BITS + (COMMON.has(lower) ? 0 : characterBits(suffix));
}

/** The strength of `passphrase` (compared as typed, after Unicode NFC like the KDF). */
export function passphraseStrength(passphrase: string): PassphraseStrength {
  const text = passphrase.normalize("NFC");
  const estimates = [characterBits(text), wordBits(text), commonBits(text)].filter(
    (b): b is number => b !== null,
  );
  const bits = Math.floor(Math.min(...estimates));
  let score = 0;
  while (score < THRESHOLDS.length && bits >= THRESHOLDS[score]!) score++;
  const advice =
    score >= 4
      ? ""
      : commonBits(text) !== null
        ? "It is one of the most common passwords: use four or more unrelated words instead."
        : "Add more unrelated words (four or more make a strong passphrase).";
  return { score: score as PassphraseStrength["score"], label: LABELS[score]!, bits, advice };
}
