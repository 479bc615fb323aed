/**
 * Detached frames (docs/protocol/session.md §5, "Detached frames"): negotiation and fallback, the
 * link-message layout, and every way a link message can be wrong — malformed prefix, truncated or
 * extended detached part, a part swapped in from another message, replayed and reordered link
 * messages, an oversized announced length — each closing the session with its code, the messages
 * before it delivered. With real ratchet messages: a body changed in transit passes the session
 * (it is not under the Noise AEAD) and fails the ratchet's own AEAD (DR §3.5).
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { buildVectors, receiveLinkMessage, SESSION_VECTOR_FILE } from "../../scripts/gen-session-vectors.ts";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { concatBytes, equalBytes, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import type { Link } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { TAGLEN } from "../noise/primitives.ts";
import { ratchetAssociatedData, ratchetFromHandshake } from "../ratchet/bootstrap.ts";
import { MESSAGE_VERSION_2 } from "../ratchet/message.ts";
import { generateRatchetKeyPair, ratchetDecrypt, ratchetEncryptParts } from "../ratchet/ratchet.ts";
import {
  DETACHED_EXTENSION,
  DETACHED_EXTENSION_VALUE,
  DETACHED_FRAME_OVERHEAD,
  dataFrameOf,
  detachedFrameOf,
  FRAME_DETACHED,
  FrameAssembler,
  LINK_PREFIX_LEN,
  linkMessageInPlace,
  linkMessageOf,
  MAX_DATA_PAYLOAD,
  MAX_DETACHED_LINK_MESSAGE,
  MAX_DETACHED_MESSAGE,
  splitLinkMessage,
} from "./frames.ts";
import { announcesDetached, establishSession, type SessionOptions } from "./session.ts";
import { alice, bob } from "./testing.ts";

type Extra = Partial<Omit<SessionOptions, "link" | "role" | "self">>;

/** A session pair; `tamper` rewrites what the initiator's link sends after the handshake. */
async function pair(a: Extra = { detachedFrames: true }, b: Extra = { detachedFrames: true }) {
  const [la, lb] = memoryLinkPair();
  const [x, y] = await Promise.all([
    establishSession({ link: la, role: "initiator", kind: "direct", self: alice, ...a }),
    establishSession({ link: lb, role: "responder", kind: "direct", self: bob, ...b }),
  ]);
  return { a: x, b: y, la, lb };
}

/** Capture the initiator's link messages instead of sending them; `flush` sends what `edit` returns. */
function capture(link: Link) {
  const send = link.send.bind(link);
  const held: Uint8Array[] = [];
  /** Wakes a `next` waiting for more link messages. */
  let arrived = () => {};
  link.send = (m: Uint8Array) => {
    held.push(m.slice());
    arrived();
  };
  return {
    held,
    /** Wait until `n` link messages are held (on the sends themselves, not on a number of timer turns). */
    async next(n: number) {
      while (held.length < n)
        await new Promise<void>((resolve) => {
          arrived = resolve;
        });
      expect(held.length).toBeGreaterThanOrEqual(n);
    },
    deliver(messages: Uint8Array[]) {
      for (const m of messages) send(m);
    },
  };
}

type Vector = { label: string; suite: "AESGCM_SHA256" | "ChaChaPoly_BLAKE2s"; k: string; n: number };
const doc = JSON.parse(readFileSync(SESSION_VECTOR_FILE, "utf8")) as {
  frames: (Vector & { link_message: string; delivers: string })[];
  invalid: (Vector & { link_message: string; code: string; max_message_bytes?: number })[];
  announcements: { value: string; announces: boolean }[];
};
const unhex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));

const body = (n: number, fill: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + fill) & 0xff);

