/**
 * Protocol 1.3, several messages per frame (docs/protocol/relay.md §Batches): on a real relay on
 * loopback, a 1.3 client's SENDs of one tick leave as SENDS frames and its ACKs as ACKS, the relay
 * pushes a burst of one queue as MSGS frames, and each message keeps its own result — per-message
 * refusals (quota, storage, duplicates) store a prefix of the batch, never a message after a
 * refused one. Malformed, oversized, replayed and out-of-order batches get typed errors; the
 * decoders are fuzzed, and docs/vectors/relay-batch-v1.3.json is replayed through the relay's code.
 */
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { encodeCanonical } from "../core/codec/codec.ts";
import type { RecipientQueue, RelayClient } from "../core/relay/client.ts";
import { newAuthKeyPair, newDhKeyPair, openFromRelay } from "../core/relay/crypto.ts";
import { RELAY_LINK_PIECE } from "../core/relay/live-link.ts";
import {
  type Command,
  decodeCommand,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  MAX_BATCH,
  MAX_BODY,
  padBlock,
  RELAY_VERSION_BATCHED,
  RELAY_VERSION_BUCKETED,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { buildRelayBatchVectors, RELAY_BATCH_VECTOR_FILE } from "../scripts/gen-relay-batch-vectors.ts";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { sealDeliveryParts } from "./node-crypto.ts";
import { STORED_QUEUE_BYTES, storedMessageBytes } from "./source-limits.ts";
import {
  connectRelay,
  connectRelayOver,
  RawSocket,
  refusalCode,
  relayCounter,
  relayLinkPair,
  startTestRelay,
  type TestRelay,
} from "./testing.ts";
import { encodeMsgs, encodeRes, fastDecode } from "./wire-fast.ts";

const BATCH = { delivery: "bucket", batch: true } as const;

/** The kinds of the frames the socket receives (after the opening). */
function frameKinds(ws: WebSocket): string[] {
  const seen: string[] = [];
  ws.on("message", (data) => {
    const f = decodeServerFrame(new Uint8Array(data as Buffer));
    if (f.ok) seen.push(f.value.k === "MSGS" ? `MSGS×${f.value.ms.length}` : f.value.k);
  });
  return seen;
}

/**
 * What `rx` is pushed on `q` from now on, each acknowledged at once: `all` resolves when `total`
 * have come (their ACKs in `acks`).
 */
function collectPushes(rx: RelayClient, q: RecipientQueue, total: number) {
  const got: Uint8Array[] = [];
  const acks: Promise<void>[] = [];
  const all = new Promise<void>((resolve) => {
    rx.onQueueMessage(q.recipientId, (m) => {
      got.push(m.body);
      acks.push(rx.ack(q, m.msgId));
      if (got.length === total) resolve();
    });
  });
  return { got, acks, all };
}

/** A new unsecured queue made over `raw` (NEW, request id 1), with its recipient key pair. */
async function newQueue(raw: RawSocket) {
  const rk = newAuthKeyPair();
  const ids = await raw.authRequest(
    { k: "NEW", i: 1, rk: rk.publicKey, dk: newDhKeyPair().publicKey, sub: false },
    rk.secretKey,
  );
  if (ids.k !== "IDS") throw new Error(`NEW: ${ids.k}`);
  return { ids, rk };
}

const body = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** Byte equality without vitest's deep equality (which walks a typed array index by index). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

/** Every message of the queue through GET (each acknowledged), oldest first. */
async function drain(c: RelayClient, q: RecipientQueue): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let k = 0; k < 300; k++) {
    const m = await c.get(q);
    if (!m) return out;
    out.push(m.body);
    await c.ack(q, m.msgId);
  }
  throw new Error("queue does not drain");
}

/**
 * A send id from a small number, never the zero id (docs/protocol/relay.md, SEND: on LMDB the zero
 * id is never DUPLICATE of a stored message, so these tests' replays use others).
 */
function sendIdOf(k: number): Uint8Array {
  const n = new Uint8Array(16).fill(k);
  n[0] = 0xa5;
  return n;
}

