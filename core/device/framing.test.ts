import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from "./cobs.ts";
import { crc32 } from "./crc32.ts";
import {
  type DeframeEvent,
  Deframer,
  encodeFrame,
  FRAME_ACK,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_DATA_END,
  FRAME_HELLO,
  type Frame,
  maxWireFrameBytes,
} from "./frame.ts";

const frameArb = (maxPayload = 240): fc.Arbitrary<Frame> =>
  fc.record({
    type: fc.constantFrom(FRAME_HELLO, FRAME_DATA, FRAME_DATA_END, FRAME_ACK, FRAME_CLOSE),
    seq: fc.integer({ min: 0, max: 0xffff }),
    payload: fc.uint8Array({ maxLength: maxPayload }),
  });

/** Split `bytes` at the given cut points (any chunking a UART driver might deliver). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function feed(d: Deframer, chunks: Uint8Array[]): DeframeEvent[] {
  return chunks.flatMap((c) => d.push(c));
}

describe("CRC-32", () => {
  it("is the IEEE / zlib CRC", () => {
    expect(crc32(utf8("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(utf8("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
  });
});

describe("COBS", () => {
  it("encodes the reference examples", () => {
    const cases: [string, string][] = [
      ["00", "0101"],
      ["0000", "010101"],
      ["11220033", "0311220233"],
      ["11223344", "0511223344"],
      ["11000000", "0211010101"],
    ];
    for (const [input, encoded] of cases) {
      expect(toHex(cobsEncode(fromHex(input)))).toBe(encoded);
      const back = cobsDecode(fromHex(encoded));
      expect(back.ok && toHex(back.value)).toBe(input);
    }
    const run254 = Uint8Array.from({ length: 254 }, (_, i) => i + 1);
    expect(toHex(cobsEncode(run254))).toBe(`ff${toHex(run254)}`);
    const run255 = Uint8Array.from({ length: 255 }, (_, i) => i + 1);
    expect(toHex(cobsEncode(run255))).toBe(`ff${toHex(run254)}02ff`);
  });

  it("round-trips and never emits 0x00", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (input) => {
        const e = cobsEncode(input);
        expect(e.includes(0)).toBe(false);
        expect(e.length).toBeLessThanOrEqual(cobsMaxEncodedLength(input.length));
        const d = cobsDecode(e);
        expect(d.ok && toHex(d.value)).toBe(toHex(input));
      }),
      { numRuns: Math.floor(FUZZ_RUNS / 4) },
    );
  });

  it("decodes arbitrary bytes to a value or a typed error, never a throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (input) => {
        const d = cobsDecode(input);
        if (!d.ok) expect(d.error.code).toBe("LOFT_ERR_MALFORMED");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("Deframer", () => {
  it("recovers every frame from any chunking of a clean stream", () => {
    fc.assert(
      fc.property(
        fc.array(frameArb(), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (frames, cuts) => {
          const stream = concat(frames.map(encodeFrame));
          const events = feed(new Deframer(240), chunked(stream, cuts));
          expect(events.every((e) => e.ok)).toBe(true);
          expect(events.map((e) => e.ok && e.frame)).toEqual(frames);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("resynchronises after garbage and after a sender reset mid-frame: every frame after a delimiter arrives", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            junk: fc.oneof(
              fc.uint8Array({ maxLength: 40 }),
              fc.uint8Array({ minLength: 300, maxLength: 2000 }),
            ),
            cutFrame: fc.option(frameArb(), { nil: undefined }),
            frame: frameArb(),
          }),
          { maxLength: 6 },
        ),
        fc.array(fc.nat(), { maxLength: 12 }),
        (items, cuts) => {
          const parts: Uint8Array[] = [];
          for (const { junk, cutFrame, frame } of items) {
            parts.push(junk);
            // A sender that reset mid-frame: half a frame, then its next frame starts after a 0x00.
            if (cutFrame) {
              const w = encodeFrame(cutFrame);
              parts.push(w.subarray(0, Math.floor(w.length / 2)));
            }
            parts.push(new Uint8Array([0]), encodeFrame(frame));
          }
          const d = new Deframer(240);
          const events = feed(d, chunked(concat(parts), cuts));
          const frames = events.flatMap((e) => (e.ok ? [e.frame] : []));
          // Every real frame is there, in order; junk may add frames only if it happens to be a
          // valid CRC-checked frame, which random junk essentially never is.
          let i = 0;
          for (const f of frames)
            if (i < items.length && JSON.stringify(f) === JSON.stringify(items[i]!.frame)) i++;
          expect(i).toBe(items.length);
          for (const e of events) if (!e.ok) expect(e.error.name).toBe("DeframeError");
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("arbitrary bytes in arbitrary chunks: no throw, typed faults, bounded buffer", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 8 }), (chunks) => {
        const d = new Deframer(64);
        const events = feed(d, chunks);
        const zeros = chunks.reduce((n, c) => n + c.filter((b) => b === 0).length, 0);
        expect(events.length).toBeLessThanOrEqual(zeros);
        for (const e of events) {
          if (e.ok) expect(e.frame.payload.length).toBeLessThanOrEqual(64);
          else
            expect(["LOFT_ERR_MALFORMED", "LOFT_ERR_FRAME_TOO_LARGE", "LOFT_ERR_UNKNOWN_TYPE"]).toContain(
              e.error.code,
            );
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("names each fault: CRC, COBS, short, unknown type, oversized", () => {
    const good = encodeFrame({ type: FRAME_DATA, seq: 7, payload: utf8("hello") });
    const flipped = good.slice();
    flipped[3]! ^= 0x01; // still no 0x00 inside: a CRC fault
    expect(flipped.subarray(0, -1).includes(0)).toBe(false);
    const faults = (bytes: Uint8Array, max = 240) =>
      new Deframer(max).push(bytes).map((e) => (e.ok ? "frame" : e.error.fault));
    expect(faults(flipped)).toEqual(["crc"]);
    expect(faults(fromHex("0501020300"))).toEqual(["cobs"]);
    expect(faults(fromHex("03010200"))).toEqual(["short"]);
    const unknown = encodeFrame({ type: FRAME_DATA, seq: 0, payload: new Uint8Array(0) });
    // Re-encode with type 0x7f and a valid CRC.
    const body = new Uint8Array([0x7f, 0, 0]);
    const crc = crc32(body);
    const raw = new Uint8Array([...body, crc >>> 24, (crc >>> 16) & 255, (crc >>> 8) & 255, crc & 255]);
    expect(faults(new Uint8Array([...cobsEncode(raw), 0]))).toEqual(["unknown-type"]);
    expect(unknown.length).toBeGreaterThan(0);
    const big = encodeFrame({ type: FRAME_DATA, seq: 0, payload: new Uint8Array(200).fill(9) });
    expect(faults(big, 64)).toEqual(["oversized"]);
    expect(big.length).toBeLessThanOrEqual(maxWireFrameBytes(200));
    // 5000 bytes without a delimiter: one oversized fault, then the next frame is fine.
    const d = new Deframer(240);
    const ev = [...d.push(new Uint8Array(5000).fill(0x41)), ...d.push(new Uint8Array([0])), ...d.push(good)];
    expect(ev.map((e) => (e.ok ? "frame" : e.error.fault))).toEqual(["oversized", "frame"]);
    expect(ev[0]!.ok === false && ev[0]!.error.discarded).toBe(5000);
  });

  it("ignores empty blocks (0x00 0x00) and reports a partial frame", () => {
    const d = new Deframer(240);
    expect(d.push(new Uint8Array([0, 0, 0]))).toEqual([]);
    const good = encodeFrame({ type: FRAME_ACK, seq: 1, payload: new Uint8Array(0) });
    d.push(good.subarray(0, 3));
    expect(d.partial).toBe(true);
    d.reset();
    expect(d.partial).toBe(false);
  });
});
