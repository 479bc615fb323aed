/**
 * Drafts (drafts.ts): typing is kept in memory at once and written to the sealed store at most
 * once per DRAFT_WRITE_MS with the newest text (a burst of keys costs one write, nothing lost),
 * an emptied draft is deleted at once, a reload (a new run over the same store) reads it back,
 * and a deleted conversation's draft never comes back from a write still pending. When the page
 * goes, a synchronous copy of what is not on disk yet is kept and folded at the next start
 * (storage/draft-copies.ts has the sealing; here the copies are a Map).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type DraftCopy, type DraftKey, DraftStore, draftSecret } from "../engine/local-notes.ts";
import {
  DRAFT_WRITE_MS,
  draftOf,
  draftsWritten,
  flushDrafts,
  foldDraftCopies,
  forgetDraft,
  holdDraftWrites,
  keepCopies,
  keepDraft,
  loadDraft,
  onDraftReadBack,
  useDraftStore,
} from "./drafts.ts";

class Secrets {
  readonly map = new Map<string, Uint8Array>();
  writes = 0;
  async loadSecret(name: string) {
    return this.map.get(name)?.slice();
  }
  async saveSecret(name: string, value: Uint8Array) {
    this.writes++;
    this.map.set(name, value.slice());
  }
  async deleteSecret(name: string) {
    this.writes++;
    this.map.delete(name);
  }
  /** The synchronous copies (LoftStorage's are sealed in localStorage). */
  readonly copies = new Map<DraftKey, DraftCopy>();
  copyDraft(copy: DraftCopy) {
    this.copies.set(copy.key, { ...copy });
    return true;
  }
  draftCopies() {
    return [...this.copies.values()];
  }
  forgetDraftCopy(key: DraftKey) {
    this.copies.delete(key);
  }
  dropDraftCopy(key: DraftKey) {
    this.copies.delete(key);
  }
  /** Writes from now on wait until the returned release: the page is gone before they land. */
  stall(): () => void {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    this.saveSecret = () => gate;
    this.deleteSecret = () => gate;
    return release;
  }
}