describe("batches (1.3) on a real relay", () => {
  let relay: TestRelay;
  beforeAll(async () => {
    // No per-connection rate here (the fuzz below sends thousands of messages); the token charge
    // of a batch has its own test.
    relay = await startTestRelay({ queueQuota: 100, ratePerSecond: 0 });
  });
  afterAll(async () => {
    await relay.close();
  });

  it("SENDs of one tick leave as SENDS (≤ 32 each), are stored in order, pushed as MSGS and acknowledged as ACKS", async () => {
    const { client: rx, ws: rxWs } = await connectRelayOver(relay.url, BATCH);
    const { client: tx, ws: txWs } = await connectRelayOver(relay.url, BATCH);
    const rxKinds = frameKinds(rxWs);
    const txKinds = frameKinds(txWs);
    try {
      expect(tx.batched).toBe(true);
      const q = await rx.createQueue({ subscribe: false });
      const s = await tx.senderSecure({ senderId: q.senderId });
      txKinds.length = 0;
      const bodies = Array.from({ length: 40 }, (_, k) => new Uint8Array(randomBytes(k * 40)));
      await Promise.all(bodies.map((b) => tx.send(s, b)));
      // 40 SENDs in one tick: one SENDS of 32, one of 8, one RES each.
      expect(txKinds).toEqual(["RES", "RES"]);
      expect(await relayCounter(relay, "loft_relay_commands_total", { command: "SENDS", result: "ok" })).toBe(
        2,
      );
      const { got, acks, all } = collectPushes(rx, q, bodies.length);
      await rx.subscribe(q, 32);
      await all;
      await Promise.all(acks);
      expect(got).toEqual(bodies);
      const pushes = rxKinds.filter((k) => k.startsWith("MSG"));
      // A window of 32 leaves in MSGS frames, the rest as the ACKs free the window.
      expect(pushes.some((k) => k.startsWith("MSGS×"))).toBe(true);
      expect(pushes.reduce((n, k) => n + (k === "MSG" ? 1 : Number(k.slice(5))), 0)).toBe(40);
      expect(
        await relayCounter(relay, "loft_relay_commands_total", { command: "ACKS", result: "ok" }),
      ).toBeGreaterThan(0);
      // Every message acknowledged and deleted: nothing left to GET.
      rx.close();
      const other = await connectRelay(relay.url, BATCH);
      expect(await other.get(q)).toBeUndefined();
      other.close();
      expect(await relayCounter(relay, "loft_relay_openings_total", { version: "1.3" })).toBeGreaterThan(0);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("per-message results: duplicates skipped, the queue quota stores a prefix, each send settles on its own result", async () => {
    const small = await startTestRelay({ queueQuota: 5 });
    const rx = await connectRelay(small.url, BATCH);
    const tx = await connectRelay(small.url, BATCH);
    try {
      const q = await rx.createQueue({ subscribe: false });
      const s = await tx.senderSecure({ senderId: q.senderId });
      const id = (k: number) => sendIdOf(k);
      await tx.send(s, body(1, 1), { sendId: id(1) });
      // One batch: a new one, a duplicate of the stored one, a duplicate inside the batch, new ones.
      const first = [
        tx.send(s, body(2, 2), { sendId: id(2) }),
        tx.send(s, body(1, 1), { sendId: id(1) }),
        tx.send(s, body(2, 2), { sendId: id(2) }),
        tx.send(s, body(3, 3), { sendId: id(3) }),
      ];
      expect(await Promise.all(first.map((p) => refusalCode(p)))).toEqual([
        "resolved",
        "LOFT_ERR_RELAY_DUPLICATE",
        "LOFT_ERR_RELAY_DUPLICATE",
        "resolved",
      ]);
      // Three stored, quota 5: two more fit; the third is QUOTA and so is everything after it.
      const second = [4, 5, 6, 7].map((k) => tx.send(s, body(k, k), { sendId: id(k) }));
      expect(await Promise.all(second.map((p) => refusalCode(p)))).toEqual([
        "resolved",
        "resolved",
        "LOFT_ERR_RELAY_QUOTA",
        "LOFT_ERR_RELAY_QUOTA",
      ]);
      expect(await drain(rx, q)).toEqual([1, 2, 3, 4, 5].map((k) => body(k, k)));
      // Per-message refusals are counted as single commands' are.
      expect(await relayCounter(small, "loft_relay_errors_total", { code: "QUOTA" })).toBe(2);
      expect(await relayCounter(small, "loft_relay_errors_total", { code: "DUPLICATE" })).toBe(2);
      // Retried once there is room: the refused ones are stored now, nothing twice.
      const retry = [5, 6, 7].map((k) => tx.send(s, body(k, k), { sendId: id(k) }));
      expect(await Promise.all(retry.map((p) => refusalCode(p)))).toEqual([
        "LOFT_ERR_RELAY_DUPLICATE",
        "resolved",
        "resolved",
      ]);
      expect(await drain(rx, q)).toEqual([6, 7].map((k) => body(k, k)));
    } finally {
      rx.close();
      tx.close();
      await small.close();
    }
  });

  it("a refusal for storage stops the batch there: a message that would fit after one that does not is not stored", async () => {
    const tight = await startTestRelay({ storeQuotaBytes: 12_000 });
    const rx = await connectRelay(tight.url, BATCH);
    const tx = await connectRelay(tight.url, BATCH);
    try {
      const q = await rx.createQueue({ subscribe: false });
      const s = await tx.senderSecure({ senderId: q.senderId });
      const sends = [body(10, 1), body(MAX_BODY, 2), body(10, 3)].map((b) => tx.send(s, b));
      expect(await Promise.all(sends.map((p) => refusalCode(p)))).toEqual([
        "resolved",
        "LOFT_ERR_RELAY_FULL",
        "LOFT_ERR_RELAY_FULL",
      ]);
      expect(await drain(rx, q)).toEqual([body(10, 1)]);
    } finally {
      rx.close();
      tx.close();
      await tight.close();
    }
  });

  it("a retry of stored messages near the source's storage budget: duplicates give their reservation back, so the new message after them is stored", async () => {
    const size = 1000;
    const M = storedMessageBytes(size);
    // Room for the queue, 4 messages and half of another; next to no refill.
    const tight = await startTestRelay({
      ratePerSecond: 0,
      sourceStoreRate: 1,
      sourceStoreBurst: STORED_QUEUE_BYTES + 4 * M + M / 2,
    });
    const raw = await RawSocket.open(tight.url, true, {}, "authenticator", RELAY_VERSION_BATCHED);
    try {
      const { ids } = await newQueue(raw);
      const ms = Array.from({ length: 4 }, (_, k): [Uint8Array, Uint8Array] => [sendIdOf(k), body(size, k)]);
      expect(await raw.authRequest({ k: "SENDS", i: 2, q: ids.s, ms: ms.slice(0, 2) })).toEqual({
        k: "RES",
        i: 2,
        r: ["OK", "OK"],
      });
      // The budget covers 2 messages more: the 2 stored ones again, then 2 new.
      expect(await raw.authRequest({ k: "SENDS", i: 3, q: ids.s, ms })).toEqual({
        k: "RES",
        i: 3,
        r: ["DUPLICATE", "DUPLICATE", "OK", "OK"],
      });
      // Now it is spent (less than a message left): STORE_RATE from the first, as SEND reserves
      // before the store can tell a duplicate.
      const fifth: [Uint8Array, Uint8Array] = [sendIdOf(9), body(size, 9)];
      expect(await raw.authRequest({ k: "SENDS", i: 4, q: ids.s, ms: [ms[3]!, fifth] })).toEqual({
        k: "RES",
        i: 4,
        r: ["STORE_RATE", "STORE_RATE"],
      });
    } finally {
      raw.close();
      await tight.close();
    }
  });

  it("a batch of n costs n tokens of the connection's bucket; one larger than the tokens left, even than the burst, stores the prefix they cover and answers the rest RATE", async () => {
    // Next to no refill: what passes is what the burst of 12 covers.
    const limited = await startTestRelay({ rateBurst: 12, ratePerSecond: 0.001 });
    const open = () => RawSocket.open(limited.url, true, {}, "authenticator", RELAY_VERSION_BATCHED);
    const raws = [await open()];
    try {
      const { ids } = await newQueue(raws[0]!);
      const ms = (from: number, n: number): [Uint8Array, Uint8Array][] =>
        Array.from({ length: n }, (_, k) => [sendIdOf(from + k), body(1, k)]);
      const all = ms(0, 24);
      const rep = (r: string, n: number) => Array<string>(n).fill(r);
      // 1 token for NEW, 8 for this batch: within the burst of 12; 3 are left.
      expect(await raws[0]!.authRequest({ k: "SENDS", i: 2, q: ids.s, ms: all.slice(0, 8) })).toEqual({
        k: "RES",
        i: 2,
        r: rep("OK", 8),
      });
      // 8 more: the 3 tokens left store the first 3; the rest is RATE, not stored.
      expect(await raws[0]!.authRequest({ k: "SENDS", i: 3, q: ids.s, ms: all.slice(8, 16) })).toEqual({
        k: "RES",
        i: 3,
        r: [...rep("OK", 3), ...rep("RATE", 5)],
      });
      // No token left: refused whole and charged one token, not 8 — the connection stays open
      // (8 would have put it more than a burst in debt: closed 1008).
      expect(await raws[0]!.authRequest({ k: "SENDS", i: 4, q: ids.s, ms: all.slice(11, 19) })).toEqual({
        k: "ERR",
        i: 4,
        e: "RATE",
      });
      expect(await raws[0]!.request({ k: "PING", i: 5 })).toEqual({ k: "ERR", i: 5, e: "RATE" });
      // A batch of 24 on a fresh connection (a full bucket of 12, below the batch): the prefix
      // of 12 passes (11 stored before: DUPLICATE; the 12th new), the rest RATE; the client
      // sends the rest again and it is stored then, in order.
      raws.push(await open());
      expect(await raws[1]!.authRequest({ k: "SENDS", i: 1, q: ids.s, ms: all })).toEqual({
        k: "RES",
        i: 1,
        r: [...rep("DUPLICATE", 11), "OK", ...rep("RATE", 12)],
      });
      raws.push(await open());
      expect(await raws[2]!.authRequest({ k: "SENDS", i: 1, q: ids.s, ms: all.slice(12) })).toEqual({
        k: "RES",
        i: 1,
        r: rep("OK", 12),
      });
      // The queue holds the 24, each once: all of them answer DUPLICATE now.
      raws.push(await open(), await open());
      for (const [k, raw] of [raws[3]!, raws[4]!].entries())
        expect(
          await raw.authRequest({ k: "SENDS", i: 1, q: ids.s, ms: all.slice(12 * k, 12 * k + 12) }),
        ).toEqual({
          k: "RES",
          i: 1,
          r: rep("DUPLICATE", 12),
        });
    } finally {
      for (const r of raws) r.close();
      await limited.close();
    }
  });

  it("ACKS: each id its own result — unknown or repeated ids NO_MSG, the others deleted", async () => {
    const raw = await RawSocket.open(relay.url, true, {}, "authenticator", RELAY_VERSION_BATCHED);
    const tx = await connectRelay(relay.url, BATCH);
    try {
      const { ids, rk } = await newQueue(raw);
      await Promise.all([1, 2].map((k) => tx.send({ senderId: ids.s }, body(k, k))));
      const m1 = await raw.authRequest({ k: "GET", i: 2, q: ids.r }, rk.secretKey);
      if (m1.k !== "MSG") throw new Error(`GET: ${m1.k}`);
      const res = await raw.authRequest(
        { k: "ACKS", i: 3, q: ids.r, ms: [new Uint8Array(24).fill(9), m1.m, m1.m] },
        rk.secretKey,
      );
      expect(res).toEqual({ k: "RES", i: 3, r: ["NO_MSG", "OK", "NO_MSG"] });
      const m2 = await raw.authRequest({ k: "GET", i: 4, q: ids.r }, rk.secretKey);
      expect(m2.k === "MSG" && m2.m).not.toEqual(m1.m);
    } finally {
      raw.close();
      tx.close();
    }
  });

  it("malformed, oversized, replayed and out-of-order batches get typed errors; the connection goes on", async () => {
    const raw = await RawSocket.open(relay.url, true, {}, "authenticator", RELAY_VERSION_BATCHED);
    try {
      const { ids, rk } = await newQueue(raw);
      const sk = newAuthKeyPair();
      expect(await raw.authRequest({ k: "SKEY", i: 2, q: ids.s, sk: sk.publicKey }, sk.secretKey)).toEqual({
        k: "OK",
        i: 2,
      });
      const entry = (k: number, n = 8): [Uint8Array, Uint8Array] => [sendIdOf(k), body(n, k)];
      const sends = (i: number, ms: [Uint8Array, Uint8Array][]): Command => ({ k: "SENDS", i, q: ids.s, ms });
      // Over the cap, and empty: SCHEMA with the request id.
      const over = Array.from({ length: MAX_BATCH + 1 }, (_, k) => entry(k));
      expect(await raw.authRequest(sends(3, over), sk.secretKey)).toEqual({ k: "ERR", i: 3, e: "SCHEMA" });
      expect(await raw.authRequest(sends(4, []), sk.secretKey)).toEqual({ k: "ERR", i: 4, e: "SCHEMA" });
      // A body over MAX_BODY inside a batch: SCHEMA.
      expect(await raw.authRequest(sends(5, [entry(1), entry(2, MAX_BODY + 1)]), sk.secretKey)).toEqual({
        k: "ERR",
        i: 5,
        e: "SCHEMA",
      });
      // Five full bodies: over the 64 KiB frame limit as a whole — LARGE, nothing stored.
      const large = Array.from({ length: 5 }, (_, k) => entry(k, MAX_BODY));
      expect(await raw.authRequest(sends(6, large), sk.secretKey)).toEqual({ k: "ERR", e: "LARGE" });
      // Not canonical (an array16 header for 2 entries): MALFORMED.
      const t = encodeCommand(sends(7, [entry(1), entry(2)]));
      const at = t.indexOf(0x92); // the array header of `ms` (fixarray 2)
      const wideT = Uint8Array.from([...t.subarray(0, at), 0xdc, 0x00, 0x02, ...t.subarray(at + 1)]);
      raw.send(encodeClientFrame(wideT, await raw.authenticator(wideT, sk.secretKey)));
      expect(await raw.nextFrame()).toEqual({ k: "ERR", i: 7, e: "MALFORMED" });
      // A good batch, then the same frame again (replayed) and an older one (out of order): AUTH.
      const good = await raw.authFrame(sends(10, [entry(1), entry(2)]), sk.secretKey);
      const older = await raw.authFrame(sends(9, [entry(3), entry(4)]), sk.secretKey);
      raw.send(good);
      expect(await raw.nextFrame()).toEqual({ k: "RES", i: 10, r: ["OK", "OK"] });
      raw.send(good);
      expect(await raw.nextFrame()).toEqual({ k: "ERR", i: 10, e: "AUTH" });
      raw.send(older);
      expect(await raw.nextFrame()).toEqual({ k: "ERR", i: 9, e: "AUTH" });
      // Unsigned on a secured queue, or by another key: AUTH, nothing stored.
      expect(await raw.authRequest(sends(11, [entry(5)]))).toEqual({ k: "ERR", i: 11, e: "AUTH" });
      expect(await raw.authRequest(sends(12, [entry(5)]), rk.secretKey)).toEqual({
        k: "ERR",
        i: 12,
        e: "AUTH",
      });
      // The same send ids again in a new frame: DUPLICATE each (stored once).
      expect(await raw.authRequest(sends(13, [entry(1), entry(2), entry(6)]), sk.secretKey)).toEqual({
        k: "RES",
        i: 13,
        r: ["DUPLICATE", "DUPLICATE", "OK"],
      });
      expect(await raw.authRequest({ k: "PING", i: 14 })).toEqual({ k: "OK", i: 14 });
      // Exactly three stored, in order.
      const seen: number[] = [];
      for (let i = 15; i < 25; i += 2) {
        const m = await raw.authRequest({ k: "GET", i, q: ids.r }, rk.secretKey);
        if (m.k !== "MSG") break;
        seen.push(m.m.length);
        expect(await raw.authRequest({ k: "ACK", i: i + 1, q: ids.r, m: m.m }, rk.secretKey)).toEqual({
          k: "OK",
          i: i + 1,
        });
      }
      expect(seen.length).toBe(3);
    } finally {
      raw.close();
    }
  });

  it("SENDS and ACKS on a 1.2 connection are UNKNOWN, as a relay from before 1.3 answers", async () => {
    const raw = await RawSocket.open(relay.url, true, {}, "authenticator", RELAY_VERSION_BUCKETED);
    try {
      const q = new Uint8Array(24).fill(1);
      expect(
        await raw.authRequest({ k: "SENDS", i: 1, q, ms: [[new Uint8Array(16), new Uint8Array(1)]] }),
      ).toEqual({ k: "ERR", i: 1, e: "UNKNOWN" });
      expect(await raw.authRequest({ k: "ACKS", i: 2, q, ms: [q] }, newAuthKeyPair().secretKey)).toEqual({
        k: "ERR",
        i: 2,
        e: "UNKNOWN",
      });
      expect(await raw.authRequest({ k: "PING", i: 3 })).toEqual({ k: "OK", i: 3 });
    } finally {
      raw.close();
    }
  });

  it("a live link between 1.3 peers: ordered, chunked, both ways, close propagated", async () => {
    const ca = await connectRelay(relay.url, BATCH);
    const cb = await connectRelay(relay.url, { delivery: "bucket" });
    try {
      const { a, b, sendBothWays } = await relayLinkPair(ca, cb);
      const sent = [0, 1, 100, 300, 5000, MAX_BODY, 65_535, 7, 7, 7].map(
        (n) => new Uint8Array(randomBytes(n)),
      );
      expect(await sendBothWays(sent)).toEqual({ atA: sent, atB: sent });
      a.close();
      expect((await b.closed).reason).toBe("remote-closed");
    } finally {
      ca.close();
      cb.close();
    }
  });

  it("pushes staged for MSGS count in the output budget: under global strain a 1.3 subscriber is paused (as 1.2's is), not cut as a slow consumer", async () => {
    // A global budget of 1 byte: strained as soon as anything is unread, so pushes go one
    // backlog at a time. Staged pushes that did not count would stage a whole window of 16 KiB
    // messages in one tick and flush it past the per-connection floor: a cut.
    const strained = await startTestRelay({ sendBufferTotal: 1, ratePerSecond: 0, sourceStoreRate: 0 });
    const rx = await connectRelay(strained.url, BATCH);
    const tx = await connectRelay(strained.url, BATCH);
    try {
      const q = await rx.createQueue({ subscribe: false });
      const s = await tx.senderSecure({ senderId: q.senderId });
      const bodies = Array.from({ length: 24 }, (_, k) => body(MAX_BODY, k));
      await Promise.all(bodies.map((b) => tx.send(s, b)));
      const { got, acks, all } = collectPushes(rx, q, bodies.length);
      const cut = rx.done.then((e) => {
        throw new Error(`the subscriber was cut: ${e.code}`);
      });
      await rx.subscribe(q, 24);
      await Promise.race([all, cut]);
      await Promise.all(acks);
      expect(got.every((b, k) => same(b, bodies[k]!))).toBe(true);
      expect(
        await relayCounter(strained, "loft_relay_errors_total", { code: "LOFT_ERR_RELAY_SLOW_CONSUMER" }),
      ).toBe(0);
    } finally {
      rx.close();
      tx.close();
      await strained.close();
    }
  });

  it("a live link whose pieces of one tick outnumber the rate burst: each SENDS stores what the tokens cover, the link sends the rest again, all arrives in order", async () => {
    // A burst of 4 and a 7-piece message: the 7 pieces leave as one SENDS of 7, which an
    // all-or-nothing charge could never pass (the link would give up with LOFT_ERR_RELAY_RATE).
    const limited = await startTestRelay({ rateBurst: 4, ratePerSecond: 100 });
    const ca = await connectRelay(limited.url, BATCH);
    const cb = await connectRelay(limited.url, BATCH);
    try {
      const { a, b } = await relayLinkPair(ca, cb, { retry: { giveUpMs: 5_000 } });
      const big = new Uint8Array(randomBytes(6 * RELAY_LINK_PIECE + 100));
      const small = new Uint8Array(randomBytes(10));
      a.send(big);
      a.send(small);
      const gaveUp = a.closed.then((c) => {
        throw new Error(`link closed: ${c.reason} ${c.detail ?? ""}`);
      });
      expect(same(await Promise.race([b.receive(), gaveUp]), big)).toBe(true);
      expect(await Promise.race([b.receive(), gaveUp])).toEqual(small);
      a.close();
      expect((await b.closed).reason).toBe("remote-closed");
    } finally {
      ca.close();
      cb.close();
      await limited.close();
    }
  });

  it("a relay started with --relay-batched false refuses the 1.3 header as an older relay does", async () => {
    const old = await startTestRelay({ batched: false });
    try {
      await expect(connectRelay(old.url, BATCH)).rejects.toMatchObject({
        code: "LOFT_ERR_UNSUPPORTED_VERSION",
        wire: "VERSION",
      });
      const v12 = await connectRelay(old.url, { delivery: "bucket" });
      expect(v12.batched).toBe(false);
      v12.close();
    } finally {
      await old.close();
    }
    await expect(connectRelay(relay.url, { batch: true })).rejects.toThrow(/need bucketed deliveries/);
  });

  it("fuzz: random batches on the wire — to a real unsecured queue and to unknown ones, whole, damaged or with junk — each get RES or a typed ERR; what is stored is a prefix; the relay goes on", async () => {
    const raw = await RawSocket.open(relay.url, true, {}, "authenticator", RELAY_VERSION_BATCHED);
    try {
      const { ids } = await newQueue(raw);
      let i = 2;
      const allowed = new Set(["AUTH", "SCHEMA", "MALFORMED", "UNKNOWN", "LARGE", "QUOTA", "DUPLICATE"]);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("SENDS", "ACKS"),
          fc.boolean(),
          // Send ids from a small set: duplicates inside a batch and across batches.
          fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 40 })), {
            maxLength: MAX_BATCH + 2,
          }),
          fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { nil: undefined }),
          async (k, real, items, damage) => {
            const q = real ? (k === "SENDS" ? ids.s : ids.r) : new Uint8Array(24).fill(7);
            const cmd =
              k === "SENDS"
                ? { k, i: i++, q, ms: items.map(([n, b]) => [sendIdOf(n), b]) }
                : { k, i: i++, q, ms: items.map(([n]) => new Uint8Array(24).fill(n)) };
            const t = encodeCanonical(cmd);
            if (damage) t[damage[0] % t.length] = damage[1];
            raw.send(encodeClientFrame(t));
            const f = await raw.nextFrame();
            if (f.k === "ERR") expect(allowed.has(f.e), f.e).toBe(true);
            else {
              expect(f.k).toBe("RES");
              if (f.k !== "RES") return;
              expect(f.r.length).toBe(items.length);
              // A prefix: after the first refusal other than DUPLICATE, nothing is OK.
              const first = f.r.findIndex((r) => r !== "OK" && r !== "DUPLICATE");
              if (first >= 0) expect(f.r.slice(first).every((r) => r === f.r[first])).toBe(true);
              for (const r of f.r) expect(r === "OK" || allowed.has(r) || r === "NO_MSG", r).toBe(true);
            }
          },
        ),
        { numRuns: 200 },
      );
      expect(await raw.authRequest({ k: "PING", i: 0xffff_fff0 })).toEqual({ k: "OK", i: 0xffff_fff0 });
      expect(await relayCounter(relay, "loft_relay_errors_total", { code: "INTERNAL" })).toBe(0);
    } finally {
      raw.close();
    }
  });
});

