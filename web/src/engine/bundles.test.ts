/**
 * Bundles (docs/protocol/chat.md §5, "Bundles"): several chat messages under one ratchet message
 * to a peer whose handshake listed `chat.bundle`. The layout's encoder and its decoder fed
 * malformed, oversized, mutated and random input (always a typed error, never a throw, a bundle
 * refused whole); `receive` with real ratchets (core/ratchet) and the engine tests' in-memory
 * storage: each message stored, shown and receipted in order, a bundle with one bad message
 * leaving nothing behind, a replayed one dropped; `sendApps` over real Noise sessions (memory links).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../../core/bytes.ts";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { padToBucket } from "../../../core/codec/padding.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import {
  generateRatchetKeyPair,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromSecret,
} from "../../../core/ratchet/index.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import { alice as aliceUser, bob as bobUser } from "../../../core/session/testing.ts";
import { MemoryStorage } from "../../../test/support/engine.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import type { EngineEvent, StoredMessage } from "./api.ts";
import type { Live, Peer } from "./context.ts";
import { type MessagesContext, receive } from "./messages.ts";
import { MAX_TEXT_CHARS } from "./outgoing.ts";
import {
  BUNDLES_EXTENSION,
  bundlesExtension,
  peerReadsBundles,
  type RatchetContext,
  ratchetVersionsExtension,
  sendApps,
} from "./peer-ratchet.ts";
import {
  type AppMessage,
  appPlaintexts,
  BUNDLE_MARKER,
  decodeAppMessage,
  decodeAppPlaintext,
  decodeSessionFrame,
  encodeAppMessage,
  encodeBundle,
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_MESSAGES,
} from "./wire.ts";

const msg = (i: number, text = `burst ${i}`): AppMessage => ({
  t: "msg",
  id: `b${i}`.padEnd(22, "A"),
  at: 1_700_000_000_000 + i,
  text,
});
const msgs = (n: number, text?: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => msg(i, text?.(i)));
const codeOf = (r: ReturnType<typeof decodeAppPlaintext>) => (r.ok ? "ok" : r.error.code);

describe("bundle layout (wire.ts)", () => {
  it("round trip: 00 ‖ k ‖ log2 of each bucket ‖ the padded messages", () => {
    const m = [msg(1), msg(2, "x".repeat(300))];
    const b = encodeBundle(m.map(encodeAppMessage));
    expect([...b.subarray(0, 4)]).toEqual([0, 2, 8, 9]);
    expect(b.length).toBe(4 + 256 + 512);
    expect(decodeAppPlaintext(b)).toEqual({ ok: true, value: m });
    // A single padded message still reads as one.
    expect(decodeAppPlaintext(encodeAppMessage(m[0]!))).toEqual({ ok: true, value: [m[0]] });
  });

  it("appPlaintexts: consecutive msg in bundles, anything else alone, nothing bundled when the peer does not read them", () => {
    const burst: AppMessage[] = [
      msg(1),
      msg(2),
      { t: "sync" },
      msg(3),
      { t: "rcpt", ids: [(msg(9) as { id: string }).id] },
      msg(4),
      msg(5),
    ];
    const out = appPlaintexts(burst, true);
    expect(out.map((p) => decodeAppPlaintext(p))).toEqual([
      { ok: true, value: [msg(1), msg(2)] },
      { ok: true, value: [{ t: "sync" }] },
      { ok: true, value: [msg(3)] },
      { ok: true, value: [burst[4]] },
      { ok: true, value: [msg(4), msg(5)] },
    ]);
    expect(out[2]![0]).not.toBe(0); // a lone msg is a plain application message
    expect(appPlaintexts(burst, false).map((p) => decodeAppPlaintext(p))).toEqual(
      burst.map((m) => ({ ok: true, value: [m] })),
    );
  });

  it("a bundle stays within MAX_BUNDLE_BYTES (one detached frame): 16 KiB messages go three to a bundle, the longest alone", () => {
    expect(MAX_BUNDLE_BYTES).toBe(65_400);
    const big = msgs(7, (i) => String.fromCharCode(97 + i).repeat(16_000));
    const out = appPlaintexts(big, true);
    expect(out.map((p) => p.length)).toEqual([2 + 3 + 3 * 16_384, 2 + 3 + 3 * 16_384, 16_384]);
    expect(out.flatMap((p) => (decodeAppPlaintext(p) as { value: AppMessage[] }).value)).toEqual(big);
    // Two 32 KiB buckets do not fit one bundle; a 64 KiB one (16 000 three-byte characters) fits none.
    const wide = msgs(2, () => "é".repeat(MAX_TEXT_CHARS));
    expect(appPlaintexts(wide, true).map((p) => p.length)).toEqual([32_768, 32_768]);
    const widest = msgs(2, () => "€".repeat(MAX_TEXT_CHARS));
    expect(appPlaintexts(widest, true).map((p) => p.length)).toEqual([65_536, 65_536]);
    // At most MAX_BUNDLE_MESSAGES per bundle.
    const many = appPlaintexts(msgs(MAX_BUNDLE_MESSAGES + 1), true);
    expect(many.map((p) => (decodeAppPlaintext(p) as { value: AppMessage[] }).value.length)).toEqual([
      MAX_BUNDLE_MESSAGES,
      1,
    ]);
  });

  it("the receiver's one size bound: a bundle with a message in every bucket is read, a well-laid-out longer one is LOFT_ERR_FRAME_TOO_LARGE", () => {
    // One message in each bucket 2^8 … 2^15 (the last in two-byte characters: MAX_TEXT_CHARS):
    // 2 + 8 + 65 280 = 65 290 bytes (the longest layout, 65 346 bytes, and the bound's own byte:
    // the test below).
    const texts = [7, 8, 9, 10, 11, 12, 13].map((e) => "x".repeat(2 ** e));
    const longest = [...texts.map((t, i) => msg(i, t)), msg(7, "é".repeat(9_000))];
    const padded = longest.map(encodeAppMessage);
    expect(padded.map((p) => p.length)).toEqual([8, 9, 10, 11, 12, 13, 14, 15].map((e) => 2 ** e));
    const bundle = encodeBundle(padded);
    expect(bundle.length).toBe(65_290);
    expect(decodeAppPlaintext(bundle)).toEqual({ ok: true, value: longest });
    // Two 32 KiB messages laid out as a bundle (encodeBundle refuses to make it): every layout
    // check passes, only the length bound refuses it.
    const wide = msgs(2, () => "é".repeat(9_000)).map(encodeAppMessage);
    expect(() => encodeBundle(wide)).toThrow(RangeError);
    const over = concatBytes(Uint8Array.of(0, 2, 15, 15), ...wide);
    expect(over.length).toBe(65_540);
    const r = decodeAppPlaintext(over);
    expect(r.ok ? "ok" : [r.error.code, r.error.detail]).toEqual([
      "LOFT_ERR_FRAME_TOO_LARGE",
      `bundle of 65540 bytes over ${MAX_BUNDLE_BYTES}`,
    ]);
  });

  it("MAX_BUNDLE_BYTES at its byte: the longest layout (64 messages) is made and read; a plaintext of the bound is judged on its layout, one byte more is LOFT_ERR_FRAME_TOO_LARGE", () => {
    // 64 buckets (MAX_BUNDLE_MESSAGES) whose sizes add up to 255 × 256 bytes: 2 + 64 + 65 280 =
    // 65 346 bytes, the longest layout under the bound (256 × 256 more is 65 540, over it).
    const units = [128, 64, 32, 16, 8, 4, 2, 1];
    while (units.length < MAX_BUNDLE_MESSAGES) {
      const big = units.findIndex((u) => u > 1);
      units.splice(big, 1, units[big]! / 2, units[big]! / 2);
    }
    const texts = units.map((u) => (u === 128 ? "é".repeat(9_000) : "x".repeat(128 * u)));
    const longest = texts.map((t, i) => msg(i, t));
    const padded = longest.map(encodeAppMessage);
    expect(padded.map((p) => p.length)).toEqual(units.map((u) => 256 * u));
    const bundle = encodeBundle(padded);
    expect(bundle.length).toBe(65_346);
    expect(decodeAppPlaintext(bundle)).toEqual({ ok: true, value: longest });
    // No layout falls between 65 346 and 65 540 bytes: the bound's own byte shows only in which
    // check refuses a plaintext of that length — the layout's, or the length's.
    const of = (n: number) => {
      const p = new Uint8Array(n);
      p.set([BUNDLE_MARKER, 2, 8, 8]);
      return codeOf(decodeAppPlaintext(p));
    };
    expect(of(MAX_BUNDLE_BYTES)).toBe("LOFT_ERR_MALFORMED");
    expect(of(MAX_BUNDLE_BYTES + 1)).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    expect(MAX_BUNDLE_BYTES).toBe(65_400);
  });

  it("a malformed bundle is refused whole with a typed error", () => {
    const good = encodeBundle([msg(1), msg(2), msg(3)].map(encodeAppMessage));
    const withByte = (at: number, value: number) => {
      const b = good.slice();
      b[at] = value;
      return b;
    };
    const cases: [string, Uint8Array, string][] = [
      ["the marker alone", Uint8Array.of(0), "LOFT_ERR_MALFORMED"],
      [
        "one message",
        encodeBundle([msg(1), msg(2)].map(encodeAppMessage)).fill(1, 1, 2),
        "LOFT_ERR_MALFORMED",
      ],
      ["65 messages", withByte(1, MAX_BUNDLE_MESSAGES + 1), "LOFT_ERR_MALFORMED"],
      ["a bucket of 2^7", withByte(2, 7), "LOFT_ERR_MALFORMED"],
      ["a bucket of 2^16", withByte(2, 16), "LOFT_ERR_MALFORMED"],
      ["buckets longer than the bundle", withByte(2, 9), "LOFT_ERR_MALFORMED"],
      ["a byte too many", concatBytes(good, Uint8Array.of(0)), "LOFT_ERR_MALFORMED"],
      ["a byte short", good.subarray(0, good.length - 1), "LOFT_ERR_MALFORMED"],
      // The second message's padding: its last non-zero byte no longer 0x80.
      ["one message's padding broken", withByte(5 + 256 + 255, 1), "LOFT_ERR_PADDING"],
      ["one message not MessagePack", withByte(5 + 256, 0xc1), "LOFT_ERR_MALFORMED"],
      [
        "one message a sync",
        encodeBundle(([msg(1), { t: "sync" }] as AppMessage[]).map(encodeAppMessage)),
        "LOFT_ERR_SCHEMA",
      ],
      ["over MAX_BUNDLE_BYTES", new Uint8Array(MAX_BUNDLE_BYTES + 1), "LOFT_ERR_FRAME_TOO_LARGE"],
    ];
    for (const [what, bytes, code] of cases)
      expect([what, codeOf(decodeAppPlaintext(bytes))]).toEqual([what, code]);
    expect(() => encodeBundle([encodeAppMessage(msg(1))])).toThrow(RangeError);
  });

  it("a message's refusal inside a bundle keeps the message's code and words, after its index (LoftError.detail)", () => {
    const padded = [msg(0), msg(1)].map(encodeAppMessage);
    padded[1]![padded[1]!.length - 1] = 1;
    const inner = decodeAppMessage(padded[1]!);
    const outer = decodeAppPlaintext(encodeBundle(padded));
    if (inner.ok || outer.ok) throw new Error("both refused");
    expect(inner.error.detail).toBe("no 0x80 padding marker");
    expect(outer.error.code).toBe(inner.error.code);
    expect(outer.error.detail).toBe("bundle: message 1: no 0x80 padding marker");
    expect(outer.error.message).toBe("LOFT_ERR_PADDING: bundle: message 1: no 0x80 padding marker");
  });

  it("fuzz: random, mutated and truncated bundles never throw; what decodes is msg only and re-encodes to the same bytes", () => {
    const good = encodeBundle([msg(1), msg(2, "two"), msg(3, "y".repeat(400))].map(encodeAppMessage));
    const check = (bytes: Uint8Array) => {
      const r = decodeAppPlaintext(bytes);
      if (r.ok && bytes[0] === 0) {
        expect(r.value.every((m) => m.t === "msg")).toBe(true);
        expect(encodeBundle(r.value.map(encodeAppMessage))).toEqual(bytes);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), (tail) => check(concatBytes(Uint8Array.of(0), tail))),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(good.length - 1), value: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(good.length),
        (edits, cut) => {
          const b = good.slice();
          for (const e of edits) b[e.at] = e.value;
          check(b);
          check(b.subarray(0, cut));
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 600 }), { minLength: 2, maxLength: 20 }),
        (texts) => {
          const m = texts.map((t, i) => msg(i, t));
          const r = decodeAppPlaintext(encodeBundle(m.map(encodeAppMessage)));
          expect(r).toEqual({ ok: true, value: m });
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a bundle and a single message are never read one as the other (a reader from before bundles refuses every bundle)", () => {
    // chat.md §5, "Bundles": a bundle's length is 2 + k past a multiple of 256, never a padding
    // bucket, so `decodeAppMessage` — all an engine from before session 22 has — refuses it
    // (LOFT_ERR_PADDING) rather than reading something else; and a single message's first byte is
    // a MessagePack map's, never the bundle marker.
    const kinds: ((i: number, t: string) => AppMessage)[] = [
      (i, t) => msg(i, t),
      (i) => ({ t: "rcpt", ids: [(msg(i) as { id: string }).id] }),
      () => ({ t: "sync" }),
    ];
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 5_000 }), { minLength: 2, maxLength: 12 }),
        fc.nat(kinds.length - 1),
        (texts, kind) => {
          const m = texts.map((t, i) => msg(i, t));
          const old = decodeAppMessage(encodeBundle(m.map(encodeAppMessage)));
          expect(old.ok ? "reads" : old.error.code).toBe("LOFT_ERR_PADDING");
          const single = encodeAppMessage(kinds[kind]!(0, texts[0]!));
          expect(single[0]! & 0xf0).toBe(0x80);
          expect(decodeAppPlaintext(single)).toEqual({ ok: true, value: [kinds[kind]!(0, texts[0]!)] });
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("chat.bundle counts only as exactly 01", () => {
    expect(bundlesExtension()[BUNDLES_EXTENSION]).toEqual(Uint8Array.of(1));
    expect(peerReadsBundles(bundlesExtension())).toBe(true);
    for (const value of [Uint8Array.of(), Uint8Array.of(2), Uint8Array.of(1, 2), Uint8Array.of(0)])
      expect(peerReadsBundles({ [BUNDLES_EXTENSION]: value })).toBe(false);
    expect(peerReadsBundles({})).toBe(false);
    expect(peerReadsBundles(ratchetVersionsExtension())).toBe(false);
  });
});

async function ratchets() {
  const secret = new Uint8Array(32).fill(5);
  const ad = new Uint8Array(64).fill(3);
  const bobKeys = await generateRatchetKeyPair();
  const alice = await ratchetFromSecret({ role: "alice", secret, bobRatchetPublic: bobKeys.publicKey, ad });
  const bob = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: bobKeys, ad });
  if (!alice.ok || !bob.ok) throw new Error("ratchet setup");
  return { alice: alice.value, bob: bob.value };
}

async function receiver() {
  const { alice, bob } = await ratchets();
  const storage = new MemoryStorage("");
  const events: EngineEvent[] = [];
  const logs: string[] = [];
  const ctx = {
    cfg: { log: (s: string) => logs.push(s) },
    stopped: false,
    storage,
    listeners: new Set([(e: EngineEvent) => events.push(e)]),
    lastStamp: 0,
  } as unknown as MessagesContext;
  const live = {
    session: { state: "open", writable: true, remoteExtensions: {}, close: () => {} },
    sent: new Set(),
  } as unknown as Live;
  const peer = {
    id: "peer",
    name: "Peer",
    ratchet: { id: new Uint8Array(16), state: bob },
    queue: Promise.resolve(),
    receipts: new Set(),
    blocked: false,
    live,
  } as unknown as Peer;
  let sender = alice;
  const sealBundle = async (plaintext: Uint8Array) => {
    const s = await ratchetEncrypt(sender, plaintext, Date.now());
    sender = s.state;
    return s.message;
  };
  const texts = () =>
    [...storage.messages.values()]
      .filter((m) => m.direction === "in")
      .sort((x, y) => x.at - y.at)
      .map((m) => m.text);
  return { ctx, storage, events, logs, live, peer, sealBundle, texts };
}

describe("receive: a bundle", () => {
  it("stores, shows and receipts each message, in order; a replay of it is dropped", async () => {
    const { ctx, storage, events, live, peer, sealBundle, texts } = await receiver();
    const burst = msgs(5);
    const sealed = await sealBundle(encodeBundle(burst.map(encodeAppMessage)));
    const out = await receive(ctx, peer, live, sealed);
    expect(texts()).toEqual(burst.map((m) => (m as { text: string }).text));
    const shown = events
      .filter((e) => e.type === "message")
      .map((e) => (e as { message: StoredMessage }).message);
    expect(shown.map((m) => m.remoteId)).toEqual(burst.map((m) => (m as { id: string }).id));
    expect([...peer.receipts]).toEqual(burst.map((m) => (m as { id: string }).id));
    expect(out.some((o) => o.kind === "schedule" && o.timer === "receipt")).toBe(true);
    expect(storage.sessions.has("peer")).toBe(true);
    // The same ratchet message again: a replay (LOFT_ERR_REPLAY), dropped silently, nothing new.
    expect(await receive(ctx, peer, live, sealed)).toEqual([]);
    expect(storage.messages.size).toBe(5);
    expect(events.filter((e) => e.type === "message")).toHaveLength(5);
  });

  it("two bundles read out of order (skipped message keys, Signal DR §3.5) each deliver their messages; a copy of one already read is dropped", async () => {
    const { ctx, storage, live, peer, sealBundle, texts } = await receiver();
    const first = await sealBundle(encodeBundle(msgs(2).map(encodeAppMessage)));
    const second = await sealBundle(encodeBundle([msg(2), msg(3)].map(encodeAppMessage)));
    await receive(ctx, peer, live, second);
    await receive(ctx, peer, live, first);
    expect(texts()).toEqual(["burst 2", "burst 3", "burst 0", "burst 1"]);
    expect(await receive(ctx, peer, live, second)).toEqual([]);
    expect(storage.messages.size).toBe(4);
  });

  it("with one malformed message is refused whole: nothing stored, shown or receipted; the resent messages are read", async () => {
    const { ctx, storage, events, logs, live, peer, sealBundle, texts } = await receiver();
    const burst = msgs(3);
    const padded = burst.map(encodeAppMessage);
    padded[1]![padded[1]!.length - 1] = 1; // the middle message's padding broken
    const bad = await sealBundle(encodeBundle(padded));
    expect(await receive(ctx, peer, live, bad)).toEqual([]);
    expect(storage.messages.size).toBe(0);
    expect(events.filter((e) => e.type === "message")).toEqual([]);
    expect(peer.receipts.size).toBe(0);
    // The code and what it was, not the decoder's words (they can quote what the peer sent).
    expect(logs).toEqual([
      `dropped an application message: LOFT_ERR_PADDING (a bundle of ${5 + 3 * 256} bytes)`,
    ]);
    // The ratchet went on (its key is spent and stored), the session stays: the sender, which
    // holds all three in its outbox without a receipt, sends them again and they are read.
    expect(peer.ratchet).toBeDefined();
    await receive(ctx, peer, live, await sealBundle(encodeBundle(burst.map(encodeAppMessage))));
    expect(texts()).toEqual(["burst 0", "burst 1", "burst 2"]);
    expect(peer.receipts.size).toBe(3);
  });

  it("a refused message is logged by its code, kind and length: nothing the peer wrote reaches the log", async () => {
    // A type and an id the decoder's words would quote back (valibot names what it received).
    const quoted = "PEER-WROTE-THIS";
    const { ctx, storage, logs, live, peer, sealBundle } = await receiver();
    const unknown = padToBucket(encodeCanonical({ t: quoted, id: quoted }));
    expect(decodeAppMessage(unknown)).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining(quoted) },
    });
    const badId = padToBucket(encodeCanonical({ t: "msg", id: quoted, at: 1, text: "x" }));
    const inBundle = encodeBundle([encodeAppMessage(msg(0)), badId]);
    expect(decodeAppPlaintext(inBundle)).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining(quoted) },
    });
    await receive(ctx, peer, live, await sealBundle(unknown));
    await receive(ctx, peer, live, await sealBundle(inBundle));
    expect(logs).toEqual([
      "dropped an application message: LOFT_ERR_SCHEMA (a message of 256 bytes)",
      `dropped an application message: LOFT_ERR_SCHEMA (a bundle of ${4 + 2 * 256} bytes)`,
    ]);
    expect(storage.messages.size).toBe(0);
  });

  it("whose storage fails part-way: nothing shown or receipted; the resend shows every message once, those stored before the failure too", async () => {
    // A disk that fails on the bundle's third message: the first two are stored, not shown, and
    // no receipt goes, so the sender sends all four again. Before, the resend found the first
    // two stored (copies: no event), and they were never shown until a reload.
    const { ctx, storage, events, live, peer, sealBundle, texts } = await receiver();
    const burst = msgs(4);
    const put = storage.putMessage.bind(storage);
    let puts = 0;
    storage.putMessage = (m) => (++puts === 3 ? Promise.reject(new Error("disk full")) : put(m));
    const sealed = await sealBundle(encodeBundle(burst.map(encodeAppMessage)));
    await expect(receive(ctx, peer, live, sealed)).rejects.toThrow("disk full");
    expect(texts()).toEqual(["burst 0", "burst 1"]);
    expect(events.filter((e) => e.type === "message")).toEqual([]);
    expect(peer.receipts.size).toBe(0);
    await receive(ctx, peer, live, await sealBundle(encodeBundle(burst.map(encodeAppMessage))));
    expect(texts()).toEqual(["burst 0", "burst 1", "burst 2", "burst 3"]);
    const shown = events
      .filter((e) => e.type === "message")
      .map((e) => (e as { message: StoredMessage }).message.text);
    expect(shown).toEqual(["burst 0", "burst 1", "burst 2", "burst 3"]);
    expect([...peer.receipts]).toEqual(burst.map((m) => (m as { id: string }).id));
  });
});

describe("sendApps over a Noise session: bundles only to a peer that listed chat.bundle", () => {
  async function burst(bobReadsBundles: boolean, messages: AppMessage[]) {
    const { alice, bob } = await ratchets();
    const [la, lb] = memoryLinkPair();
    const [a, b] = (await Promise.all([
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: aliceUser,
        detachedFrames: true,
        extensions: { ...ratchetVersionsExtension(), ...bundlesExtension() },
      }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: bobUser,
        detachedFrames: true,
        extensions: { ...ratchetVersionsExtension(), ...(bobReadsBundles ? bundlesExtension() : {}) },
      }),
    ])) as [Session, Session];
    try {
      expect(a.detachedFrames).toBe(true);
      const ctx = {
        cfg: { log: () => {} },
        storage: { saveSession: async () => {} },
      } as unknown as RatchetContext;
      const peer = { id: "bob", ratchet: { id: new Uint8Array(16), state: alice } } as unknown as Peer;
      await sendApps(ctx, peer, { session: a } as unknown as Live, messages);
      let state = bob;
      const read: AppMessage[][] = [];
      const sizes: number[] = [];
      // Whether each came as a detached frame (its body beside the Noise frame, session.md §5).
      const detached: boolean[] = [];
      while (read.flat().length < messages.length) {
        const frame = await b.receive();
        sizes.push(frame.length);
        detached.push(b.detachedHead(frame) !== undefined);
        const f = decodeSessionFrame(frame);
        if (!f.ok || f.value.type !== "ratchet") throw new Error("not a ratchet frame");
        const r = await ratchetDecrypt(state, f.value.message, Date.now());
        if (!r.ok) throw r.error;
        state = r.value.state;
        const apps = decodeAppPlaintext(r.value.plaintext);
        if (!apps.ok) throw apps.error;
        read.push(apps.value);
      }
      return { read, sizes, detached };
    } finally {
      a.close();
      b.close();
    }
  }

  it("a peer that reads bundles gets one ratchet message per bundle, each within one detached frame", async () => {
    // 16 KiB, 16 KiB, 16 KiB, a short one, 16 KiB, a short one: the fourth long one would not fit.
    const messages = msgs(6, (i) => (i === 3 || i === 5 ? `typed ${i}` : "z".repeat(16_000)));
    const { read, sizes, detached } = await burst(true, messages);
    expect(read.map((x) => x.length)).toEqual([4, 2]);
    expect(read.flat()).toEqual(messages);
    for (const s of sizes) expect(s).toBeLessThanOrEqual(65_498);
    expect(detached).toEqual([true, true]);
  });

  it("the longest bundle sendApps makes (64 messages, buckets adding to 65 280 bytes; the outbox sends 16 at most) still goes as one detached frame", async () => {
    // MAX_BUNDLE_BYTES with every header: type byte, the ratchet's 81-byte prefix and 16-byte tag,
    // inside one DETACHED frame (docs/protocol/session.md §5). Buckets are multiples of 256, so
    // 65 280 is the most they add up to under 65 400: 2^15 + 2^14 + 2^9 + 61 × 2^8, 2 + 64 header bytes.
    const messages = msgs(64, (i) =>
      i === 0 ? "é".repeat(9_000) : i === 1 ? "z".repeat(16_000) : i === 2 ? "y".repeat(300) : `m${i}`,
    );
    const padded = messages.map(encodeAppMessage).map((p) => p.length);
    expect(padded.slice(0, 4)).toEqual([32_768, 16_384, 512, 256]);
    expect(padded.reduce((x, y) => x + y, 0)).toBe(65_280);
    const { read, sizes, detached } = await burst(true, messages);
    expect(read.map((x) => x.length)).toEqual([64]);
    expect(read.flat()).toEqual(messages);
    expect(sizes).toEqual([1 + 81 + 2 + 64 + 65_280 + 16]);
    expect(detached).toEqual([true]);
  });

  it("a peer that did not list chat.bundle gets one ratchet message per chat message, as before", async () => {
    const messages = msgs(4);
    const { read } = await burst(false, messages);
    expect(read.map((x) => x.length)).toEqual([1, 1, 1, 1]);
    expect(read.flat()).toEqual(messages);
  });
});
