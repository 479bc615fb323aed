/**
 * Generates the file-transfer vectors (docs/protocol/files.md §1, §3):
 *
 *   docs/vectors/files-v1.json  the `file.*` application messages as canonical MessagePack (before
 *                               bucket padding), FILE_CHUNK frames sealed under a fixed key with
 *                               their nonce and AAD — and FILE_CHUNK_WIDE ones of a transfer offered
 *                               in 255 KiB chunks (§2, since session 18) —, a FILE_ACK frame, the
 *                               bulk lane's control messages and a chunk as one lane message, a
 *                               `file.accept` as a room member's FILE_MSG frame (§8), and invalid
 *                               frames with the error code each must give.
 *
 * web/src/engine/files/vectors.test.ts decodes and opens every committed frame, re-encodes every
 * message, checks every invalid frame's code, and checks that this script regenerates the file
 * byte for byte.
 *
 *   npx tsx scripts/gen-file-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-file-vectors.ts --check  # exit 1 if the committed file differs
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromHex, toHex } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { encodeFileMsgFrame } from "../web/src/engine/files/room-files.ts";
import {
  chunkAad,
  chunkCount,
  chunkNonce,
  decodeFileFrame,
  encodeAckFrame,
  FILE_CHUNK_BYTES,
  type FileAppMessage,
  type FileChunkHeader,
  fileHash,
  LANE_CHUNK_BYTES,
  sealChunk,
} from "../web/src/engine/files/wire.ts";
import { BULK_CHUNK_MAX, BULK_HELLO, encodeBulkChunks } from "../web/src/net/bulk-lane.ts";

export const FILE_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/files-v1.json", import.meta.url));

const ascii = (t: string) => new TextEncoder().encode(t);

/** The per-transfer key of every vector: 00 01 02 … 1f. */
export const VECTOR_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
/**
 * The file hash of "hello file" the offer carries (docs/protocol/files.md §1):
 * SHA-256("loft/file-hash/v1" ‖ SHA-256("hello file")); `hashes` below checks it.
 */
const HELLO_HASH = fromHex("5f8b390ee71e6d443722d15e169c792eb3c9473c203154b521dfe3da72b07621");

/**
 * Files whose file hash is a vector: one chunk, an empty file, two chunks (bytes i mod 251); `cs`:
 * in chunks of that size (the offer's, §2), else the default's.
 */
export const HASHED_FILES: { label: string; file: Uint8Array; cs?: number }[] = [
  { label: "hello file (10 bytes, one chunk)", file: ascii("hello file") },
  { label: "an empty file (one empty chunk)", file: new Uint8Array(0) },
  {
    label: "65 027 bytes, i mod 251 (a full chunk and a 3-byte one)",
    file: Uint8Array.from({ length: 65_027 }, (_, i) => i % 251),
  },
  {
    label: "261 123 bytes, i mod 251, in 255 KiB chunks (a full chunk and a 3-byte one)",
    file: Uint8Array.from({ length: 261_123 }, (_, i) => i % 251),
    cs: LANE_CHUNK_BYTES,
  },
];

export const VALID_MESSAGES: { label: string; message: FileAppMessage }[] = [
  {
    label: "file.offer: 10 bytes of text",
    message: {
      t: "file.offer",
      id: 0x01020304,
      name: "hello.txt",
      size: 10,
      type: "text/plain",
      hash: HELLO_HASH as Uint8Array<ArrayBuffer>,
      key: VECTOR_KEY as Uint8Array<ArrayBuffer>,
    },
  },
  {
    label: "file.offer of an image with the sender's preview (4 bytes here)",
    message: {
      t: "file.offer",
      id: 0x0a0b0c0d,
      name: "cat.webp",
      size: 2048,
      type: "image/webp",
      hash: HELLO_HASH as Uint8Array<ArrayBuffer>,
      key: VECTOR_KEY as Uint8Array<ArrayBuffer>,
      thumb: Uint8Array.from([0x52, 0x49, 0x46, 0x46]) as Uint8Array<ArrayBuffer>,
    },
  },
  {
    label: "file.offer in 255 KiB chunks (`cs`, §2: to a peer whose bulk lane said it takes them)",
    message: {
      t: "file.offer",
      id: 0x01020304,
      name: "big.bin",
      size: 261_123,
      type: "",
      hash: HELLO_HASH as Uint8Array<ArrayBuffer>,
      key: VECTOR_KEY as Uint8Array<ArrayBuffer>,
      cs: LANE_CHUNK_BYTES,
    },
  },
  { label: "file.accept from the start", message: { t: "file.accept", id: 0x01020304, from: 0 } },
  { label: "file.accept resuming at chunk 3", message: { t: "file.accept", id: 0x01020304, from: 3 } },
  { label: "file.decline: too large", message: { t: "file.decline", id: 0x01020304, r: "too-large" } },
  {
    label: "file.decline: chunks larger than this end takes",
    message: { t: "file.decline", id: 0x01020304, r: "chunks" },
  },
  { label: "file.cancel by the sender", message: { t: "file.cancel", id: 0x01020304, own: true } },
  { label: "file.done: hash matched", message: { t: "file.done", id: 0x01020304, ok: true } },
  { label: "file.fail: a chunk beyond the window", message: { t: "file.fail", id: 0x01020304, r: "window" } },
  {
    label: "file.fail by the sender: its copy could not give a chunk",
    message: { t: "file.fail", id: 0x01020304, own: true, r: "copy" },
  },
];

