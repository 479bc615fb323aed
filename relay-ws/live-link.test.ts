/**
 * Live relay fallback: two online peers run a Link over a queue pair on a real relay
 * (docs/protocol/relay.md §Live links) — ordered, chunked beyond one block, both directions,
 * close propagation — and a real Noise XXhfs handshake plus transport messages over it. Under the
 * relay's per-source rations (SOURCE_RATE, STORE_RATE) the link backs off and resends: nothing
 * lost, doubled or reordered; it gives up only after a bounded time, with the refusal's code.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import type { Link } from "../core/link/link.ts";
import { generateKeyPair, HandshakeState, XX_HFS } from "../core/noise/index.ts";
import type { RecipientQueue, RelayClient, SenderQueue } from "../core/relay/client.ts";
import { MAX_REORDER, RelayLink, type RelayLinkOptions } from "../core/relay/live-link.ts";
import { MAX_BODY } from "../core/relay/protocol.ts";
import type { RelayConfig } from "./config.ts";
import { STORED_QUEUE_BYTES, storedMessageBytes } from "./source-limits.ts";
import { connectRelay, relayCounter, startTestRelay, type TestRelay } from "./testing.ts";

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay();
});
afterAll(async () => {
  await relay.close();
});

/**
 * Both peers create a receiving queue, swap sender ids (out of band) and SKEY each other's.
 * `ca` connects from 127.0.0.1 and `cb` from 127.0.0.2: two sources, each with its own rations.
 */
async function queuePair(url: string) {
  const ca = await connectRelay(url);
  const cb = await connectRelay(url, {}, { localAddress: "127.0.0.2" });
  const qa: RecipientQueue = await ca.createQueue({ subscribe: false });
  const qb: RecipientQueue = await cb.createQueue({ subscribe: false });
  const toB: SenderQueue = await ca.senderSecure({ senderId: qb.senderId });
  const toA: SenderQueue = await cb.senderSecure({ senderId: qa.senderId });
  return { ca, cb, qa, qb, toA, toB };
}

interface LinkPair {
  a: RelayLink;
  b: RelayLink;
  ca: RelayClient;
  cb: RelayClient;
  qb: RecipientQueue;
}

/** A live link each way over a `queuePair`; `aOptions` are `a`'s. */
async function linkPair(
  url = relay.url,
  aOptions: RelayLinkOptions = {},
  bOptions: RelayLinkOptions = {},
): Promise<LinkPair> {
  const { ca, cb, qa, qb, toA, toB } = await queuePair(url);
  const a = await RelayLink.open(ca, qa, toB, aOptions);
  const b = await RelayLink.open(cb, qb, toA, bOptions);
  return { a, b, ca, cb, qb };
}

/** Run `body` on a relay of its own with the per-source `rations`, closed afterwards. */
async function onRelay(rations: Partial<RelayConfig>, body: (r: TestRelay) => Promise<void>): Promise<void> {
  const r = await startTestRelay(rations);
  try {
    await body(r);
  } finally {
    await r.close();
  }
}

/**
 * Run `body` on a `linkPair` (`a` and `b` opened with `aOptions` and `bOptions`) on a relay of its
 * own with `rations`; clients and relay closed afterwards.
 */
function onRationedPair(
  rations: Partial<RelayConfig>,
  body: (pair: LinkPair, r: TestRelay) => Promise<void>,
  aOptions: RelayLinkOptions = {},
  bOptions: RelayLinkOptions = {},
): Promise<void> {
  return onRelay(rations, async (r) => {
    const pair = await linkPair(r.url, aOptions, bOptions);
    try {
      await body(pair, r);
    } finally {
      pair.ca.close();
      pair.cb.close();
    }
  });
}

/** The relay's count of `command`s (default SEND) it answered with `result` (e.g. "STORE_RATE"). */
const sendsAnswered = (r: TestRelay, result: string, command = "SEND") =>
  relayCounter(r, "loft_relay_commands_total", { command, result });

/**
 * `a` sends `count` numbered messages (every fifth one 40 000 bytes: three pieces) and one end
 * marker; `b` must receive exactly those, in order, and then the marker (nothing doubled).
 */
async function sendAndCheckInOrder(a: RelayLink, b: RelayLink, count: number): Promise<void> {
  const sent = Array.from({ length: count }, (_, i) => {
    const m = new Uint8Array(i % 5 === 4 ? 40_000 : 200);
    new DataView(m.buffer).setUint32(0, i);
    m.fill(i & 0xff, 4);
    return m;
  });
  for (const m of sent) a.send(m);
  a.send(utf8("end"));
  // A sender that closes instead of retrying fails the test at once, not at the test timeout.
  const aClosed = a.closed.then((info) => Promise.reject(new Error(`sender closed: ${info.reason}`)));
  aClosed.catch(() => {});
  const next = () => Promise.race([b.receive(), aClosed]);
  for (const m of sent) expect(await next()).toEqual(m);
  expect(new TextDecoder().decode(await next())).toBe("end");
}

