/**
 * Room mailboxes at rest (docs/protocol/rooms.md §9): forgetting a pair (a member left or was
 * removed) deletes its records for good — work queued on the pair behind the forget stores none
 * of them again. The forget's deletes are held at the storage so that work queues behind it.
 * With a real relay (relay-ws/testing.ts) and the engine's relay connections (net/relay-pool.ts):
 * what a push queued behind a forget reads and acknowledges, and the pair list a forget leaves.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { memoryLinkPair } from "../../../../core/link/memory-link.ts";
import type { RelayClient } from "../../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../../core/relay/crypto.ts";
import { MAX_BODY } from "../../../../core/relay/protocol.ts";
import { establishSession } from "../../../../core/session/index.ts";
import { alice, bob } from "../../../../core/session/testing.ts";
import { storedMessageBytes } from "../../../../relay-ws/source-limits.ts";
import { connectRelay, relayCounter, startTestRelay, type TestRelay } from "../../../../relay-ws/testing.ts";
import { relaySocket, until } from "../../../../test/support/engine.ts";
import { RelayPool } from "../../net/relay-pool.ts";
import { decodeRx, encodeRx, MAILBOX, type RxQueue, ratchetBodies } from "../mailbox.ts";
import { freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from "../ratchet-store.ts";
import { RoomMailboxes } from "./mailbox.ts";

class HeldDeletes {
  readonly map = new Map<string, Uint8Array>();
  readonly held: (() => void)[] = [];
  hold = false;
  /** Deletes of secrets whose name includes this wait in `held` too. */
  holdNamed: string | undefined;
  /** Saves of secrets whose name includes this wait in `held`. */
  holdSaves: string | undefined;
  /** Reads of each secret, by name. */
  readonly loads = new Map<string, number>();
  /** Reads of secrets whose name includes this wait in `held`, then fail (a storage error). */
  failLoads: string | undefined;
  async loadSecret(name: string) {
    this.loads.set(name, (this.loads.get(name) ?? 0) + 1);
    if (this.failLoads !== undefined && name.includes(this.failLoads)) {
      await new Promise<void>((r) => this.held.push(r));
      throw new DOMException("refused", "UnknownError");
    }
    return this.map.get(name)?.slice();
  }
  /** Writes of each secret, by name. */
  readonly saves = new Map<string, number>();
  async saveSecret(name: string, value: Uint8Array) {
    this.saves.set(name, (this.saves.get(name) ?? 0) + 1);
    if (this.holdSaves !== undefined && name.includes(this.holdSaves))
      await new Promise<void>((r) => this.held.push(r));
    this.map.set(name, value.slice());
  }
  async deleteSecret(name: string) {
    if (this.hold || (this.holdNamed !== undefined && name.includes(this.holdNamed)))
      await new Promise<void>((r) => this.held.push(r));
    this.map.delete(name);
  }
  /** Everything held goes on; nothing more is held. */
  release() {
    this.hold = false;
    this.holdNamed = this.holdSaves = this.failLoads = undefined;
    for (const r of this.held.splice(0)) r();
  }
}

/** Nothing stored of `member`'s pair (ratchet, queues) and the pair list does not name it (§9). */
const expectNothingOf = (s: HeldDeletes, member: string) => {
  expect([...s.map.keys()].filter((k) => k.includes(member))).toEqual([]);
  const list = s.map.get("room-pairs");
  expect(list && new TextDecoder().decode(list).includes(member)).toBeFalsy();
};

const ROOM = "0a".repeat(16);
const MEMBER = "0b".repeat(32);
const queue = { u: "wss://relay.example", s: new Uint8Array(24).fill(1), k: new Uint8Array(32).fill(2) };

/**
 * Our room mailboxes with no relay, on storage that can hold its deletes, with the member's queue
 * for us announced (its `room-tx` record stored).
 */
const announcedOffline = async () => {
  const s = new HeldDeletes();
  const mail = new RoomMailboxes({
    storage: s,
    selfKey: new Uint8Array(32),
    log: () => {},
    onFrame: () => {},
  });
  await mail.announced(ROOM, MEMBER, queue, "live");
  return { s, mail };
};

describe("room mailboxes", () => {
  it("a member's queue announced behind the forget of its pair is not stored again for a member gone", async () => {
    const { s, mail } = await announcedOffline();
    expect(s.map.has(`room-tx/${ROOM}/${MEMBER}`)).toBe(true);
    s.hold = true;
    const forgotten = mail.forgetPair(ROOM, MEMBER);
    await vi.waitFor(() => expect(s.held.length).toBeGreaterThan(0));
    // Asked while the forget runs: a `room.mbox` the member left in our mailbox before its bye,
    // read on the pair's chain. (A live one asked now is a new session's, after the bye: it waits
    // for the forget and is kept on the pair made anew — the test of it below.)
    const late = mail.announced(ROOM, MEMBER, queue, "mailbox");
    s.hold = false;
    for (const r of s.held.splice(0)) r();
    await Promise.all([forgotten, late]);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
    // A pair made again later (the member back in the room) stores its records as before.
    await mail.announced(ROOM, MEMBER, queue, "live");
    expect(s.map.has(`room-tx/${ROOM}/${MEMBER}`)).toBe(true);
    // A live one queued behind the forget of the whole room (left, or we were removed): nothing
    // is asked of a member after that, and nothing is stored again.
    s.hold = true;
    const left = mail.forgetRoom(ROOM);
    await vi.waitFor(() => expect(s.held.length).toBeGreaterThan(0));
    const behind = mail.announced(ROOM, MEMBER, queue, "live");
    s.release();
    await Promise.all([left, behind]);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
  });

  it("forgetting members never paired with reads the pair list once, and stores nothing", async () => {
    const { s, mail } = await announcedOffline();
    const saved = new Map(s.map);
    // A state removing two members of another room, none of them ever paired with here.
    await mail.forgetPairs("0c".repeat(16), ["0d".repeat(32), "0e".repeat(32)]);
    expect(s.loads.get("room-pairs")).toBe(1); // before: read again to change nothing
    expect(s.map).toEqual(saved);
    // One that matched still changes the list as it is then (and deletes the pair's records).
    await mail.forgetPair(ROOM, MEMBER);
    expect(s.loads.get("room-pairs")).toBe(3);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
  });

  it("queueMoves of a forgotten pair reads 0 and does not bring the pair back", async () => {
    const { s, mail } = await announcedOffline();
    await mail.forgetPair(ROOM, MEMBER);
    const read = s.loads.get("room-pairs") ?? 0;
    // Asked at every mailbox pass (rooms/mesh.ts): before, it made the pair again, empty.
    expect(mail.queueMoves(ROOM, MEMBER)).toBe(0);
    // Nothing of it left to forget: the list is read once and not changed (a pair brought back
    // was forgotten again, the list read a second time to drop it).
    await mail.forgetPair(ROOM, MEMBER);
    expect(s.loads.get("room-pairs")).toBe(read + 1);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
  });
});

