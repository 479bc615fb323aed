/**
 * The bulk lane (bulk-lane.ts; docs/protocol/files.md §2, "The bulk lane") over two in-memory
 * data channels: the hello makes the other end `ready` only once this end claims the lane; what
 * arrives before the claim, and any 0x00 message that is not the hello, is dropped and counted;
 * frames keep their order; a channel that fails closes the lane and reports it once; the lane's
 * message classifier never throws on any input (FUZZ_RUNS).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { isLoftError } from "../../../core/errors.ts";
import { FakeBulkChannel, fakeChannelPair } from "../../../test/support/bulk-channel.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { MAX_CHUNK_BYTES } from "../engine/files/wire.ts";
import {
  BULK_CHUNK_MAX,
  BULK_CHUNKS_BYTES,
  BULK_HELLO,
  BulkLane,
  classifyBulkMessage,
  encodeBulkChunks,
} from "./bulk-lane.ts";

const flush = () => new Promise((r) => setTimeout(r, 0));

function lanePair() {
  const [ca, cb] = fakeChannelPair();
  const failures: string[] = [];
  const a = new BulkLane({ onFailure: (i) => failures.push(`a:${i.reason}`) });
  const b = new BulkLane({ onFailure: (i) => failures.push(`b:${i.reason}`) });
  a.attach(ca);
  b.attach(cb);
  return { a, b, ca, cb, failures };
}

describe("bulk lane", () => {
  it("is ready only after the peer claimed it; frames then arrive in order", async () => {
    const { a, b } = lanePair();
    expect(a.state).toBe("open");
    a.claim();
    await flush();
    expect(b.ready).toBe(true); // a reads: b may send to it
    expect(a.ready).toBe(false); // b said nothing yet
    const frames = Array.from({ length: 50 }, (_, n) => Uint8Array.of(0x10, n, n + 1));
    for (const f of frames) b.send(f);
    const got = [];
    for (let n = 0; n < frames.length; n++) got.push(await a.receive());
    expect(got).toEqual(frames);
    b.claim();
    await flush();
    expect(a.ready).toBe(true);
  });

  it("drops what arrives before the claim and control messages other than the hello", async () => {
    const { a, b } = lanePair();
    b.send(Uint8Array.of(0x10, 1)); // nobody reads a yet
    await flush();
    expect(a.dropped).toBe(1);
    a.claim();
    b.send(Uint8Array.of(0x00, 1, 2)); // not the hello
    b.send(BULK_HELLO.subarray(0, 5)); // a truncated hello
    b.send(Uint8Array.of(0x10, 2));
    expect(await a.receive()).toEqual(Uint8Array.of(0x10, 2));
    expect(a.dropped).toBe(3);
    expect(a.ready).toBe(false); // neither counted as the hello
  });

  it("a hello sent before the channel opened goes once it opens", async () => {
    const [ca, cb] = fakeChannelPair(false);
    const x = new BulkLane({ onFailure: () => {} });
    const y = new BulkLane({ onFailure: () => {} });
    x.attach(ca);
    y.attach(cb);
    x.claim();
    expect(x.state).toBe("connecting");
    expect(() => x.send(Uint8Array.of(0x10))).toThrow(/not open/);
    cb.open();
    ca.open();
    await flush();
    expect(y.ready).toBe(true);
  });

  it("a channel closed by the peer closes the lane and reports it once; a local close reports nothing", async () => {
    const { a, b, failures } = lanePair();
    a.claim();
    b.claim();
    await flush();
    const pending = a.receive();
    b.close("bye");
    await expect(pending).rejects.toSatisfy((e) => isLoftError(e) && e.code === "LOFT_ERR_LINK_CLOSED");
    expect(await a.closed).toMatchObject({ reason: "ERR_DATA_CHANNEL" });
    expect(failures).toEqual(["a:ERR_DATA_CHANNEL"]);
    expect(a.ready).toBe(false);
    expect(() => a.send(Uint8Array.of(0x10))).toThrow();
  });

  it("lets go of its channel's listeners once closed, by this end, by the peer, or by a failed send", async () => {
    /** A channel that counts the listeners added to it and not removed. */
    class Counted extends FakeBulkChannel {
      live = 0;
      override addEventListener(type: string, f: EventListenerOrEventListenerObject | null): void {
        this.live++;
        super.addEventListener(type, f);
      }
      override removeEventListener(type: string, f: EventListenerOrEventListenerObject | null): void {
        this.live--;
        super.removeEventListener(type, f);
      }
    }
    const pair = () => {
      const [ca, cb] = [new Counted(), new Counted()];
      ca.other = cb;
      cb.other = ca;
      ca.open();
      cb.open();
      const a = new BulkLane({ onFailure: () => {} });
      const b = new BulkLane({ onFailure: () => {} });
      a.attach(ca);
      b.attach(cb);
      expect(ca.live).toBeGreaterThan(0);
      return { a, b, ca, cb };
    };
    const local = pair();
    local.a.close("bye");
    await local.a.closed;
    await flush();
    expect(local.ca.live).toBe(0);
    await local.b.closed; // the peer's channel closed with it
    await flush();
    expect(local.cb.live).toBe(0);
    const failed = pair();
    failed.ca.send = () => {
      throw new Error("OperationError");
    };
    expect(() => failed.a.send(Uint8Array.of(0x10))).toThrow();
    await failed.a.closed;
    await flush();
    expect(failed.ca.live).toBe(0);
  });

  it("classifies any input without throwing: frames, the hello, or a typed error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const r = classifyBulkMessage(bytes);
        if (r.ok) {
          if (r.value.kind === "hello") expect(bytes).toEqual(BULK_HELLO);
          else if (r.value.kind === "chunks") expect(bytes).toEqual(encodeBulkChunks(r.value.max));
          else expect(bytes[0]).not.toBe(0);
        } else expect(["LOFT_ERR_MALFORMED", "LOFT_ERR_UNKNOWN_TYPE"]).toContain(r.error.code);
      }),
      { numRuns: FUZZ_RUNS },
    );
    // The hello with any one byte changed, cut or extended is not the hello.
    fc.assert(
      fc.property(fc.nat(BULK_HELLO.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const m = BULK_HELLO.slice();
        m[at] = (m[at] ?? 0) ^ x;
        const r = classifyBulkMessage(m);
        expect(r.ok && r.value.kind === "hello").toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
    expect(classifyBulkMessage(Uint8Array.of(...BULK_HELLO, 0)).ok).toBe(false);
    // The hello's bytes as docs/protocol/files.md §2 gives them.
    expect(toHex(BULK_HELLO)).toBe("006c6f66742d62756c6b2f31");
    expect(classifyBulkMessage(new Uint8Array(0)).ok).toBe(false);
  });

  it("says the largest chunk its end takes right after its hello; a lane made to say nothing is as before", async () => {
    const { a, b } = lanePair();
    expect(b.peerChunkBytes).toBeUndefined();
    a.claim();
    await flush();
    expect(b.ready).toBe(true);
    expect(b.peerChunkBytes).toBe(BULK_CHUNK_MAX);
    expect(b.dropped).toBe(0);
    // An end of session 17 or before sends the hello alone: its peer offers it the default size.
    const [cx, cy] = fakeChannelPair();
    const old = new BulkLane({ onFailure: () => {}, chunkBytes: 0 });
    const y = new BulkLane({ onFailure: () => {} });
    old.attach(cx);
    y.attach(cy);
    old.claim();
    await flush();
    expect(y.ready).toBe(true);
    expect(y.peerChunkBytes).toBeUndefined();
    // Saying nothing is this end's choice only: it still reads what its peer says.
    y.claim();
    await flush();
    expect(old.ready).toBe(true);
    expect(old.peerChunkBytes).toBe(BULK_CHUNK_MAX);
  });

  it("answered() resolves when the peer's BULK_CHUNKS comes, or when the lane closes — not on the hello alone", async () => {
    // What a sender waits on, bounded, before it chooses a file's chunk size (files.md §2).
    const settled = (lane: BulkLane) => {
      let done = false;
      void lane.answered().then(() => {
        done = true;
      });
      return () => done;
    };
    const { a, b } = lanePair();
    const bAnswered = settled(b);
    await flush();
    expect(bAnswered()).toBe(false); // nothing said yet: the peer has not claimed
    a.claim();
    await flush();
    expect(bAnswered()).toBe(true);
    expect(b.peerChunkBytes).toBe(BULK_CHUNK_MAX);
    // A peer of session 17 or before: the hello, never BULK_CHUNKS — still waiting, until the close.
    const [cx, cy] = fakeChannelPair();
    const old = new BulkLane({ onFailure: () => {}, chunkBytes: 0 });
    const y = new BulkLane({ onFailure: () => {} });
    old.attach(cx);
    y.attach(cy);
    const yAnswered = settled(y);
    old.claim();
    await flush();
    expect(y.ready).toBe(true);
    expect(yAnswered()).toBe(false);
    y.close("done");
    await flush();
    expect(yAnswered()).toBe(true);
    expect(y.peerChunkBytes).toBeUndefined();
  });

  it("BULK_CHUNKS: its bytes, and one cut, grown or changed is not it", () => {
    // docs/protocol/files.md §2: 00 ‖ "loft-bulk/chunks" ‖ u32be(262 115).
    expect(toHex(encodeBulkChunks(BULK_CHUNK_MAX))).toBe("006c6f66742d62756c6b2f6368756e6b730003ffe3");
    expect(BULK_CHUNKS_BYTES).toBe(21);
    // What a lane says it takes is what a wide frame can carry in one lane message (wire.ts).
    expect(BULK_CHUNK_MAX).toBe(MAX_CHUNK_BYTES);
    const m = encodeBulkChunks(BULK_CHUNK_MAX);
    expect(classifyBulkMessage(m)).toMatchObject({
      ok: true,
      value: { kind: "chunks", max: BULK_CHUNK_MAX },
    });
    expect(classifyBulkMessage(m.subarray(0, 20))).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    expect(classifyBulkMessage(Uint8Array.of(...m, 0))).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    fc.assert(
      fc.property(fc.nat(16), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const changed = m.slice();
        changed[at] = (changed[at] ?? 0) ^ x;
        const r = classifyBulkMessage(changed);
        expect(r.ok && r.value.kind !== "frame").toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
