import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { linkify, safeHref } from "./linkify.ts";

const links = (text: string) => linkify(text).filter((p) => "href" in p);

describe("linkify", () => {
  it("links http, https, mailto and www., without trailing punctuation", () => {
    expect(linkify("see https://example.org/a?b=1#c, then")).toEqual([
      { text: "see " },
      { text: "https://example.org/a?b=1#c", href: "https://example.org/a?b=1#c" },
      { text: ", then" },
    ]);
    expect(links("(http://example.org/x_(y)) and www.example.com.")).toEqual([
      { text: "http://example.org/x_(y)", href: "http://example.org/x_(y)" },
      { text: "www.example.com", href: "https://www.example.com/" },
    ]);
    expect(links("write to mailto:alice@example.org!")).toEqual([
      { text: "mailto:alice@example.org", href: "mailto:alice@example.org" },
    ]);
  });

  it("never links javascript:, data:, or malformed URLs; HTML stays text", () => {
    for (const t of [
      "javascript:alert(1)",
      "JaVaScRiPt:alert(document.cookie)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox",
      "http://",
      "https://[::1",
      "mailto:",
      '<a href="javascript:alert(1)">x</a>',
      "<img src=x onerror=alert(1)>",
    ])
      expect(links(t)).toEqual([]);
    expect(safeHref("javascript://example.org/%0aalert(1)")).toBeUndefined();
  });

  it("keeps every character of any text, in order; every href is http(s) or mailto", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.constantFrom("https://", "http://a.b/", "www.", "mailto:", "javascript:", "(", ")", ".", " "),
            fc.webUrl(),
          ),
          { maxLength: 12 },
        ),
        (pieces) => {
          const text = pieces.join("");
          const parts = linkify(text);
          expect(parts.map((p) => p.text).join("")).toBe(text);
          for (const p of parts)
            if ("href" in p) expect(new URL(p.href).protocol).toMatch(/^(https?|mailto):$/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
