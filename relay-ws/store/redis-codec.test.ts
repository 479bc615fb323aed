/**
 * What the Redis relay store reads back is untrusted input (store/redis-codec.ts): fuzzed replies
 * of every shape never throw, well-formed ones decode to what was written, mutated ones (truncated,
 * oversized, wrong types, extra elements) are refused, and pub/sub messages between instances are
 * accepted only in their exact form.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import {
  decodeCounts,
  decodeEpochRefs,
  decodeHubMessage,
  decodeKeyringReply,
  decodeNextBatch,
  decodeNextReply,
  decodeQueueReply,
  decodeReadReply,
  decodeTakeReply,
} from "./redis-codec.ts";

const runs = Math.max(1, Math.floor(FUZZ_RUNS / 8));
const buf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b));
const hex = (bytes: number) => buf(bytes).map((b) => b.toString("hex"));
/** Anything ioredis can hand back: nested arrays of buffers, numbers, null, strings. */
const reply = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.integer().map((n) => n),
    fc.string(),
    fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
    fc.array(tie("value"), { maxLength: 9 }),
  ),
})).value;
const decoders = [
  decodeQueueReply,
  decodeNextReply,
  decodeNextBatch,
  decodeReadReply,
  decodeTakeReply,
  (r: unknown) => decodeCounts(r, 4),
  decodeKeyringReply,
  decodeEpochRefs,
  (r: unknown) => decodeHubMessage(Buffer.isBuffer(r) ? r : String(r)),
];

const queueReply = fc.record({
  rid: hex(24),
  sid: hex(24),
  rk: buf(32),
  rcv: buf(60),
  sk: fc.option(buf(32), { nil: null }),
  susp: fc.boolean(),
  kr: buf(64),
});