describe("batch codecs", () => {
  const id = fc.uint8Array({ minLength: 24, maxLength: 24 });
  // Delivery lengths (isDeliveryLength), as cheap bytes: fast-check's random arrays of 16 KiB
  // would spend the test's budget generating.
  const delivery = fc
    .constantFrom(280, 536, 1048, 2072, 4120, 8216, 16_408)
    .chain((n) => fc.integer({ min: 0, max: 255 }).map((x) => new Uint8Array(n).fill(x)));
  /** The two smallest delivery lengths, for the mutation runs (every byte of a frame a target). */
  const small = fc.constantFrom(280, 536).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

  it("encodeRes and encodeMsgs write what encodeServerFrame writes; the generic decoder reads them back", () => {
    fc.assert(
      fc.property(
        fc.nat(0xffff_ffff),
        fc.array(fc.constantFrom("OK", "QUOTA", "DUPLICATE", "STORE_RATE", "NO_MSG", "AUTH"), {
          minLength: 1,
          maxLength: MAX_BATCH,
        }),
        (i, r) => {
          const frame = { k: "RES", i, r } as ServerFrame;
          const fast = encodeRes(i, r);
          expect(same(fast, encodeServerFrame(frame))).toBe(true);
          const back = decodeServerFrame(fast);
          expect(back.ok && same(encodeServerFrame(back.value), fast)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS / 10 },
    );
    fc.assert(
      fc.property(id, fc.array(fc.tuple(id, delivery), { minLength: 2, maxLength: 3 }), (q, ms) => {
        const frame = { k: "MSGS", q, ms } as ServerFrame;
        const fast = encodeMsgs(
          q,
          ms.map(([m, b]) => ({ msgId: m, parts: [b.subarray(0, 5), b.subarray(5)], length: b.length })),
        );
        expect(same(fast, encodeServerFrame(frame))).toBe(true);
        const back = decodeServerFrame(new Uint8Array(fast));
        expect(back.ok && back.value.k === "MSGS" && same(encodeServerFrame(back.value), fast)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("SENDS and ACKS round-trip through the command codec; mutated bytes never throw, only typed errors", () => {
    const sends = fc.record({
      k: fc.constant("SENDS" as const),
      i: fc.nat(0xffff_ffff),
      q: id,
      ms: fc.array(
        fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 8 })),
        { minLength: 1, maxLength: 6 },
      ),
    });
    const acks = fc.record({
      k: fc.constant("ACKS" as const),
      i: fc.nat(0xffff_ffff),
      q: id,
      ms: fc.array(id, { minLength: 1, maxLength: 6 }),
    });
    // Round trips: a tenth of the budget; mutations (and truncations, every tenth case): all of it.
    fc.assert(
      fc.property(fc.oneof(sends, acks), (cmd) => {
        const t = encodeCommand(cmd as Command);
        const d = decodeCommand(t, 65_535);
        expect(d.ok && d.value.k === cmd.k && same(encodeCommand(d.value), t)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS / 10 },
    );
    const encoded = fc.oneof(sends, acks).map((cmd) => encodeCommand(cmd as Command));
    fc.assert(
      fc.property(encoded, fc.nat(), fc.integer({ min: 0, max: 255 }), (t, at, byte) => {
        const mutated = at % 10 === 0 ? t.subarray(0, at % t.length) : t.slice();
        if (at % 10 !== 0) mutated[at % mutated.length] = byte;
        const m = decodeCommand(mutated, 65_535);
        if (!m.ok) expect(m.error.code).toMatch(/^LOFT_ERR_(MALFORMED|SCHEMA|UNKNOWN_TYPE|FRAME_TOO_LARGE)$/);
        if (at % 10 === 0) expect(m.ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a MSGS of one delivery is SCHEMA (one alone is a MSG), as are RES without results and MSGS over 32", () => {
    const m = new Uint8Array(24).fill(1);
    const b = new Uint8Array(280);
    const code = (f: unknown) => {
      const d = decodeServerFrame(encodeCanonical(f));
      return d.ok ? "ok" : d.error.code;
    };
    expect(code({ k: "MSGS", q: m, ms: [[m, b]] })).toBe("LOFT_ERR_SCHEMA");
    expect(
      code({
        k: "MSGS",
        q: m,
        ms: [
          [m, b],
          [m, b],
        ],
      }),
    ).toBe("ok");
    expect(code({ k: "RES", i: 1, r: [] })).toBe("LOFT_ERR_SCHEMA");
    expect(code({ k: "RES", i: 1, r: ["NOPE"] })).toBe("LOFT_ERR_SCHEMA");
    expect(code({ k: "MSGS", q: m, ms: Array(MAX_BATCH + 1).fill([m, b]) })).not.toBe("ok");
  });

  it("server frames: mutated RES and MSGS never throw, only typed errors", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ k: fc.constant("RES"), i: fc.nat(0xffff_ffff), r: fc.constant(["OK", "QUOTA"]) }),
          fc.record({
            k: fc.constant("MSGS"),
            q: id,
            ms: fc.array(fc.tuple(id, small), { minLength: 2, maxLength: 2 }),
          }),
        ),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (frame, at, byte) => {
          const bytes = encodeServerFrame(frame as ServerFrame);
          const mutated = bytes.slice();
          mutated[at % mutated.length] = byte;
          const d = decodeServerFrame(mutated);
          if (!d.ok)
            expect(d.error.code).toMatch(/^LOFT_ERR_(MALFORMED|SCHEMA|UNKNOWN_TYPE|FRAME_TOO_LARGE)$/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("docs/vectors/relay-batch-v1.3.json", () => {
  interface Vectors {
    senderAuthKey: string;
    recipientAuthKey: string;
    commands: { command: string; i: number; t: string; a: string; frame: string }[];
    answers: { r: string[]; frame: string }[];
    rcvKey: string;
    timestamp: number;
    deliveries: { msgId: string; body: string; bucket: number; b: string }[];
    msgs: string;
  }
  const text = readFileSync(RELAY_BATCH_VECTOR_FILE, "utf8");
  const file = JSON.parse(text) as Vectors;
  const hexBytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

  it("is what scripts/gen-relay-batch-vectors.ts generates", async () => {
    expect(`${JSON.stringify(await buildRelayBatchVectors(), null, 2)}\n`).toBe(text);
  });

  it("the relay reads every command frame (byte-level and generic alike), its authenticator checks out, and its encoders write every answer", () => {
    for (const c of file.commands) {
      const frame = hexBytes(c.frame);
      const fast = fastDecode(frame, 65_535);
      expect(fast?.command.k).toBe(c.command);
      expect(fast?.command.i).toBe(c.i);
      const generic = decodeCommand(hexBytes(c.t), 65_535);
      expect(generic.ok && same(encodeCommand(generic.value), hexBytes(c.t))).toBe(true);
      expect(same(fast!.frame.t, hexBytes(c.t)) && same(fast!.frame.a!, hexBytes(c.a))).toBe(true);
      const key = c.command === "SENDS" ? file.senderAuthKey : file.recipientAuthKey;
      expect(createHmac("sha256", hexBytes(key)).update(hexBytes(c.t)).digest("hex")).toBe(c.a);
    }
    for (const a of file.answers) {
      const decoded = decodeServerFrame(hexBytes(a.frame));
      if (!decoded.ok || decoded.value.k !== "RES") throw new Error("RES vector does not decode");
      expect(decoded.value.r).toEqual(a.r);
      expect(Buffer.from(encodeRes(decoded.value.i, a.r)).toString("hex")).toBe(a.frame);
    }
  });

  it("the relay's node:crypto sealing and MSGS encoder give the MSGS frame; core opens every delivery", () => {
    const key = hexBytes(file.rcvKey);
    const f = decodeServerFrame(hexBytes(file.msgs));
    if (!f.ok || f.value.k !== "MSGS") throw new Error("MSGS vector does not decode");
    const items = file.deliveries.map((d) => {
      const parts = sealDeliveryParts(
        key,
        hexBytes(d.msgId),
        file.timestamp,
        padBlock(hexBytes(d.body), d.bucket),
        "bucket",
      );
      return { msgId: hexBytes(d.msgId), parts, length: parts.reduce((n, p) => n + p.length, 0) };
    });
    expect(Buffer.from(encodeMsgs(f.value.q, items)).toString("hex")).toBe(file.msgs);
    f.value.ms.forEach(([m, b], k) => {
      const opened = openFromRelay(key, m, b, "bucket");
      expect(opened.ok && Buffer.from(opened.value.body).toString("hex")).toBe(file.deliveries[k]!.body);
    });
  });
});
