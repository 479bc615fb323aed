/**
 * The outbox journal's codec and store (journal.ts; docs/protocol/chat.md §9, "The outbox
 * journal"): round trips, the vector the docs print, and every way an entry can be bad —
 * malformed, truncated, oversized, another version, wrong key, another profile, moved to another
 * id, a changed byte, fields that break the layout — each a typed error, never a throw, and never
 * at the cost of the good entries beside it. Duplicates and order for replay. Real noble
 * XChaCha20-Poly1305 and HKDF; the store is a Map behind the Web Storage methods the page's
 * localStorage has (the Chromium run is test/e2e/onboarding.e2e.ts).
 */

import { readFileSync } from "node:fs";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../../core/bytes.ts";
import {
  type buildJournalVectors,
  JOURNAL_VECTOR_FILE,
  journalVectorText,
  layout,
} from "../../../scripts/gen-journal-vectors.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { MapStore } from "../../../test/support/map-store.ts";
import { MAX_TEXT_CHARS } from "../engine/outgoing.ts";
import { fromBase64url, toBase64url } from "../lib/base64url.ts";
import {
  clearJournals,
  JOURNAL_PREFIX,
  type JournalEntry,
  type JournalLocks,
  journalKey,
  MAX_ENTRY_CHARS,
  OutboxJournal,
  openEntry,
  RETRY_PREFIX,
  RETRY_VALUE,
  replayOrder,
  sealEntry,
} from "./journal.ts";

const identity = new Uint8Array(32).fill(0x11);
const privateKey = new Uint8Array(32).fill(0x22);
const key = journalKey(identity, privateKey);
const contactId = "ab".repeat(32);
const entry = (i: number, text = `message ${i}`): JournalEntry => ({
  id: `m${i}`.padEnd(22, "A"),
  contactId,
  at: 1_700_000_000_000 + i,
  text,
});
const code = (r: ReturnType<typeof openEntry>) => (r.ok ? "ok" : r.error.code);

