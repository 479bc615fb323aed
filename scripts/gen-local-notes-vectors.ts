/**
 * Generates the vectors of what a device keeps for its person and never sends (drafts,
 * docs/protocol/chat.md §9 "Drafts"; room names, docs/protocol/rooms.md §7) from
 * web/src/engine/local-notes.ts:
 *
 *   docs/vectors/local-notes-v1.json  draft records and room-name records as written, and records
 *                                     as read: what each reads as (a draft, a name, or none).
 *
 * web/src/engine/local-notes.test.ts checks that chat.md and rooms.md print what the file holds and
 * that this script regenerates the file byte for byte; test/interop/vectorcheck/localnotes.py
 * recomputes it from those pages.
 *
 *   npx tsx scripts/gen-local-notes-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-local-notes-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { encode } from "@msgpack/msgpack";
import { toHex } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import {
  decodeDraftRecord,
  decodeRoomName,
  encodeDraft,
  encodeRoomName,
  MAX_DRAFT_CHARS,
  MAX_ROOM_NAME_CHARS,
} from "../web/src/engine/local-notes.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const LOCAL_NOTES_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/local-notes-v1.json", import.meta.url),
);

const AT = 1_700_000_000_000;
const hexBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));
/** `record` with its byte `back` places before the end set to `value`. */
const withLastByte = (record: Uint8Array, back: number, value: number) => {
  const out = record.slice();
  out[out.length - 1 - back] = value;
  return out;
};

const DRAFTS: { label: string; text: string; at: number }[] = [
  { label: "the docs' draft (chat.md §9, backup.md §3)", text: "hi", at: AT },
  { label: "two lines and an emoji, at time 0", text: "half a thought\nand 👋", at: 0 },
  {
    label: "a text of 40 bytes (str 8) at the latest time",
    text: "x".repeat(40),
    at: Number.MAX_SAFE_INTEGER,
  },
];

/** Records as another writer may have left them: what each reads as. */
const DRAFT_READS: { label: string; record: Uint8Array }[] = [
  { label: "the docs' record", record: encodeDraft("hi", AT) },
  {
    label: "a field a later version adds is ignored",
    record: encodeCanonical({ at: 5, cursor: 3, t: "kept", v: 1 }),
  },
  {
    label: "keys in another order (not canonical) still read",
    record: encode({ v: 1, t: "order", at: 6 }),
  },
  { label: "another version", record: encodeCanonical({ at: 1, t: "later", v: 2 }) },
  { label: "t not a string", record: encodeCanonical({ at: 1, t: 5, v: 1 }) },
  { label: "no time", record: encodeCanonical({ t: "no time", v: 1 }) },
  { label: "a time beyond 2^53 - 1", record: encodeCanonical({ at: 2 ** 53, t: "x", v: 1 }) },
  { label: "a negative time", record: encodeCanonical({ at: -1, t: "x", v: 1 }) },
  {
    label: "a time of 1.0 written as a float: a whole number, it reads",
    record: hexBytes("83a26174cb3ff0000000000000a174a26869a17601"),
  },
  { label: "a time of 1.5", record: encodeCanonical({ at: 1.5, t: "x", v: 1 }) },
  { label: "a text of 64 001 characters", record: encodeCanonical({ at: 1, t: "x".repeat(64_001), v: 1 }) },
  { label: "an empty text", record: encodeCanonical({ at: 1, t: "", v: 1 }) },
  { label: "v true, not 1", record: encodeCanonical({ at: 1, t: "x", v: true }) },
  {
    label: "17 fields: past the reader's bound",
    record: encodeCanonical(
      Object.fromEntries([
        ["at", 1],
        ["t", "x"],
        ["v", 1],
        ...Array.from({ length: 14 }, (_, i) => [`f${i}`, i]),
      ]),
    ),
  },
  {
    label: "17 entries as written, v twice: past the reader's bound",
    record: hexBytes(
      `de0011a2617401a174a178a17601${Array.from({ length: 13 }, (_, i) => `a366${Buffer.from(String(i).padStart(2, "0")).toString("hex")}01`).join("")}a17601`,
    ),
  },
  { label: "not MessagePack", record: Uint8Array.of(0xc1) },
  { label: "a byte after the map", record: Uint8Array.from([...encodeDraft("hi", AT), 0]) },
  { label: "empty", record: new Uint8Array() },
  { label: "a list, not a map", record: encodeCanonical(["hi"]) },
  // Strings must be UTF-8 (wire.md, "Canonical MessagePack"): a lenient reader takes ff for "ÿ",
  // ed a0 80 for a lone surrogate, and a bad byte in a long string for U+FFFD.
  { label: "a text with a byte ff: not UTF-8", record: hexBytes("83a2617401a174a268ffa17601") },
  {
    label: "a text of a lone surrogate (ed a0 80): not UTF-8",
    record: hexBytes("83a2617401a174a3eda080a17601"),
  },
  {
    label: "a text of 300 bytes ending in ff: not UTF-8",
    record: withLastByte(encodeCanonical({ at: 1, t: "x".repeat(300), v: 1 }), 3, 0xff),
  },
];

