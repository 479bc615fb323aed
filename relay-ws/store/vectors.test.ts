/**
 * docs/vectors/relay-at-rest-v1.json: the committed file replays against the store's code
 * (keyring slot, key records, sealed blobs), each AEAD is checked a second time with noble's
 * AES-GCM (an implementation independent of the node:crypto one the store uses), and
 * scripts/gen-relay-store-vectors.ts regenerates the file byte for byte.
 */
import { readFileSync } from "node:fs";
import { gcm } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { buildRelayAtRestVectors, RELAY_AT_REST_VECTOR_FILE } from "../../scripts/gen-relay-store-vectors.ts";
import { bucketSize, openBlob, unwrapDataKey } from "./at-rest.ts";
import { decodeSlot, SLOT_SIZE } from "./keyring.ts";
import {
  MSG_FORMAT_2,
  messageRecordEpoch,
  messageRecordHeader,
  messageRecordSendId,
  openMessageRecord,
} from "./lmdb.ts";

interface Vectors {
  masterKey: string;
  kek: string;
  keyring: {
    generation: number;
    epochs: { id: number; startMs: number; key: string }[];
    iv: string;
    slotUsed: number;
    slot: string;
  };
  blobs: {
    label: string;
    keyKey: string;
    body: string;
    bucket: number;
    dataKey: string;
    blobIv: string;
    sealed: string;
    epoch: number;
    wrapIv: string;
    keyRecord: string;
  }[];
  queueRcvKey: {
    keyKey: string;
    rcvKey: string;
    dataKey: string;
    sealed: string;
    epoch: number;
    keyRecord: string;
  };
  messageRecord: MessageRecordVector & { sendId: string };
  messageRecordFormat1: MessageRecordVector;
}
interface MessageRecordVector {
  format: number;
  blob: string;
  recordKey: string;
  msgId: string;
  timestamp: number;
  expiresAt: number;
  record: string;
}