describe("detached frames: negotiation and layout", () => {
  it("both sides announce session.detached: messages sent detached, in order with the others", async () => {
    const { a, b, la } = await pair();
    expect(a.detachedFrames).toBe(true);
    expect(b.detachedFrames).toBe(true);
    expect(Object.hasOwn(b.remoteExtensions, DETACHED_EXTENSION)).toBe(true);
    const tap = capture(la);
    const big = body(MAX_DATA_PAYLOAD * 2 + 3, 1);
    const d1 = body(16 * 1024, 2);
    a.sendDetached([utf8("head-1")], d1);
    a.send(utf8("plain"));
    a.sendParts([utf8("pa"), utf8("rts")]);
    a.send(big);
    a.sendDetached([utf8("h"), utf8("ead-2")], body(16, 3));
    await tap.next(7); // detached, plain, parts, 3 chunks of big, detached
    // Link message 0: u16 n ‖ Noise message (n bytes) ‖ the detached bytes as they were given.
    const m0 = tap.held[0]!;
    const n = (m0[0]! << 8) | m0[1]!;
    expect(n).toBe(DETACHED_FRAME_OVERHEAD + "head-1".length + TAGLEN);
    expect(equalBytes(m0.subarray(LINK_PREFIX_LEN + n), d1)).toBe(true);
    // A plain frame: the prefix names the whole rest.
    const m1 = tap.held[1]!;
    expect((m1[0]! << 8) | m1[1]!).toBe(m1.length - LINK_PREFIX_LEN);
    tap.deliver(tap.held.splice(0));
    const got1 = await b.receive();
    expect(equalBytes(got1, concatBytes(utf8("head-1"), d1))).toBe(true);
    expect(b.detachedHead(got1) !== undefined).toBe(true);
    expect(b.detachedHead(got1)).toBe("head-1".length);
    const plain = await b.receive();
    expect(plain).toEqual(utf8("plain"));
    expect(b.detachedHead(plain) !== undefined).toBe(false);
    expect(b.detachedHead(plain)).toBeUndefined();
    expect(await b.receive()).toEqual(utf8("parts"));
    expect(equalBytes(await b.receive(), big)).toBe(true);
    const got2 = await b.receive();
    expect(equalBytes(got2, concatBytes(utf8("head-2"), body(16, 3)))).toBe(true);
    expect(b.detachedHead(got2) !== undefined).toBe(true);
    expect(b.detachedHead(got2)).toBe("head-2".length);
    // The other direction, and a message over one DETACHED frame: sent the plain way.
    const huge = body(MAX_DETACHED_MESSAGE, 4);
    b.sendDetached([utf8("x")], huge);
    const back = await a.receive();
    expect(equalBytes(back, concatBytes(utf8("x"), huge))).toBe(true);
    expect(a.detachedHead(back) !== undefined).toBe(false);
    a.close();
  });

  it.each([
    [{ detachedFrames: true }, {}],
    [{}, { detachedFrames: true }],
    [{}, {}],
  ] as const)("one side without it (%j, %j): today's framing, sendDetached is sendParts", async (x, y) => {
    const { a, b, la } = await pair(x, y);
    expect(a.detachedFrames).toBe(false);
    expect(b.detachedFrames).toBe(false);
    const tap = capture(la);
    const d = body(1000, 5);
    a.sendDetached([utf8("head")], d);
    await tap.next(1);
    expect(tap.held[0]!.length).toBe(1 + 4 + d.length + TAGLEN); // one DATA frame, all sealed
    tap.deliver(tap.held.splice(0));
    const got = await b.receive();
    expect(equalBytes(got, concatBytes(utf8("head"), d))).toBe(true);
    expect(b.detachedHead(got) !== undefined).toBe(false);
    a.close();
  });
});

