/**
 * Generates the draft copy vectors (docs/protocol/chat.md §9, "Draft copies"):
 *
 *   docs/vectors/draft-copy-v1.json  the copy key from a fixed identity, copies sealed with fixed
 *                                    nonces (their store key, AD, plaintext and stored value), and
 *                                    invalid values with the error code each must give (the two
 *                                    size limits, 64 KiB-sized, are checked in draft-copies.test.ts
 *                                    and by the checker from `maxCopyChars` instead).
 *
 * web/src/storage/draft-copies.test.ts takes its identity, draft keys and first nonce from the file,
 * opens every copy, re-seals it, checks every invalid value's code, that chat.md prints the first
 * copy and that this script regenerates the file byte for byte; test/interop/vectorcheck/draftcopy.py
 * recomputes it from the docs.
 *
 *   npx tsx scripts/gen-draft-copy-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-draft-copy-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { concatBytes, toHex } from "../core/bytes.ts";
import { padToBucket } from "../core/codec/padding.ts";
import type { DraftCopy, DraftKey } from "../web/src/engine/local-notes.ts";
import { toBase64url } from "../web/src/lib/base64url.ts";
import {
  DRAFT_COPY_PREFIX,
  DRAFT_COPY_VERSION,
  draftCopyAd,
  draftCopyKey,
  draftCopyPlaintext,
  MAX_COPY_CHARS,
  openDraftCopy,
  sealDraftCopy,
} from "../web/src/storage/draft-copies.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const DRAFT_COPY_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/draft-copy-v1.json", import.meta.url),
);

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

const IDENTITY = fill(32, 0x11);
const PRIVATE = fill(32, 0x22);
const CHAT: DraftKey = `chat:${"ab".repeat(32)}`;
const ROOM: DraftKey = `room:${"cd".repeat(16)}`;

const COPIES: { label: string; copy: DraftCopy; nonce: Uint8Array }[] = [
  {
    label: "the docs' vector: a chat's words with an emoji",
    copy: { key: CHAT, at: 1_700_000_000_001, text: "hi 👋" },
    nonce: fill(24, 0x33),
  },
  {
    label: "an erased draft (empty text) of a room",
    copy: { key: ROOM, at: 1_700_000_000_002, text: "" },
    nonce: Uint8Array.from({ length: 24 }, (_, i) => i),
  },
  {
    label: "time 0, two lines",
    copy: { key: CHAT, at: 0, text: "Grüße,\nzwei Zeilen" },
    nonce: fill(24, 0xff),
  },
  {
    label: "the latest time (2^53 - 1) and 300 UTF-8 bytes: the 512-byte bucket",
    copy: { key: CHAT, at: Number.MAX_SAFE_INTEGER, text: "é".repeat(150) },
    nonce: fill(24, 0x55),
  },
];

/** A value sealed under the vector key and CHAT's AD with any plaintext, padded or as given. */
function sealRaw(key: Uint8Array, plain: Uint8Array, pad = true): string {
  const nonce = fill(24, 0x44);
  const ct = xchacha20poly1305(key, nonce, draftCopyAd(IDENTITY, CHAT)).encrypt(
    pad ? padToBucket(plain) : plain,
  );
  return toBase64url(concatBytes(Uint8Array.of(DRAFT_COPY_VERSION), nonce, ct));
}

/** at ‖ text: any fields, valid or not. */
function fields(at: bigint, text: Uint8Array): Uint8Array {
  const p = new Uint8Array(8 + text.length);
  new DataView(p.buffer).setBigUint64(0, at);
  p.set(text, 8);
  return p;
}