/** `cs`: a transfer offered in chunks of that size (FILE_CHUNK_WIDE, §2); else the default (FILE_CHUNK). */
export const CHUNKS: { label: string; size: number; index: number; plaintext: Uint8Array; cs?: number }[] = [
  { label: "the only chunk of a 10-byte file", size: 10, index: 0, plaintext: ascii("hello file") },
  { label: "the only chunk of an empty file", size: 0, index: 0, plaintext: new Uint8Array(0) },
  {
    label: "the last chunk (index 1) of a 65027-byte file",
    size: 65_027,
    index: 1,
    plaintext: ascii("end"),
  },
  {
    label: "the last chunk (index 1) of a 261 123-byte file in 255 KiB chunks (FILE_CHUNK_WIDE)",
    size: 261_123,
    index: 1,
    plaintext: ascii("end"),
    cs: LANE_CHUNK_BYTES,
  },
  {
    label: "the only chunk of a 10-byte file in 1 000-byte chunks (FILE_CHUNK_WIDE)",
    size: 10,
    index: 0,
    plaintext: ascii("hello file"),
    cs: 1000,
  },
];

const cat = (...parts: string[]) => parts.join("");

/**
 * A FILE_CHUNK (`"10"`) or FILE_CHUNK_WIDE (`"13"`) frame in hex (docs/protocol/files.md): by default
 * transfer 0x01020304, the only chunk of one, carrying a bare tag of zeros; each invalid case below
 * changes one field.
 */
const chunkHex = (
  type: "10" | "13",
  chunkSize: string,
  { id = "01020304", index = "0000", total = "0001", sealed = 16 } = {},
) => cat(type, id, index, total, chunkSize, "00".repeat(sealed));

export const INVALID_FRAMES: { label: string; hex: string }[] = [
  { label: "type 0x17 (reserved)", hex: "17" },
  { label: "chunk shorter than header + tag", hex: chunkHex("10", "fe10", { sealed: 15 }) },
  { label: "chunk with transfer id 0", hex: chunkHex("10", "fe10", { id: "00000000" }) },
  { label: "chunk with total_chunks 0", hex: chunkHex("10", "fe10", { total: "0000" }) },
  { label: "chunk index past the last", hex: chunkHex("10", "fe10", { index: "0001" }) },
  { label: "chunk_size other than 65040", hex: chunkHex("10", "0100") },
  { label: "a short chunk that is not the last", hex: chunkHex("10", "fe10", { total: "0002" }) },
  {
    label: "wide chunk with the default chunk_size (one encoding per chunk: that is FILE_CHUNK's)",
    hex: chunkHex("13", "0000fe10"),
  },
  { label: "wide chunk with chunk_size 16 (no plaintext)", hex: chunkHex("13", "00000010") },
  { label: "wide chunk with chunk_size past the largest (262 131)", hex: chunkHex("13", "0003fff4") },
  { label: "wide chunk carrying more than its chunk_size", hex: chunkHex("13", "00000011", { sealed: 18 }) },
  { label: "wide chunk shorter than header + tag", hex: chunkHex("13", "00000100", { sealed: 15 }) },
  { label: "a short wide chunk that is not the last", hex: chunkHex("13", "00000100", { total: "0002" }) },
  { label: "ACK of 6 bytes", hex: "110102030400" },
  { label: "ACK with transfer id 0", hex: "11000000000001" },
];

