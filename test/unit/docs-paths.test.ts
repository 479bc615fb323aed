/**
 * Pointers that lead somewhere (issue #9; docs/design.md, "Where each decision lives"): every
 * repository path named in a source comment or in the docs must exist, so a reader who follows
 * one lands on the file it promises. Checked:
 * - paths under the top-level folders (`core/…`, `web/src/…`, `docs/…`, `relay-ws/…`, …) named in
 *   comments of .ts/.tsx/.js/.mjs/.cjs files and anywhere in `README.md` and `docs/**\/*.md`;
 * - relative Markdown links, resolved from the page that holds them;
 * - bare file names (`chat.md`, `symmetric-state.ts`): some file of that name must exist in the
 *   repository (this is what catches a citation of a document that was never added).
 * node_modules, dist and the git directory are not read.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const SKIP_DIRS = new Set(["node_modules", "dist", ".git", "test-results", "coverage"]);
const SOURCE_EXT = /\.(ts|tsx|js|mjs|cjs)$/;
const TOP = [
  "core",
  "web",
  "docs",
  "relay-ws",
  "signaling",
  "server",
  "sw",
  "test",
  "bench",
  "scripts",
  "deploy",
  "host",
  "smp",
  "device",
];
/** A path under one of the top-level folders, not the tail of a longer path, URL or package name. */
const REPO_PATH = new RegExp(`(?<![\\w.@/:-])(?:${TOP.join("|")})/[\\w./*@-]*`, "g");
/** Build output, named in docs but not in the repository until `npm run build`. */
const GENERATED = new Set(["web/dist"]);
/** Secrets an operator creates beside the deploy files, never committed (.gitignore). */
const OPERATOR_SECRETS = new Set(["deploy/loft.env", "deploy/relay-master.key"]);
/** Prose that looks like a path: "the signaling/rendezvous service", "signaling/relay URLs". */
const PROSE = new Set(["signaling/rendezvous", "signaling/relay", "smp/1"]);
/** A bare file name with an extension we keep in the repository. */
const FILE_NAME = /(?<![\w./@:-])[\w-]+(?:\.[\w-]+)*\.(?:md|ts|tsx|mjs)(?![\w/])/g;
const MD_LINK = /\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g;

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP_DIRS.has(name)) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

/** The comment text of a JS/TS source (string contents are not comments; a `//` inside a URL
 * string may add a little text, which only ever adds names to check). */