describe("room mailboxes on a real relay", () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startTestRelay();
  });
  afterAll(async () => {
    await relay?.close();
  });

  /** Our room mailboxes over the engine's relay connections to `relay`, on `storage`; each push counted. */
  const mailboxes = async (
    storage: HeldDeletes,
    urls = [relay.url],
    self: { key: Uint8Array; onFrame?: (frame: Uint8Array) => void } = { key: new Uint8Array(32) },
  ) => {
    const logs: string[] = [];
    let pushes = 0;
    const log = (m: string) => logs.push(m);
    const mail: RoomMailboxes = new RoomMailboxes({
      storage,
      selfKey: self.key,
      log,
      onFrame: (_room, _member, frame) => {
        self.onFrame?.(frame);
      },
    });
    const pool = new RelayPool({
      webSocket: (url) => relaySocket(url),
      timeoutMs: 10_000,
      backoffInitialMs: 50,
      backoffMaxMs: 200,
      window: 8,
      onMessage: (url, m) => {
        pushes++;
        mail.onRelayMessage(url, m);
      },
      onState: () => {},
      log,
    });
    for (const url of urls) pool.keep(url); // as the engine keeps each of our relays (engine.ts)
    await mail.attach(pool, urls);
    return { mail, pool, logs, pushes: () => pushes };
  };
  /** A member leaves a mailbox message (pieces of `sealed`) in our queue `rx`, as `deposit` does. */
  const leave = async (rx: RxQueue, sealed: Uint8Array) => {
    const member = await connectRelay(rx.url);
    try {
      const to = { senderId: rx.queue.senderId, senderAuthSecret: rx.senderSecret };
      for (const body of ratchetBodies(sealed)) await member.send(to, body);
    } finally {
      member.close();
    }
  };
  /** ACK commands the relay answered (one by one or in ACKS frames), whatever the answer. */
  const acks = async () =>
    (await relayCounter(relay, "loft_relay_commands_total", { command: "ACK" })) +
    (await relayCounter(relay, "loft_relay_commands_total", { command: "ACKS" }));

  it("a push queued behind the forget of its pair reads nothing and acknowledges nothing at the deleted queue", async () => {
    const s = new HeldDeletes();
    const { mail, pool, logs, pushes } = await mailboxes(s);
    try {
      const rx = await mail.receivingQueue(ROOM, MEMBER);
      if (!rx) throw new Error("no queue made");
      // The pair's chain busy (a member's queue being stored), the forget queued behind it.
      s.holdSaves = `room-tx/${ROOM}/${MEMBER}`;
      const busy = mail.announced(ROOM, MEMBER, queue, "live");
      await until(() => s.held.length > 0, "the pair's chain held");
      const forgotten = mail.forgetPair(ROOM, MEMBER);
      // A message the member left just before its bye: pushed, queued behind the forget.
      await leave(rx, new Uint8Array(100).fill(7));
      await until(() => pushes() === 1, "the push arrived");
      const before = await acks();
      s.release();
      await Promise.all([busy, forgotten]);
      await until(
        () => logs.some((l) => l.includes("room queue we forgot") || l.includes("relay ACK")),
        "the push handled",
      );
      // Before: the push read for a pair gone, and its ACK refused at the queue the forget deleted.
      expect(logs.filter((l) => l.includes("relay ACK"))).toEqual([]);
      expect(await acks()).toBe(before);
      expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
    } finally {
      pool.close();
    }
  });

  it("a push of our old queue queued behind its retirement is read, and not acknowledged at the deleted queue", async () => {
    const other = await startTestRelay();
    const s = new HeldDeletes();
    const { mail, pool, logs, pushes } = await mailboxes(s, [relay.url, other.url]);
    try {
      const old = await mail.receivingQueue(ROOM, MEMBER);
      if (!old) throw new Error("no queue made");
      // Its relay taken for dead: a new queue on the other one, the old one read until retired.
      expect((await mail.moveOff(old.url)).map((m) => m.rx.url)).not.toContain(old.url);
      s.holdSaves = `room-tx/${ROOM}/${MEMBER}`;
      const busy = mail.announced(ROOM, MEMBER, queue, "live");
      await until(() => s.held.length > 0, "the pair's chain held");
      const retired = mail.retireOld(ROOM, MEMBER);
      await leave(old, new Uint8Array(100).fill(7));
      await until(() => pushes() === 1, "the push arrived");
      s.release();
      await Promise.all([busy, retired]);
      // Anything more on the pair's chain runs once the read is settled (its ACKs answered).
      await mail.retireOld(ROOM, MEMBER);
      expect(logs.filter((l) => l.includes("dropped a room mailbox message"))).toHaveLength(1); // read
      // Before: acknowledged at the old queue its retirement had deleted, and refused.
      expect(logs.filter((l) => l.includes("relay ACK"))).toEqual([]);
    } finally {
      pool.close();
      await other.close();
    }
  });

  it("a mailbox message for a pair with no ratchet is dropped, and says so", async () => {
    const { mail, pool, logs } = await mailboxes(new HeldDeletes());
    try {
      const rx = await mail.receivingQueue(ROOM, MEMBER);
      if (!rx) throw new Error("no queue made");
      const before = await acks();
      await leave(rx, new Uint8Array(100).fill(7));
      // Acknowledged: no ratchet of ours will ever open it (a new one is a new ratchet).
      await until(async () => (await acks()) > before, "acknowledged");
      expect(logs.filter((l) => l.includes("dropped a room mailbox message"))).toEqual([
        "dropped a room mailbox message: the pair has no ratchet",
      ]);
    } finally {
      pool.close();
    }
  });

  it("a live room.dr for a pair with no ratchet is dropped, and says so — as a live frame, not as a mailbox message", async () => {
    const logs: string[] = [];
    const frames: Uint8Array[] = [];
    const mail = new RoomMailboxes({
      storage: new HeldDeletes(),
      selfKey: new Uint8Array(32),
      log: (l) => logs.push(l),
      onFrame: (_room, _member, frame) => {
        frames.push(frame);
      },
    });
    await mail.open(ROOM, MEMBER, new Uint8Array(100).fill(7));
    expect(frames).toEqual([]);
    // Before: "dropped a room mailbox message", for a frame that came over the member's session.
    expect(logs).toEqual(["dropped a sealed room frame (room.dr, live): the pair has no ratchet"]);
  });

  it("a pair made again while a forget runs on the room's other pairs stays listed: its queue is read after a restart", async () => {
    const s = new HeldDeletes();
    const [ann, bea] = ["0b".repeat(32), "0c".repeat(32)];
    const first = await mailboxes(s);
    let pool = first.pool;
    try {
      for (const m of [ann, bea]) expect(await first.mail.receivingQueue(ROOM, m)).toBeDefined();
      // The room left: Ann's pair forgotten, Bea's forget held (its records being deleted).
      s.holdNamed = bea;
      const left = first.mail.forgetRoom(ROOM);
      await until(() => s.held.length > 0, "bea's pair being forgotten");
      expect([...s.map.keys()].filter((k) => k.includes(`room-rx/${ROOM}/${ann}`))).toEqual([]);
      // Back in the room meanwhile: Ann's session asks for our queue, made and listed anew.
      const rx = await first.mail.receivingQueue(ROOM, ann);
      if (!rx) throw new Error("no queue made");
      s.release();
      await left;
      pool.close();
      // After a restart, the list subscribes Ann's queue: what she leaves there is read. Before:
      // the forget's last write took her key off the list, and only her next session listed it.
      const again = await mailboxes(s);
      pool = again.pool;
      await leave(rx, new Uint8Array(100).fill(7));
      await until(() => again.pushes() === 1, "ann's queue read after the restart");
    } finally {
      pool.close();
    }
  });

  /** A real Noise session between us (Alice, who dials) and the member (Bob, with a ratchet key). */
  const sessionPair = async () => {
    const kp = await freshRatchetKeyPair();
    const [la, lb] = memoryLinkPair();
    const [a, b] = await Promise.all([
      establishSession({ link: la, role: "initiator", kind: "direct", self: alice }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: bob,
        extensions: { [RATCHET_KEY_EXTENSION]: kp.publicKey },
      }),
    ]);
    return { a, b, kp };
  };

  /** `f` with a live session between us and the member, both its ends closed after `f`, passed or failed. */
  const inSession = async (f: (pair: Awaited<ReturnType<typeof sessionPair>>) => Promise<void>) => {
    const pair = await sessionPair();
    try {
      await f(pair);
    } finally {
      pair.a.close("done");
      pair.b.close("done");
    }
  };

  /** `f`, then the relay pools of `mailboxes` closed, passed or failed. */
  const closing = async (mailboxes: { pool: RelayPool }[], f: () => Promise<void>) => {
    try {
      await f();
    } finally {
      for (const m of mailboxes) m.pool.close();
    }
  };

  it("a member back while the forget of its pair runs: its session's ratchet and our queue are made anew, not dropped with the pair gone", async () => {
    const s = new HeldDeletes();
    const us = "0d".repeat(32);
    const got: Uint8Array[] = [];
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    const theirs = await mailboxes(new HeldDeletes(), [relay.url], {
      key: bob.identity.verified.identity_key,
      onFrame: (f) => got.push(f.slice()),
    });
    await closing([ours, theirs], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      // The member removed: its pair forgotten, the forget's deletes held.
      s.holdNamed = MEMBER;
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      await until(() => s.held.length > 0, "the pair being forgotten");
      // Back in the room meanwhile: a new session (we dial, it answers), its ratchet sync and our
      // queue asked for (rooms/mesh.ts `#onRatchetSync`) while the forget still runs.
      await inSession(async ({ a, b, kp }) => {
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        // Our queue once the sync is done, as rooms/mesh.ts `#onRatchetSync` asks for it.
        const rx = started.then(() => ours.mail.receivingQueue(ROOM, MEMBER));
        expect(await theirs.mail.sync(ROOM, us, undefined, b, kp)).toBe(false);
        s.release();
        await forgotten;
        expect(await started).toBe(true);
        expect(await rx).toBeDefined();
        // Both ends hold the one ratchet: what we seal opens there. Before: ours was dropped with
        // the pair gone (and no queue made), so what the member sealed for us never opened — its
        // mailbox messages were dropped as "the pair has no ratchet".
        expect(await ours.mail.ratchetId(ROOM, MEMBER)).toEqual(await theirs.mail.ratchetId(ROOM, us));
        const sealed = await ours.mail.seal(ROOM, MEMBER, new Uint8Array([1, 2, 3]));
        if (!sealed) throw new Error("nothing sealed");
        await theirs.mail.open(ROOM, us, sealed);
        expect(got).toEqual([new Uint8Array([1, 2, 3])]);
      });
    });
  });

  it("a member back while the forget of its pair runs: its new session's queue for us (room.mbox) is kept on the pair made anew, and what we deposit reaches it", async () => {
    const s = new HeldDeletes();
    const us = "0d".repeat(32);
    const got: Uint8Array[] = [];
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    const theirs = await mailboxes(new HeldDeletes(), [relay.url], {
      key: bob.identity.verified.identity_key,
      onFrame: (f) => got.push(f.slice()),
    });
    try {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      // The member said its bye: its pair forgotten, the forget's deletes held.
      s.holdNamed = MEMBER;
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      await until(() => s.held.length > 0, "the pair being forgotten");
      // Back meanwhile: a new session (we dial), its ratchet sync, and its `room.mbox` — its queue
      // for us — read on that session while the forget still runs.
      const { a, b, kp } = await sessionPair();
      try {
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        expect(await theirs.mail.sync(ROOM, us, undefined, b, kp)).toBe(false);
        const mbox = await theirs.mail.receivingQueue(ROOM, us);
        if (!mbox) throw new Error("no queue made");
        const announced = ours.mail.announced(
          ROOM,
          MEMBER,
          {
            u: mbox.url,
            s: mbox.queue.senderId,
            k: mbox.senderSecret,
          },
          "live",
        );
        s.release();
        await Promise.all([forgotten, announced]);
        expect(await started).toBe(true);
        // Before: the announcement ran on the pair being forgotten, found it gone and kept nothing:
        // every deposit for the member had no route until its next session announced again.
        expect(s.map.has(`room-tx/${ROOM}/${MEMBER}`)).toBe(true);
        expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([4, 2]))).toBe("sent");
        await until(() => got.length === 1, "the member read its mailbox");
        expect(got).toEqual([new Uint8Array([4, 2])]);
      } finally {
        a.close("done");
        b.close("done");
      }
    } finally {
      ours.pool.close();
      theirs.pool.close();
    }
  });

  it("a member back while the forget of its pair runs, dialing us: its first sealed frame opens on the pair made anew, not dropped", async () => {
    const s = new HeldDeletes();
    const us = "0d".repeat(32);
    // This time the member dials (Alice, initiator) and we answer (Bob, with our ratchet key).
    const ours = await mailboxes(s, [relay.url], { key: bob.identity.verified.identity_key });
    const got: Uint8Array[] = [];
    const theirs = await mailboxes(new HeldDeletes(), [relay.url], {
      key: alice.identity.verified.identity_key,
      onFrame: (f) => got.push(f.slice()),
    });
    await closing([ours, theirs], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      s.holdNamed = MEMBER;
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      await until(() => s.held.length > 0, "the pair being forgotten");
      await inSession(async ({ a, b, kp }) => {
        // Its side starts the ratchet and sends the first sealed frame (`room.dr`, rooms/mesh.ts
        // `#onRatchetSync`); ours takes its `room.rs`, then that frame, while the forget still runs.
        expect(await theirs.mail.sync(ROOM, us, undefined, a, undefined)).toBe(true);
        const first = await theirs.mail.seal(ROOM, us, new Uint8Array([7]));
        if (!first) throw new Error("nothing sealed");
        const started = ours.mail.sync(ROOM, MEMBER, undefined, b, kp);
        const opened = ours.mail.open(ROOM, MEMBER, first);
        s.release();
        await forgotten;
        expect(await started).toBe(false);
        await opened;
        // With that frame our (responder's) ratchet sends too: what we seal opens there. Before,
        // the open ran on the pair gone (no ratchet): the frame was dropped, and we could not seal
        // anything for the member until a message of its reached us.
        const sealed = await ours.mail.seal(ROOM, MEMBER, new Uint8Array([8]));
        if (!sealed) throw new Error("nothing sealed: our ratchet cannot send");
        await theirs.mail.open(ROOM, us, sealed);
        expect(got).toEqual([new Uint8Array([8])]);
      });
    });
  });

  it("a member back while the forget of its pair waits for another forget: what its new session makes is not forgotten after", async () => {
    const s = new HeldDeletes();
    const us = "0d".repeat(32);
    const other = "0e".repeat(32);
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    const theirs = await mailboxes(new HeldDeletes(), [relay.url], {
      key: bob.identity.verified.identity_key,
    });
    await closing([ours, theirs], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      expect(await ours.mail.receivingQueue(ROOM, other)).toBeDefined();
      // Another member's pair being forgotten, its deletes held (as a relay slow to answer the
      // queue's deletion); the member's own forget, asked for now, waits for it (one at a time).
      s.holdNamed = other;
      const first = ours.mail.forgetPair(ROOM, other);
      await until(() => s.held.length > 0, "the other pair being forgotten");
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      // The member back meanwhile: its new session's sync, then our queue (rooms/mesh.ts
      // `#onRatchetSync`), asked for before its forget began.
      await inSession(async ({ a, b, kp }) => {
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        const rx = started.then(() => ours.mail.receivingQueue(ROOM, MEMBER));
        expect(await theirs.mail.sync(ROOM, us, undefined, b, kp)).toBe(false);
        s.release();
        await Promise.all([first, forgotten]);
        expect(await started).toBe(true);
        const made = await rx;
        expect(made).toBeDefined();
        // Both still hold the one ratchet and our queue is still listed. Before, the sync and the
        // queue ran at once on the pair about to be forgotten, and its forget then deleted both:
        // no ratchet here for the member's session, its mailbox messages dropped.
        expect(await ours.mail.ratchetId(ROOM, MEMBER)).toEqual(await theirs.mail.ratchetId(ROOM, us));
        expect(s.map.has(`room-dr/${ROOM}/${MEMBER}`)).toBe(true);
        expect(s.map.has(`room-rx/${ROOM}/${MEMBER}`)).toBe(true);
        const sealed = await ours.mail.seal(ROOM, MEMBER, new Uint8Array([9]));
        expect(sealed).toBeDefined();
      });
    });
  });

  it("a member back during its forget that says its bye again: nothing of that session is left for the member gone", async () => {
    const s = new HeldDeletes();
    const other = "0e".repeat(32);
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    await closing([ours], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      expect(await ours.mail.receivingQueue(ROOM, other)).toBeDefined();
      // Its first bye's forget waits for another member's (its deletes held, one forget at a time).
      s.holdNamed = other;
      const first = ours.mail.forgetPair(ROOM, other);
      await until(() => s.held.length > 0, "the other pair being forgotten");
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      await inSession(async ({ a }) => {
        // Back meanwhile: its new session's `room.rs` (the sync, then our queue, as rooms/mesh.ts
        // `#onRatchetSync` asks), then that session's own `room.bye`, before the first forget ran.
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        const rx = started.then(() => ours.mail.receivingQueue(ROOM, MEMBER));
        const again = ours.mail.forgetPair(ROOM, MEMBER);
        s.release();
        await Promise.all([first, forgotten, again, started, rx]);
        // Its last word was its bye: no ratchet, no queue of ours, nothing listed (§9). Before, the
        // sync waited for the second forget too and ran after it, on a pair made anew: its ratchet
        // and our queue stored, listed and subscribed at every start, for a member gone.
        expectNothingOf(s, MEMBER);
      });
    });
  });

  it("a member's forget the storage refuses: its new session's sync and first frame wait for it, not for ever", async () => {
    const s = new HeldDeletes();
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    await closing([ours], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      // The forget's read of the pair list held, then refused.
      s.failLoads = "room-pairs";
      const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
      await until(() => s.held.length > 0, "the forget reading the pair list");
      await inSession(async ({ a }) => {
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        const opened = ours.mail.open(ROOM, MEMBER, new Uint8Array(64));
        s.release();
        await expect(forgotten).rejects.toThrow("refused");
        // Both ran once it failed (on the pair it did not reach): the sync started a ratchet.
        expect(await started).toBe(true);
        await opened;
        expect(s.map.has(`room-dr/${ROOM}/${MEMBER}`)).toBe(true);
      });
    });
  });

  it("our queue asked for by a member's last session after its bye (its sync done just before) is not made for the member gone", async () => {
    const s = new HeldDeletes();
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    await closing([ours], async () => {
      await inSession(async ({ a }) => {
        // The session's `room.rs` taken: its sync done (rooms/mesh.ts `#onRatchetSync`)...
        expect(await ours.mail.sync(ROOM, MEMBER, undefined, a, undefined)).toBe(true);
        expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
        // ...then its bye, and the queue `#onRatchetSync` asks for next, while the forget runs.
        s.holdNamed = MEMBER;
        const forgotten = ours.mail.forgetPair(ROOM, MEMBER);
        await until(() => s.held.length > 0, "the pair being forgotten");
        const rx = ours.mail.receivingQueue(ROOM, MEMBER);
        s.release();
        await forgotten;
        // Nothing made for a member gone (§9: departed members hold no queue of ours). Before, it
        // was made on a pair made anew, stored and listed — subscribed at every start, for ever.
        expect(await rx).toBeUndefined();
        expectNothingOf(s, MEMBER);
      });
    });
  });

  it("a session's ratchet sync queued behind the forget of its room starts nothing and stores nothing", async () => {
    const s = new HeldDeletes();
    const ours = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
    await closing([ours], async () => {
      expect(await ours.mail.receivingQueue(ROOM, MEMBER)).toBeDefined();
      // The room left (or we were removed from it): every pair of it forgotten, deletes held.
      s.holdNamed = MEMBER;
      const forgotten = ours.mail.forgetRoom(ROOM);
      await until(() => s.held.length > 0, "the room being forgotten");
      // A member's `room.rs` taken just before: its sync and our queue queue behind the forget.
      await inSession(async ({ a }) => {
        const started = ours.mail.sync(ROOM, MEMBER, undefined, a, undefined);
        const rx = ours.mail.receivingQueue(ROOM, MEMBER);
        s.release();
        await forgotten;
        // Nothing started (before: "started", with nothing kept), no queue, no record left.
        expect(await started).toBe(false);
        expect(await rx).toBeUndefined();
        expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
      });
    });
  });

  /** A queue made by a member (`owner`, its relay connection) for us: its record and its `room.mbox`. */
  const memberQueue = async (owner: RelayClient, url = relay.url) => {
    const q = await owner.createQueue({ subscribe: false });
    const sender = newAuthKeyPair();
    await owner.secureQueue(q, sender.publicKey);
    return { q, mbox: { u: url, s: q.senderId, k: sender.secretKey } };
  };

  /**
   * A relay that lets an address store two mailbox bodies, then refuses (STORE_RATE), one of them
   * taken already by a neighbour on our address: the first piece of a two-piece message of ours is
   * stored there, the second not.
   */
  const rationedRelay = async () => {
    const r = await startTestRelay({
      sourceStoreRate: 1,
      sourceStoreBurst: 2 * storedMessageBytes(MAX_BODY) + 1_024, // a queue made counts too
      queueQuota: 100,
    });
    const neighbour = await connectRelay(r.url);
    try {
      const other = await neighbour.createQueue({ subscribe: false });
      await neighbour.send({ senderId: other.senderId }, new Uint8Array(MAX_BODY));
    } finally {
      neighbour.close();
    }
    return r;
  };

  /** Relay connections from `address`: a budget of their own at a relay that rations addresses. */
  const poolFrom = (address: string) =>
    new RelayPool({
      webSocket: (url) => relaySocket(url, address),
      timeoutMs: 2_000,
      backoffInitialMs: 50,
      backoffMaxMs: 200,
      window: 8,
      onMessage: () => {},
      onState: () => {},
      log: () => {},
    });

  /** Each body's type byte (mailbox.ts `MAILBOX`) of what `q` holds, in order, taken off it. */
  const typesIn = async (c: RelayClient, q: Awaited<ReturnType<RelayClient["createQueue"]>>) => {
    const out: number[] = [];
    for (let m = await c.get(q); m; m = await c.get(q)) {
      out.push(m.body[0]!);
      await c.ack(q, m.msgId);
    }
    return out;
  };

  /**
   * A scene with a member who has its queue for us at `ownerUrl`: our room mailboxes on `storage`
   * over `urls` (Alice's key), the member's relay connection `owner` (from `ownerAddress`, a budget
   * of its own at a relay that rations addresses), and a live session on which our pair ratchet is
   * started. `f` runs with them; all of it is closed after, passed or failed.
   */
  const withMember = async (
    f: (scene: { ours: Awaited<ReturnType<typeof mailboxes>>; owner: RelayClient }) => Promise<void>,
    scene: { storage?: HeldDeletes; urls?: string[]; ownerUrl?: string; ownerAddress?: string } = {},
  ) => {
    const urls = scene.urls ?? [relay.url];
    const ours = await mailboxes(scene.storage ?? new HeldDeletes(), urls, {
      key: alice.identity.verified.identity_key,
    });
    const from = scene.ownerAddress === undefined ? {} : { localAddress: scene.ownerAddress };
    const owner = await connectRelay(scene.ownerUrl ?? urls[0]!, {}, from);
    const { a, b } = await sessionPair();
    try {
      expect(await ours.mail.sync(ROOM, MEMBER, undefined, a, undefined)).toBe(true);
      await f({ ours, owner });
    } finally {
      a.close("done");
      b.close("done");
      owner.close();
      ours.pool.close();
    }
  };

  it("a member's queue its relay lost (AUTH on our deposit): the queue it announces next replaces it", async () => {
    await withMember(async ({ ours, owner }) => {
      const lost = await memberQueue(owner);
      expect(await ours.mail.announced(ROOM, MEMBER, lost.mbox, "live")).toBe(false);
      expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]), "left")).toBe("sent");
      // The relay lost the queue: our next deposit is refused, the address dropped.
      await owner.deleteQueue(lost.q);
      expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([2]), "refused")).toBe("no-route");
      // The member, refused on SUB, moved its queue and says so. Before: taken as a first address,
      // and what the lost queue held went again only live.
      const replaced: string[] = [];
      const next = await memberQueue(owner);
      expect(
        await ours.mail.announced(ROOM, MEMBER, next.mbox, "mailbox", () => replaced.push("again")),
      ).toBe(true);
      expect(replaced).toEqual(["again"]);
      // Once: the same address again changes nothing.
      expect(await ours.mail.announced(ROOM, MEMBER, next.mbox, "live", () => replaced.push("again"))).toBe(
        false,
      );
    });
  });

  it("the same room.mbox again (each of the member's sessions sends one) is not stored again", async () => {
    const s = new HeldDeletes();
    await withMember(
      async ({ ours, owner }) => {
        const { q, mbox } = await memberQueue(owner);
        const txName = `room-tx/${ROOM}/${MEMBER}`;
        expect(await ours.mail.announced(ROOM, MEMBER, mbox, "live")).toBe(false);
        expect(s.saves.get(txName)).toBe(1);
        // The member's next sessions, and a copy read from our mailbox: nothing new, nothing written
        // (before: one sealed write of the record per session).
        for (const from of ["live", "live", "mailbox"] as const)
          expect(await ours.mail.announced(ROOM, MEMBER, { ...mbox, k: mbox.k.slice() }, from)).toBe(false);
        expect(s.saves.get(txName)).toBe(1);
        // Still where we leave messages for the member.
        expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
        expect(await owner.get(q)).toBeDefined();
        // A new sender key for the same queue is news: stored.
        const rekeyed = newAuthKeyPair();
        await owner.secureQueue(q, rekeyed.publicKey).catch(() => undefined);
        // Not a move (mailbox.ts `replacesQueue`): what we left there is still read, nothing goes again.
        const moved: string[] = [];
        expect(
          await ours.mail.announced(ROOM, MEMBER, { ...mbox, k: rekeyed.secretKey }, "live", () =>
            moved.push("again"),
          ),
        ).toBe(false);
        expect(moved).toEqual([]);
        expect(s.saves.get(txName)).toBe(2);
      },
      { storage: s },
    );
  });

  it("an older room.mbox read after a newer one (its n below) is ignored: deposits go on into the newer queue", async () => {
    const s = new HeldDeletes();
    await withMember(
      async ({ ours, owner }) => {
        const older = await memberQueue(owner);
        const newer = await memberQueue(owner);
        // A `room.mbox` we deposit carries `n` only into a queue announced with one: the app that
        // reads it reads `n` (an app from before refuses a five-key frame; mailbox.ts `readsOrder`).
        expect(await ours.mail.readsOrder(ROOM, MEMBER)).toBe(false);
        // The newer announcement came live; the older one, left in our mailbox before the member
        // moved its queue, is read after it.
        expect(await ours.mail.announced(ROOM, MEMBER, { ...newer.mbox, n: 2_000 }, "live")).toBe(false);
        expect(await ours.mail.readsOrder(ROOM, MEMBER)).toBe(true);
        const replaced: string[] = [];
        expect(
          await ours.mail.announced(ROOM, MEMBER, { ...older.mbox, n: 1_000 }, "mailbox", () =>
            replaced.push("again"),
          ),
        ).toBe(false);
        expect(replaced).toEqual([]);
        expect(ours.logs.filter((l) => l.includes("announced late, ignored"))).toHaveLength(1);
        // Before: the older queue was taken — the member had retired it (AUTH), nothing went until
        // its next session. Now what we leave goes into the newer one.
        expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
        expect(await owner.get(newer.q)).toBeDefined();
        expect(await owner.get(older.q)).toBeUndefined();
        // Replayed: the same newer announcement changes nothing, and writes nothing.
        const txName = `room-tx/${ROOM}/${MEMBER}`;
        const writes = s.saves.get(txName);
        expect(await ours.mail.announced(ROOM, MEMBER, { ...newer.mbox, n: 2_000 }, "mailbox")).toBe(false);
        expect(s.saves.get(txName)).toBe(writes);
        // The order survives a restart (it is in the stored record): the older one is still ignored.
        const again = await mailboxes(s, [relay.url], { key: alice.identity.verified.identity_key });
        try {
          expect(await again.mail.readsOrder(ROOM, MEMBER)).toBe(true);
          expect(await again.mail.announced(ROOM, MEMBER, { ...older.mbox, n: 1_000 }, "mailbox")).toBe(
            false,
          );
          expect(await again.mail.deposit(ROOM, MEMBER, new Uint8Array([2]))).toBe("sent");
          expect(await owner.get(newer.q)).toBeDefined();
          // A newer one still replaces it; one without n (an app from before it) is taken as it was.
          const third = await memberQueue(owner);
          expect(await again.mail.announced(ROOM, MEMBER, { ...third.mbox, n: 3_000 }, "mailbox")).toBe(true);
          expect(await again.mail.announced(ROOM, MEMBER, older.mbox, "mailbox")).toBe(true);
          // Its queue now from an app that may be from before `n`: nothing of ours carries one there.
          expect(await again.mail.readsOrder(ROOM, MEMBER)).toBe(false);
        } finally {
          again.pool.close();
        }
      },
      { storage: s },
    );
  });

  it("a room.mbox over a live session is taken whatever its n (a member restored onto a device whose clock is behind); read late from the mailbox, an older one is not", async () => {
    await withMember(async ({ ours, owner }) => {
      const latest = await memberQueue(owner);
      const restored = await memberQueue(owner);
      expect(await ours.mail.announced(ROOM, MEMBER, { ...latest.mbox, n: 2_000 }, "mailbox")).toBe(false);
      // The member's device now, its clock behind the one that made `latest`: its queue comes live
      // with a lower n. Before: ignored, and every deposit went into the queue it no longer reads.
      expect(await ours.mail.announced(ROOM, MEMBER, { ...restored.mbox, n: 1_500 }, "live")).toBe(true);
      expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
      expect(await owner.get(restored.q)).toBeDefined();
      expect(await owner.get(latest.q)).toBeUndefined();
      // Its order is the one kept: one below it read from our mailbox is still older.
      const older = await memberQueue(owner);
      expect(await ours.mail.announced(ROOM, MEMBER, { ...older.mbox, n: 1_000 }, "mailbox")).toBe(false);
      expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([2]))).toBe("sent");
      expect(await owner.get(older.q)).toBeUndefined();
    });
  });

  it("a member's room.mbox that replaces its queue: marked on the pair's chain, and a deposit of a pass begun before it sends nothing", async () => {
    await withMember(async ({ ours, owner }) => {
      const first = await memberQueue(owner);
      const order: string[] = [];
      expect(await ours.mail.announced(ROOM, MEMBER, first.mbox, "live", () => order.push("replaced"))).toBe(
        false,
      );
      const since = ours.mail.queueMoves(ROOM, MEMBER);
      // The member moved its queue: its room.mbox comes while a mailbox pass (begun with `since`)
      // has a deposit to make — queued on the pair's chain right behind it.
      const second = await memberQueue(owner);
      const announced = ours.mail.announced(ROOM, MEMBER, second.mbox, "mailbox", () =>
        order.push("replaced"),
      );
      const late = ours.mail
        .deposit(ROOM, MEMBER, new Uint8Array([3]), "late", since)
        .then((r) => order.push(`late ${r}`));
      expect(await announced).toBe(true);
      await late;
      // Before: the pass's deposit went into the new queue ahead of what the replacement marks to
      // go again (rooms/mesh.ts #depositAgain), which the next pass sends.
      expect(order).toEqual(["replaced", "late no-route"]);
      expect(await owner.get(second.q)).toBeUndefined();
      // The next pass, begun after: into the new queue.
      const now = ours.mail.queueMoves(ROOM, MEMBER);
      expect(now).not.toBe(since);
      expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([4]), "next", now)).toBe("sent");
      expect(await owner.get(second.q)).toBeDefined();
    });
  });

  for (const key of ["long", undefined] as const)
    it(`a message cut short at the relay is finished before anything else goes into the member's queue: a receipt's body never lands between its pieces (${key === undefined ? "no key: a file's frame" : "a message, with its key"})`, async () => {
      // A relay that lets an address store two bodies, then refuses (STORE_RATE); a neighbour on
      // our address took one: the first piece of a two-piece message is stored, the second not.
      // What goes next (here a receipt, no key: the pass sends receipts first, rooms/mesh.ts) comes
      // over a fresh budget (another address). Before: it landed between the pieces, and the member
      // joined it to the cut message (pieces go until one marked last, docs/protocol/mailbox.md §2).
      // Without a key (a file's frame for a member who is away, files.md §9; a `room.mbox`) the
      // deposit is not kept for a retry of its own — before, its rest was dropped with it, and the
      // next body was joined to the lone first piece all the same.
      const limited = await rationedRelay();
      const fresh = poolFrom("127.0.0.4");
      try {
        await withMember(
          async ({ ours, owner }) => {
            const { q, mbox } = await memberQueue(owner, limited.url);
            expect(await ours.mail.announced(ROOM, MEMBER, mbox, "live")).toBe(false);
            const long = new Uint8Array(MAX_BODY).fill(7); // sealed: two pieces
            expect(await ours.mail.deposit(ROOM, MEMBER, long, key)).toBe("failed");
            await ours.mail.attach(fresh, [limited.url]);
            expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
            // The pass's retry of the message cut short: nothing of it left to send.
            if (key !== undefined) expect(await ours.mail.deposit(ROOM, MEMBER, long, key)).toBe("sent");
            expect(await typesIn(owner, q)).toEqual([
              MAILBOX.RATCHET_MORE,
              MAILBOX.RATCHET_END,
              MAILBOX.RATCHET,
            ]);
          },
          { urls: [limited.url], ownerAddress: "127.0.0.5" },
        );
      } finally {
        fresh.close();
        await limited.close();
      }
    });

  it("a queue of ours made before `n` gets one, stored, when it is announced to a member that reads it — not otherwise", async () => {
    // Without it the member holds our queue without `n` and deposits its moves for us without one
    // (mailbox.ts `readsOrder`): an older one read late would be taken, on every pair made before
    // `n`, until our queue moved. Before: announced without one, whoever read (§9).
    const s = new HeldDeletes();
    const record = `room-rx/${ROOM}/${MEMBER}`;
    const first = await mailboxes(s);
    let made: RxQueue | undefined;
    try {
      made = await first.mail.receivingQueue(ROOM, MEMBER);
    } finally {
      first.pool.close();
    }
    if (made?.n === undefined) throw new Error("no queue made, or made without n");
    // As an app from before `n` stored it.
    const { n: _, ...before } = made;
    s.map.set(record, encodeRx(before));
    const again = await mailboxes(s);
    try {
      expect((await again.mail.receivingQueue(ROOM, MEMBER))?.n).toBeUndefined();
      const t = Date.now();
      const rx = await again.mail.receivingQueue(ROOM, MEMBER, true);
      expect(rx?.n).toBeGreaterThanOrEqual(t);
      expect(rx?.queue.recipientId).toEqual(made.queue.recipientId);
      const stored = decodeRx(s.map.get(record)!);
      expect(stored.ok && stored.value.n).toBe(rx?.n);
      // Once: announced again, it keeps that one.
      expect((await again.mail.receivingQueue(ROOM, MEMBER, true))?.n).toBe(rx?.n);
    } finally {
      again.pool.close();
    }
  });

  it("a message cut short is never the one let go when the pair's pending list is full: its rest still goes before anything else", async () => {
    // Cut short (its first piece stored, the second refused), then 64 more messages that fail
    // before a piece of theirs goes (each first tries the rest of the cut one): the list of
    // half-sent messages is full (64), and the oldest is let go. Before the rooms merge it was the
    // one cut short — its rest never sent, the member joined the next body to its lone first piece.
    const limited = await rationedRelay();
    const fresh = poolFrom("127.0.0.4");
    try {
      await withMember(
        async ({ ours, owner }) => {
          const { q, mbox } = await memberQueue(owner, limited.url);
          expect(await ours.mail.announced(ROOM, MEMBER, mbox, "live")).toBe(false);
          const long = new Uint8Array(MAX_BODY).fill(7); // sealed: two pieces
          expect(await ours.mail.deposit(ROOM, MEMBER, long, "long")).toBe("failed");
          for (let i = 0; i < 64; i++)
            expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([i]), `waiting-${i}`)).toBe("failed");
          await ours.mail.attach(fresh, [limited.url]);
          expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
          expect(await typesIn(owner, q)).toEqual([
            MAILBOX.RATCHET_MORE,
            MAILBOX.RATCHET_END,
            MAILBOX.RATCHET,
          ]);
        },
        { urls: [limited.url], ownerAddress: "127.0.0.5" },
      );
    } finally {
      fresh.close();
      await limited.close();
    }
  });

  for (const oldRelay of ["back", "dead"] as const)
    it(`a message cut short in a member's queue it has since replaced is finished there once, then let go (old relay ${oldRelay})`, async () => {
      // The first piece of a two-piece message is stored in the member's queue on `old`, the
      // second refused (STORE_RATE, a neighbour on our address took the rest of the budget); then
      // the member moves its queue to `fresh` and tells us. The next deposit tries the rest once
      // into the old queue (over a fresh budget: another address) — where the member still reads
      // until a body arrives in the new one, and a lone piece would be joined to the next body it
      // reads (mailbox.md §8) — then goes into the new one. Dead, the old relay holds nothing up.
      // Before: the rest was dropped with the replacement, the lone piece left in the old queue.
      const old = await rationedRelay();
      const owner2 = await connectRelay(relay.url);
      const pool = poolFrom("127.0.0.4");
      let oldUp = true;
      try {
        await withMember(
          async ({ ours, owner }) => {
            const q1 = await memberQueue(owner, old.url);
            expect(await ours.mail.announced(ROOM, MEMBER, q1.mbox, "live")).toBe(false);
            const long = new Uint8Array(MAX_BODY).fill(7); // sealed: two pieces
            expect(await ours.mail.deposit(ROOM, MEMBER, long, "long")).toBe("failed");
            const q2 = await memberQueue(owner2);
            expect(await ours.mail.announced(ROOM, MEMBER, q2.mbox, "mailbox")).toBe(true);
            if (oldRelay === "dead") {
              oldUp = false;
              await old.close();
            }
            await ours.mail.attach(pool, [old.url, relay.url]);
            expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([1]))).toBe("sent");
            if (oldRelay === "back")
              expect(await typesIn(owner, q1.q)).toEqual([MAILBOX.RATCHET_MORE, MAILBOX.RATCHET_END]);
            expect(await typesIn(owner2, q2.q)).toEqual([MAILBOX.RATCHET]);
            // Once: the next deposit does not try again.
            expect(await ours.mail.deposit(ROOM, MEMBER, new Uint8Array([2]))).toBe("sent");
            expect(ours.logs.filter((l) => l.includes("former mailbox dropped"))).toHaveLength(
              oldRelay === "dead" ? 1 : 0,
            );
          },
          { urls: [old.url, relay.url], ownerAddress: "127.0.0.5" },
        );
      } finally {
        owner2.close();
        pool.close();
        if (oldUp) await old.close();
      }
    });
});
