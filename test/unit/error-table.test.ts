/**
 * docs/protocol/wire.md §Error codes matches the code: every LoftErrorCode of core/errors.ts once,
 * its relay ERR code (core/relay/errors.ts), its signaling name (core/signaling/errors.ts), and the
 * words a person reads when a link closes with it (web/src/engine/errors.ts CLOSE_REASONS).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { codeForWire, WIRE_ERROR_CODES } from "../../core/relay/errors.ts";
import {
  SIGNALING_CLIENT_ONLY_CODES,
  SIGNALING_TO_LOFT,
  signalingWireFor,
} from "../../core/signaling/errors.ts";
import { describeFailure } from "../../web/src/engine/errors.ts";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

const codes = [...read("core/errors.ts").matchAll(/^\s*\| "(LOFT_ERR_[A-Z0-9_]+)"/gm)].map((m) => m[1]!);

const doc = read("docs/protocol/wire.md");
const section = doc.slice(doc.indexOf("## Error codes"), doc.indexOf("## Version header"));
const rows = [...section.matchAll(/^\| `(LOFT_ERR_[A-Z0-9_]+)` +\|(.*)\|$/gm)].map((m) => {
  const [relay, signaling, , words] = m[2]!.split("|").map((c) => c.trim());
  return { code: m[1]!, relay: relay!, signaling: signaling!, words: words! };
});
const legend = new Map([...section.matchAll(/^- `([a-z-]+)`: “(.*)”$/gm)].map((m) => [m[1]!, m[2]!]));

const clientOnly: ReadonlySet<string> = new Set(SIGNALING_CLIENT_ONLY_CODES);
const relayOf = new Map<string, string>(WIRE_ERROR_CODES.map((w) => [codeForWire(w), w]));
const signalingOf = new Map<string, string>(
  Object.entries(SIGNALING_TO_LOFT).map(([name, code]) => [code, name]),
);

describe("docs/protocol/wire.md §Error codes", () => {
  it("lists every LoftErrorCode exactly once, and nothing else", () => {
    expect(codes.length).toBeGreaterThan(50);
    expect(rows.map((r) => r.code)).toEqual(codes);
  });

  it("gives each code its relay ERR code and its signaling name", () => {
    for (const { code, relay, signaling } of rows) {
      const r = relayOf.get(code);
      expect(relay, code).toBe(r ? `\`${r}\`` : "—");
      const s = signalingOf.get(code);
      if (s) expect(signaling, code).toBe(`\`${s}\`${clientOnly.has(s) ? " ¹" : ""}`);
      // In parentheses: no signaling code of its own; the server answers its decode failure MALFORMED.
      else if (signaling === "(`MALFORMED`)") expect(signalingWireFor(code as never)).toBe("MALFORMED");
      else expect(signaling, code).toBe("—");
    }
  });

  it("names the words a person reads for each code", () => {
    for (const { code, words } of rows) {
      const sentence = legend.get(words);
      expect(sentence, `${code}: no legend entry "${words}"`).toBeDefined();
      expect(describeFailure(code, "‹name›").message, code).toBe(sentence);
    }
  });
});
