/**
 * Property tests for what the relay store decodes from disk and configuration
 * (docs/protocol/relay.md §At rest, docs/operations-relay.md §Keys): keyring slots, message
 * records (header ‖ key record ‖ sealed blob), master keys and byte counts get garbage, damaged
 * valid input, truncations and oversized input (FUZZ_RUNS each). A slot decodes only when it is
 * exactly one this master key sealed, a message record opens only to its own block; nothing throws
 * except the typed configuration error of a bad byte count.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../host/config.ts";
import { byteSize } from "../../relay-ws/config.ts";
import { sealBlob, wrapDataKey } from "../../relay-ws/store/at-rest.ts";
import { decodeSlot, encodeSlot, MAX_EPOCHS, SLOT_SIZE } from "../../relay-ws/store/keyring.ts";
import {
  messageRecordEpoch,
  messageRecordHeader,
  messageRecordSendId,
  openMessageRecord,
} from "../../relay-ws/store/lmdb.ts";
import { parseMasterKey } from "../../relay-ws/store/open.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { mutate, mutationArb } from "./mutations.ts";

const master = randomBytes(32);
const state = (n: number) => ({
  generation: 7,
  epochs: Array.from({ length: n }, (_, i) => ({ id: i, startMs: 1_000 * i, key: randomBytes(32) })),
});
const valid = [0, 1, 3, MAX_EPOCHS].map((n) => encodeSlot(master, state(n)));

/** Message records as the LMDB store writes them, under epochs 3 and 9, and their blocks. */
const epochKeys = new Map([
  [3, randomBytes(32)],
  [9, randomBytes(32)],
]);
const keyKeyOf = (seq: number) => Buffer.concat([Buffer.of(0x6d), Buffer.alloc(24, 1), Buffer.alloc(8, seq)]);
const records = [0, 1, 2].map((seq) => {
  const block = Buffer.concat([Buffer.of(0, 5), Buffer.from("hello"), Buffer.alloc(256 - 7)]);
  block[2] = seq;
  const dataKey = randomBytes(32);
  const epoch = seq === 2 ? 9 : 3;
  const keyKey = keyKeyOf(seq);
  // seq 1 in format 2 (0x02 ‖ send id ‖ header …), the others in format 1 (docs/protocol/relay.md
  // §At rest, "Message record"): the decoders read both.
  const header =
    seq === 1
      ? Buffer.concat([Buffer.of(2), Buffer.alloc(16, 7), Buffer.alloc(40, seq)])
      : Buffer.alloc(40, seq);
  const record = Buffer.concat([
    header,
    wrapDataKey(epoch, epochKeys.get(epoch)!, dataKey, keyKey),
    sealBlob(dataKey, block, keyKey),
  ]);
  return { seq, block, record, keyKey, epoch };
});