describe("detached frames: a plain frame's link message built in place (the prefix in the frame's headroom)", () => {
  it("linkMessageInPlace gives linkMessageOf's bytes in the frame's own buffer, and only for a frame with headroom", () => {
    const frame = dataFrameOf([utf8("ab"), utf8("c")], 3, LINK_PREFIX_LEN);
    expect(frame.byteOffset).toBe(LINK_PREFIX_LEN);
    expect(frame.buffer.byteLength).toBe(LINK_PREFIX_LEN + 1 + 3 + TAGLEN);
    frame.fill(7, 4); // stands for the sealed bytes
    const expected = linkMessageOf(frame, undefined);
    const inPlace = linkMessageInPlace(frame);
    expect(inPlace.buffer).toBe(frame.buffer);
    expect(inPlace).toEqual(expected);
    // Without headroom, or with bytes after it in its buffer, the prefix has nowhere of ours to go.
    expect(() => linkMessageInPlace(dataFrameOf([utf8("abc")], 3))).toThrow(RangeError);
    expect(() => linkMessageInPlace(new Uint8Array(40).subarray(LINK_PREFIX_LEN, 30))).toThrow(RangeError);
    expect(() => dataFrameOf([utf8("abc")], 3, 1)).toThrow(RangeError);
  });

  const AES: SessionOptions["suites"] = ["AESGCM_SHA256"];
  const providers: [string, () => Promise<CryptoProvider>, SessionOptions["suites"], boolean][] = [
    ["noble, ChaChaPoly (seals into the frame)", async () => nobleCrypto, undefined, true],
    ["noble, AES-GCM (seals into the frame)", async () => nobleCrypto, AES, true],
    ["node:crypto, AES-GCM (seals into the frame)", createNodeCryptoProvider, AES, true],
    [
      "WebCrypto, AES-GCM (a keyed AEAD seals into a fresh buffer: copied as before)",
      createWebCryptoProvider,
      AES,
      false,
    ],
  ];
  it.each(providers)(
    "%s: the same messages delivered; sealed in place, a frame's buffer is its link message",
    async (_, make, suites, inPlace) => {
      const provider = await make();
      // Forwards every AEAD seal unchanged, noting the buffers it was asked to seal into.
      const outputs = new Set<ArrayBufferLike>();
      const noting = (aead: CryptoProvider["aes256gcm"]): CryptoProvider["aes256gcm"] => ({
        ...aead,
        seal: (key, nonce, ad, plaintext, output) => {
          if (output) outputs.add(output.buffer);
          return aead.seal(key, nonce, ad, plaintext, output);
        },
      });
      const crypto: CryptoProvider = {
        ...provider,
        aes256gcm: noting(provider.aes256gcm),
        chacha20poly1305: noting(provider.chacha20poly1305),
      };
      const both = { detachedFrames: true, crypto, ...(suites ? { suites } : {}) };
      const { a, b, la } = await pair(both, both);
      expect(a.protocolName.endsWith(suites ? "AESGCM_SHA256" : "ChaChaPoly_BLAKE2s")).toBe(true);
      const sent: Uint8Array[] = [];
      const send = la.send.bind(la);
      la.send = (m: Uint8Array) => {
        sent.push(m);
        send(m);
      };
      // One frame alone on the send chain (sealed by itself, not in a run), then a run of five.
      a.send(utf8("alone"));
      expect(await b.receive()).toEqual(utf8("alone"));
      const full = body(MAX_DATA_PAYLOAD - 2, 8);
      const big = body(MAX_DATA_PAYLOAD + 5, 9);
      a.sendParts([utf8("pa"), full]); // one full DATA frame
      a.send(utf8("plain"));
      a.send(big); // two CHUNK frames
      a.sendDetached([utf8("h")], body(32, 7)); // DETACHED: its part follows the sealed frame
      expect(equalBytes(await b.receive(), concatBytes(utf8("pa"), full))).toBe(true);
      expect(await b.receive()).toEqual(utf8("plain"));
      expect(equalBytes(await b.receive(), big)).toBe(true);
      expect(equalBytes(await b.receive(), concatBytes(utf8("h"), body(32, 7)))).toBe(true);
      expect(sent).toHaveLength(6);
      for (const m of sent) {
        expect(m.byteOffset === 0 && m.buffer.byteLength === m.length).toBe(true);
        expect((m[0]! << 8) | m[1]!).toBeLessThanOrEqual(m.length - LINK_PREFIX_LEN);
      }
      // DATA alone, then DATA, DATA, CHUNK, CHUNK: the buffer sealed into, where the AEAD sealed in
      // place; DETACHED never.
      expect(sent.map((m) => outputs.has(m.buffer))).toEqual([
        inPlace,
        inPlace,
        inPlace,
        inPlace,
        inPlace,
        false,
      ]);
      a.close();
    },
  );
});

