/**
 * Draft copies' codec and store (draft-copies.ts; docs/protocol/chat.md §9, "Draft copies"):
 * round trips (an erased draft too), the vector the docs print, padding, and every way a copy can
 * be bad — malformed, truncated, oversized, another version, wrong key, another profile, moved to
 * another conversation (a replay under another key), a changed byte — each a typed error, never a
 * throw; bad copies are dropped from the store without costing the good ones, a newer version's
 * is left. Real noble XChaCha20-Poly1305 and HKDF; the store is a Map behind the Web Storage
 * methods (the Chromium run, a reload right after typing, is test/e2e/chat-screen.e2e.ts).
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { padToBucket } from "../../../core/codec/padding.ts";
import {
  type buildDraftCopyVectors,
  DRAFT_COPY_VECTOR_FILE,
  draftCopyVectorText,
} from "../../../scripts/gen-draft-copy-vectors.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { MapStore } from "../../../test/support/map-store.ts";
import { type DraftCopy, type DraftKey, MAX_DRAFT_CHARS } from "../engine/local-notes.ts";
import { fromBase64url, toBase64url } from "../lib/base64url.ts";
import {
  clearDraftCopies,
  DRAFT_COPY_PREFIX,
  DraftCopies,
  draftCopyAd,
  draftCopyKey,
  draftCopyPlaintext,
  MAX_COPY_CHARS,
  openDraftCopy,
  sealDraftCopy,
} from "./draft-copies.ts";
import { sealValue } from "./journal.ts";

/**
 * docs/vectors/draft-copy-v1.json (scripts/gen-draft-copy-vectors.ts; recomputed by
 * test/interop/vectorcheck): its identity, key, draft keys and first nonce are this file's too.
 */
const committed = JSON.parse(readFileSync(DRAFT_COPY_VECTOR_FILE, "utf8")) as ReturnType<
  typeof buildDraftCopyVectors
>;
const h = (x: string) => Uint8Array.from(Buffer.from(x, "hex"));
const IK = h(committed.identityKey);
const PRIV = h(committed.privateIdentityKey);
const KEY = draftCopyKey(IK, PRIV);
const NONCE = h(committed.copies[0]!.nonce);
const CHAT: DraftKey = committed.copies[0]!.draftKey;
const ROOM: DraftKey = committed.copies[1]!.draftKey;
const copy = (text: string, key: DraftKey = CHAT, at = 1_700_000_000_001): DraftCopy => ({ key, at, text });

