/**
 * Mailbox bodies, queue records, prekey publication entries and contact-address refs
 * (web/src/engine/mailbox.ts, prekeys.ts): round trips, the byte examples of
 * docs/protocol/mailbox.md, and decoders fed garbage; the `mbox` a live session sends (queues.ts
 * `announce`) over real Noise sessions and ratchets, with and without the contact's `mbox.order`.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { padToBucket } from "../../../core/codec/padding.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import { createUserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import {
  createPrekeyStore,
  decodePrekeyBundle,
  initiateSession,
  replenishOneTimePrekeys,
} from "../../../core/prekey/index.ts";
import { generateRatchetKeyPair, ratchetDecrypt, ratchetFromSecret } from "../../../core/ratchet/index.ts";
import { MAX_BODY } from "../../../core/relay/protocol.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import { alice as aliceUser, bob as bobUser } from "../../../core/session/testing.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { encodeSignalPayload } from "../net/signal-payload.ts";
import type { EngineContext, Live, Peer } from "./context.ts";
import {
  announcementOf,
  decodeMailboxBody,
  decodeRelayHealth,
  decodeRx,
  decodeTx,
  encodeRelayHealth,
  encodeRx,
  encodeTx,
  introBody,
  isMailboxUrl,
  MAILBOX_BODY,
  MAX_HEALTH_RELAYS,
  MAX_PART,
  MBOX_ORDER_EXTENSION,
  mailboxBodySize,
  mailboxName,
  mboxOrderExtension,
  PieceBuffer,
  peerReadsOrder,
  type RxQueue,
  ratchetBodies,
  readsOrder,
  SECRET,
} from "./mailbox.ts";
import {
  decodeAddressRef,
  decodePrekeyState,
  encodeAddressRef,
  encodePrekeyState,
  fetchedBundle,
  oneTimeEntries,
  prekeyRatchetId,
  publishedBundle,
} from "./prekeys.ts";
import { announce } from "./queues.ts";
import { holdMailbox, rereadMailbox, waitsForHeld } from "./relay-mailbox.ts";
import { encodeRoomFrame } from "./rooms/wire.ts";
import { decodeAppMessage, decodeSessionFrame, encodeAppMessage } from "./wire.ts";

const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");
const doc = readFileSync(new URL("../../../docs/protocol/mailbox.md", import.meta.url), "utf8");
const SID = new Uint8Array(24).fill(0x11);
const URL_ = "wss://r.example/relay";

describe("mailbox bodies", () => {
  it("every body is 16382 bytes; small messages take one, large ones pieces that reassemble", async () => {
    const small = new Uint8Array(300).fill(7);
    const [one, ...none] = ratchetBodies(small);
    expect(none).toEqual([]);
    expect(one!.length).toBe(MAX_BODY);
    expect(decodeMailboxBody(one!)).toEqual({
      ok: true,
      value: { type: "ratchet", part: small, last: true },
    });

    const big = Uint8Array.from({ length: 3 * MAX_PART + 5 }, (_, i) => i & 0xff);
    const bodies = ratchetBodies(big);
    expect(bodies).toHaveLength(4);
    const buf = new PieceBuffer(1 << 20);
    let whole: Uint8Array | undefined;
    bodies.forEach((b, i) => {
      expect(b.length).toBe(MAX_BODY);
      const d = decodeMailboxBody(b);
      if (!d.ok || d.value.type !== "ratchet") throw new Error("not a ratchet body");
      const r = buf.add(new Uint8Array([i]), d.value.part, d.value.last);
      if (r) {
        expect(r.ids).toHaveLength(4);
        whole = r.message;
      }
    });
    expect(whole).toEqual(big);
    // A part exactly MAX_PART long still fits one body.
    expect(ratchetBodies(new Uint8Array(MAX_PART))).toHaveLength(1);

    const intro = decodeMailboxBody(introBody(new Uint8Array([1, 2, 3])));
    expect(intro).toEqual({ ok: true, value: { type: "intro", message: new Uint8Array([1, 2, 3]) } });
  });

  it("the piece buffer refuses to grow beyond its limit", async () => {
    const buf = new PieceBuffer(10);
    expect(buf.add(new Uint8Array([1]), new Uint8Array(6), false)).toBeUndefined();
    const r = buf.add(new Uint8Array([2]), new Uint8Array(6), true);
    expect(r?.tooLarge).toBe(true);
    expect(r?.ids).toHaveLength(2);
  });

  it("a held mailbox waits for its held body only: others of that queue wait, it ends the hold, other queues pass", () => {
    const [rid, other, held, later] = [1, 2, 3, 4].map((n) => new Uint8Array(24).fill(n)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    const log: string[] = [];
    const ctx = { cfg: { log: (l: string) => log.push(l), relayBackoffInitialMs: 10 } };
    const peer = { id: "c".repeat(64), pieces: new PieceBuffer(1 << 20) } as unknown as Peer;
    expect(holdMailbox(ctx as never, peer, "failed", { msgId: held, rid })).toHaveLength(1);
    // A push still in flight from before the re-read's SUB: it must not be read before `held`.
    expect(waitsForHeld(peer, { msgId: later, recipientId: rid })).toBe(true);
    expect(waitsForHeld(peer, { msgId: later, recipientId: other })).toBe(false);
    // Each re-read while it is away asks again, with more patience; then the hold gives up.
    for (let i = 1; i <= 4; i++) {
      expect(rereadMailbox(ctx as never, peer)).toHaveLength(1);
      expect(peer.rxHeld?.rereads).toBe(i);
    }
    expect(waitsForHeld(peer, { msgId: later, recipientId: rid })).toBe(true);
    expect(waitsForHeld(peer, { msgId: held, recipientId: rid })).toBe(false); // it came back
    expect(peer.rxHeld).toBeUndefined();
    expect(waitsForHeld(peer, { msgId: later, recipientId: rid })).toBe(false);
    holdMailbox(ctx as never, peer, "failed", { msgId: held, rid });
    for (let i = 0; i < 4; i++) rereadMailbox(ctx as never, peer);
    expect(rereadMailbox(ctx as never, peer)).toEqual([]);
    expect(peer.rxHeld).toBeUndefined();
    expect(log.some((l) => /did not come back/.test(l))).toBe(true);
  });

  it("refuses bad padding, wrong sizes and unknown types; never throws on garbage", async () => {
    const ok = ratchetBodies(new Uint8Array([5]))[0]!;
    expect(decodeMailboxBody(ok.subarray(1)).ok).toBe(false);
    const noMarker = ok.slice();
    noMarker[2] = 0;
    expect(decodeMailboxBody(noMarker).ok).toBe(false);
    const unknown = ok.slice();
    unknown[0] = 0x7f;
    const u = decodeMailboxBody(unknown);
    expect(!u.ok && u.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(MAX_BODY), (head, fill) => {
        const b = new Uint8Array(MAX_BODY);
        b.set(head.subarray(0, MAX_BODY));
        if (fill < MAX_BODY) b[fill] = 0x80;
        decodeMailboxBody(b);
        decodeMailboxBody(head);
      }),
      { numRuns: Math.min(FUZZ_RUNS, 2000) },
    );
  });
});

describe("queue records and references", () => {
  it("rx / tx records round-trip and copy their keys out", async () => {
    const rx = {
      url: URL_,
      queue: {
        recipientId: new Uint8Array(24).fill(1),
        senderId: SID,
        recipientAuthSecret: new Uint8Array(32).fill(2),
        rcvKey: new Uint8Array(32).fill(3),
      },
      senderSecret: new Uint8Array(32).fill(4),
    };
    const bytes = encodeRx(rx);
    const back = decodeRx(bytes);
    bytes.fill(0);
    expect(back).toEqual({ ok: true, value: rx });
    const tx = { url: URL_, queue: { senderId: SID, senderAuthSecret: new Uint8Array(32).fill(5) } };
    expect(decodeTx(encodeTx(tx))).toEqual({ ok: true, value: tx });
    expect(decodeTx(encodeRx(rx)).ok).toBe(false);
    expect(decodeRx(new Uint8Array([0xc1])).ok).toBe(false);
    // With the queue's order (rooms.md §9, "The order of announcements"); a record from before it
    // has none and reads as it did.
    const rxN = { ...rx, n: 1_765_000_000_000 };
    expect(decodeRx(encodeRx(rxN))).toEqual({ ok: true, value: rxN });
    const txN = { ...tx, n: 7 };
    expect(decodeTx(encodeTx(txN))).toEqual({ ok: true, value: txN });
    expect("n" in (decodeTx(encodeTx(tx)) as { value: object }).value).toBe(false);
    for (const n of [-1, 0.5, "1"])
      expect(decodeTx(encodeCanonical({ k: tx.queue.senderAuthSecret, n, s: SID, u: URL_, v: 1 })).ok).toBe(
        false,
      );
  });

  it("the examples of docs/protocol/mailbox.md", async () => {
    const ref = encodeAddressRef({ url: URL_, sid: SID });
    expect(doc).toContain(hex(ref));
    expect(decodeAddressRef(ref)).toEqual({ ok: true, value: { url: URL_, sid: SID } });
    expect(decodeAddressRef(encodeCanonical({ s: SID, u: "http://x" })).ok).toBe(false);
    const offer = encodeSignalPayload({
      kind: "relay-offer",
      conn: new Uint8Array(8).fill(0xab),
      sid: SID,
      url: URL_,
    });
    expect(doc).toContain(hex(offer));
    // The `mbox` example, with the runs of 0x22 and 0x11 abbreviated as in the page.
    const mbox = hex(encodeCanonical({ t: "mbox", u: URL_, s: SID, k: new Uint8Array(32).fill(0x22) }));
    const abbreviated = mbox.replace(/(22 ){31}22/, "22 … 22").replace(/(11 ){23}11/, "11 … 11");
    expect(doc).toContain(abbreviated);
  });

  it("`mbox` and `intro` application messages round-trip", async () => {
    const k = new Uint8Array(32).fill(9);
    for (const m of [
      { t: "mbox" as const, u: URL_, s: SID, k },
      { t: "intro" as const, i: new Uint8Array(200).fill(1), u: URL_, s: SID, k },
      { t: "mbox" as const, u: URL_, s: SID, k, n: 1_765_000_000_000 },
      { t: "mbox" as const, u: URL_, s: SID, k, n: 0 },
    ])
      expect(decodeAppMessage(encodeAppMessage(m))).toEqual({ ok: true, value: m });
  });

  it("fuzz: any `n` in an `mbox` and a `tx` record is taken iff it is a safe uint, and what is taken re-encodes to itself; mutated, never a throw", () => {
    const k = new Uint8Array(32).fill(9);
    const anyN = fc.oneof(
      fc.nat(),
      fc.integer(),
      fc.maxSafeNat(),
      fc.double(),
      fc.constantFrom(2 ** 53 - 1, 2 ** 53, 2 ** 64, -0, Number.NaN, Number.POSITIVE_INFINITY),
      fc.string({ maxLength: 4 }),
      fc.constant(null),
    );
    const safeUint = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
    fc.assert(
      fc.property(anyN, (n) => {
        const bytes = padToBucket(encodeCanonical({ k, n, s: SID, t: "mbox", u: URL_ }));
        const r = decodeAppMessage(bytes);
        if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
        expect(r.ok).toBe(safeUint(n));
        if (r.ok) expect(hex(encodeAppMessage(r.value))).toBe(hex(bytes));
        const rec = decodeTx(encodeCanonical({ k, n, s: SID, u: URL_, v: 1 }));
        expect(rec.ok).toBe(r.ok);
      }),
      { numRuns: FUZZ_RUNS },
    );
    const base = encodeAppMessage({ t: "mbox", u: URL_, s: SID, k, n: 1_765_000_000_000 });
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const m = base.slice();
        m[at]! ^= x;
        const r = decodeAppMessage(m);
        if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
        else expect(hex(encodeAppMessage(r.value))).toBe(hex(m));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("an `mbox` order that is not a uint, or not in its smallest form, is refused with a typed error", () => {
    const k = new Uint8Array(32).fill(9);
    const code = (b: Uint8Array) => {
      const r = decodeAppMessage(padToBucket(b));
      return r.ok ? "ok" : r.error.code;
    };
    for (const n of [-1, 1.5, 2 ** 53, "1", new Uint8Array(1)])
      expect(code(encodeCanonical({ k, n, s: SID, t: "mbox", u: URL_ }))).toBe("LOFT_ERR_SCHEMA");
    // n = 1 written as a uint64 (0xcf …) rather than a fixint: not canonical.
    const fine = encodeCanonical({ k, n: 1, s: SID, t: "mbox", u: URL_ });
    const at = 1 + 2 + 2 + 32 + 2; // map head, "k", bin head, k, "n"
    expect(fine[at]).toBe(1);
    const wide = new Uint8Array([
      ...fine.subarray(0, at),
      0xcf,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      ...fine.subarray(at + 1),
    ]);
    expect(code(fine)).toBe("ok");
    expect(code(wide)).toBe("LOFT_ERR_MALFORMED");
  });
});

describe('announcements to a peer from before `n` (mailbox.md §1, "The order of announcements")', () => {
  // The previous release reads `mbox` with a strict key set (chat-v1.json appReads: "msg with a key
  // more" is LOFT_ERR_SCHEMA) and room frames of at most 4 keys (rooms-v1.json invalidFrames):
  // an announcement with `n` is refused whole there, and every deposit to the new queue with it.
  // So a peer not known to read `n` gets the four-key forms of the vectors — byte for byte.
  const json = (name: string) =>
    JSON.parse(readFileSync(new URL(`../../../docs/vectors/${name}`, import.meta.url), "utf8")) as Record<
      string,
      { label: string; padded?: string; frame?: string }[]
    >;
  const chatV1 = json("chat-v1.json").apps!;
  const roomsV1 = json("rooms-v1.json").frames!;
  const vector = (list: typeof chatV1, label: string, field: "padded" | "frame") =>
    list.find((v) => v.label === label)?.[field] ?? `no vector ${label}`;
  const toHexStr = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const queue = (url: string, s: number, k: number): RxQueue => ({
    url,
    queue: {
      recipientId: new Uint8Array(24).fill(1),
      senderId: new Uint8Array(24).fill(s),
      recipientAuthSecret: new Uint8Array(32).fill(2),
      rcvKey: new Uint8Array(32).fill(3),
    },
    senderSecret: new Uint8Array(32).fill(k),
    n: 1_765_000_000_000,
  });
  const contactRx = queue("wss://relay.example/ws", 0x5a, 0x6b);
  const roomRx = queue("wss://relay.loft.example/relay", 0x24, 0x32);
  const mbox = (withOrder: boolean) =>
    toHexStr(encodeAppMessage({ t: "mbox", ...announcementOf(contactRx, withOrder) }));
  const roomMbox = (withOrder: boolean) =>
    toHexStr(encodeRoomFrame({ t: "room.mbox", ...announcementOf(roomRx, withOrder) }));
  const txWith = (n?: number) => ({
    url: URL_,
    queue: { senderId: SID, senderAuthSecret: new Uint8Array(32).fill(5) },
    ...(n === undefined ? {} : { n }),
  });
  const older = { remoteExtensions: {} };
  const current = { remoteExtensions: mboxOrderExtension() };

  it("live: `n` only when the peer's handshake listed mbox.order = 01", () => {
    expect(readsOrder(txWith(7), older)).toBe(false); // its queue had n, but this session's app says nothing
    expect(readsOrder(undefined, current)).toBe(true);
    expect(mbox(readsOrder(undefined, older))).toBe(vector(chatV1, "mbox", "padded"));
    expect(roomMbox(readsOrder(undefined, older))).toBe(vector(roomsV1, "room.mbox", "frame"));
    expect(mbox(readsOrder(undefined, current))).toBe(
      vector(chatV1, 'mbox with its order n (mailbox.md §1, "The order of announcements")', "padded"),
    );
    expect(roomMbox(readsOrder(undefined, current))).toBe(
      vector(roomsV1, 'room.mbox with its order n (rooms.md §9, "The order of announcements")', "frame"),
    );
    // Exactly 01: another value, or an empty one, does not announce it.
    for (const value of [new Uint8Array(0), Uint8Array.of(2), Uint8Array.of(1, 1)])
      expect(peerReadsOrder({ [MBOX_ORDER_EXTENSION]: value })).toBe(false);
  });

  it("through the mailbox (no handshake): `n` only into a queue the peer announced with one", () => {
    expect(readsOrder(undefined)).toBe(false);
    expect(readsOrder(txWith())).toBe(false);
    expect(readsOrder(txWith(0))).toBe(true);
    expect(mbox(readsOrder(txWith()))).toBe(vector(chatV1, "mbox", "padded"));
    expect(roomMbox(readsOrder(txWith()))).toBe(vector(roomsV1, "room.mbox", "frame"));
  });

  it("a queue made before `n` (no n in its record) is announced without one, whoever reads", () => {
    const { n: _, ...before } = contactRx;
    expect(toHexStr(encodeAppMessage({ t: "mbox", ...announcementOf(before, true) }))).toBe(
      vector(chatV1, "mbox", "padded"),
    );
  });

  // The engine's own path (queues.ts `announce`, what every live session sends) over real Noise
  // sessions and real ratchets: the contact's handshake payload decides, not a flag of ours. Bob
  // here is an app from before `n` when his payload leaves `mbox.order` out.
  async function liveAnnounce(bobReadsOrder: boolean, rx: RxQueue) {
    const secret = new Uint8Array(32).fill(5);
    const ad = new Uint8Array(64).fill(3);
    const bobKeys = await generateRatchetKeyPair();
    const alice = await ratchetFromSecret({ role: "alice", secret, bobRatchetPublic: bobKeys.publicKey, ad });
    const bob = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: bobKeys, ad });
    if (!alice.ok || !bob.ok) throw new Error("ratchet setup");
    const [la, lb] = memoryLinkPair();
    const [a, b] = (await Promise.all([
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: aliceUser,
        extensions: mboxOrderExtension(),
      }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: bobUser,
        extensions: bobReadsOrder ? mboxOrderExtension() : {},
      }),
    ])) as [Session, Session];
    try {
      const live = { session: a, announced: false, sent: new Set() } as unknown as Live;
      const peer = {
        id: "bob",
        queue: Promise.resolve(),
        rx,
        // Bob's queue for us came with an `n`: only his handshake says what this session reads.
        tx: txWith(7),
        live,
        ratchet: { id: new Uint8Array(16), state: alice.value },
      } as unknown as Peer;
      const saved = new Map<string, Uint8Array>();
      const ctx = {
        cfg: { log: () => {} },
        storage: {
          saveSession: async () => {},
          saveSecret: async (name: string, value: Uint8Array) => void saved.set(name, value.slice()),
        },
      } as unknown as EngineContext;
      await announce(ctx, peer, live);
      expect(live.announced).toBe(true);
      const f = decodeSessionFrame(await b.receive());
      if (!f.ok || f.value.type !== "ratchet") throw new Error("not a ratchet frame");
      const opened = await ratchetDecrypt(bob.value, f.value.message, Date.now());
      if (!opened.ok) throw opened.error;
      return { plaintext: opened.value.plaintext, saved, peer };
    } finally {
      a.close();
      b.close();
    }
  }

  for (const bobReadsOrder of [false, true])
    it(`live, the engine's announce: ${bobReadsOrder ? "the five-key mbox to a contact that listed mbox.order" : "the four-key mbox, byte for byte, to a contact whose handshake did not list mbox.order"}`, async () => {
      const { plaintext, saved } = await liveAnnounce(bobReadsOrder, { ...contactRx });
      expect(toHexStr(plaintext)).toBe(
        bobReadsOrder
          ? vector(chatV1, 'mbox with its order n (mailbox.md §1, "The order of announcements")', "padded")
          : vector(chatV1, "mbox", "padded"),
      );
      expect(saved.size).toBe(0); // its n was stored with it when it was made
    });

  it("live, a queue of ours made before `n` gets one, stored, when first announced to a contact that reads it — never to one that does not", async () => {
    // Without it the contact holds our queue without `n` and tells us its moves through our mailbox
    // without one (readsOrder), so an older one read late is taken: the order would be used by no
    // pair made before `n` until its queue moved. Before: announced without one, whoever read.
    const { n: _, ...made } = contactRx;
    const old = await liveAnnounce(false, { ...made });
    expect(toHexStr(old.plaintext)).toBe(vector(chatV1, "mbox", "padded"));
    expect([old.saved.size, old.peer.rx?.n]).toEqual([0, undefined]);
    const before = Date.now();
    const { plaintext, saved, peer } = await liveAnnounce(true, { ...made });
    const m = decodeAppMessage(plaintext);
    if (!m.ok || m.value.t !== "mbox") throw new Error("not an mbox");
    expect(m.value.n).toBeGreaterThanOrEqual(before);
    expect(peer.rx?.n).toBe(m.value.n);
    const stored = decodeRx(saved.get(SECRET.rx("bob"))!);
    expect(stored.ok && stored.value.n).toBe(m.value.n);
    expect(stored.ok && toHexStr(stored.value.queue.recipientId)).toBe(toHexStr(made.queue.recipientId));
  });
});

describe('the relay health record (docs/protocol/mailbox.md §1, "Moving off a dead relay")', () => {
  it("round-trips sorted by URL, matches the page's example, and refuses other forms with typed errors", () => {
    const one = encodeRelayHealth(new Map([[URL_, 1_700_000_000_000]]));
    expect(doc).toContain(hex(one));
    const two = new Map([
      ["wss://z.example/relay", 5],
      [URL_, 1_700_000_000_000],
    ]);
    const back = decodeRelayHealth(encodeRelayHealth(two));
    expect(back.ok && [...back.value]).toEqual([...two].sort((x, y) => (x[0] < y[0] ? -1 : 1)));
    expect(decodeRelayHealth(encodeRelayHealth(new Map()))).toEqual({ ok: true, value: new Map() });
    const code = (b: Uint8Array) => {
      const r = decodeRelayHealth(b);
      return r.ok ? "ok" : r.error.code;
    };
    // Unsorted, repeated, a negative or fractional time, an empty or long URL, an extra field.
    expect(
      code(
        encodeCanonical({
          v: 1,
          d: [
            ["wss://z", 1],
            ["wss://a", 1],
          ],
        }),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(
      code(
        encodeCanonical({
          v: 1,
          d: [
            ["wss://a", 1],
            ["wss://a", 2],
          ],
        }),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(code(encodeCanonical({ v: 1, d: [["wss://a", -1]] }))).toBe("LOFT_ERR_SCHEMA");
    expect(code(encodeCanonical({ v: 1, d: [["wss://a", 1.5]] }))).toBe("LOFT_ERR_SCHEMA");
    expect(code(encodeCanonical({ v: 1, d: [["", 1]] }))).toBe("LOFT_ERR_SCHEMA");
    expect(code(encodeCanonical({ v: 1, d: [["w".repeat(257), 1]] }))).not.toBe("ok");
    expect(code(encodeCanonical({ v: 1, d: [], x: 1 }))).toBe("LOFT_ERR_MALFORMED");
    expect(code(encodeCanonical({ v: 2, d: [] }))).toBe("LOFT_ERR_STATE_VERSION");
    // Oversized: more relays than the record holds.
    const many = Array.from({ length: MAX_HEALTH_RELAYS + 1 }, (_, i) => [
      `wss://r${String(i).padStart(3, "0")}`,
      i,
    ]);
    expect(code(encodeCanonical({ v: 1, d: many }))).not.toBe("ok");
    // Not canonical: the same map with a non-minimal integer.
    const loose = one.slice();
    expect(code(Uint8Array.from([...loose.subarray(0, -1), 0xcc, 0x01]))).not.toBe("ok");
    // Truncated at every length.
    for (let i = 0; i < one.length; i++) expect(code(one.subarray(0, i))).not.toBe("ok");
  });

  it("fuzzed: garbage and mutated records give a typed error, never a throw", () => {
    const base = encodeRelayHealth(
      new Map([
        [URL_, 1_700_000_000_000],
        ["wss://s.example/relay", 7],
      ]),
    );
    const typed = (r: ReturnType<typeof decodeRelayHealth>) => {
      if (!r.ok && !r.error.code.startsWith("LOFT_ERR_")) throw new Error(`untyped: ${r.error.code}`);
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (garbage) => typed(decodeRelayHealth(garbage))),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const b = base.slice();
        b[at] = byte;
        const r = decodeRelayHealth(b);
        typed(r);
        // Only canonical records pass.
        if (r.ok && hex(encodeRelayHealth(r.value)) !== hex(b))
          throw new Error("a non-canonical record passed");
      }),
      { numRuns: Math.min(FUZZ_RUNS, 4_000) },
    );
  });
});

describe("prekey publication", () => {
  const bob = createUserIdentity({ username: "bob", now: 1_700_000_000_000 });
  const alice = createUserIdentity({ username: "alice", now: 1_700_000_000_000 });

  it("the bundle carries no one-time keys; entries pair them; a fetched entry makes a working bundle", async () => {
    const store = createPrekeyStore({
      identitySecretKey: bob.privateIdentityKey,
      now: Date.now(),
      oneTimePrekeys: 3,
      oneTimeKemPrekeys: 2,
    });
    const pb = publishedBundle(store);
    const decoded = await decodePrekeyBundle(nobleCrypto, pb);
    expect(decoded.ok && decoded.value.oneTimePrekeys.length + decoded.value.oneTimeKemPrekeys.length).toBe(
      0,
    );
    const { entries, last } = oneTimeEntries(store, 0);
    expect(entries).toHaveLength(3);
    for (const e of entries) expect(e.length).toBeLessThanOrEqual(4094);
    expect(last).toBe(store.nextId - 1);
    expect(oneTimeEntries(store, last).entries).toEqual([]);

    const merged = fetchedBundle({ bundle: pb, oneTimePrekey: entries[0]! });
    if (!merged.ok) throw merged.error;
    const m = await decodePrekeyBundle(nobleCrypto, merged.value);
    expect(m.ok && m.value.oneTimePrekeys.length).toBe(1);
    expect(m.ok && m.value.oneTimeKemPrekeys.length).toBe(1);
    const aliceStore = createPrekeyStore({
      identitySecretKey: alice.privateIdentityKey,
      now: Date.now(),
      oneTimePrekeys: 0,
      oneTimeKemPrekeys: 0,
    });
    const started = await initiateSession({
      sender: aliceStore,
      bundle: merged.value,
      recipientIdentityKey: bob.identity.verified.identity_key,
      plaintext: new Uint8Array([1]),
      now: Date.now(),
    });
    expect(started.ok).toBe(true);
    expect(started.ok && started.value.header.oneTimePrekeyId).toBeGreaterThan(0);
    expect(prekeyRatchetId(new Uint8Array(32))).toHaveLength(16);
    // An unreadable entry: the bundle alone (last-resort keys).
    expect(fetchedBundle({ bundle: pb, oneTimePrekey: new Uint8Array([1, 2]) })).toEqual({
      ok: true,
      value: pb,
    });

    const state = {
      store: replenishOneTimePrekeys(store, { identitySecretKey: bob.privateIdentityKey }),
      published: last,
      bundleSpk: 1,
    };
    const back = decodePrekeyState(encodePrekeyState(state));
    expect(back.ok && back.value.published).toBe(last);
    expect(back.ok && back.value.store.oneTimePrekeys.length).toBe(state.store.oneTimePrekeys.length);
  });
});

describe("mailbox bodies per transport (docs/protocol/mailbox.md §2)", () => {
  const fp = "Q34zM9LmX6yrN3gaWOOW17B4u3cZaV9oGSA-asve0wc=";
  const smp = `smp://${fp}@relay.example:5223`;

  it("one constant per transport: a relay's largest body, SMP's largest message", () => {
    expect(MAILBOX_BODY).toEqual({ relay: MAX_BODY, smp: 16_088 });
    expect(mailboxBodySize("wss://r.example/relay")).toBe(16_382);
    expect(mailboxBodySize(smp)).toBe(16_088);
  });

  for (const [transport, size] of Object.entries(MAILBOX_BODY))
    it(`${transport}: a message of exactly one part fits one body; one byte more takes two`, () => {
      const maxPart = size - 2;
      const one = ratchetBodies(new Uint8Array(maxPart).fill(7), size);
      expect(one.map((b) => [b.length, b[0]])).toEqual([[size, 0x01]]);
      const two = ratchetBodies(new Uint8Array(maxPart + 1).fill(7), size);
      expect(two.map((b) => [b.length, b[0]])).toEqual([
        [size, 0x02],
        [size, 0x03],
      ]);
      const parts = two.map((b) => decodeMailboxBody(b, size));
      expect(parts.map((p) => p.ok && p.value.type === "ratchet" && p.value.part.length)).toEqual([
        maxPart,
        1,
      ]);
      // A body is read at its own transport's size only.
      const other = size === MAILBOX_BODY.relay ? MAILBOX_BODY.smp : MAILBOX_BODY.relay;
      expect(decodeMailboxBody(one[0]!, other)).toMatchObject({
        ok: false,
        error: { code: "LOFT_ERR_PADDING" },
      });
    });

  it("announcements name a relay URL or an smp:// server without its password", () => {
    expect(isMailboxUrl("wss://r.example/relay")).toBe(true);
    expect(isMailboxUrl(smp)).toBe(true);
    expect(isMailboxUrl(`smp://${fp}:pw@relay.example:5223`)).toBe(false);
    expect(isMailboxUrl(`${smp}/ERERERERERERERERERERERERERERERER#/?v=6-7&dh=x`)).toBe(false);
    expect(isMailboxUrl("https://r.example/relay")).toBe(false);
    expect(mailboxName(`smp://${fp}:pw@relay.example,b.onion:5223`)).toBe(
      `smp://${fp}@relay.example,b.onion:5223`,
    );
    expect(mailboxName("wss://r.example/relay")).toBe("wss://r.example/relay");
  });
});