const raw = readFileSync(RELAY_AT_REST_VECTOR_FILE, "utf8");
const v = JSON.parse(raw) as Vectors;
const h = (s: string) => Buffer.from(s, "hex");
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe("docs/vectors/relay-at-rest-v1.json", () => {
  it("the generator reproduces the committed file", () => {
    expect(`${JSON.stringify(buildRelayAtRestVectors(), null, 2)}\n`).toBe(raw);
  });

  it("keyring: the KEK is HKDF-SHA256 of the master key, and the slot opens to the listed epochs", () => {
    const kek = hkdf(
      sha256,
      h(v.masterKey),
      new TextEncoder().encode("loft-relay/1 keyring"),
      new TextEncoder().encode("kek"),
      32,
    );
    expect(Buffer.from(kek).toString("hex")).toBe(v.kek);
    const slot = Buffer.alloc(SLOT_SIZE);
    h(v.keyring.slot).copy(slot);
    const state = decodeSlot(h(v.masterKey), slot);
    expect(state?.generation).toBe(v.keyring.generation);
    expect(state?.epochs.map((e) => ({ id: e.id, startMs: e.startMs, key: e.key.toString("hex") }))).toEqual(
      v.keyring.epochs,
    );
    // Independently: noble AES-GCM over the same bytes.
    const s = h(v.keyring.slot);
    const plain = gcm(kek, s.subarray(18, 30), s.subarray(0, 18)).decrypt(s.subarray(30));
    expect(plain).toHaveLength(v.keyring.epochs.length * 44);
  });

  it("a queue's server→recipient key: key record and unpadded sealed key open (store code and noble)", () => {
    const r = v.queueRcvKey;
    const epochKey = h(v.keyring.epochs.find((e) => e.id === r.epoch)!.key);
    const dataKey = unwrapDataKey(h(r.keyRecord), epochKey, h(r.keyKey));
    expect(dataKey?.toString("hex")).toBe(r.dataKey);
    expect(openBlob(h(r.dataKey), h(r.sealed), h(r.keyKey))?.toString("hex")).toBe(r.rcvKey);
    const sealed = h(r.sealed);
    expect(sealed).toHaveLength(60);
    expect(
      Buffer.from(
        gcm(h(r.dataKey), sealed.subarray(0, 12), h(r.keyKey)).decrypt(sealed.subarray(12)),
      ).toString("hex"),
    ).toBe(r.rcvKey);
  });

  it("blobs: bucket, key record and sealed blob open to the body (store code and noble)", () => {
    const epochKey = (id: number) => h(v.keyring.epochs.find((e) => e.id === id)!.key);
    for (const b of v.blobs) {
      const body = h(b.body);
      const max = b.keyKey.startsWith("6f") ? 4096 : 16384;
      expect(bucketSize(body.length, max), b.label).toBe(b.bucket);
      const keyKey = h(b.keyKey);
      const dataKey = unwrapDataKey(h(b.keyRecord), epochKey(b.epoch), keyKey);
      expect(dataKey?.toString("hex"), b.label).toBe(b.dataKey);
      const block = openBlob(h(b.dataKey), h(b.sealed), keyKey)!;
      expect(block).toHaveLength(b.bucket);
      expect(block.readUInt16BE(0)).toBe(body.length);
      expect(block.subarray(2, 2 + body.length)).toEqual(body);
      expect(block.subarray(2 + body.length).every((x) => x === 0)).toBe(true);

      const rec = h(b.keyRecord);
      expect(rec.readUInt32BE(0)).toBe(b.epoch);
      const aad = Buffer.concat([Buffer.from("loft-relay/1 dk"), u32(b.epoch), keyKey]);
      expect(Buffer.from(gcm(epochKey(b.epoch), rec.subarray(4, 16), aad).decrypt(rec.subarray(16)))).toEqual(
        h(b.dataKey),
      );
      const sealed = h(b.sealed);
      expect(
        Buffer.from(gcm(h(b.dataKey), sealed.subarray(0, 12), keyKey).decrypt(sealed.subarray(12))),
      ).toEqual(block);
    }
  });

  it("a message record (format 2): 0x02 ‖ send id ‖ header ‖ key record ‖ sealed blob, opened by the store's decoder", () => {
    const m = v.messageRecord;
    const b = v.blobs.find((x) => x.label === m.blob)!;
    const record = h(m.record);
    expect(m.format).toBe(2);
    expect(record[0]).toBe(MSG_FORMAT_2);
    expect(record.subarray(1, 17).toString("hex")).toBe(m.sendId);
    expect(messageRecordSendId(record) && Buffer.from(messageRecordSendId(record)!).toString("hex")).toBe(
      m.sendId,
    );
    fieldsAt(record, 17, b, m);
    expect(record.length).toBe(149 + b.bucket);
    opensAs(record, b, m);
  });

  it("a message record in format 1 (stores written before; still read): header ‖ key record ‖ sealed blob", () => {
    const m = v.messageRecordFormat1;
    const b = v.blobs.find((x) => x.label === m.blob)!;
    const record = h(m.record);
    expect(m.format).toBe(1);
    fieldsAt(record, 0, b, m);
    expect(record.length).toBe(132 + b.bucket);
    expect(messageRecordSendId(record)).toBeUndefined();
    // The format-2 record is this one with 0x02 ‖ send id in front.
    expect(Buffer.concat([Buffer.of(2), h(v.messageRecord.sendId), record]).toString("hex")).toBe(
      v.messageRecord.record,
    );
    opensAs(record, b, m);
  });
});

/** msgId ‖ u64 timestamp s ‖ u64 expiry ms ‖ key record ‖ sealed blob, from `at` (0 or 17) to the end. */
function fieldsAt(record: Buffer, at: number, b: (typeof v.blobs)[number], m: MessageRecordVector): void {
  expect(record.subarray(at, at + 24).toString("hex")).toBe(m.msgId);
  expect(Number(record.readBigUInt64BE(at + 24))).toBe(m.timestamp);
  expect(Number(record.readBigUInt64BE(at + 32))).toBe(m.expiresAt);
  expect(record.subarray(at + 40, at + 104).toString("hex")).toBe(b.keyRecord);
  expect(record.subarray(at + 104).toString("hex")).toBe(b.sealed);
}

function opensAs(record: Buffer, b: (typeof v.blobs)[number], m: MessageRecordVector): void {
  expect(messageRecordEpoch(record)).toBe(b.epoch);
  expect(messageRecordHeader(record)).toEqual({
    msgId: h(m.msgId),
    timestamp: m.timestamp,
    expiresAt: m.expiresAt,
  });
  expect(b.keyKey).toBe(`6d${m.recordKey}`);
  const epochKey = (id: number) => {
    const e = v.keyring.epochs.find((x) => x.id === id);
    return e ? h(e.key) : undefined;
  };
  const block = openMessageRecord(record, h(b.keyKey), epochKey)!;
  expect(block).toHaveLength(b.bucket);
  expect(block.subarray(2, 2 + h(b.body).length)).toEqual(h(b.body));
}
