/**
 * Generates the outbox journal vectors (docs/protocol/chat.md §9, "The outbox journal"):
 *
 *   docs/vectors/journal-v1.json  the journal key from a fixed identity, entries sealed with fixed
 *                                 nonces (their AD, plaintext and stored value), and invalid
 *                                 values with the error code each must give (the two size
 *                                 limits, 64 KiB-sized, are checked in journal.test.ts instead),
 *                                 and a version 0x01 (unpadded) entry, still read.
 *
 * web/src/storage/journal.test.ts opens every entry, re-seals it, checks every invalid value's code
 * and that this script regenerates the file byte for byte; test/interop/vectorcheck/journal.py
 * recomputes it from the docs.
 *
 *   npx tsx scripts/gen-journal-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-journal-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { concatBytes, toHex } from "../core/bytes.ts";
import { padToBucket } from "../core/codec/padding.ts";
import { toBase64url } from "../web/src/lib/base64url.ts";
import {
  associatedData,
  entryLayout,
  entryPlaintext,
  type JournalEntry,
  journalKey,
  MAX_ENTRY_CHARS,
  openEntry,
  sealEntry,
} from "../web/src/storage/journal.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const JOURNAL_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/journal-v1.json", import.meta.url));

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

const IDENTITY = fill(32, 0x11);
const PRIVATE = fill(32, 0x22);
const CONTACT = "ab".repeat(32);

const ENTRIES: { label: string; entry: JournalEntry; nonce: Uint8Array }[] = [
  {
    label: "a short message with an emoji",
    entry: { id: "m1".padEnd(22, "A"), contactId: CONTACT, at: 1_700_000_000_001, text: "hi 👋" },
    nonce: fill(24, 0x33),
  },
  {
    label: "a second message to the same contact, one millisecond later",
    entry: {
      id: "m2".padEnd(22, "A"),
      contactId: CONTACT,
      at: 1_700_000_000_002,
      text: "Grüße, 2 lines\nok",
    },
    nonce: Uint8Array.from({ length: 24 }, (_, i) => i),
  },
  {
    label: "time 0 and a one-character contact id",
    entry: { id: "z", contactId: "c", at: 0, text: "x" },
    nonce: fill(24, 0xff),
  },
];

/**
 * A version-0x02 value sealed under the vector key and the AD of id "bad" with any plaintext,
 * padded (SCHEMA cases) or as given (PADDING cases).
 */
function sealRaw(key: Uint8Array, plain: Uint8Array, pad = true): string {
  const nonce = fill(24, 0x44);
  const sealed = pad ? padToBucket(plain) : plain;
  const ct = xchacha20poly1305(key, nonce, associatedData(IDENTITY, "bad")).encrypt(sealed);
  return toBase64url(concatBytes(Uint8Array.of(2), nonce, ct));
}

/** A version-0x01 value: the layout sealed without padding (what the first version wrote). */
function sealUnpadded(key: Uint8Array, entry: JournalEntry, nonce: Uint8Array): string {
  const ct = xchacha20poly1305(key, nonce, associatedData(IDENTITY, entry.id)).encrypt(entryLayout(entry));
  return toBase64url(concatBytes(Uint8Array.of(1), nonce, ct));
}

/**
 * at ‖ len ‖ contact ‖ len ‖ text with the text length field given separately: any fields, valid
 * or not (the invalid vectors here, the SCHEMA cases in journal.test.ts).
 */
export function layout(at: bigint, contact: string, text: Uint8Array, textLen = text.length): Uint8Array {
  const c = new TextEncoder().encode(contact);
  const p = new Uint8Array(13 + c.length + text.length);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, at);
  p[8] = c.length;
  p.set(c, 9);
  v.setUint32(9 + c.length, textLen);
  p.set(text, 13 + c.length);
  return p;
}