describe("detached frames: a link with a message size limit (Link.maxMessageSize, WebRTC's a=max-message-size)", () => {
  it.each([
    [65536, false], // RFC 8841's default when the SDP names none: under the 65537-byte link message
    [MAX_DETACHED_LINK_MESSAGE, true],
    [Number.POSITIVE_INFINITY, true],
  ])("maxMessageSize %d on one side's link: detached frames %s on both sides", async (size, expected) => {
    for (const limited of ["initiator", "responder"] as const) {
      const [la, lb] = memoryLinkPair();
      Object.defineProperty(limited === "initiator" ? la : lb, "maxMessageSize", { value: size });
      const [a, b] = await Promise.all([
        establishSession({ link: la, role: "initiator", kind: "direct", self: alice, detachedFrames: true }),
        establishSession({ link: lb, role: "responder", kind: "direct", self: bob, detachedFrames: true }),
      ]);
      expect([a.detachedFrames, b.detachedFrames], limited).toEqual([expected, expected]);
      // The side that could not carry it did not announce it.
      const side = limited === "initiator" ? b : a;
      expect(Object.hasOwn(side.remoteExtensions, DETACHED_EXTENSION), limited).toBe(expected);
      // Either way a message gets through: detached, or sendParts' plain frame.
      a.sendDetached([utf8("h")], body(64, 1));
      const got = await b.receive();
      expect(equalBytes(got, concatBytes(utf8("h"), body(64, 1)))).toBe(true);
      expect(b.detachedHead(got) !== undefined).toBe(expected);
      a.close();
    }
  });
});