describe("outbox journal codec", () => {
  it("round-trips an entry", () => {
    const e = entry(1, "hi 👋");
    const value = sealEntry(key, identity, e);
    expect(openEntry(key, identity, e.id, value)).toEqual({ ok: true, value: e });
  });

  it("keeps a text's leading U+FEFF (a character, not a byte order mark: docs/protocol/wire.md)", () => {
    const e = entry(1, "\ufeffhello");
    expect(openEntry(key, identity, e.id, sealEntry(key, identity, e))).toEqual({ ok: true, value: e });
  });

  it("an entry's size says only the bucket of the text's length, not the length (padding)", () => {
    // A removed localStorage value lingers on disk until the browser compacts its files, so the
    // size must not give the message length away (docs/protocol/chat.md §9, "At rest").
    const sizes = (lengths: number[]) =>
      new Set(lengths.map((n) => sealEntry(key, identity, entry(1, "x".repeat(n))).length));
    // Up to 256 − 13 − 64 − 1 = 178 bytes of text: one 256-byte bucket, one size.
    expect(sizes(Array.from({ length: 178 }, (_, i) => i + 1)).size).toBe(1);
    expect(sizes([179, 300, 434]).size).toBe(1);
    expect(sizes([1, 179, 435, 1000]).size).toBe(4);
  });

  it("round-trips any entry (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 200, unit: "grapheme" }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.string({ minLength: 1, maxLength: 64 }).filter((s) => new TextEncoder().encode(s).length <= 255),
        (text, at, contact) => {
          const e = { id: "x".repeat(22), contactId: contact, at, text };
          expect(openEntry(key, identity, e.id, sealEntry(key, identity, e))).toEqual({ ok: true, value: e });
        },
      ),
      { numRuns: Math.ceil(FUZZ_RUNS / 10) },
    );
  });

  it("the longest text fits (16 000 three-byte characters) and the size bound holds it", () => {
    const e = entry(2, "€".repeat(MAX_TEXT_CHARS));
    const value = sealEntry(key, identity, e);
    expect(value.length).toBeLessThanOrEqual(MAX_ENTRY_CHARS);
    expect(openEntry(key, identity, e.id, value)).toEqual({ ok: true, value: e });
  });

  it("refuses a wrong key, another profile and another id (DECRYPT)", () => {
    const e = entry(3);
    const value = sealEntry(key, identity, e);
    const otherIdentity = new Uint8Array(32).fill(0x12);
    expect(code(openEntry(journalKey(identity, new Uint8Array(32).fill(9)), identity, e.id, value))).toBe(
      "LOFT_ERR_DECRYPT",
    );
    expect(code(openEntry(key, otherIdentity, e.id, value))).toBe("LOFT_ERR_DECRYPT");
    expect(code(openEntry(key, identity, entry(4).id, value))).toBe("LOFT_ERR_DECRYPT");
  });

  it("malformed, truncated, oversized, another version: typed errors, never a throw", () => {
    const e = entry(5);
    const value = sealEntry(key, identity, e);
    const raw = fromBase64url(value);
    expect(code(openEntry(key, identity, e.id, "not base64url!"))).toBe("LOFT_ERR_MALFORMED");
    expect(code(openEntry(key, identity, e.id, ""))).toBe("LOFT_ERR_MALFORMED");
    expect(code(openEntry(key, identity, e.id, "A".repeat(MAX_ENTRY_CHARS + 1)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    const v3 = raw.slice();
    v3[0] = 3;
    expect(code(openEntry(key, identity, e.id, toBase64url(v3)))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    // The version byte is outside the AD: flipped to 0x01, the padded plaintext breaks the
    // unpadded layout (at least one padding byte after the text), never a wrong entry.
    const v1 = raw.slice();
    v1[0] = 1;
    expect(code(openEntry(key, identity, e.id, toBase64url(v1)))).toBe("LOFT_ERR_SCHEMA");
    for (let n = 0; n < raw.length; n++) {
      const c = code(openEntry(key, identity, e.id, toBase64url(raw.subarray(0, n))));
      expect(["LOFT_ERR_MALFORMED", "LOFT_ERR_DECRYPT"]).toContain(c);
    }
    expect(code(openEntry(key, identity, e.id, toBase64url(concatBytes(raw, new Uint8Array([0])))))).toBe(
      "LOFT_ERR_DECRYPT",
    );
  });

  it("a sealed plaintext that breaks the layout or the message rules is SCHEMA (version 0x01 layout)", () => {
    const seal = (plain: Uint8Array) => {
      const nonce = new Uint8Array(24).fill(1);
      const ad = concatBytes(
        new TextEncoder().encode("loft/outbox-journal/v1\0"),
        identity,
        new TextEncoder().encode("id"),
      );
      return toBase64url(
        concatBytes(new Uint8Array([1]), nonce, xchacha20poly1305(key, nonce, ad).encrypt(plain)),
      );
    };
    const c = "c";
    const t = new TextEncoder().encode("t");
    expect(code(openEntry(key, identity, "id", seal(layout(1n, c, t))))).toBe("ok");
    const bad = [
      layout(2n ** 60n, c, t), // time beyond a safe integer
      layout(1n, "", t), // no contact id
      layout(1n, c, new Uint8Array(0)), // empty text
      layout(1n, c, t, 2), // text length says more than there is
      layout(1n, c, t, 0), // ... or less
      layout(1n, c, new Uint8Array([0xff, 0xfe])), // not UTF-8
      layout(1n, c, new TextEncoder().encode("x".repeat(MAX_TEXT_CHARS + 1))), // too long a message
    ];
    for (const p of bad) expect(code(openEntry(key, identity, "id", seal(p)))).toBe("LOFT_ERR_SCHEMA");
    // Shorter than the fixed fields: refused by its length before anything is decrypted.
    expect(code(openEntry(key, identity, "id", seal(new Uint8Array(12))))).toBe("LOFT_ERR_MALFORMED");
  });

  it("garbage and mutated entries return a typed error, never throw (fuzz)", () => {
    const e = entry(6);
    const raw = fromBase64url(sealEntry(key, identity, e));
    // SCHEMA: the version byte (outside the AD) flipped to 0x01 (see above).
    const codes = new Set([
      "LOFT_ERR_MALFORMED",
      "LOFT_ERR_DECRYPT",
      "LOFT_ERR_UNSUPPORTED_VERSION",
      "LOFT_ERR_SCHEMA",
    ]);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const r = openEntry(key, identity, e.id, s);
        expect(r.ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.nat({ max: raw.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const m = raw.slice();
        m[at] = (m[at] ?? 0) ^ xor;
        const r = openEntry(key, identity, e.id, toBase64url(m));
        expect(r.ok).toBe(false);
        if (!r.ok) expect(codes.has(r.error.code)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("outbox journal store", () => {
  it("replays in hand-over order, one per id, whatever order the store lists them in", () => {
    const shuffled = [entry(3), entry(1), entry(2), entry(1), entry(3)];
    expect(replayOrder(shuffled).map((e) => e.at)).toEqual([1, 2, 3].map((i) => entry(i).at));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(20), fc.nat(5)), { maxLength: 40 }), (xs) => {
        const out = replayOrder(xs.map(([id, at]) => ({ id: `${id}`, contactId, at, text: "t" })));
        expect(new Set(out.map((e) => e.id)).size).toBe(out.length);
        for (let i = 1; i < out.length; i++) expect(out[i - 1]!.at).toBeLessThanOrEqual(out[i]!.at);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("writes, reads, removes; a bad entry is listed apart and the good ones still replay", () => {
    const store = new MapStore();
    const journal = new OutboxJournal(store, identity, key);
    for (const i of [3, 1, 2]) expect(journal.write(entry(i))).toBe(true);
    const prefix = `${JOURNAL_PREFIX}${"11".repeat(32)}.`;
    // A damaged entry, one copied under another id, and another profile's entry.
    store.setItem(`${prefix}damaged`, "AAAA");
    store.setItem(`${prefix}${entry(9).id}`, store.getItem(prefix + entry(1).id)!);
    const other = new OutboxJournal(store, new Uint8Array(32).fill(0x44), key);
    other.write(entry(7));
    const read = journal.read();
    expect(read.entries).toEqual([entry(1), entry(2), entry(3)]);
    expect(read.unreadable.map((u) => [u.id, u.error.code]).sort()).toEqual(
      [
        ["damaged", "LOFT_ERR_MALFORMED"],
        [entry(9).id, "LOFT_ERR_DECRYPT"],
      ].sort(),
    );
    journal.remove(entry(2).id);
    expect(journal.read().entries).toEqual([entry(1), entry(3)]);
    // Never plaintext at rest: no entry's value holds its text or contact.
    for (const v of store.map.values()) {
      expect(v).not.toContain("message");
      expect(v).not.toContain(contactId);
    }
    clearJournals(store);
    expect(store.length).toBe(0);
  });

  it("a pending hand-over is busy for every tab (its lock) until removed or released", async () => {
    // Exclusive named locks, granted in request order, like the page's navigator.locks (one
    // manager shared by every tab of an origin; the Chromium run is test/e2e/onboarding.e2e.ts).
    const held = new Set<string>();
    const queue = new Map<string, (() => Promise<void>)[]>();
    const pending: string[] = [];
    const locks: JournalLocks = {
      request(name, callback) {
        pending.push(name);
        return new Promise((resolve) => {
          const run = async () => {
            pending.splice(pending.indexOf(name), 1);
            held.add(name);
            await callback();
            held.delete(name);
            const next = queue.get(name)?.shift();
            if (next) void next();
            resolve(undefined);
          };
          if (held.has(name)) queue.set(name, [...(queue.get(name) ?? []), run]);
          else queueMicrotask(() => void run());
        });
      },
      query: async () => ({
        held: [...held].map((name) => ({ name })),
        pending: pending.map((name) => ({ name })),
      }),
    };
    const store = new MapStore();
    const first = new OutboxJournal(store, identity, key, locks); // the tab handing over
    const second = new OutboxJournal(store, identity, key, locks); // a tab unlocking meanwhile
    first.write(entry(1));
    first.write(entry(2));
    // Requested in the write's task: busy for the other tab before the lock is even granted.
    expect([...(await second.busy())].sort()).toEqual([entry(1).id, entry(2).id]);
    expect(second.read().entries).toEqual([entry(1), entry(2)]);
    first.remove(entry(1).id); // committed
    first.release(entry(2).id); // failed for a storage reason: the entry stays, for any tab
    await new Promise((r) => setTimeout(r, 0));
    expect(await second.busy()).toEqual(new Set());
    expect(second.read().entries).toEqual([entry(2)]);
    // A write the store refuses holds no lock; closing drops this tab's locks.
    store.full = true;
    expect(first.write(entry(3))).toBe(false);
    store.full = false;
    first.write(entry(4));
    first.close();
    await new Promise((r) => setTimeout(r, 0));
    expect(await second.busy()).toEqual(new Set());
  });

  it("retries: written in the call's task, listed, removed; junk keys and values are dropped, never thrown on (fuzz)", () => {
    const store = new MapStore();
    const journal = new OutboxJournal(store, identity, key);
    const other = new OutboxJournal(store, new Uint8Array(32).fill(0x44), key);
    expect(journal.writeRetry(entry(1).id)).toBe(true);
    expect(journal.writeRetry(entry(2).id)).toBe(true);
    expect(other.writeRetry(entry(3).id)).toBe(true); // another profile's: not ours to replay
    journal.write(entry(4)); // a hand-over entry is not a retry
    expect(journal.retries().sort()).toEqual([entry(1).id, entry(2).id].sort());
    journal.removeRetry(entry(1).id);
    expect(journal.retries()).toEqual([entry(2).id]);
    // Nothing but the message id, in the key (clear in IndexedDB too).
    expect(store.getItem(`${RETRY_PREFIX}${"11".repeat(32)}.${entry(2).id}`)).toBe(RETRY_VALUE);
    const prefix = `${RETRY_PREFIX}${"11".repeat(32)}.`;
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 8 }), (id, value) => {
        fc.pre(id !== entry(2).id);
        store.setItem(prefix + id, value);
        const valid = /^[A-Za-z0-9_-]{1,64}$/.test(id) && value === RETRY_VALUE;
        expect(journal.retries().includes(id)).toBe(valid);
        if (!valid) expect(store.getItem(prefix + id)).toBeNull();
        store.removeItem(prefix + id);
      }),
      { numRuns: FUZZ_RUNS },
    );
    expect(journal.retries()).toEqual([entry(2).id]);
    store.full = true;
    expect(journal.writeRetry(entry(5).id)).toBe(false);
    store.full = false;
    clearJournals(store);
    expect(store.length).toBe(0);
  });

  it("a store that refuses the write (full localStorage) says so, and holds nothing", () => {
    const store = new MapStore();
    store.full = true;
    const journal = new OutboxJournal(store, identity, key);
    expect(journal.write(entry(1))).toBe(false);
    expect(journal.read().entries).toEqual([]);
  });
});

/** docs/vectors/journal-v1.json (scripts/gen-journal-vectors.ts; recomputed by test/interop/vectorcheck). */
describe("outbox journal vectors", () => {
  const committed = JSON.parse(readFileSync(JOURNAL_VECTOR_FILE, "utf8")) as ReturnType<
    typeof buildJournalVectors
  >;
  const h = (x: string) => Uint8Array.from(Buffer.from(x, "hex"));

  it("derives the key, opens and re-seals every entry", () => {
    const id = h(committed.identityKey);
    const k = journalKey(id, h(committed.privateIdentityKey));
    expect(Buffer.from(k).toString("hex")).toBe(committed.key);
    expect(committed.maxEntryChars).toBe(MAX_ENTRY_CHARS);
    for (const e of committed.entries) {
      const fields = { id: e.id, contactId: e.contactId, at: e.at, text: e.text };
      expect(openEntry(k, id, e.id, e.value)).toEqual({ ok: true, value: fields });
      expect(sealEntry(k, id, fields, h(e.nonce))).toBe(e.value);
    }
    for (const e of committed.unpadded) {
      const fields = { id: e.id, contactId: e.contactId, at: e.at, text: e.text };
      expect(openEntry(k, id, e.id, e.value)).toEqual({ ok: true, value: fields });
    }
  });

  it("refuses each invalid value with its code", () => {
    const id = h(committed.identityKey);
    const k = journalKey(id, h(committed.privateIdentityKey));
    for (const v of committed.invalid) expect(code(openEntry(k, id, v.id, v.value)), v.label).toBe(v.code);
  });

  it("is what the generator produces", () => {
    expect(journalVectorText()).toBe(readFileSync(JOURNAL_VECTOR_FILE, "utf8"));
  });

  it("docs/protocol/chat.md prints the file's key and first entry", () => {
    const doc = readFileSync(new URL("../../../docs/protocol/chat.md", import.meta.url), "utf8");
    const first = committed.entries[0]!;
    expect([first.id, first.contactId, first.at, first.text, first.nonce]).toEqual([
      "m1AAAAAAAAAAAAAAAAAAAA",
      "ab".repeat(32),
      1_700_000_000_001,
      "hi 👋",
      "33".repeat(24),
    ]);
    expect(/→\s+journal key `([A-Za-z0-9_-]+)`/.exec(doc)?.[1]).toBe(toBase64url(h(committed.key)));
    const section = doc.slice(doc.indexOf("### The outbox journal"));
    const printed = /seals to\n\n```\n([A-Za-z0-9_\n-]+)```/.exec(section);
    expect(printed?.[1]?.replace(/\n/g, "")).toBe(first.value);
  });
});