export function buildJournalVectors() {
  const key = journalKey(IDENTITY, PRIVATE);
  const entries = ENTRIES.map(({ label, entry, nonce }) => ({
    label,
    ...entry,
    nonce: toHex(nonce),
    ad: toHex(associatedData(IDENTITY, entry.id)),
    plaintext: toHex(entryPlaintext(entry)),
    value: sealEntry(key, IDENTITY, entry, nonce),
  }));
  const first = entries[0]!;
  const raw = Buffer.from(first.value, "base64url");
  const t = new TextEncoder().encode("t");
  const invalidValues: { label: string; id: string; value: string }[] = [
    { label: "not base64url", id: first.id, value: `${first.value.slice(0, 20)}+/=` },
    { label: "shorter than the fixed fields", id: first.id, value: toBase64url(raw.subarray(0, 50)) },
    {
      label: "version 0x03",
      id: first.id,
      value: toBase64url(concatBytes(Uint8Array.of(3), raw.subarray(1))),
    },
    {
      label: "version 0x01 on a padded plaintext (the version byte is not in the AD: SCHEMA)",
      id: first.id,
      value: toBase64url(concatBytes(Uint8Array.of(1), raw.subarray(1))),
    },
    {
      label: "no 0x80 padding marker",
      id: "bad",
      value: sealRaw(key, concatBytes(layout(1n, "c", t), new Uint8Array(256 - 15)), false),
    },
    {
      label: "not a bucket size (300 bytes)",
      id: "bad",
      value: sealRaw(
        key,
        concatBytes(layout(1n, "c", t), Uint8Array.of(0x80), new Uint8Array(300 - 16)),
        false,
      ),
    },
    {
      label: "padded to a larger bucket than needed (512 bytes)",
      id: "bad",
      value: sealRaw(
        key,
        concatBytes(layout(1n, "c", t), Uint8Array.of(0x80), new Uint8Array(512 - 16)),
        false,
      ),
    },
    {
      label: "the last tag byte changed",
      id: first.id,
      value: toBase64url(
        concatBytes(raw.subarray(0, raw.length - 1), Uint8Array.of(raw[raw.length - 1]! ^ 1)),
      ),
    },
    { label: "moved under another message id", id: entries[1]!.id, value: first.value },
    { label: "a time beyond 2^53 - 1", id: "bad", value: sealRaw(key, layout(2n ** 53n, "c", t)) },
    { label: "an empty contact id", id: "bad", value: sealRaw(key, layout(1n, "", t)) },
    { label: "an empty text", id: "bad", value: sealRaw(key, layout(1n, "c", new Uint8Array(0))) },
    { label: "a text length past the end", id: "bad", value: sealRaw(key, layout(1n, "c", t, 2)) },
    { label: "a byte after the text", id: "bad", value: sealRaw(key, layout(1n, "c", t, 0)) },
    {
      label: "a text that is not UTF-8",
      id: "bad",
      value: sealRaw(key, layout(1n, "c", Uint8Array.of(0xc3))),
    },
  ];
  return {
    description:
      "Outbox journal entries (docs/protocol/chat.md §9, 'The outbox journal'): key = HKDF-SHA-256(ikm = private identity key, salt = identity key, info = 'loft/outbox-journal/v1 key', 32); value = base64url(0x02 ‖ nonce ‖ XChaCha20-Poly1305(key, nonce, padToBucket(plaintext), ad)); version 0x01 (unpadded) is still read.",
    identityKey: toHex(IDENTITY),
    privateIdentityKey: toHex(PRIVATE),
    key: toHex(key),
    maxEntryChars: MAX_ENTRY_CHARS,
    entries,
    unpadded: [
      {
        label: "version 0x01 (not padded), still read: the first entry as the first version wrote it",
        ...ENTRIES[0]!.entry,
        nonce: toHex(ENTRIES[0]!.nonce),
        plaintext: toHex(entryLayout(ENTRIES[0]!.entry)),
        value: sealUnpadded(key, ENTRIES[0]!.entry, ENTRIES[0]!.nonce),
      },
    ],
    invalid: invalidValues.map(({ label, id, value }) => {
      const r = openEntry(key, IDENTITY, id, value);
      if (r.ok) throw new Error(`invalid vector "${label}" opens`);
      return { label, id, value, code: r.error.code };
    }),
  };
}

export const journalVectorText = () => `${JSON.stringify(buildJournalVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[JOURNAL_VECTOR_FILE, journalVectorText()]]);
