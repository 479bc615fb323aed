/**
 * Drafts (drafts.ts): typing is kept in memory at once and written to the sealed store at most
 * once per DRAFT_WRITE_MS with the newest text (a burst of keys costs one write, nothing lost),
 * an emptied draft is deleted at once, a reload (a new run over the same store) reads it back,
 * and a deleted conversation's draft never comes back from a write still pending.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DraftStore, draftSecret } from "../engine/local-notes.ts";
import {
  DRAFT_WRITE_MS,
  draftOf,
  draftsWritten,
  forgetDraft,
  keepDraft,
  loadDraft,
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
});