describe("Redis store decoders", () => {
  it("never throw, whatever Redis hands back", () => {
    fc.assert(
      fc.property(reply, (r) => {
        for (const d of decoders) d(r);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("queue records: decode what was written; any truncated, grown or retyped field is refused", () => {
    fc.assert(
      fc.property(queueReply, fc.nat(6), fc.integer({ min: -3, max: 3 }), (q, field, delta) => {
        const raw: unknown[] = [
          Buffer.from(q.rid, "latin1"),
          Buffer.from(q.sid, "latin1"),
          q.rk,
          q.rcv,
          q.sk,
          q.susp ? Buffer.from("1") : null,
          q.kr,
        ];
        const d = decodeQueueReply(raw);
        expect(d?.ridHex).toBe(q.rid);
        expect(d?.suspended).toBe(q.susp);
        expect(d?.senderKey ? Buffer.from(d.senderKey) : null).toEqual(q.sk);
        // Resize one fixed-length field: refused (the keys may vary, within bounds).
        const target = raw[field];
        if (delta !== 0 && Buffer.isBuffer(target) && ![2, 4].includes(field)) {
          const bad = [...raw];
          bad[field] =
            delta > 0
              ? Buffer.concat([target, Buffer.alloc(delta)])
              : target.subarray(0, target.length + delta);
          expect(decodeQueueReply(bad)).toBeUndefined();
        }
        expect(decodeQueueReply([...raw, null])).toBeUndefined();
        expect(decodeQueueReply(raw.slice(0, 6))).toBeUndefined();
      }),
      { numRuns: runs },
    );
  });

  it("message headers: seq, id, times and counts read back exactly; damaged ones are marked", () => {
    fc.assert(
      fc.property(
        fc.nat(2 ** 40),
        buf(24),
        fc.nat(2 ** 40),
        fc.nat(2 ** 45),
        fc.nat(1000),
        (seq, id, ts, exp, d) => {
          const h = Buffer.alloc(40);
          id.copy(h);
          h.writeBigUInt64BE(BigInt(ts), 24);
          h.writeBigUInt64BE(BigInt(exp), 32);
          const sealed = Buffer.alloc(60, 7);
          const kr = Buffer.alloc(64, 9);
          const whole = [Buffer.from(String(seq)), Buffer.concat([h, sealed]), Buffer.from(String(d)), kr];
          expect(decodeNextReply(whole)).toEqual({
            seq,
            msgId: id,
            timestamp: ts,
            expiresAt: exp,
            deliveries: d,
            sealed,
            keyRecord: kr,
          });
          // Without a usable key record or blob: the header alone (the block is read separately).
          const bare = decodeNextReply([
            Buffer.from(String(seq)),
            h,
            Buffer.from(String(d)),
            Buffer.alloc(0),
          ]);
          expect(bare).toMatchObject({ seq, sealed: undefined, keyRecord: undefined });
          expect(decodeNextReply([Buffer.from(String(seq)), h.subarray(1), Buffer.from("0"), kr])).toBe(
            "damaged",
          );
          expect(decodeNextReply([Buffer.from(`-${seq}`), h, Buffer.from("0"), kr])).toBe("damaged");
          expect(decodeNextReply([Buffer.from(String(seq)), h, Buffer.from("0")])).toBe("damaged");
          expect(decodeNextReply(null)).toBeUndefined();
        },
      ),
      { numRuns: runs },
    );
  });

  it("pub/sub messages: exactly 'a'‖rid or 'e'‖rid‖token; every one-byte change or cut is refused or read as written", () => {
    fc.assert(
      fc.property(hex(24), hex(8), fc.nat(64), fc.integer({ min: 0, max: 255 }), (rid, token, at, byte) => {
        expect(decodeHubMessage(`a${rid}`)).toEqual({ kind: "append", ridHex: rid });
        const end = Buffer.from(`e${rid}${token}`, "latin1");
        expect(decodeHubMessage(end)).toEqual({ kind: "end", ridHex: rid, token });
        const mutated = Buffer.from(end);
        mutated[at % end.length] = byte;
        const m = decodeHubMessage(mutated);
        if (m)
          expect(Buffer.from(m.kind === "end" ? `e${m.ridHex}${m.token}` : "", "latin1")).toEqual(mutated);
        expect(decodeHubMessage(end.subarray(0, at % end.length))).toBeUndefined();
        expect(decodeHubMessage(Buffer.concat([end, Buffer.of(byte)]))).toBeUndefined();
      }),
      { numRuns: runs },
    );
  });

  it("read-ahead batches: in strictly increasing order and whole, or refused (replayed or out-of-order entries)", () => {
    const entry = (seq: number) => [
      Buffer.from(String(seq)),
      Buffer.alloc(100),
      Buffer.from("0"),
      Buffer.alloc(64),
    ];
    expect(decodeNextBatch([...entry(3), ...entry(5), ...entry(9)])).toHaveLength(3);
    expect(decodeNextBatch([])).toEqual([]);
    expect(decodeNextBatch(null)).toEqual([]);
    expect(decodeNextBatch([...entry(5), ...entry(3)])).toBe("damaged");
    expect(decodeNextBatch([...entry(5), ...entry(5)])).toBe("damaged");
    expect(decodeNextBatch([...entry(5), ...entry(6).slice(0, 3)])).toBe("damaged");
  });

  it("prekeys, reads, keyring, epoch refs and counters: shapes and lengths are checked", () => {
    const kr = Buffer.alloc(64, 1);
    const sealed = Buffer.alloc(60, 2);
    expect(decodeReadReply([Buffer.concat([Buffer.alloc(40), sealed]), kr])?.sealed.length).toBe(60);
    expect(decodeReadReply([Buffer.concat([Buffer.alloc(40), sealed]), kr.subarray(1)])).toBeUndefined();
    expect(decodeReadReply([Buffer.alloc(40), kr])).toBeUndefined();
    expect(decodeTakeReply([sealed, kr])).toEqual({ bundle: sealed, bundleKeyRecord: kr });
    const id = Buffer.from("ab".repeat(16));
    expect(decodeTakeReply([sealed, kr, id, sealed, kr])?.oneTime?.idHex).toBe("ab".repeat(16));
    // A one-time prekey whose record is damaged: the bundle alone, never a crash.
    expect(decodeTakeReply([sealed, kr, id, Buffer.alloc(3), kr])?.oneTime).toBeUndefined();
    expect(decodeTakeReply([sealed, kr, id])).toBeUndefined();
    expect(decodeKeyringReply([null, Buffer.from("0")])).toEqual({ slot: undefined, generation: 0 });
    expect(decodeKeyringReply([Buffer.alloc(4096), Buffer.from("x")])).toBeUndefined();
    expect(decodeCounts([Buffer.from("3"), 4, Buffer.from("-2"), 0], 4)).toEqual([3, 4, 0, 0]);
    expect(decodeCounts([Buffer.from("1e9"), 4, 0, 0], 4)).toBeUndefined();
    const rid = "0f".repeat(24);
    const refs = decodeEpochRefs([
      Buffer.from("17"),
      Buffer.from(`${rid}|m12`),
      kr,
      Buffer.alloc(24),
      Buffer.from(`${rid}|q`),
      kr,
      Buffer.alloc(0),
      Buffer.from(`${rid}|zz`),
      kr,
      Buffer.alloc(0),
      Buffer.from(`${rid}|m3`),
      kr,
      Buffer.alloc(0), // a message ref without its id: skipped
    ]);
    expect(refs?.cursor).toBe("17");
    expect(refs?.refs.map((r) => r.field)).toEqual(["m12", "q"]);
  });
});