describe("draft copy codec", () => {
  it("round-trips a copy, an erased one too", () => {
    const sealed = sealDraftCopy(KEY, IK, copy("words ✓"));
    expect(openDraftCopy(KEY, IK, CHAT, sealed)).toEqual({ ok: true, value: copy("words ✓") });
    const erased = sealDraftCopy(KEY, IK, copy("", ROOM, 5));
    expect(openDraftCopy(KEY, IK, ROOM, erased)).toEqual({ ok: true, value: copy("", ROOM, 5) });
  });

  it("keeps a text's leading U+FEFF (a character, not a byte order mark: docs/protocol/wire.md)", () => {
    const sealed = sealDraftCopy(KEY, IK, copy("\ufeffwords"));
    expect(openDraftCopy(KEY, IK, CHAT, sealed)).toEqual({ ok: true, value: copy("\ufeffwords") });
  });

  it("round-trips any copy (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300, unit: "grapheme" }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        (t, at) => {
          const c = copy(t, CHAT, at);
          expect(openDraftCopy(KEY, IK, CHAT, sealDraftCopy(KEY, IK, c))).toEqual({ ok: true, value: c });
        },
      ),
      { numRuns: Math.ceil(FUZZ_RUNS / 10) },
    );
  });

  it("a copy's size says only the bucket of the text's length (padding), and the longest fits", () => {
    const sizes = new Set([1, 50, 200].map((n) => sealDraftCopy(KEY, IK, copy("x".repeat(n))).length));
    expect(sizes.size).toBe(1);
    const longest = sealDraftCopy(KEY, IK, copy("€".repeat(MAX_DRAFT_CHARS)));
    expect(longest.length).toBeLessThanOrEqual(MAX_COPY_CHARS);
    expect(openDraftCopy(KEY, IK, CHAT, longest).ok).toBe(true);
  });

  it("wrong key, another profile, another conversation (a copy replayed under another key): DECRYPT", () => {
    const sealed = sealDraftCopy(KEY, IK, copy("words"));
    const other = new Uint8Array(32).fill(0x44);
    expect(openDraftCopy(draftCopyKey(IK, other), IK, CHAT, sealed)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_DECRYPT" },
    });
    expect(openDraftCopy(KEY, other, CHAT, sealed)).toMatchObject({ error: { code: "LOFT_ERR_DECRYPT" } });
    expect(openDraftCopy(KEY, IK, ROOM, sealed)).toMatchObject({ error: { code: "LOFT_ERR_DECRYPT" } });
  });

  it("malformed, truncated, oversized, another version: typed errors, never a throw", () => {
    const raw = fromBase64url(sealDraftCopy(KEY, IK, copy("words")));
    const code = (v: string) => {
      const r = openDraftCopy(KEY, IK, CHAT, v);
      return r.ok ? "ok" : r.error.code;
    };
    expect(code("not base64url!")).toBe("LOFT_ERR_MALFORMED");
    expect(code(toBase64url(raw.subarray(0, 40)))).toBe("LOFT_ERR_MALFORMED");
    expect(code("A".repeat(MAX_COPY_CHARS + 1))).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const v2 = raw.slice();
    v2[0] = 0x02;
    expect(code(toBase64url(v2))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });

  it("a text of 64 000 UTF-16 units opens, one unit more is SCHEMA (counted in UTF-16, not UTF-8)", () => {
    // Sealed by hand: the writer cuts a text at MAX_DRAFT_CHARS, so only another writer makes one longer.
    const sealText = (text: string) => {
      const t = new TextEncoder().encode(text);
      const fields = new Uint8Array(8 + t.length);
      fields.set(t, 8);
      return sealValue(1, KEY, NONCE, draftCopyAd(IK, CHAT), padToBucket(fields));
    };
    const longest = "😀".repeat(MAX_DRAFT_CHARS / 2); // 4 UTF-8 bytes, 2 UTF-16 units each
    expect(openDraftCopy(KEY, IK, CHAT, sealText(longest))).toEqual({
      ok: true,
      value: copy(longest, CHAT, 0),
    });
    expect(openDraftCopy(KEY, IK, CHAT, sealText(`${longest}x`))).toMatchObject({
      error: { code: "LOFT_ERR_SCHEMA" },
    });
  });

  it("garbage and mutated copies return a typed error, never throw (fuzz)", () => {
    const raw = fromBase64url(sealDraftCopy(KEY, IK, copy("some words")));
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => {
        expect(openDraftCopy(KEY, IK, CHAT, s).ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.nat({ max: raw.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const bad = raw.slice();
        bad[at] = (bad[at] ?? 0) ^ xor;
        const r = openDraftCopy(KEY, IK, CHAT, toBase64url(bad));
        expect(r.ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("draft copy store", () => {
  it("writes, reads, removes; bad copies are dropped, good ones kept, a newer version left", () => {
    const store = new MapStore();
    const copies = new DraftCopies(store, IK, draftCopyKey(IK, PRIV));
    expect(copies.write(copy("one"))).toBe(true);
    expect(copies.write(copy("two", ROOM, 7))).toBe(true);
    expect(copies.write(copy("one, later", CHAT, 9))).toBe(true); // the newest copy replaces the last
    const prefix = `${DRAFT_COPY_PREFIX}${"11".repeat(32)}.`;
    store.setItem(`${prefix}chat:${"ef".repeat(32)}`, store.getItem(prefix + CHAT)!); // moved: DECRYPT
    store.setItem(`${prefix}not-a-key`, "x");
    const newer = fromBase64url(store.getItem(prefix + ROOM)!);
    newer[0] = 0x07;
    store.setItem(`${prefix}room:aa`, toBase64url(newer));
    store.setItem(`${DRAFT_COPY_PREFIX}${"99".repeat(32)}.${CHAT}`, "another identity's");
    const read = copies.read();
    expect(read.copies.sort((a, b) => a.at - b.at)).toEqual([
      copy("two", ROOM, 7),
      copy("one, later", CHAT, 9),
    ]);
    expect(read.unreadable.map((u) => u.error.code).sort()).toEqual([
      "LOFT_ERR_DECRYPT",
      "LOFT_ERR_SCHEMA",
      "LOFT_ERR_UNSUPPORTED_VERSION",
    ]);
    expect([...store.map.keys()].sort()).toEqual(
      [
        prefix + CHAT,
        prefix + ROOM,
        `${prefix}room:aa`,
        `${DRAFT_COPY_PREFIX}${"99".repeat(32)}.${CHAT}`,
      ].sort(),
    );
    copies.remove(CHAT);
    expect(copies.read().copies).toEqual([copy("two", ROOM, 7)]);
    clearDraftCopies(store);
    expect(store.map.size).toBe(0);
  });

  it("two tabs share the store: each removes only the copy it wrote or read, never the other's newer one", () => {
    const store = new MapStore();
    const tab = () => new DraftCopies(store, IK, draftCopyKey(IK, PRIV));
    // Tab A was hidden (its copy), then tab B went with newer words of the same conversation; A's
    // write started with its copy lands now and A drops its copy: B's stays.
    const a = tab();
    const b = tab();
    expect(a.write(copy("from A", CHAT, 1))).toBe(true);
    expect(b.write(copy("from B, newer", CHAT, 2))).toBe(true);
    a.remove(CHAT);
    expect(tab().read().copies).toEqual([copy("from B, newer", CHAT, 2)]);
    // A tab starting folds what it read; a tab that went meanwhile wrote a newer copy: it stays.
    const c = tab();
    expect(c.read().copies).toEqual([copy("from B, newer", CHAT, 2)]);
    expect(a.write(copy("from A, gone meanwhile", CHAT, 3))).toBe(true);
    c.remove(CHAT);
    expect(tab().read().copies).toEqual([copy("from A, gone meanwhile", CHAT, 3)]);
    // What a tab wrote or read and nobody replaced since, it removes; a deleted conversation's
    // copy goes whoever wrote it.
    a.remove(CHAT);
    expect(store.map.size).toBe(0);
    expect(b.write(copy("to a room left since", ROOM, 4))).toBe(true);
    a.discard(ROOM);
    expect(store.map.size).toBe(0);
  });

  it("a store that refuses the write (full localStorage) says so, and holds nothing", () => {
    const store = new MapStore();
    store.full = true;
    expect(new DraftCopies(store, IK, draftCopyKey(IK, PRIV)).write(copy("words"))).toBe(false);
    expect(store.map.size).toBe(0);
  });
});

describe("draft copy vectors", () => {
  it("derives the key, opens and re-seals every copy", () => {
    const id = h(committed.identityKey);
    const k = draftCopyKey(id, h(committed.privateIdentityKey));
    expect(Buffer.from(k).toString("hex")).toBe(committed.key);
    expect(committed.maxCopyChars).toBe(MAX_COPY_CHARS);
    for (const c of committed.copies) {
      const fields: DraftCopy = { key: c.draftKey, at: c.at, text: c.text };
      expect(c.storeKey).toBe(`${DRAFT_COPY_PREFIX}${committed.identityKey}.${c.draftKey}`);
      expect(Buffer.from(draftCopyAd(id, c.draftKey)).toString("hex")).toBe(c.ad);
      expect(Buffer.from(draftCopyPlaintext(fields)).toString("hex")).toBe(c.plaintext);
      expect(openDraftCopy(k, id, c.draftKey, c.value)).toEqual({ ok: true, value: fields });
      expect(sealDraftCopy(k, id, fields, h(c.nonce))).toBe(c.value);
    }
  });

  it("docs/protocol/chat.md prints the file's key and first copy", () => {
    const doc = readFileSync(new URL("../../../docs/protocol/chat.md", import.meta.url), "utf8");
    const first = committed.copies[0]!;
    expect([first.draftKey, first.at, first.text, first.nonce]).toEqual([
      `chat:${"ab".repeat(32)}`,
      1_700_000_000_001,
      "hi 👋",
      "33".repeat(24),
    ]);
    expect(/→ copy key\s+`([A-Za-z0-9_-]+)`/.exec(doc)?.[1]).toBe(toBase64url(h(committed.key)));
    const printed = /seals to\n\n```\n([A-Za-z0-9_\n-]+)```/.exec(doc.slice(doc.indexOf("### Draft copies")));
    expect(printed?.[1]?.replace(/\n/g, "")).toBe(first.value);
  });

  it("refuses each invalid value with its code", () => {
    const id = h(committed.identityKey);
    const k = draftCopyKey(id, h(committed.privateIdentityKey));
    for (const v of committed.invalid) {
      const r = openDraftCopy(k, id, v.draftKey, v.value);
      expect(r.ok ? "ok" : r.error.code, v.label).toBe(v.code);
    }
  });

  it("is what the generator produces", () => {
    expect(draftCopyVectorText()).toBe(readFileSync(DRAFT_COPY_VECTOR_FILE, "utf8"));
  });
});