function commentsOf(src: string): string {
  const parts: string[] = [];
  for (const m of src.matchAll(/\/\*[\s\S]*?\*\/|(?<![:"'`\\])\/\/[^\n]*/g)) parts.push(m[0]);
  return parts.join("\n");
}

/** Drop the sentence punctuation a path picked up at its end (a full stop after a file name). */
function trimTail(p: string): string {
  return p.replace(/[.,;:-]+$/, "");
}

const files = walk(ROOT);
const relFiles = files.map((f) => relative(ROOT, f));
const names = new Set(files.map((f) => basename(f)));
const texts: { file: string; text: string; markdown: boolean }[] = [];
for (const file of files) {
  const rel = relative(ROOT, file);
  if (SOURCE_EXT.test(file))
    texts.push({ file: rel, text: commentsOf(readFileSync(file, "utf8")), markdown: false });
  else if (rel === "README.md" || (rel.startsWith("docs/") && rel.endsWith(".md")))
    texts.push({ file: rel, text: readFileSync(file, "utf8"), markdown: true });
}

/** A glob (`test/e2e/relay-*.e2e.ts`, `docs/vectors/identity-*.json`) matches some file. */
function matchesSome(glob: string): boolean {
  const body = glob
    .split("**/")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*"))
    .join("(?:[^/]+/)*");
  const re = new RegExp(`^${body}$`);
  return relFiles.some((f) => re.test(f));
}

function dangling(): string[] {
  const bad: string[] = [];
  for (const { file, text, markdown } of texts) {
    for (const m of text.matchAll(REPO_PATH)) {
      const p = trimTail(m[0]);
      if (GENERATED.has(p) || PROSE.has(p) || OPERATOR_SECRETS.has(p)) continue;
      if (!(p.includes("*") ? matchesSome(p) : existsSync(join(ROOT, p)))) bad.push(`${file}: ${p}`);
    }
    for (const m of text.matchAll(FILE_NAME)) {
      if (!names.has(m[0])) bad.push(`${file}: ${m[0]} (no file of that name)`);
    }
    if (!markdown) continue;
    for (const m of text.matchAll(MD_LINK)) {
      const target = (m[1] ?? "").split("#")[0] ?? "";
      if (target === "" || /^[a-z]+:/i.test(target)) continue;
      if (!existsSync(join(dirname(join(ROOT, file)), decodeURIComponent(target))))
        bad.push(`${file}: link ${m[1]}`);
    }
  }
  return [...new Set(bad)].sort();
}

/**
 * A section named after a page: the page, then a quoted heading or phrase (`, "At rest"`), a
 * section number (`§7`) or the first word of a heading (`§Keys`).
 */
const SECTION_CITE = /(?<![\w./-])(docs\/[\w/-]+\.md),?\s(?:"([^"\n]{2,80})"|§\s?(\d+|[A-Za-z][\w-]*))/g;

/** The same after a Markdown link: `[relay.md](relay.md), "At rest"`, `[chat.md](chat.md) §7`. */
const LINK_SECTION_CITE = /\]\(([^)\s#]+\.md)\),?\s(?:"([^"\n]{2,80})"|§\s?(\d+|[A-Za-z][\w-]*))/g;

/** Page text as a reader sees it: no emphasis or code marks, lower case, single spaces. */
function plain(text: string): string {
  return text.replace(/[*`_]/g, "").replace(/\s+/g, " ").toLowerCase();
}

function headingsOf(text: string): string[] {
  return [...text.matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => plain(m[1] ?? "").trim());
}

/** Cited sections that the cited page does not have. */
function missingSections(): string[] {
  const bad: string[] = [];
  for (const { file, text, markdown } of texts) {
    const cites = [...text.matchAll(SECTION_CITE)].map((m) => ({ full: join(ROOT, m[1] ?? ""), m }));
    if (markdown)
      for (const m of text.matchAll(LINK_SECTION_CITE))
        cites.push({ full: join(dirname(join(ROOT, file)), m[1] ?? ""), m });
    for (const { full, m } of cites) {
      const [, , quoted, section] = m;
      const page = relative(ROOT, full);
      if (!existsSync(full)) continue; // reported by dangling()
      const body = readFileSync(full, "utf8");
      const heads = headingsOf(body);
      let found: boolean;
      if (quoted !== undefined) found = plain(body).includes(plain(quoted).trim());
      else if (/^\d+$/.test(section ?? "")) found = heads.some((h) => h.startsWith(`${section}.`));
      else found = heads.some((h) => h.startsWith((section ?? "").toLowerCase()));
      if (!found) bad.push(`${file}: ${page} ${quoted !== undefined ? `"${quoted}"` : `§${section}`}`);
    }
  }
  return [...new Set(bad)].sort();
}

describe("repository paths named in comments and docs", () => {
  it("reads the sources and the docs (the walk found them)", () => {
    expect(texts.some((t) => t.file === "README.md")).toBe(true);
    expect(texts.some((t) => t.file === "docs/design.md")).toBe(true);
    expect(texts.filter((t) => !t.markdown).length).toBeGreaterThan(100);
  });

  it("names only paths that exist", () => {
    expect(dangling()).toEqual([]);
  });

  it("cites only sections the cited page has", () => {
    expect(missingSections()).toEqual([]);
  });

  it("would catch a dangling pointer of each kind", () => {
    const probe = [
      {
        file: "docs/probe.md",
        text: "see core/noise/split.ts, test/e2e/nowhere-*.e2e.ts and [x](nowhere.md); DESIGN.md",
        markdown: true,
      },
    ];
    const saved = texts.splice(0, texts.length, ...probe);
    try {
      expect(dangling()).toEqual([
        "docs/probe.md: DESIGN.md (no file of that name)",
        "docs/probe.md: core/noise/split.ts",
        "docs/probe.md: link nowhere.md",
        "docs/probe.md: nowhere.md (no file of that name)",
        "docs/probe.md: test/e2e/nowhere-*.e2e.ts",
      ]);
      probe[0]!.text =
        'docs/design.md, "No such section"; docs/protocol/chat.md §42; [relay.md](protocol/relay.md) §Frames';
      expect(missingSections()).toEqual([
        'docs/probe.md: docs/design.md "No such section"',
        "docs/probe.md: docs/protocol/chat.md §42",
        "docs/probe.md: docs/protocol/relay.md §Frames",
      ]);
    } finally {
      texts.splice(0, texts.length, ...saved);
    }
  });
});