describe("detached frames: what the network can do", () => {
  /** Two detached messages and a plain one, held; `edit` changes them before delivery. */
  async function attempt(
    edit: (held: Uint8Array[]) => Uint8Array[],
    bOpts: Extra = { detachedFrames: true },
  ) {
    const { a, b, la } = await pair({ detachedFrames: true }, bOpts);
    const tap = capture(la);
    a.sendDetached([utf8("one")], body(64, 1));
    a.sendDetached([utf8("two")], body(64, 2));
    a.send(utf8("three"));
    await tap.next(3);
    tap.deliver(edit(tap.held.splice(0)));
    const received: string[] = [];
    for (let i = 0; i < 3; i++) {
      try {
        const m = await b.receive();
        received.push(new TextDecoder().decode(m.subarray(0, 3)));
      } catch {
        break;
      }
    }
    a.close();
    const info = await b.closed;
    return { received, reason: received.length === 3 ? "all" : info.reason };
  }

  it("untouched: all three arrive", async () => {
    expect(await attempt((h) => h)).toEqual({ received: ["one", "two", "thr"], reason: "all" });
  });

  it("the detached part truncated or extended: LOFT_ERR_MALFORMED, the message before it delivered", async () => {
    const cut = await attempt(([m0, m1, m2]) => [m0!, m1!.subarray(0, m1!.length - 1), m2!]);
    expect(cut).toEqual({ received: ["one"], reason: "LOFT_ERR_MALFORMED" });
    const grown = await attempt(([m0, m1, m2]) => [m0!, concatBytes(m1!, Uint8Array.of(0)), m2!]);
    expect(grown).toEqual({ received: ["one"], reason: "LOFT_ERR_MALFORMED" });
  });

  it("bytes after a plain frame: LOFT_ERR_MALFORMED", async () => {
    const r = await attempt(([m0, m1, m2]) => [m0!, m1!, concatBytes(m2!, Uint8Array.of(1))]);
    expect(r).toEqual({ received: ["one", "two"], reason: "LOFT_ERR_MALFORMED" });
  });

  it("a length prefix past the end, or under a tag, or a message under prefix + tag: LOFT_ERR_MALFORMED", async () => {
    /** `m` with its u16 BE length prefix replaced by `length`. */
    const withLength = (m: Uint8Array, length: number) => {
      const x = m.slice();
      x[0] = length >> 8;
      x[1] = length & 0xff;
      return x;
    };
    const past = await attempt(([m0, m1]) => [m0!, withLength(m1!, 0xffff)]);
    expect(past).toEqual({ received: ["one"], reason: "LOFT_ERR_MALFORMED" });
    const under = await attempt(([m0, m1]) => [m0!, withLength(m1!, 15)]);
    expect(under).toEqual({ received: ["one"], reason: "LOFT_ERR_MALFORMED" });
    const short = await attempt(([m0]) => [m0!, new Uint8Array(17)]);
    expect(short).toEqual({ received: ["one"], reason: "LOFT_ERR_MALFORMED" });
  });

  it("the length prefix moved (bytes shifted between the Noise message and the part): LOFT_ERR_DECRYPT", async () => {
    const r = await attempt(([m0, m1, m2]) => {
      const x = m1!.slice();
      x[1] = x[1]! + 1;
      return [m0!, x, m2!];
    });
    expect(r).toEqual({ received: ["one"], reason: "LOFT_ERR_DECRYPT" });
  });

  it("detached parts swapped between two messages: the authenticated tail differs, LOFT_ERR_DECRYPT", async () => {
    const r = await attempt(([m0, m1, m2]) => {
      const n0 = (m0![0]! << 8) | m0![1]!;
      const n1 = (m1![0]! << 8) | m1![1]!;
      const x = concatBytes(m0!.subarray(0, 2 + n0), m1!.subarray(2 + n1));
      const y = concatBytes(m1!.subarray(0, 2 + n1), m0!.subarray(2 + n0));
      return [x, y, m2!];
    });
    expect(r).toEqual({ received: [], reason: "LOFT_ERR_DECRYPT" });
  });

  it("a link message replayed, or two reordered: the Noise nonce refuses it, LOFT_ERR_DECRYPT", async () => {
    const replay = await attempt(([m0, m1, m2]) => [m0!, m0!, m1!, m2!]);
    expect(replay).toEqual({ received: ["one"], reason: "LOFT_ERR_DECRYPT" });
    const reorder = await attempt(([m0, m1, m2]) => [m1!, m0!, m2!]);
    expect(reorder).toEqual({ received: [], reason: "LOFT_ERR_DECRYPT" });
  });

  it("a detached part over the receiver's maxMessageBytes: LOFT_ERR_FRAME_TOO_LARGE before it is assembled", async () => {
    const { a, b } = await pair({ detachedFrames: true }, { detachedFrames: true, maxMessageBytes: 40 });
    a.sendDetached([utf8("head")], body(64, 1));
    await expect(b.receive()).rejects.toThrow(/LOFT_ERR_LINK_CLOSED/);
    expect((await b.closed).reason).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("a detached link message to a session without the framing: closed (its Noise message does not open)", async () => {
    // A lying or broken peer: it announced nothing (so neither session switched) yet sends the
    // detached layout — its Noise message, at the right key and nonce, behind a length prefix and
    // followed by a part. The receiver reads the whole link message as one Noise message.
    const { a, b, la } = await pair({}, {});
    expect([a.detachedFrames, b.detachedFrames]).toEqual([false, false]);
    const tap = capture(la);
    a.send(utf8("head"));
    await tap.next(1);
    tap.deliver([linkMessageOf(tap.held[0]!, body(64, 1))]);
    expect((await b.closed).reason).toBe("LOFT_ERR_DECRYPT");
    a.close();
  });

  it("session.detached in extensions (announced without being used) is refused: only detachedFrames announces it", async () => {
    const [la] = memoryLinkPair();
    await expect(
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: alice,
        extensions: { [DETACHED_EXTENSION]: Uint8Array.of(1) },
      }),
    ).rejects.toThrow(RangeError);
    la.close();
  });

  it("the extension counts only when its value is exactly 01 (session.md §5; the vectors' announcements)", () => {
    expect(announcesDetached({ [DETACHED_EXTENSION]: DETACHED_EXTENSION_VALUE })).toBe(true);
    for (const value of [[], [0x01, 0x02], [0x02, 0x01], [0x02], [0x00, 0x01], [0x01, 0x01]])
      expect(announcesDetached({ [DETACHED_EXTENSION]: Uint8Array.from(value) }), `${value}`).toBe(false);
    expect(announcesDetached({ "session.detached2": Uint8Array.of(1) })).toBe(false);
    expect(announcesDetached({})).toBe(false);
    // The published rule agrees with the code, value by value.
    for (const x of doc.announcements)
      expect(announcesDetached({ [DETACHED_EXTENSION]: unhex(x.value) }), x.value).toBe(x.announces);
  });

  it("head + D over the sender's limit (65 498 bytes) is LOFT_ERR_FRAME_TOO_LARGE at any maxMessageBytes", () => {
    const frameOf = (headLen: number, d: number) => {
      const f = new Uint8Array(DETACHED_FRAME_OVERHEAD + headLen);
      f[0] = FRAME_DETACHED;
      new DataView(f.buffer).setUint32(1, d);
      f.fill(7, DETACHED_FRAME_OVERHEAD);
      return f;
    };
    const rest = (d: number) => body(d, 9).fill(0, d - 16); // its tail: 16 zero bytes, as in frameOf
    const at = MAX_DETACHED_MESSAGE - 82;
    const ok = new FrameAssembler(16 * 1024 * 1024).push(frameOf(82, at), rest(at));
    expect(ok.ok && ok.value.kind === "message" && ok.value.detached?.head).toBe(82);
    const over = new FrameAssembler(16 * 1024 * 1024).push(frameOf(82, at + 1), rest(at + 1));
    expect(over.ok ? "delivered" : over.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });
});

describe("detached frames carrying ratchet messages (the chat path)", () => {
  it("a body changed in transit passes the session and fails the ratchet's AEAD; the next message still opens", async () => {
    const ad = ratchetAssociatedData(new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb2));
    const exported = new Uint8Array(32).fill(7);
    const bobKeys = await generateRatchetKeyPair();
    const ok = <T>(r: { ok: true; value: T } | { ok: false; error: Error }): T => {
      if (!r.ok) throw r.error;
      return r.value;
    };
    let sender = ok(
      await ratchetFromHandshake({
        role: "initiator",
        exported,
        ad,
        responderRatchetPublic: bobKeys.publicKey,
      }),
    );
    let receiver = ok(
      await ratchetFromHandshake({ role: "responder", exported, ad, ratchetKeyPair: bobKeys }),
    );
    const { a, b, la } = await pair();
    const tap = capture(la);
    for (const text of ["first", "second"]) {
      const m = await ratchetEncryptParts(sender, utf8(text), 0, { messageVersion: MESSAGE_VERSION_2 });
      sender = m.state;
      a.sendDetached([Uint8Array.of(0x02), m.prefix], m.body);
    }
    await tap.next(2);
    const [m0, m1] = tap.held.splice(0);
    const x = m0!.slice();
    x[x.length - 20]! ^= 1; // a ciphertext byte of the body, not its tag
    tap.deliver([x, m1!]);
    const first = await b.receive();
    expect(b.detachedHead(first) !== undefined).toBe(true);
    const bad = await ratchetDecrypt(receiver, first.subarray(1), 0);
    expect(bad.ok ? "opened" : bad.error.code).toBe("LOFT_ERR_DECRYPT");
    // A failed open leaves the receiver's state as it was (core/ratchet): the second message opens.
    const second = ok(await ratchetDecrypt(receiver, (await b.receive()).subarray(1), 0));
    receiver = second.state;
    expect(new TextDecoder().decode(second.plaintext)).toBe("second");
    a.close();
  });
});

