/**
 * Chunk reassembly under random order, duplication, loss, replay and interleaving (SREMP
 * §chunking "handle incomplete or out-of-order chunk delivery"). The reassembler must deliver each
 * complete message exactly once with exactly its bytes, never deliver an incomplete one, and keep
 * its buffers within the limits.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChunkReassembler, chunkMessage } from "../../core/codec/chunk.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";

const T0 = 5_000_000;
const LIMITS = { maxMessageBytes: 8192, maxChunks: 256, maxPartialMessages: 3, timeoutMs: 10_000 };

/** A delivery schedule over `n` frames: a permutation, some frames dropped, some repeated. */
const scheduleArb = (n: number) =>
  fc
    .tuple(
      fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
      fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      fc.array(fc.tuple(fc.nat({ max: n - 1 }), fc.nat()), { maxLength: 6 }),
    )
    .map(([order, lost, dups]) => {
      const kept = order.filter((i) => !lost[i]);
      for (const [frame, at] of dups) kept.splice(at % (kept.length + 1), 0, frame);
      return { schedule: kept, lost: order.filter((i) => lost[i]) };
    });

const caseArb = fc
  .tuple(fc.uint8Array({ maxLength: 6000 }), fc.integer({ min: 110, max: 900 }), fc.boolean())
  .chain(([payload, frameBytes, allowLoss]) => {
    const frames = chunkMessage(77, payload, frameBytes);
    return scheduleArb(frames.length).map((s) => {
      const schedule = allowLoss ? s.schedule : [...s.schedule, ...s.lost];
      // a "lost" frame may still arrive as one of the duplicates
      return { payload, frames, schedule, complete: new Set(schedule).size === frames.length };
    });
  });

describe("ChunkReassembler (property)", () => {
  it("delivers exactly once, byte-exact, whatever the order and duplication; never with a chunk missing", () => {
    fc.assert(
      fc.property(caseArb, ({ payload, frames, schedule, complete }) => {
        const r = new ChunkReassembler(LIMITS);
        const delivered: Uint8Array[] = [];
        for (const i of schedule) {
          const res = r.acceptFrame(frames[i]!, T0);
          expect(res.ok).toBe(true); // duplicates and reordering are not errors
          if (res.ok && res.value.status === "complete") delivered.push(res.value.payload);
          expect(r.bufferedBytes).toBeLessThanOrEqual(LIMITS.maxMessageBytes);
        }
        if (complete) {
          expect(delivered).toHaveLength(1);
          expect(delivered[0]).toEqual(payload);
          expect(r.partialCount).toBe(0);
          // replaying every frame afterwards delivers nothing new
          for (const f of frames) {
            const res = r.acceptFrame(f, T0);
            expect(res.ok && res.value.status).toBe("duplicate");
          }
        } else {
          expect(delivered).toHaveLength(0);
          const started = schedule.length > 0;
          expect(r.partialCount).toBe(started ? 1 : 0);
          expect(r.expire(T0 + LIMITS.timeoutMs - 1)).toEqual([]);
          expect(r.expire(T0 + LIMITS.timeoutMs)).toEqual(started ? [77] : []);
          if (started) {
            const late = r.acceptFrame(frames[0]!, T0 + LIMITS.timeoutMs);
            expect(late.ok ? "ok" : late.error.code).toBe("LOFT_ERR_CHUNK_TIMEOUT");
          }
        }
      }),
      { numRuns: Math.max(2_000, Math.floor(FUZZ_RUNS / 5)) }, // ≥ 10⁴ chunk frames in total
    );
  });

  it("interleaved messages complete independently", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 1500 }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 120, max: 400 }),
        fc.infiniteStream(fc.nat()),
        (payloads, frameBytes, picks) => {
          const queues = payloads.map((p, id) => chunkMessage(id, p, frameBytes));
          const r = new ChunkReassembler(LIMITS);
          const got = new Map<number, Uint8Array>();
          const it = picks[Symbol.iterator]();
          while (queues.some((q) => q.length > 0)) {
            const live = queues.map((q, i) => [q, i] as const).filter(([q]) => q.length > 0);
            const [queue] = live[it.next().value! % live.length]!;
            const res = r.acceptFrame(queue.shift()!, T0);
            expect(res.ok).toBe(true);
            if (res.ok && res.value.status === "complete") got.set(res.value.messageId, res.value.payload);
          }
          expect(got.size).toBe(payloads.length);
          for (const [id, p] of payloads.entries()) expect(got.get(id)).toEqual(p);
        },
      ),
      { numRuns: Math.max(1_000, Math.floor(FUZZ_RUNS / 10)) },
    );
  });

  it("a frame of another message with the same id but a different shape poisons only that message", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 500, maxLength: 2000 }),
        fc.uint8Array({ minLength: 500, maxLength: 2000 }),
        (a, b) => {
          const fa = chunkMessage(1, a, 200);
          const fb = chunkMessage(1, b, 300); // same id, other chunk_size
          const r = new ChunkReassembler(LIMITS);
          expect(r.acceptFrame(fa[0]!, T0).ok).toBe(true);
          const clash = r.acceptFrame(fb[0]!, T0);
          expect(clash.ok ? "ok" : clash.error.code).toBe("LOFT_ERR_MALFORMED");
          expect(r.partialCount).toBe(0);
          // the stream can carry on with a fresh message
          const fc2 = chunkMessage(2, a, 200);
          let done = false;
          for (const f of fc2) {
            const res = r.acceptFrame(f, T0);
            if (res.ok && res.value.status === "complete") done = true;
          }
          expect(done).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