export function buildDraftCopyVectors() {
  const key = draftCopyKey(IDENTITY, PRIVATE);
  const copies = COPIES.map(({ label, copy, nonce }) => ({
    label,
    draftKey: copy.key,
    at: copy.at,
    text: copy.text,
    nonce: toHex(nonce),
    storeKey: `${DRAFT_COPY_PREFIX}${toHex(IDENTITY)}.${copy.key}`,
    ad: toHex(draftCopyAd(IDENTITY, copy.key)),
    plaintext: toHex(draftCopyPlaintext(copy)),
    value: sealDraftCopy(key, IDENTITY, copy, nonce),
  }));
  const first = copies[0]!;
  const raw = Buffer.from(first.value, "base64url");
  const word = new TextEncoder().encode("words");
  const withVersion = (v: number) => toBase64url(concatBytes(Uint8Array.of(v), raw.subarray(1)));
  const invalidValues: { label: string; draftKey: DraftKey; value: string }[] = [
    { label: "not base64url", draftKey: CHAT, value: `${first.value.slice(0, 80)}+/=` },
    {
      label: "a length no base64url text has (4n + 1 characters)",
      draftKey: CHAT,
      value: first.value.slice(0, 81),
    },
    {
      label: "48 bytes: shorter than version, nonce, tag and the time",
      draftKey: CHAT,
      value: toBase64url(raw.subarray(0, 48)),
    },
    {
      label: "49 bytes: as long as the fixed fields, so it is opened, and does not open",
      draftKey: CHAT,
      value: toBase64url(raw.subarray(0, 49)),
    },
    { label: "version 0x00", draftKey: CHAT, value: withVersion(0) },
    { label: "version 0x02", draftKey: CHAT, value: withVersion(2) },
    {
      label: "the last tag byte changed",
      draftKey: CHAT,
      value: toBase64url(
        concatBytes(raw.subarray(0, raw.length - 1), Uint8Array.of(raw[raw.length - 1]! ^ 1)),
      ),
    },
    {
      label: "a nonce byte changed",
      draftKey: CHAT,
      value: toBase64url(concatBytes(raw.subarray(0, 5), Uint8Array.of(raw[5]! ^ 0x80), raw.subarray(6))),
    },
    { label: "moved to another conversation's store key", draftKey: ROOM, value: first.value },
    {
      label: "no 0x80 padding marker",
      draftKey: CHAT,
      value: sealRaw(key, concatBytes(fields(1n, word), new Uint8Array(256 - 13)), false),
    },
    {
      label: "not a bucket size (300 bytes)",
      draftKey: CHAT,
      value: sealRaw(
        key,
        concatBytes(fields(1n, word), Uint8Array.of(0x80), new Uint8Array(300 - 14)),
        false,
      ),
    },
    {
      label: "a power of two below the smallest bucket (128 bytes)",
      draftKey: CHAT,
      value: sealRaw(
        key,
        concatBytes(fields(1n, word), Uint8Array.of(0x80), new Uint8Array(128 - 14)),
        false,
      ),
    },
    {
      label: "padded to a larger bucket than needed (512 bytes)",
      draftKey: CHAT,
      value: sealRaw(
        key,
        concatBytes(fields(1n, word), Uint8Array.of(0x80), new Uint8Array(512 - 14)),
        false,
      ),
    },
    {
      label: "padded fields shorter than the time (3 bytes)",
      draftKey: CHAT,
      value: sealRaw(key, Uint8Array.of(1, 2, 3)),
    },
    { label: "a time beyond 2^53 - 1", draftKey: CHAT, value: sealRaw(key, fields(2n ** 53n, word)) },
    {
      label: "a text that is not UTF-8 (a lone lead byte)",
      draftKey: CHAT,
      value: sealRaw(key, fields(1n, Uint8Array.of(0x68, 0xc3))),
    },
    {
      label: "a UTF-16 surrogate encoded in UTF-8 (ED A0 80)",
      draftKey: CHAT,
      value: sealRaw(key, fields(1n, Uint8Array.of(0xed, 0xa0, 0x80))),
    },
    {
      label: "an overlong encoding (C0 80 for U+0000)",
      draftKey: CHAT,
      value: sealRaw(key, fields(1n, Uint8Array.of(0xc0, 0x80))),
    },
  ];
  return {
    description:
      "Draft copies (docs/protocol/chat.md §9, 'Draft copies'): key = HKDF-SHA-256(ikm = private identity key, salt = identity key, info = 'loft/draft-copy/v1 key', 32); value = base64url(0x01 ‖ nonce ‖ XChaCha20-Poly1305(key, nonce, padToBucket(at u64 BE ‖ text), ad)); ad = 'loft/draft-copy/v1' ‖ 0x00 ‖ identity key ‖ draft key.",
    identityKey: toHex(IDENTITY),
    privateIdentityKey: toHex(PRIVATE),
    key: toHex(key),
    maxCopyChars: MAX_COPY_CHARS,
    copies,
    invalid: invalidValues.map(({ label, draftKey, value }) => {
      const r = openDraftCopy(key, IDENTITY, draftKey, value);
      if (r.ok) throw new Error(`invalid vector "${label}" opens`);
      return { label, draftKey, value, code: r.error.code };
    }),
  };
}

export const draftCopyVectorText = () => `${JSON.stringify(buildDraftCopyVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[DRAFT_COPY_VECTOR_FILE, draftCopyVectorText()]]);