describe("detached frames: decoders under fuzz", () => {
  it("splitLinkMessage: never throws; a split is exact (prefix + Noise message + rest)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = splitLinkMessage(bytes);
        if (!r.ok) {
          expect(r.error.code).toBe("LOFT_ERR_MALFORMED");
          return;
        }
        expect(r.value.sealed.length).toBe((bytes[0]! << 8) | bytes[1]!);
        expect(r.value.sealed.length).toBeGreaterThanOrEqual(TAGLEN);
        expect(LINK_PREFIX_LEN + r.value.sealed.length + r.value.rest.length).toBe(bytes.length);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("FrameAssembler.push with a detached part: never throws; a message only when lengths and tail match", () => {
    const valid = (headLen: number, restLen: number, fill: number) => {
      const rest = body(restLen, fill);
      const frame = detachedFrameOf([body(headLen, fill + 1)], rest);
      return { plaintext: frame.subarray(0, frame.length - TAGLEN), rest };
    };
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("none" as const) }),
      fc.record({
        kind: fc.constant("flip" as const),
        at: fc.nat(),
        bit: fc.integer({ min: 0, max: 7 }),
        inRest: fc.boolean(),
      }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(), inRest: fc.boolean() }),
      fc.record({
        kind: fc.constant("extend" as const),
        extra: fc.uint8Array({ minLength: 1, maxLength: 20 }),
      }),
      fc.record({
        kind: fc.constant("random" as const),
        plaintext: fc.uint8Array({ maxLength: 80 }),
        rest: fc.uint8Array({ maxLength: 80 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 16, max: 120 }),
        fc.nat(255),
        mutation,
        (h, d, fill, mut) => {
          let { plaintext, rest }: { plaintext: Uint8Array; rest: Uint8Array } = valid(h, d, fill);
          let changed = true;
          if (mut.kind === "none") changed = false;
          else if (mut.kind === "flip") {
            const target = mut.inRest ? rest.slice() : plaintext.slice();
            target[mut.at % target.length]! ^= 1 << mut.bit;
            if (mut.inRest) rest = target;
            else plaintext = target;
          } else if (mut.kind === "cut") {
            if (mut.inRest) rest = rest.subarray(0, mut.at % rest.length);
            else plaintext = plaintext.subarray(0, mut.at % plaintext.length);
          } else if (mut.kind === "extend") rest = concatBytes(rest, mut.extra);
          else ({ plaintext, rest } = { plaintext: mut.plaintext, rest: mut.rest });
          const r = new FrameAssembler(200).push(plaintext, rest);
          if (!changed) {
            expect(r.ok && r.value.kind === "message" && r.value.detached?.head).toBe(h);
            return;
          }
          if (r.ok && r.value.kind === "message" && r.value.detached) {
            // Only a flip inside the detached part's ciphertext (not its tail) gets through: the
            // ratchet's AEAD is what refuses it (the test above).
            // What gets through: a change inside the detached part's ciphertext (its tail is
            // checked), which the ratchet's AEAD refuses (the test above), or a change of the head,
            // which in a session is under the Noise AEAD. Never a part of another length.
            expect(mut.kind === "extend" || (mut.kind === "cut" && mut.inRest)).toBe(false);
            expect(r.value.message.length).toBe(plaintext.length - DETACHED_FRAME_OVERHEAD + rest.length);
          } else if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a DETACHED frame where no detached framing was negotiated: LOFT_ERR_UNKNOWN_TYPE", () => {
    const frame = detachedFrameOf([utf8("h")], body(16, 0));
    const r = new FrameAssembler(1000).push(frame.subarray(0, frame.length - TAGLEN));
    expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(frame[0]).toBe(FRAME_DETACHED);
  });
});

describe("detached frames: the published vectors (docs/vectors/session-detached-v1.json)", () => {
  it("the generator gives the committed file byte for byte", async () => {
    expect(await buildVectors()).toBe(readFileSync(SESSION_VECTOR_FILE, "utf8"));
  });

  it("every link message is received as its message; every invalid one gives its code", async () => {
    for (const f of doc.frames)
      expect(await receiveLinkMessage(f.suite, unhex(f.k), f.n, unhex(f.link_message)), f.label).toBe(
        f.delivers,
      );
    for (const x of doc.invalid) {
      const got = await receiveLinkMessage(
        x.suite,
        unhex(x.k),
        x.n,
        unhex(x.link_message),
        x.max_message_bytes,
      );
      expect(/^[0-9a-f]+$/.test(got) ? "delivered" : got, x.label).toBe(x.code);
    }
    expect(doc.invalid.map((x) => x.code)).toContain("LOFT_ERR_FRAME_TOO_LARGE");
  });
});
