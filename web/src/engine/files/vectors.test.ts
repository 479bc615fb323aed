/**
 * docs/vectors/files-v1.json: every committed message decodes (as an application message, after
 * padding) to its fields and encodes back to the same bytes; every chunk frame decodes to its
 * header and opens under the vector key to its plaintext; every invalid frame gives its code;
 * scripts/gen-file-vectors.ts regenerates the file byte for byte.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import { buildFileVectors, FILE_VECTOR_FILE, HASHED_FILES } from "../../../../scripts/gen-file-vectors.ts";
import { classifyBulkMessage } from "../../net/bulk-lane.ts";
import { decodeAppMessage } from "../wire.ts";
import { decodeFileMsgFrame } from "./room-files.ts";
import {
  chunkAad,
  chunkNonce,
  decodeBulkFrame,
  decodeFileFrame,
  encodeAckFrame,
  FILE_CHUNK_BYTES,
  fileHash,
  openChunk,
} from "./wire.ts";

interface Vectors {
  key: string;
  messages: { label: string; message: Record<string, unknown>; bytes: string }[];
  chunks: {
    label: string;
    header: { id: number; index: number; total: number; chunkSize: number };
    plaintext: string;
    nonce: string;
    aad: string;
    frame: string;
  }[];
  hashes: { label: string; size: number; hash: string; cs?: number }[];
  acks: { label: string; ack: { id: number; next: number }; frame: string }[];
  lane: { label: string; bytes: string; max?: number }[];
  room: { label: string; message: Record<string, unknown>; bytes: string }[];
  invalid: { label: string; bytes: string; code: string }[];
}

const committed = JSON.parse(readFileSync(FILE_VECTOR_FILE, "utf8")) as Vectors;
const fromHex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("file vectors (docs/vectors/files-v1.json)", () => {
  it("each file.* message decodes to its fields and encodes back to the same bytes", () => {
    expect(committed.messages.length).toBeGreaterThanOrEqual(6);
    for (const v of committed.messages) {
      const fields = Object.fromEntries(
        Object.entries(v.message).map(([k, x]) => [
          k,
          k === "hash" || k === "key" || k === "thumb" ? fromHex(x as string) : x,
        ]),
      );
      expect(hex(encodeCanonical(fields)), v.label).toBe(v.bytes);
      const decoded = decodeAppMessage(padToBucket(fromHex(v.bytes)));
      expect(decoded.ok, v.label).toBe(true);
      if (decoded.ok) expect(decoded.value, v.label).toEqual(fields);
    }
  });

  it("each chunk decodes to its header and opens under the vector key; each ACK round-trips", async () => {
    const key = fromHex(committed.key);
    for (const v of committed.chunks) {
      expect(hex(chunkNonce(v.header.index)), v.label).toBe(v.nonce);
      expect(hex(chunkAad(v.header)), v.label).toBe(v.aad);
      const f = decodeFileFrame(fromHex(v.frame));
      if (!f.ok || f.value.type !== "chunk") throw new Error(`${v.label}: does not decode`);
      expect(f.value.chunk.header, v.label).toEqual(v.header);
      const plain = await openChunk(nobleCrypto, key, f.value.chunk);
      expect(plain.ok && hex(plain.value), v.label).toBe(v.plaintext);
    }
    for (const v of committed.acks) {
      expect(hex(encodeAckFrame(v.ack))).toBe(v.frame);
      expect(decodeFileFrame(fromHex(v.frame))).toEqual({ ok: true, value: { type: "ack", ack: v.ack } });
    }
  });

  it("each file hash is SHA-256 over the label and the chunks' SHA-256 (node:crypto as the oracle)", async () => {
    expect(committed.hashes.map((h) => h.label)).toEqual(HASHED_FILES.map((f) => f.label));
    for (const [n, v] of committed.hashes.entries()) {
      const file = HASHED_FILES[n]!.file;
      // The offer's chunking (§1, §2): `cs` when it names one.
      const cs = v.cs ?? FILE_CHUNK_BYTES;
      expect(v.cs, v.label).toBe(HASHED_FILES[n]!.cs);
      const outer = createHash("sha256").update("loft/file-hash/v1");
      for (let at = 0; at === 0 || at < file.length; at += cs)
        outer.update(
          createHash("sha256")
            .update(file.subarray(at, at + cs))
            .digest(),
        );
      expect(outer.digest("hex"), v.label).toBe(v.hash);
      expect(hex(await fileHash(nobleCrypto, file, v.cs)), v.label).toBe(v.hash);
    }
    const hello = committed.messages.find((m) => m.message.name === "hello.txt");
    expect(hello?.message.hash).toBe(committed.hashes[0]!.hash);
  });

  it("the lane's messages classify as the lane reads them; a room FILE_MSG decodes to its message", () => {
    const [hello, chunks, ...frames] = committed.lane;
    expect(classifyBulkMessage(fromHex(hello!.bytes))).toEqual({ ok: true, value: { kind: "hello" } });
    expect(classifyBulkMessage(fromHex(chunks!.bytes))).toEqual({
      ok: true,
      value: { kind: "chunks", max: chunks!.max },
    });
    expect(frames.length).toBe(2);
    for (const f of frames) {
      expect(classifyBulkMessage(fromHex(f.bytes)).ok, f.label).toBe(true);
      expect(decodeBulkFrame(fromHex(f.bytes)).ok, f.label).toBe(true);
    }
    for (const v of committed.room) {
      const r = decodeFileMsgFrame(fromHex(v.bytes));
      expect(r.ok && r.value, v.label).toEqual(v.message);
    }
  });

  it("refuses each invalid frame with its code", () => {
    for (const v of committed.invalid) {
      const r = decodeFileFrame(fromHex(v.bytes));
      expect(r.ok ? "ok" : r.error.code, v.label).toBe(v.code);
    }
  });

  it("is what the generator produces", async () => {
    expect(`${JSON.stringify(await buildFileVectors(), null, 2)}\n`).toBe(
      readFileSync(FILE_VECTOR_FILE, "utf8"),
    );
  });
});