const NAMES: { label: string; name: string }[] = [
  { label: "the docs' name (rooms.md §7, backup.md §3)", name: " Book\n club " },
  { label: "tabs, a no-break space and an ideographic space", name: "\tClimbing\u00a0on\u3000Sundays\t" },
  { label: "70 emoji: the first 64 code points", name: "🏠".repeat(70) },
  { label: "cut at 64 code points, then trimmed again", name: `${"a".repeat(63)}  b` },
  { label: "only whitespace: an empty name (reads as none)", name: " \n\t " },
];

const NAME_READS: { label: string; record: Uint8Array }[] = [
  { label: "the docs' record", record: encodeRoomName(" Book\n club ") },
  {
    label: "a name written by anything else is cleaned",
    record: encodeCanonical({ extra: true, n: "a\n\nb", v: 1 }),
  },
  { label: "a long name is cut", record: encodeCanonical({ n: "z".repeat(100), v: 1 }) },
  { label: "another version", record: encodeCanonical({ n: "later", v: 2 }) },
  { label: "n not a string", record: encodeCanonical({ n: 7, v: 1 }) },
  { label: "only whitespace", record: encodeCanonical({ n: "  ", v: 1 }) },
  { label: "not MessagePack", record: Uint8Array.of(0x92) },
  { label: "v true, not 1", record: encodeCanonical({ n: "x", v: true }) },
  {
    label: "17 fields: past the reader's bound",
    record: encodeCanonical(
      Object.fromEntries([["n", "x"], ["v", 1], ...Array.from({ length: 15 }, (_, i) => [`f${i}`, i])]),
    ),
  },
  { label: "a byte after the map", record: Uint8Array.from([...encodeRoomName("x"), 0]) },
  { label: "empty", record: new Uint8Array() },
  { label: "a list, not a map", record: encodeCanonical(["x"]) },
  { label: "a name with a byte ff: not UTF-8", record: hexBytes("82a16ea278ffa17601") },
  { label: "a name of a lone surrogate (ed a0 80): not UTF-8", record: hexBytes("82a16ea3eda080a17601") },
];

export function buildLocalNotesVectors() {
  return {
    description:
      "Drafts (docs/protocol/chat.md §9, 'Drafts': canonical MessagePack { at, t, v: 1 }) and room names (docs/protocol/rooms.md §7: canonical MessagePack { n, v: 1 }, the name cleaned), as written and as read; a read of none is null.",
    maxDraftChars: MAX_DRAFT_CHARS,
    maxRoomNameChars: MAX_ROOM_NAME_CHARS,
    drafts: DRAFTS.map(({ label, text, at }) => ({ label, text, at, record: toHex(encodeDraft(text, at)) })),
    draftReads: DRAFT_READS.map(({ label, record }) => ({
      label,
      record: toHex(record),
      reads: decodeDraftRecord(record) ?? null,
    })),
    roomNames: NAMES.map(({ label, name }) => ({ label, name, record: toHex(encodeRoomName(name)) })),
    roomNameReads: NAME_READS.map(({ label, record }) => ({
      label,
      record: toHex(record),
      reads: decodeRoomName(record) ?? null,
    })),
  };
}

export const localNotesVectorText = () => `${JSON.stringify(buildLocalNotesVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[LOCAL_NOTES_VECTOR_FILE, localNotesVectorText()]]);