describe("relay store decoders", () => {
  it("message records open to their block under their epoch; another key-key or a gone epoch opens nothing", () => {
    expect(messageRecordSendId(records[1]!.record)).toEqual(Buffer.alloc(16, 7));
    expect(messageRecordSendId(records[0]!.record)).toBeUndefined();
    for (const r of records) {
      expect(messageRecordHeader(r.record)?.timestamp).toBe(
        Number(Buffer.alloc(8, r.seq).readBigUInt64BE(0)),
      );
      expect(messageRecordEpoch(r.record)).toBe(r.epoch);
      expect(openMessageRecord(r.record, r.keyKey, (e) => epochKeys.get(e))?.equals(r.block)).toBe(true);
      expect(openMessageRecord(r.record, keyKeyOf(r.seq + 1), (e) => epochKeys.get(e))).toBeUndefined();
      expect(openMessageRecord(r.record, r.keyKey, () => undefined)).toBeUndefined();
    }
  });

  it("a damaged, cut, grown or spliced message record opens to its own block or to nothing, and never throws", () => {
    const pool = records.map((r) => r.record);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: records.length - 1 }), mutationArb, (which, m) => {
        const r = records[which]!;
        const damaged = mutate(r.record, m, pool);
        const epoch = messageRecordEpoch(damaged);
        if (damaged.length < 104) expect(epoch).toBeUndefined();
        const opened = openMessageRecord(damaged, r.keyKey, (e) => epochKeys.get(e));
        // The header (id, times) is not sealed: only a change there, or none, still opens.
        if (opened) expect(opened.equals(r.block)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("garbage of any length is not a message record", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        expect(openMessageRecord(bytes, records[0]!.keyKey, (e) => epochKeys.get(e))).toBeUndefined();
        // The header readers (GC, replay index) never throw: a field or undefined, by format.
        const header = messageRecordHeader(bytes);
        if (bytes.length < 40) expect(header).toBeUndefined();
        const sendId = messageRecordSendId(bytes);
        if (sendId) {
          expect(bytes[0]).toBe(2);
          expect(bytes.length % 2).toBe(1);
          expect(sendId).toHaveLength(16);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("valid slots round-trip; a slot under another master key does not open", () => {
    for (const n of [0, 1, 3, MAX_EPOCHS]) {
      const s = state(n);
      const d = decodeSlot(master, encodeSlot(master, s));
      expect(d?.generation).toBe(7);
      expect(d?.epochs.map((e) => e.key.toString("hex"))).toEqual(s.epochs.map((e) => e.key.toString("hex")));
      expect(decodeSlot(randomBytes(32), encodeSlot(master, s))).toBeUndefined();
    }
    expect(() => encodeSlot(master, state(MAX_EPOCHS + 1))).toThrow(RangeError);
  });

  it("a damaged slot never decodes to anything but its own content, and never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: valid.length - 1 }), mutationArb, (which, m) => {
        const original = valid[which]!;
        const damaged = mutate(original, m, valid);
        const d = decodeSlot(master, damaged);
        if (d === undefined) return;
        // Only bytes outside the sealed part (the zero padding) may change without notice.
        expect(encodeSlot(master, d).subarray(0, 18)).toEqual(original.subarray(0, 18));
        expect(damaged.length).toBe(SLOT_SIZE);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("garbage of any length is not a slot", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: SLOT_SIZE + 64 }), (bytes) => {
        expect(decodeSlot(master, bytes)).toBeUndefined();
      }),
      { numRuns: FUZZ_RUNS },
    );
    const magicOnly = Buffer.alloc(SLOT_SIZE);
    magicOnly.write("LOFTKR1\n", "latin1");
    magicOnly.writeUInt16BE(0xffff, 16);
    expect(decodeSlot(master, magicOnly)).toBeUndefined();
  });

  it("master keys: hex, base64, base64url and 32 raw bytes parse; anything else is refused", () => {
    const k = randomBytes(32);
    expect(parseMasterKey(Buffer.from(`${k.toString("hex")}\n`))).toEqual(k);
    expect(parseMasterKey(Buffer.from(` ${k.toString("base64")} `))).toEqual(k);
    expect(parseMasterKey(Buffer.from(k.toString("base64url")))).toEqual(k);
    expect(parseMasterKey(k)).toEqual(k);
    expect(parseMasterKey(Buffer.from(k.toString("hex").slice(2)))).toBeUndefined();
    expect(parseMasterKey(Buffer.alloc(31))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
        const key = parseMasterKey(bytes);
        if (key) expect(key).toHaveLength(32);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("byte counts: suffixes parse, anything else is a ConfigError", () => {
    expect(byteSize("4096")).toBe(4096);
    expect(byteSize("512M")).toBe(512 * 1024 ** 2);
    expect(byteSize("4G")).toBe(4 * 1024 ** 3);
    expect(byteSize("1TiB")).toBe(1024 ** 4);
    expect(byteSize("0")).toBe(0);
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (raw) => {
        try {
          const n = byteSize(raw);
          expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
    expect(() => byteSize("99999999999999999999G")).toThrow(ConfigError);
  });
});