describe("drafts", () => {
  let s: Secrets;
  beforeEach(() => {
    vi.useFakeTimers();
    s = new Secrets();
    useDraftStore(new DraftStore(s));
  });
  afterEach(() => {
    useDraftStore(undefined);
    vi.useRealTimers();
  });

  it("a burst of keystrokes is one write of the last text, read back after a reload", async () => {
    const text = "The quick brown fox jumps over the lazy dog, twice over. ".repeat(4);
    for (let i = 1; i <= text.length; i++) keepDraft("chat:aa", text.slice(0, i));
    expect(draftOf("chat:aa")).toBe(text);
    expect(s.writes).toBe(0);
    await vi.advanceTimersByTimeAsync(DRAFT_WRITE_MS);
    expect(s.writes).toBe(1);
    // A reload: memory is gone, the store is the same.
    useDraftStore(new DraftStore(s));
    expect(draftOf("chat:aa")).toBe("");
    expect(await loadDraft("chat:aa")).toBe(text);
    expect(draftOf("chat:aa")).toBe(text);
  });

  it("pagehide's flush writes at once what waits; sending (an empty draft) deletes at once", async () => {
    keepDraft("room:0f", "almost");
    await draftsWritten();
    expect(s.map.has(draftSecret("room:0f"))).toBe(true);
    keepDraft("room:0f", "");
    await draftsWritten();
    expect(s.map.has(draftSecret("room:0f"))).toBe(false);
    useDraftStore(new DraftStore(s));
    expect(await loadDraft("room:0f")).toBeUndefined();
  });

  it("what is typed before the stored draft is read wins over it", async () => {
    await new DraftStore(s).save("chat:bb", "old");
    const reading = loadDraft("chat:bb");
    keepDraft("chat:bb", "new");
    expect(await reading).toBe("new");
  });

  it("a deleted conversation's pending write does not bring its draft back", async () => {
    keepDraft("chat:cc", "secret plans");
    await forgetDraft("chat:cc");
    await vi.advanceTimersByTimeAsync(DRAFT_WRITE_MS * 2);
    await draftsWritten();
    expect(s.map.has(draftSecret("chat:cc"))).toBe(false);
    expect(draftOf("chat:cc")).toBe("");
  });

  it("words typed just before the page goes are copied at once and folded at the next start", async () => {
    keepDraft("chat:ee", "typed early");
    await draftsWritten();
    keepDraft("chat:ee", "typed early, and more just before the reload");
    keepDraft("room:1f", "");
    const release = s.stall();
    // pagehide: the copy is written in this task; the writes started now do not land.
    keepCopies();
    flushDrafts();
    expect(s.copies.get("chat:ee")?.text).toBe("typed early, and more just before the reload");
    // The next start, over the same store.
    const next = new Secrets();
    for (const [k, v] of s.map) next.map.set(k, v);
    for (const [k, v] of s.copies) next.copies.set(k, v);
    useDraftStore(new DraftStore(next));
    await foldDraftCopies();
    expect(next.copies.size).toBe(0);
    expect(await loadDraft("chat:ee")).toBe("typed early, and more just before the reload");
    expect(await loadDraft("room:1f")).toBeUndefined();
    release(); // the last page's writes settle (into the old store) before the next test
    await draftsWritten();
  });

  it("a copy older than the stored draft (another tab typed on) is dropped; a page that stays drops its copies", async () => {
    s.copies.set("chat:ff", { key: "chat:ff", at: 1, text: "old words" });
    await new DraftStore(s).save("chat:ff", "newer words", 2);
    await foldDraftCopies();
    expect(s.copies.size).toBe(0);
    expect(await loadDraft("chat:ff")).toBe("newer words");
    // Hidden, then back: the write started with the copy lands, and the copy goes.
    keepDraft("chat:ff", "newer words, then hidden");
    keepCopies();
    expect(s.copies.size).toBe(1);
    await draftsWritten();
    expect(s.copies.size).toBe(0);
    useDraftStore(new DraftStore(s));
    expect(await loadDraft("chat:ff")).toBe("newer words, then hidden");
  });

  it("a deleted conversation's copy (another tab's, or one a failed fold kept) is not folded back", async () => {
    // Another tab went with words typed here; this tab never wrote (or read) that copy.
    s.copies.set("chat:ab", { key: "chat:ab", at: Date.now(), text: "to a contact deleted since" });
    await forgetDraft("chat:ab");
    expect(s.copies.has("chat:ab")).toBe(false);
    // The next start folds nothing back for it.
    useDraftStore(new DraftStore(s));
    await foldDraftCopies();
    expect(await loadDraft("chat:ab")).toBeUndefined();
    expect(s.map.has(draftSecret("chat:ab"))).toBe(false);
  });

  it("a copy of a conversation deleted meanwhile (in another tab) is dropped at the next start, not folded", async () => {
    // Another tab went with words for chat:ac and room:ad after this one deleted them: forgetDraft
    // here ran before those copies were written.
    s.copies.set("chat:ac", { key: "chat:ac", at: Date.now(), text: "to a contact deleted meanwhile" });
    s.copies.set("room:ad", { key: "room:ad", at: Date.now(), text: "to a room left meanwhile" });
    s.copies.set("chat:ae", { key: "chat:ae", at: Date.now(), text: "to a contact still here" });
    const asked: string[] = [];
    await foldDraftCopies(async (key) => {
      asked.push(key);
      if (key === "room:ad") throw new Error("unreadable room list"); // fold it, lose nothing
      return key === "chat:ae";
    });
    expect(asked.sort()).toEqual(["chat:ac", "chat:ae", "room:ad"]);
    expect(s.copies.size).toBe(0);
    expect(await loadDraft("chat:ac")).toBeUndefined();
    expect(s.map.has(draftSecret("chat:ac"))).toBe(false);
    expect(await loadDraft("chat:ae")).toBe("to a contact still here");
    expect(await loadDraft("room:ad")).toBe("to a room left meanwhile");
  });

  it("a store that refuses (locked, full) loses the write, not the draft in memory", async () => {
    s.saveSecret = async () => {
      throw new Error("locked");
    };
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    keepDraft("chat:dd", "still here");
    await draftsWritten();
    expect(draftOf("chat:dd")).toBe("still here");
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
  });

  it("writes held (a restore's import): nothing written or copied meanwhile, what was typed kept in memory and written once let go", async () => {
    keepDraft("chat:f1", "written before");
    await draftsWritten();
    // Typed just before the import began: its write still waits for the debounce.
    keepDraft("chat:f1", "typed as the import began");
    const letGo = holdDraftWrites();
    keepDraft("room:f2", "typed during the import");
    keepDraft("chat:f3", "");
    await vi.advanceTimersByTimeAsync(DRAFT_WRITE_MS * 2);
    // The page hidden meanwhile: no copy either (folded at the next start, it would land in
    // what the import wrote).
    keepCopies();
    flushDrafts();
    await draftsWritten();
    expect(s.writes).toBe(1);
    expect(s.copies.size).toBe(0);
    expect(draftOf("room:f2")).toBe("typed during the import");
    expect(await loadDraft("chat:f1")).toBe("typed as the import began");
    // The import failed: every conversation typed in meanwhile is written, without a key more.
    letGo();
    await draftsWritten();
    const next = new DraftStore(s);
    expect(await next.load("chat:f1")).toBe("typed as the import began");
    expect(await next.load("room:f2")).toBe("typed during the import");
    expect(s.map.has(draftSecret("chat:f3"))).toBe(false);
    // Typing goes on as before.
    keepDraft("room:f2", "and more");
    await vi.advanceTimersByTimeAsync(DRAFT_WRITE_MS);
    await draftsWritten();
    expect(await next.load("room:f2")).toBe("and more");
  });

  it("a stored draft not read before writes were held, typed over meanwhile: once let go, the stored words come back with the typed ones after them, shown and written", async () => {
    await new DraftStore(s).save("chat:f6", "stored before");
    useDraftStore(new DraftStore(s)); // a reload: not read in this run
    const letGo = holdDraftWrites();
    // A composer opened during the import: the stored draft cannot be read (the import holds the
    // storage), and the person types.
    expect(await loadDraft("chat:f6")).toBeUndefined();
    keepDraft("chat:f6", "typed during the import");
    const shown: DraftKey[] = [];
    const stop = onDraftReadBack((key) => shown.push(key));
    // The import failed. Before, the typed words alone were written over the stored draft.
    letGo();
    await draftsWritten();
    stop();
    expect(shown).toEqual(["chat:f6"]);
    expect(draftOf("chat:f6")).toBe("stored before\ntyped during the import");
    expect(await new DraftStore(s).load("chat:f6")).toBe("stored before\ntyped during the import");
  });

  it("a stored draft asked for while writes were held, not typed over: read back once let go, nothing written", async () => {
    await new DraftStore(s).save("room:f7", "stored before");
    useDraftStore(new DraftStore(s));
    const writes = s.writes;
    const letGo = holdDraftWrites();
    expect(await loadDraft("room:f7")).toBeUndefined();
    const shown: DraftKey[] = [];
    const stop = onDraftReadBack((key) => shown.push(key));
    letGo();
    await draftsWritten();
    stop();
    expect(shown).toEqual(["room:f7"]);
    expect(draftOf("room:f7")).toBe("stored before");
    expect(s.writes).toBe(writes);
  });

  it("a write queued behind another when writes are held is written once they are let go", async () => {
    const release = s.stall();
    keepDraft("chat:f4", "first");
    flushDrafts();
    keepDraft("chat:f4", "second");
    flushDrafts();
    const letGo = holdDraftWrites();
    release();
    await vi.advanceTimersByTimeAsync(0);
    const saved = new Secrets();
    s.saveSecret = saved.saveSecret.bind(saved);
    letGo();
    await draftsWritten();
    expect(await new DraftStore(saved).load("chat:f4")).toBe("second");
  });

  it("writes held, then the store changed (the import done, the tab closed): letting go writes nothing", async () => {
    const letGo = holdDraftWrites();
    keepDraft("chat:f5", "of the device replaced");
    const restored = new Secrets();
    useDraftStore(new DraftStore(restored));
    letGo();
    await draftsWritten();
    expect(s.writes + restored.writes).toBe(0);
    expect(draftOf("chat:f5")).toBe("");
  });
});