describe("live link over a queue pair", () => {
  it("carries ordered messages both ways, larger ones chunked, and propagates close", async () => {
    const { a, b, ca, cb } = await linkPair();
    const sizes = [0, 1, 100, MAX_BODY - 1, MAX_BODY, 65_535, 200_000];
    const sent = sizes.map((n) => new Uint8Array(randomBytes(n)));
    for (const m of sent) a.send(m);
    for (let i = 0; i < 50; i++) b.send(utf8(`reply ${i}`));
    for (const m of sent) expect(await b.receive()).toEqual(m);
    for (let i = 0; i < 50; i++) expect(new TextDecoder().decode(await a.receive())).toBe(`reply ${i}`);
    a.close();
    expect((await b.closed).reason).toBe("remote-closed");
    ca.close();
    cb.close();
  });

  it("runs a Noise XXhfs handshake and transport messages end to end", async () => {
    const { a, b, ca, cb } = await linkPair();
    const prologue = utf8("loft relay live link test");
    const ini = await HandshakeState.create({
      pattern: XX_HFS,
      role: "initiator",
      prologue,
      staticKeyPair: await generateKeyPair(),
    });
    const res = await HandshakeState.create({
      pattern: XX_HFS,
      role: "responder",
      prologue,
      staticKeyPair: await generateKeyPair(),
    });
    const step = async (from: HandshakeState, fromLink: Link, to: HandshakeState, toLink: Link) => {
      const msg = await from.writeMessage();
      if (!msg.ok) throw msg.error;
      fromLink.send(msg.value);
      const read = await to.readMessage(await toLink.receive());
      if (!read.ok) throw read.error;
    };
    await step(ini, a, res, b);
    await step(res, b, ini, a);
    await step(ini, a, res, b);
    const ti = await ini.finish();
    const tr = await res.finish();
    if (!ti.ok || !tr.ok) throw new Error("handshake did not finish");
    expect(ti.value.handshakeHash).toEqual(tr.value.handshakeHash);
    const ct = await ti.value.send.encryptWithAd(new Uint8Array(0), utf8("over the relay"));
    if (!ct.ok) throw ct.error;
    a.send(ct.value);
    const pt = await tr.value.receive.decryptWithAd(new Uint8Array(0), await b.receive());
    expect(pt.ok && new TextDecoder().decode(pt.value)).toBe("over the relay");
    a.close();
    b.close();
    ca.close();
    cb.close();
  });

  it("closes when the relay connection drops", async () => {
    const { a, b, ca, cb } = await linkPair();
    ca.close();
    expect((await a.closed).reason).toBe("LOFT_ERR_LINK_CLOSED");
    b.close();
    cb.close();
  });
});

/** A numbered piece as a sender puts it in the queue: `flags ‖ seq u32 ‖ piece` (relay.md §Live links). */
function piece(seq: number, flags: number, bytes: Uint8Array): Uint8Array {
  const body = new Uint8Array(5 + bytes.length);
  body[0] = flags | 4;
  new DataView(body.buffer).setUint32(1, seq);
  body.set(bytes, 5);
  return body;
}

describe("numbered pieces (several SENDs in flight)", () => {
  /** `b` a RelayLink; raw SENDs from `ca` into its queue stand for a sender whose pieces were stored out of order. */
  async function rawInto() {
    const { ca, cb, qa, qb, toA, toB } = await queuePair(relay.url);
    const b = await RelayLink.open(cb, qb, toA);
    return { b, ca, cb, qa, toB, raw: (body: Uint8Array) => ca.send(toB, body) };
  }

  it("pieces stored out of order (a refused one retried after later ones) reach the consumer in order", async () => {
    const { b, ca, cb, raw } = await rawInto();
    // Message 1 = pieces 0 and 1; message 2 = piece 2. Stored 2, 1, 0.
    await raw(piece(2, 1, utf8("second")));
    await raw(piece(1, 1, utf8("-tail")));
    await raw(piece(0, 0, utf8("first")));
    expect(new TextDecoder().decode(await b.receive())).toBe("first-tail");
    expect(new TextDecoder().decode(await b.receive())).toBe("second");
    // A second copy of a piece already handed on changes nothing.
    await raw(piece(1, 1, utf8("-tail")));
    await raw(piece(3, 1, utf8("third")));
    expect(new TextDecoder().decode(await b.receive())).toBe("third");
    b.close();
    ca.close();
    cb.close();
  });

  it("a piece too far ahead of the next one closes the link (bounded reordering)", async () => {
    const { b, ca, cb, raw } = await rawInto();
    await raw(piece(MAX_REORDER, 1, utf8("far")));
    expect((await b.closed).reason).toBe("LOFT_ERR_SCHEMA");
    ca.close();
    cb.close();
  });

  it("a numbered piece cut short (no room for its number) closes the link as malformed", async () => {
    const { b, ca, cb, raw } = await rawInto();
    await raw(new Uint8Array([5, 0, 0]));
    expect((await b.closed).reason).toBe("LOFT_ERR_MALFORMED");
    ca.close();
    cb.close();
  });

  it("an unnumbered close marker (a sender whose sending failed) ends the link at once, pieces missing or not", async () => {
    const { b, ca, cb, raw } = await rawInto();
    await raw(piece(1, 1, utf8("never completed: piece 0 is missing")));
    await raw(new Uint8Array([2]));
    expect((await b.closed).reason).toBe("remote-closed");
    ca.close();
    cb.close();
  });

  it("a sender with several pieces in flight delivers a large burst in order, each piece once", async () => {
    const { a, b, ca, cb } = await linkPair(relay.url, { sendWindow: 16 });
    await sendAndCheckInOrder(a, b, 60);
    a.close();
    expect((await b.closed).reason).toBe("remote-closed");
    ca.close();
    cb.close();
  });
});