export async function buildFileVectors(): Promise<unknown> {
  const chunks = [];
  for (const c of CHUNKS) {
    const cs = c.cs ?? FILE_CHUNK_BYTES;
    const header: FileChunkHeader = {
      id: 0x01020304,
      index: c.index,
      total: chunkCount(c.size, cs),
      chunkSize: cs + 16,
    };
    const frame = await sealChunk(nobleCrypto, VECTOR_KEY, header, c.plaintext);
    chunks.push({
      label: c.label,
      size: c.size,
      ...(c.cs !== undefined ? { cs: c.cs } : {}),
      header,
      plaintext: toHex(c.plaintext),
      nonce: toHex(chunkNonce(c.index)),
      aad: toHex(chunkAad(header)),
      frame: toHex(frame),
    });
  }
  return {
    description:
      "File transfer (docs/protocol/files.md). `messages`: file.* application messages as canonical MessagePack before bucket padding (bin fields hex). `chunks`: FILE_CHUNK session frames sealed with AES-256-GCM under `key` (with `cs`: of a transfer offered in chunks of that size, FILE_CHUNK_WIDE). `hashes`: the file hash (SHA-256 over the ASCII label loft/file-hash/v1 and each chunk's SHA-256, chunks of `cs` bytes or the default 65 024) of some files. `acks`: FILE_ACK frames. `lane`: the bulk lane's messages (its hello, BULK_CHUNKS, a chunk as one message). `room`: file.* messages as a room member's FILE_MSG frame (0x12 ‖ the message padded to its bucket). Invalid frames give `code`. Generated by scripts/gen-file-vectors.ts.",
    key: toHex(VECTOR_KEY),
    messages: VALID_MESSAGES.map(({ label, message }) => ({
      label,
      message: Object.fromEntries(
        Object.entries(message).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]),
      ),
      bytes: toHex(encodeCanonical(message)),
    })),
    chunks,
    hashes: await Promise.all(
      HASHED_FILES.map(async ({ label, file, cs }) => ({
        label,
        size: file.length,
        // The whole file for the short ones; the 65 027-byte one is described by its label.
        ...(file.length <= 16 ? { file: toHex(file) } : {}),
        ...(cs !== undefined ? { cs } : {}),
        hash: toHex(await fileHash(nobleCrypto, file, cs)),
      })),
    ),
    acks: [
      {
        label: "chunks 0..2 stored",
        ack: { id: 0x01020304, next: 3 },
        frame: toHex(encodeAckFrame({ id: 0x01020304, next: 3 })),
      },
    ],
    lane: [
      { label: "BULK_HELLO: this end reads the lane", bytes: toHex(BULK_HELLO) },
      {
        label: "BULK_CHUNKS: the largest chunk this end takes (262 115 bytes), right after its hello",
        max: BULK_CHUNK_MAX,
        bytes: toHex(encodeBulkChunks(BULK_CHUNK_MAX)),
      },
      { label: "a chunk on the lane: the frame of chunks[0], as one message", bytes: chunks[0]?.frame },
      { label: "a wide chunk on the lane: the frame of chunks[3], as one message", bytes: chunks[3]?.frame },
    ],
    room: [
      {
        label: "file.accept resuming at chunk 3 as a room member's FILE_MSG frame (§8)",
        message: { t: "file.accept", id: 0x01020304, from: 3 },
        bytes: toHex(encodeFileMsgFrame({ t: "file.accept", id: 0x01020304, from: 3 })),
      },
    ],
    invalid: INVALID_FRAMES.map(({ label, hex: h }) => {
      const r = decodeFileFrame(fromHex(h));
      if (r.ok) throw new Error(`invalid vector "${label}" decodes`);
      return { label, bytes: h, code: r.error.code };
    }),
  };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const json = `${JSON.stringify(await buildFileVectors(), null, 2)}\n`;
  if (process.argv.includes("--check")) {
    if (readFileSync(FILE_VECTOR_FILE, "utf8") !== json) {
      console.error(`${FILE_VECTOR_FILE} differs from what the generator produces`);
      process.exit(1);
    }
  } else writeFileSync(FILE_VECTOR_FILE, json);
}
