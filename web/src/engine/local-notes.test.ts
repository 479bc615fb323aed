/**
 * Drafts and room names at rest (local-notes.ts): read back as written; a record that is
 * malformed, oversized, of another version or with unknown fields reads as what it holds when
 * usable, else as none — never a throw; fuzzed. Sealing is the storage's (storage/storage.ts `saveSecret`,
 * checked in Chromium by test/e2e/chat-screen.e2e.ts); here the secrets are a Map (test/support/engine.ts `MemoryStorage`).
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import {
  type buildLocalNotesVectors,
  LOCAL_NOTES_VECTOR_FILE,
  localNotesVectorText,
} from "../../../scripts/gen-local-notes-vectors.ts";
import { mutate, mutationArb } from "../../../test/fuzz/mutations.ts";
import { MemoryStorage } from "../../../test/support/engine.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import {
  cleanRoomName,
  DraftStore,
  decodeDraft,
  decodeRoomName,
  draftSecret,
  encodeDraft,
  encodeRoomName,
  MAX_DRAFT_CHARS,
  MAX_ROOM_NAME_CHARS,
} from "./local-notes.ts";

/** docs/vectors/local-notes-v1.json (scripts/gen-local-notes-vectors.ts; recomputed by test/interop/vectorcheck). */
describe('the vectors of docs/protocol/chat.md §9 "Drafts" and rooms.md §7', () => {
  const file = JSON.parse(readFileSync(LOCAL_NOTES_VECTOR_FILE, "utf8")) as ReturnType<
    typeof buildLocalNotesVectors
  >;
  const page = (name: string) =>
    readFileSync(new URL(`../../../docs/protocol/${name}`, import.meta.url), "utf8").replace(/\s+/g, " ");
  /** The bytes a page prints after `lead`, spaces taken out. */
  const printed = (text: string, lead: string) =>
    new RegExp(`${lead} \`([0-9a-f ]+)\``).exec(text)?.[1]?.replace(/ /g, "");

  it("the pages print the file's first draft and room name", () => {
    const draft = file.drafts[0]!;
    expect([draft.text, draft.at]).toEqual(["hi", 1_700_000_000_000]);
    expect(printed(page("chat.md"), 'the draft `"hi"` at 1 700 000 000 000 ms is')).toBe(draft.record);
    const name = file.roomNames[0]!;
    expect(name.name).toBe(" Book\n club ");
    expect(printed(page("rooms.md"), 'The first: " Book\\\\n club " is stored as')).toBe(name.record);
  });

  it("the file is what the generator produces", () => {
    expect(localNotesVectorText()).toBe(readFileSync(LOCAL_NOTES_VECTOR_FILE, "utf8"));
  });
});

describe("drafts at rest", () => {
  it("reads back what was kept; an empty draft deletes the record", async () => {
    const s = new MemoryStorage("wss://signaling.invalid");
    const drafts = new DraftStore(s);
    await drafts.save("chat:ab", "half a thought\nand a second line ✓");
    expect(await drafts.load("chat:ab")).toBe("half a thought\nand a second line ✓");
    expect(await drafts.load("room:cd")).toBeUndefined();
    await drafts.save("chat:ab", "");
    expect(s.secrets.has(draftSecret("chat:ab"))).toBe(false);
    expect(await drafts.load("chat:ab")).toBeUndefined();
  });

  it("tolerates records it cannot use: malformed, another version, wrong types, oversized", () => {
    expect(decodeDraft(new Uint8Array())).toBeUndefined();
    expect(decodeDraft(new Uint8Array([0xc1]))).toBeUndefined();
    expect(decodeDraft(encodeCanonical("just text"))).toBeUndefined();
    expect(decodeDraft(encodeCanonical({ v: 2, t: "later", at: 1 }))).toBeUndefined();
    expect(decodeDraft(encodeCanonical({ v: 1, t: 5, at: 1 }))).toBeUndefined();
    expect(decodeDraft(encodeCanonical({ v: 1, t: "no time" }))).toBeUndefined();
    expect(decodeDraft(encodeCanonical({ v: 1, t: "x".repeat(MAX_DRAFT_CHARS + 1), at: 1 }))).toBeUndefined();
    expect(decodeDraft(encodeCanonical({ v: 1, t: "", at: 1 }))).toBeUndefined();
  });

  it("keeps a draft whose record has fields a later version added", () => {
    expect(decodeDraft(encodeCanonical({ v: 1, t: "kept", at: 1, cursor: 3 }))).toBe("kept");
  });

  it("bounds what it writes", () => {
    expect(decodeDraft(encodeDraft("y".repeat(MAX_DRAFT_CHARS + 10), -5))).toBe("y".repeat(MAX_DRAFT_CHARS));
  });

  it("fuzz: any bytes, and mutations of a real record, read as a string or none, never a throw", () => {
    const good = encodeDraft("a draft", 1_700_000_000_000);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), mutationArb, (raw, m) => {
        for (const bytes of [raw, mutate(good, m, [good])]) {
          const out = decodeDraft(bytes);
          expect(out === undefined || typeof out === "string").toBe(true);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("room names at rest", () => {
  it("tidies whitespace and bounds the length (whole characters)", () => {
    expect(cleanRoomName("  Book\n club \t 2026 ")).toBe("Book club 2026");
    expect(cleanRoomName("   ")).toBe("");
    const long = "🏠".repeat(MAX_ROOM_NAME_CHARS + 5);
    expect([...cleanRoomName(long)]).toHaveLength(MAX_ROOM_NAME_CHARS);
    expect(decodeRoomName(encodeRoomName(" Family "))).toBe("Family");
  });

  it("tolerates records it cannot use, and cleans a name written by anything else", () => {
    expect(decodeRoomName(new Uint8Array([0x92]))).toBeUndefined();
    expect(decodeRoomName(encodeCanonical({ v: 2, n: "later" }))).toBeUndefined();
    expect(decodeRoomName(encodeCanonical({ v: 1, n: 7 }))).toBeUndefined();
    expect(decodeRoomName(encodeCanonical({ v: 1, n: "  " }))).toBeUndefined();
    expect(decodeRoomName(encodeCanonical({ v: 1, n: "a\n\nb", extra: true }))).toBe("a b");
    expect(decodeRoomName(encodeCanonical({ v: 1, n: "z".repeat(10_000) }))).toBe(
      "z".repeat(MAX_ROOM_NAME_CHARS),
    );
  });

  it("fuzz: any bytes, and mutations of a real record, read as a clean name or none, never a throw", () => {
    const good = encodeRoomName("Climbing on Sundays");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), mutationArb, (raw, m) => {
        for (const bytes of [raw, mutate(good, m, [good])]) {
          const out = decodeRoomName(bytes);
          if (out !== undefined) expect(cleanRoomName(out)).toBe(out);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