/** What the relay charges a source for storing one short piece (relay-ws/source-limits.ts). */
const PIECE = storedMessageBytes(0);
/** A storage burst of a queue's records and just under four short pieces. */
const FOUR_PIECES = STORED_QUEUE_BYTES + Math.floor(3.9 * PIECE);

/**
 * Both ends' retry bounds in the two backoff tests: the product's backoff (DEFAULT_SEND_RETRY:
 * doubling from 100 ms, half random, one pause for a window) with a 500 ms ceiling instead of
 * 5 s. Under a ration whose burst holds one full piece, each refused piece waited up to 5 s for a
 * refill of a few hundred ms: the two tests spent most of a minute asleep. The same pauses, the
 * same resends, only shorter; the 5 s ceiling itself is no part of what they prove.
 */
const BRISK: RelayLinkOptions = { retry: { maxDelayMs: 500 } };

describe("live link under the relay's per-source rations", () => {
  it("STORE_RATE: backs off and resends in order, nothing lost or doubled", async () =>
    // Room for the queue and one full piece at once, then 64 KiB/s: the 20 messages (≈ 170 KiB
    // stored) take seconds however fast the relay commits, and the first window of pieces, sent
    // together, already asks for more than the burst, so refusals are certain.
    onRationedPair(
      { sourceStoreRate: 64 << 10, sourceStoreBurst: STORED_QUEUE_BYTES + storedMessageBytes(MAX_BODY) },
      async ({ a, b }, tight) => {
        await sendAndCheckInOrder(a, b, 20);
        expect(await sendsAnswered(tight, "STORE_RATE")).toBeGreaterThan(0);
        expect(a.state).toBe("open");
        a.close();
        expect((await b.closed).reason).toBe("remote-closed");
      },
      BRISK,
      BRISK,
    ));

  it("SOURCE_RATE: backs off and resends in order, nothing lost or doubled", async () =>
    // 100 units at once, then 150 per second: a signed SEND costs 15, so ten per second, and the
    // queue's NEW, SKEY and SUB (60 units) leave room for two of the first window's eight SENDs,
    // sent together — refusals are certain. A refused frame is charged 1 unit: at this rate the
    // BRISK pauses (≥ 50 ms, mostly 250–500 ms) refill more than a window of refusals costs, so
    // the source never nears the relay's debt bound (SOURCE_DEBT, relay-ws/source-limits.ts).
    onRationedPair(
      { sourceCostRate: 150, sourceCostBurst: 100 },
      async ({ a, b }, tight) => {
        await sendAndCheckInOrder(a, b, 20);
        expect(await sendsAnswered(tight, "SOURCE_RATE")).toBeGreaterThan(0);
        expect(a.state).toBe("open");
        a.close();
        b.close();
      },
      BRISK,
      BRISK,
    ));

  it("both ways at once on rationed sources: an ACK refused for rate is tried again, so delivery never stalls", async () =>
    // Each side SENDs and ACKs on one budget (15 units each): its ACKs are refused too. An ACK
    // dropped instead of retried left the relay's SUB window full for good (the link went silent).
    onRationedPair(
      { sourceCostRate: 600, sourceCostBurst: 200 },
      async ({ a, b }, tight) => {
        await Promise.all([sendAndCheckInOrder(a, b, 24), sendAndCheckInOrder(b, a, 24)]);
        // The sources were rationed (SENDs surely, ACKs when one met an empty budget).
        const refused =
          (await sendsAnswered(tight, "SOURCE_RATE", "ACK")) + (await sendsAnswered(tight, "SOURCE_RATE"));
        expect(refused).toBeGreaterThan(0);
        expect([a.state, b.state]).toEqual(["open", "open"]);
        a.close();
        b.close();
      },
      { window: 2 },
    ));

  it("a local close while pieces wait for the ration still delivers them, then the close", async () =>
    // Three short pieces at once, then four per second: the eight and the close marker must wait
    // for the ration.
    onRationedPair(
      { sourceStoreRate: 4 * PIECE, sourceStoreBurst: FOUR_PIECES },
      async ({ a, b }, tight) => {
        for (let i = 0; i < 8; i++) a.send(utf8(`before close ${i}`));
        a.close();
        for (let i = 0; i < 8; i++)
          expect(new TextDecoder().decode(await b.receive())).toBe(`before close ${i}`);
        expect((await b.closed).reason).toBe("remote-closed");
        expect(await sendsAnswered(tight, "STORE_RATE")).toBeGreaterThan(0);
      },
      BRISK,
    ));

  it("bounds what waits: a send beyond maxQueuedBytes while the relay refuses closes the link with the refusal's code", async () =>
    onRationedPair(
      { sourceStoreRate: 1, sourceStoreBurst: FOUR_PIECES },
      async ({ a, b }, stuck) => {
        for (let i = 0; i < 4; i++) a.send(utf8(`m${i}`));
        for (let i = 0; i < 3; i++) expect(new TextDecoder().decode(await b.receive())).toBe(`m${i}`);
        // A second refusal means the link has read the first one and retried: it is waiting it out.
        await expect.poll(async () => (await sendsAnswered(stuck, "STORE_RATE")) >= 2).toBe(true);
        a.send(new Uint8Array(60_000));
        expect(() => a.send(new Uint8Array(60_000))).toThrow(/bytes wait to be sent/);
        const closed = await a.closed;
        expect(closed.reason).toBe("LOFT_ERR_RELAY_STORE_RATE");
        expect(closed.detail).toMatch(/more than 100000 bytes/);
        b.close();
      },
      { maxQueuedBytes: 100_000, retry: { giveUpMs: 60_000 } },
    ));

  it("a refusal that is not temporary (AUTH: the peer's queue is gone) still closes at once with its code", async () => {
    const { a, b, ca, cb, qb } = await linkPair(relay.url, { retry: { giveUpMs: 60_000 } });
    // b's receiving queue is the one a sends into; deleting it makes a's next SEND fail AUTH.
    await cb.deleteQueue(qb);
    a.send(utf8("into a deleted queue"));
    expect((await a.closed).reason).toBe("LOFT_ERR_RELAY_AUTH");
    b.close();
    ca.close();
    cb.close();
  });

  it("opening waits out a SOURCE_RATE refusal of its SUB instead of failing", async () =>
    // 200 units at once, then 20 per second: a spent budget takes most of a second to allow a SUB.
    onRelay({ sourceCostRate: 20, sourceCostBurst: 200 }, async (tight) => {
      const { ca, cb, qa, qb, toA, toB } = await queuePair(tight.url);
      // Spend a's budget until the relay says SOURCE_RATE (each PING costs a unit).
      let refused = false;
      for (let i = 0; i < 300 && !refused; i++)
        refused = await ca.ping().then(
          () => false,
          (e: { code?: string }) => e.code === "LOFT_ERR_RELAY_SOURCE_RATE",
        );
      expect(refused).toBe(true);
      const a = await RelayLink.open(ca, qa, toB);
      const b = await RelayLink.open(cb, qb, toA);
      expect(await sendsAnswered(tight, "SOURCE_RATE", "SUB")).toBeGreaterThan(0);
      a.send(utf8("after the wait"));
      expect(new TextDecoder().decode(await b.receive())).toBe("after the wait");
      a.close();
      b.close();
      ca.close();
      cb.close();
    }));

  it("gives up after the bounded time with the refusal's code; what was stored arrived in order", async () =>
    // Three SENDs fit the burst; the refill (1 B/s) never allows a fourth.
    onRationedPair(
      { sourceStoreRate: 1, sourceStoreBurst: FOUR_PIECES },
      async ({ a, b }) => {
        for (let i = 0; i < 6; i++) a.send(utf8(`m${i}`));
        const closed = await a.closed;
        expect(closed.reason).toBe("LOFT_ERR_RELAY_STORE_RATE");
        expect(closed.detail).toMatch(/kept refusing for 1\.5 s/);
        for (let i = 0; i < 3; i++) expect(new TextDecoder().decode(await b.receive())).toBe(`m${i}`);
        expect(() => a.send(utf8("late"))).toThrow(/LOFT_ERR_LINK_CLOSED|closed/);
        b.close();
      },
      { retry: { firstDelayMs: 20, maxDelayMs: 200, giveUpMs: 1_500 } },
    ));
});
