/**
 * Rooms through the relay (docs/protocol/rooms.md §3): when no direct path opens between two
 * members (the in-memory direct links refuse to open), the dialing member reaches the newcomer
 * through the live relay transport — a real relay (relay-ws/testing.ts), real signaling, the
 * room hash in the relay offer, the same room binding in a Noise session of link kind "relay".
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestRelay, type TestRelay } from "../../../../relay-ws/testing.ts";
import { type RunningSignaling, startSignaling } from "../../../../signaling/testing.ts";
import {
  EngineHarness,
  type EngineNode,
  MemoryStorage,
  relaySocket,
  until,
} from "../../../../test/support/engine.ts";
import { fileTransfers } from "../../../../test/support/files.ts";
import { RelayLiveTransport } from "../../net/relay-live.ts";
import { encodeFileMsgFrame } from "../files/room-files.ts";
import type { RoomsApi } from "./api.ts";
import type { RoomsEngine } from "./mesh.ts";
import { RoomStore } from "./store.ts";
import { encodeRoomFrame } from "./wire.ts";

/** A room file's offer (files lane, FILE_MSG) as a member leaves it in a mailbox: a file of 10 bytes. */
const fileOffer = (name: string) =>
  encodeFileMsgFrame({
    t: "file.offer",
    id: 7,
    name,
    size: 10,
    type: "text/plain",
    hash: new Uint8Array(32),
    key: new Uint8Array(32).fill(1),
  });

/** A member's storage whose history writes are refused while `full` (a full disk). */
class FullDisk extends MemoryStorage {
  full = false;
  override async saveSecret(name: string, v: Uint8Array) {
    if (this.full && name.startsWith("room-log/")) throw new Error("the disk is full");
    return super.saveSecret(name, v);
  }
}

describe("rooms through the relay when no direct path opens (Node, real relay and signaling)", () => {
  let signaling: RunningSignaling;
  let relay: TestRelay;
  const h = new EngineHarness(() => ({
    signalingUrl: signaling.url,
    relayUrl: relay.url,
    config: {
      relayFallbackMs: 500,
      relayBackoffInitialMs: 50,
      relayBackoffMaxMs: 300,
      relayTimeoutMs: 10_000,
      log: () => {},
      relayTransport: (deps) => new RelayLiveTransport(deps),
    },
  }));

  beforeAll(async () => {
    [signaling, relay] = await Promise.all([startSignaling(), startTestRelay()]);
  });
  afterAll(async () => {
    await Promise.all([signaling?.close(), relay?.close()]);
  });
  afterEach(async () => {
    await h.stopAll();
  });

  const rooms = (n: EngineNode): RoomsApi => {
    if (!n.engine.rooms) throw new Error("no rooms");
    return n.engine.rooms;
  };
  const started = async (name: string) => {
    const n = h.node(name);
    await n.engine.start();
    await until(() => n.engine.serviceStatus().signaling === "connected", `${name} registered`);
    return n;
  };
  const texts = (n: EngineNode, id: string) =>
    rooms(n)
      .messages(id)
      .filter((m) => m.from !== undefined)
      .map((m) => m.text);
  /** Until both members hold a mailbox address for the other in `room` (docs/protocol/rooms.md §9). */
  const mailboxesExchanged = (a: EngineNode, b: EngineNode, room: string) =>
    until(
      () =>
        a.storage.secrets.has(`room-tx/${room}/${b.id}`) && b.storage.secrets.has(`room-tx/${room}/${a.id}`),
      "mailboxes exchanged",
    );
  const online = (n: EngineNode, id: string) =>
    rooms(n)
      .room(id)
      ?.members.filter((m) => m.state === "online").length ?? 0;
  /** Ann's room, Cat (on `storage`) in it with their mailboxes exchanged, then away: until Ann sees it. */
  const catAway = async (storage: MemoryStorage) => {
    const a = await started("ann");
    const c = h.node("cat", undefined, storage);
    await c.engine.start();
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await mailboxesExchanged(a, c, room.id);
    await c.engine.stop();
    await until(() => online(a, room.id) === 0, "cat away");
    return { a, c, room };
  };

  it("members with no direct path meet and chat through the relay; a wrong secret is still refused", async () => {
    h.hub.blockDirect = true;
    const [a, b, m] = [await started("ann"), await started("bea"), await started("mal")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(
      () => online(a, room.id) === 1 && online(b, room.id) === 1,
      "linked through the relay",
      30_000,
    );
    expect(h.hub.offers).toBeGreaterThan(0); // a direct attempt came first, and did not open
    // Each says which path the member's session runs on (the room screen shows "via relay").
    const paths = (n: EngineNode) =>
      rooms(n)
        .room(room.id)
        ?.members.map((x) => x.path);
    expect([paths(a), paths(b)]).toEqual([["relay"], ["relay"]]);
    rooms(a).send(room.id, "via the relay");
    await until(
      () =>
        rooms(b)
          .messages(room.id)
          .some((x) => x.text === "via the relay"),
      "bea has it",
    );
    await until(() => rooms(a).messages(room.id)[0]?.state === "delivered", "delivered");

    const wrong = room.fragment.replace(/&k=(.)/, (_, ch: string) => `&k=${ch === "A" ? "B" : "A"}`);
    await rooms(m).join(wrong);
    await until(
      () => (rooms(a).room(room.id)?.refused.length ?? 0) === 1,
      "ann saw a refused attempt",
      30_000,
    );
    expect(online(a, room.id)).toBe(1);
  });

  it("a member away gets what was said through its relay mailbox, in order", async () => {
    h.hub.blockDirect = false;
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked");
    expect(
      rooms(a)
        .room(room.id)
        ?.members.map((x) => x.path),
    ).toEqual(["direct"]);
    // Inside their session each hands the other its mailbox (and they share a pair ratchet).
    await mailboxesExchanged(a, b, room.id);
    await b.engine.stop();
    await until(() => online(a, room.id) === 0, "bea away");
    const sent = ["away 1", "away 2", "away 3"];
    for (const t of sent) rooms(a).send(room.id, t);
    // Bea is back without signaling: no member can reach her live, only her mailbox brings them.
    const again = h.node("bea", b.user, b.storage, "");
    await again.engine.start();
    await until(() => texts(again, room.id).length === 3, "bea read her mailbox");
    expect(texts(again, room.id)).toEqual(sent);
    // And the other way (Bea answered the session that started their ratchet: hers sends too).
    rooms(again).send(room.id, "bea, from her mailbox side");
    await until(() => texts(a, room.id).includes("bea, from her mailbox side"), "ann read her mailbox");
    // Receipts travel the same way: each side sees its messages delivered.
    const ours = (n: EngineNode) =>
      rooms(n)
        .messages(room.id)
        .filter((x) => x.from === undefined);
    await until(() => ours(a).every((x) => x.state === "delivered"), "ann's delivered");
    await until(() => ours(again).every((x) => x.state === "delivered"), "bea's delivered");
    expect(a.logs.some((l) => l.includes("room mailbox send failed"))).toBe(false);
  });

  it("a member joining two makes its queues for both at once: both stay listed, and after a restart it reads what each left", async () => {
    h.hub.blockDirect = false;
    // Cat's storage answers the reads of her pair list (`room-pairs`, rooms/mailbox.ts) made while
    // it is armed only once a second is waiting — both then read the same list, as two store
    // round trips overlapping on a loaded machine do — or, if none comes, a turn after her
    // queues for both members are stored. A list changed by read-and-write in each pair's own
    // chain lost one pair: its queue was not subscribed after her restart (rooms-relay.e2e).
    type Secret = Awaited<ReturnType<MemoryStorage["loadSecret"]>>;
    class OverlappingPairReads extends MemoryStorage {
      armed = false;
      held = 0;
      #waiting: ((read: Promise<Secret>) => void)[] = [];
      #queuesStored = 0;
      override async loadSecret(name: string) {
        if (!this.armed || name !== "room-pairs") return super.loadSecret(name);
        this.held++;
        return new Promise<Secret>((r) => {
          this.#waiting.push(r);
          if (this.#waiting.length >= 2) this.#release();
        });
      }
      override async saveSecret(name: string, v: Uint8Array) {
        await super.saveSecret(name, v);
        if (this.armed && name.startsWith("room-rx/") && ++this.#queuesStored === 2)
          setTimeout(() => this.#release(), 0);
      }
      /** Every held read answered with the list as it is now (each read here, at once); disarmed. */
      #release() {
        if (!this.armed) return;
        this.armed = false;
        for (const r of this.#waiting.splice(0)) r(super.loadSecret("room-pairs"));
      }
    }
    const [a, b] = [await started("ann"), await started("bea")];
    const storage = new OverlappingPairReads(signaling.url, [relay.url]);
    const c = h.node("cat", undefined, storage);
    await c.engine.start();
    await until(() => c.engine.serviceStatus().signaling === "connected", "cat registered");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await mailboxesExchanged(a, b, room.id);
    storage.armed = true;
    await rooms(c).join(room.fragment);
    await mailboxesExchanged(a, c, room.id);
    await mailboxesExchanged(b, c, room.id);
    expect(storage.held).toBeGreaterThan(0); // the list was read while armed: the overlap was offered
    await c.engine.stop();
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "cat away");
    rooms(a).send(room.id, "from ann");
    rooms(b).send(room.id, "from bea");
    const relayedToCat = (n: EngineNode) =>
      rooms(n)
        .messages(room.id)
        .find((x) => x.from === undefined)
        ?.to.find((t) => t.key === c.id)?.state === "relayed";
    await until(() => relayedToCat(a) && relayedToCat(b), "both sent to cat's relay mailboxes");
    // Cat back without signaling: only her two mailboxes bring them.
    const again = h.node("cat", c.user, storage, "");
    await again.engine.start();
    await until(() => texts(again, room.id).length === 2, "cat read both her mailboxes");
    expect(texts(again, room.id).sort()).toEqual(["from ann", "from bea"]);
  });

  it("a pair queue stored but left off the list (that race, before) is listed again at the member's next session", async () => {
    h.hub.blockDirect = false;
    const [a, c] = [await started("ann"), await started("cat")];
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await mailboxesExchanged(a, c, room.id);
    await c.engine.stop();
    // What the race left on a device: the queue and its records stored, the pair not listed.
    expect(c.storage.secrets.has(`room-rx/${room.id}/${a.id}`)).toBe(true);
    c.storage.secrets.delete("room-pairs");
    // Back with Ann there: their session lists the pair again (and subscribes its queue).
    const back = h.node("cat", c.user, c.storage);
    await back.engine.start();
    await until(() => online(back, room.id) === 1, "cat back with ann");
    await until(() => c.storage.secrets.has("room-pairs"), "the pair listed again");
    await back.engine.stop();
    await until(() => online(a, room.id) === 0, "cat away");
    rooms(a).send(room.id, "after the repair");
    await until(() => rooms(a).messages(room.id).at(-1)?.relayed === 1, "sent to cat's relay mailbox");
    // Cat back without signaling: the queue is subscribed at start again, so her mailbox brings it.
    const again = h.node("cat", c.user, c.storage, "");
    await again.engine.start();
    await until(() => texts(again, room.id).includes("after the repair"), "cat read her mailbox");
  });

  it("a member's sessions after the first do not read the pair list again: the pair is known listed", async () => {
    h.hub.blockDirect = false;
    class CountingReads extends MemoryStorage {
      pairReads = 0;
      txSaves = 0;
      override async loadSecret(name: string) {
        if (name === "room-pairs") this.pairReads++;
        return super.loadSecret(name);
      }
      override async saveSecret(name: string, v: Uint8Array) {
        if (name.startsWith("room-tx/")) this.txSaves++;
        return super.saveSecret(name, v);
      }
    }
    const a = h.node("ann", undefined, new CountingReads(signaling.url, [relay.url]));
    const cs = new CountingReads(signaling.url, [relay.url]);
    const c = h.node("cat", undefined, cs);
    for (const n of [a, c]) {
      await n.engine.start();
      await until(() => n.engine.serviceStatus().signaling === "connected", `${n.id} registered`);
    }
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await mailboxesExchanged(a, c, room.id);
    const as = a.storage as CountingReads;
    await until(() => as.txSaves >= 1 && cs.pairReads > 0, "cat's queue listed, announced to ann");
    const reads = cs.pairReads;
    const saves = as.txSaves;
    const again = () => a.logs.filter((l) => l.includes("queue announced again, unchanged")).length;
    for (let i = 1; i <= 2; i++) {
      const announced = again();
      // Cat's end of their link fails: Ann dials again, a new session, Cat announces her queue again.
      for (const l of h.hub.links) if (l.owner === c.id && l.state === "open") l.close("transport-closed");
      await until(() => online(a, room.id) === 1 && again() > announced, `session ${i + 1}: queue announced`);
    }
    // Before: each session listed the pair again (the list read, opened, compared) — one read each.
    expect(cs.pairReads).toBe(reads);
    // And Ann stored Cat's unchanged queue again on each session: a sealed write for nothing.
    expect(as.txSaves).toBe(saves);
  });

  it("a message read from the mailbox stays at the relay until our history holds it: a failed write loses nothing", async () => {
    h.hub.blockDirect = false;
    const storage = new FullDisk(signaling.url, [relay.url]);
    const { a, c, room } = await catAway(storage);
    rooms(a).send(room.id, "kept");
    await until(() => rooms(a).messages(room.id)[0]?.relayed === 1, "sent to cat's relay mailbox");
    // Cat back without signaling, her history writes refused: she reads it but cannot keep it.
    storage.full = true;
    const full = h.node("cat", c.user, storage, "");
    await full.engine.start();
    await until(() => texts(full, room.id).includes("kept"), "cat read it");
    await until(() => rooms(full).room(room.id)?.unsaved !== undefined, "the room shows it is not stored");
    await full.engine.stop();
    expect(rooms(a).messages(room.id)[0]?.state).toBe("sent"); // no receipt for what was not kept
    // With room again, the relay still has it: read, kept, and confirmed to Ann.
    storage.full = false;
    const again = h.node("cat", c.user, storage, "");
    await again.engine.start();
    await until(() => texts(again, room.id).includes("kept"), "cat read it again");
    await until(() => rooms(a).messages(room.id)[0]?.state === "delivered", "ann has cat's receipt");
  });

  it("a read whose history write was refused puts the pair's ratchet back: a later message of the same run does not strand it", async () => {
    h.hub.blockDirect = false;
    const storage = new FullDisk(signaling.url, [relay.url]);
    const { a, c, room } = await catAway(storage);
    const ours = (text: string) =>
      rooms(a)
        .messages(room.id)
        .find((x) => x.from === undefined && x.text === text);
    rooms(a).send(room.id, "refused");
    await until(() => ours("refused")?.relayed === 1, "sent to cat's relay mailbox");
    // Cat back without signaling, her history writes refused: the read is not stored.
    storage.full = true;
    const back = h.node("cat", c.user, storage, "");
    await back.engine.start();
    await until(
      () => texts(back, room.id).includes("refused") && rooms(back).room(room.id)?.unsaved !== undefined,
      "cat read it, not stored",
    );
    // Room again: the next message of this run is read, stored, its ratchet state stored.
    storage.full = false;
    rooms(a).send(room.id, "after");
    await until(() => ours("after")?.state === "delivered", "cat kept the next one");
    await back.engine.stop();
    // Her next start: the relay delivers the refused one again, and it still opens (its key kept
    // as skipped by the state stored since). Before: the state in memory had moved past it at
    // the refused read, the next message stored that state, and the copy no longer opened.
    const again = h.node("cat", c.user, storage, "");
    await again.engine.start();
    await until(
      () =>
        ours("refused")?.state === "delivered" ||
        again.logs.some((l) => l.includes("dropped a room mailbox message")),
      "the refused one read again",
    );
    expect(again.logs.filter((l) => l.includes("dropped a room mailbox message"))).toEqual([]);
    expect(ours("refused")?.state).toBe("delivered");
    expect(texts(again, room.id)).toEqual(["refused", "after"]);
  });

  it("a pair ratchet the disk refuses to store is said, not lost unseen: neither the sync's nor a live room.dr's failure is swallowed", async () => {
    h.hub.blockDirect = false;
    // Cat's storage refuses the pair ratchets (room-dr/…): a full disk.
    const storage = new (class extends MemoryStorage {
      override async saveSecret(name: string, v: Uint8Array) {
        if (name.startsWith("room-dr/")) throw new Error("the disk is full");
        return super.saveSecret(name, v);
      }
    })(signaling.url, [relay.url]);
    const c = h.node("cat", undefined, storage);
    await c.engine.start();
    await until(() => c.engine.serviceStatus().signaling === "connected", "cat registered");
    const a = await started("ann");
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(c, room.id) === 1, "linked");
    // Cat answers Ann's link: her sync stores her side's ratchet (refused), and Ann's first sealed
    // frame, a live room.dr, moves it on in memory and is refused storing it too. Before: the
    // sync's rejection went unhandled (mesh.ts, `room.rs`), the room.dr's was dropped unsaid.
    const said = [
      "room ratchet not stored: the disk is full",
      "a sealed room frame was not taken: the disk is full",
    ];
    await until(() => said.every((l) => c.logs.includes(l)), "cat says what was not stored");
    expect(c.logs.filter((l) => l.includes("the disk is full")).every((l) => said.includes(l))).toBe(true);
  });

  it("a file's offer read from the mailbox whose record the disk refuses stays at the relay, and is read again once there is room", async () => {
    h.hub.blockDirect = false;
    class NoRoomForFiles extends MemoryStorage {
      full = false;
      override async saveSecret(name: string, v: Uint8Array) {
        if (this.full && name.startsWith("file/")) throw new Error("the disk is full");
        return super.saveSecret(name, v);
      }
    }
    const storage = new NoRoomForFiles(signaling.url, [relay.url]);
    const { a, c, room } = await catAway(storage);
    const mailbox = await (a.engine.rooms as RoomsEngine).memberMailbox(room.id, c.id);
    if (!mailbox) throw new Error("no mailbox for cat");
    expect(await mailbox.deposit(fileOffer("minutes.txt"))).toBe(true);
    // Cat back without signaling, her disk full for files: the offer is read, its record refused.
    storage.full = true;
    const full = h.node("cat", c.user, storage, "");
    await full.engine.start();
    await until(
      () => full.logs.some((l) => l.includes("left at the relay: the disk is full")),
      "the offer's record refused, left at the relay",
    );
    // Said by the mailbox that leaves it at the relay, not also as a failed live frame of the files
    // lane (room-files.ts `onMailFrame`: the failure is passed on, not logged on the way).
    expect(full.logs.filter((l) => l.includes("room file frame"))).toEqual([]);
    await full.engine.stop();
    // Room again: the relay delivers the offer again (before: it was acknowledged as if stored — the
    // files lane logged the failure and resolved — and never came back).
    storage.full = false;
    const again = h.node("cat", c.user, storage, "");
    await again.engine.start();
    await until(
      () => [...fileTransfers(again).values()].some((t) => t.direction === "in" && t.name === "minutes.txt"),
      "the offer read again",
    );
  });

  it("a message read from the mailbox, its read not stored yet, and live again is confirmed only once our history holds it", async () => {
    h.hub.blockDirect = false;
    // Cat's storage holds the record of a file offered to her while `held` (a slow disk): the
    // mailbox read that brings it is opened, its room message shown, and not stored until it lands.
    class HeldFiles extends MemoryStorage {
      held: (() => void)[] | undefined;
      override async saveSecret(name: string, v: Uint8Array) {
        const held = this.held;
        if (held && name.startsWith("file/")) await new Promise<void>((r) => held.push(r));
        return super.saveSecret(name, v);
      }
    }
    const storage = new HeldFiles(signaling.url, [relay.url]);
    const { a, c, room } = await catAway(storage);
    // Into Cat's mailbox: a message, then a file's offer (a frame of the files lane, same read).
    rooms(a).send(room.id, "twice");
    await until(() => rooms(a).messages(room.id)[0]?.relayed === 1, "sent to cat's relay mailbox");
    const mailbox = await (a.engine.rooms as RoomsEngine).memberMailbox(room.id, c.id);
    if (!mailbox) throw new Error("no mailbox for cat");
    expect(await mailbox.deposit(fileOffer("notes.txt"))).toBe(true);
    await a.engine.stop();
    // Cat back: her mailbox read shows the message, and waits on the offer's record.
    storage.held = [];
    const back = h.node("cat", c.user, storage);
    await back.engine.start();
    await until(
      () => texts(back, room.id).includes("twice") && (storage.held?.length ?? 0) > 0,
      "cat read her mailbox, its storing held",
    );
    // Ann back: on their new session she sends it again (no receipt yet), Cat confirms it.
    const a2 = h.node("ann", a.user, a.storage);
    await a2.engine.start();
    await until(
      () =>
        rooms(a2)
          .messages(room.id)
          .find((x) => x.text === "twice")?.state === "delivered",
      "ann has cat's receipt",
    );
    // Before: the live copy, found in the history in memory, was confirmed at once — the writer told
    // "delivered" while the history write waited for the read to settle (and could still fail).
    expect((await new RoomStore(storage).log(room.id)).map((e) => e.text)).toContain("twice");
    const release = storage.held.splice(0);
    storage.held = undefined;
    for (const r of release) r();
  });

  it("a backlog read from a mailbox is stored in a few history writes, not one per message; a refused write loses none of it", async () => {
    h.hub.blockDirect = false;
    class CountingDisk extends MemoryStorage {
      full = false;
      logWrites = 0;
      ratchetWrites = 0;
      override async saveSecret(name: string, v: Uint8Array) {
        if (name.startsWith("room-log/")) {
          this.logWrites++;
          if (this.full) throw new Error("the disk is full");
        }
        if (name.startsWith("room-dr/")) this.ratchetWrites++;
        return super.saveSecret(name, v);
      }
    }
    const a = await started("ann");
    const storage = new CountingDisk(signaling.url, [relay.url]);
    const c = h.node("cat", undefined, storage);
    await c.engine.start();
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await mailboxesExchanged(a, c, room.id);
    const ours = () =>
      rooms(a)
        .messages(room.id)
        .filter((x) => x.from === undefined);
    const away = async (texts: string[]) => {
      await until(() => online(a, room.id) === 0, "cat away");
      for (const t of texts) rooms(a).send(room.id, t);
      await until(
        () => ours().filter((x) => x.relayed === 1).length === texts.length,
        "all in cat's mailbox",
      );
    };
    await c.engine.stop();
    const first = Array.from({ length: 16 }, (_, i) => `backlog ${i}`);
    await away(first);
    // Cat back without signaling: only her mailbox brings them, a SUB window at a time.
    const [logs, ratchets] = [storage.logWrites, storage.ratchetWrites];
    const back = h.node("cat", c.user, storage, "");
    await back.engine.start();
    await until(() => texts(back, room.id).length === 16, "cat read her backlog");
    await until(() => ours().every((x) => x.state === "delivered"), "each confirmed to ann");
    expect(texts(back, room.id)).toEqual(first);
    // Before: 16 history writes (and 16 ratchet writes), one per message.
    expect(storage.logWrites - logs).toBeLessThanOrEqual(8);
    expect(storage.ratchetWrites - ratchets).toBeLessThan(16);
    await back.engine.stop();

    // Her disk full: a backlog read but not stored is neither acknowledged nor confirmed, and
    // the ratchet stays as stored before it — read again, every message, once there is room.
    const second = Array.from({ length: 10 }, (_, i) => `refused ${i}`);
    await away(second);
    storage.full = true;
    const full = h.node("cat", c.user, storage, "");
    await full.engine.start();
    await until(() => second.every((t) => texts(full, room.id).includes(t)), "cat read it, unstored");
    await until(() => rooms(full).room(room.id)?.unsaved !== undefined, "the room says it is not stored");
    await full.engine.stop();
    expect(ours().filter((x) => x.state === "delivered").length).toBe(16);
    storage.full = false;
    const again = h.node("cat", c.user, storage, "");
    await again.engine.start();
    await until(() => ours().every((x) => x.state === "delivered"), "all confirmed once stored");
    expect(texts(again, room.id)).toEqual([...first, ...second]);
  });

  it("a message read live is confirmed only once our history holds it: a failed write sends no receipt, the writer sends it again", async () => {
    h.hub.blockDirect = false;
    // Cat's history writes wait while `held`, and are refused while `full`; each refusal counted.
    class HeldDisk extends MemoryStorage {
      full = false;
      refused = 0;
      held: (() => void)[] | undefined;
      override async saveSecret(name: string, v: Uint8Array) {
        if (name.startsWith("room-log/")) {
          const held = this.held;
          if (held) await new Promise<void>((r) => held.push(r));
          if (this.full) {
            this.refused++;
            throw new Error("the disk is full");
          }
        }
        return super.saveSecret(name, v);
      }
    }
    const a = await started("ann");
    const storage = new HeldDisk(signaling.url, [relay.url]);
    const c = h.node("cat", undefined, storage);
    await c.engine.start();
    await until(() => c.engine.serviceStatus().signaling === "connected", "cat registered");
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(c, room.id) === 1, "linked");
    const state = (text: string) =>
      rooms(a)
        .messages(room.id)
        .find((x) => x.from === undefined && x.text === text)?.state;
    // What Cat sends on the session after the message (a `room.hi`: no history write of hers)
    // reaches Ann after any receipt sent before it: once Ann has it, a receipt sent early is in.
    const barrier = async (name: string) => {
      const rc = c.engine.rooms;
      expect(rc?.sendFrame(room.id, a.id, encodeRoomFrame({ t: "room.hi", name }))).toBe(true);
      await until(
        () =>
          rooms(a)
            .room(room.id)
            ?.members.some((x) => x.name === name) === true,
        `ann has "${name}"`,
      );
    };

    // Its write held: Cat shows it, and what she sends after it reaches Ann (one ordered session)
    // before any receipt for it — there must be none yet.
    storage.held = [];
    rooms(a).send(room.id, "held");
    await until(
      () => texts(c, room.id).includes("held") && (storage.held?.length ?? 0) > 0,
      "cat shows it, unwritten",
    );
    await barrier("after held");
    expect(state("held")).toBe("sent");
    const release = storage.held.splice(0);
    storage.held = undefined;
    for (const r of release) r();
    await until(() => state("held") === "delivered", "confirmed once written");

    // Its write refused (a full disk): no receipt ever, so Ann keeps it to send again.
    storage.full = true;
    rooms(a).send(room.id, "refused");
    await until(() => texts(c, room.id).includes("refused") && storage.refused > 0, "cat's write refused");
    await barrier("after refused");
    expect(state("refused")).toBe("sent");
    // Shown on the room, not only logged: the person knows what they read is not kept.
    expect(rooms(c).room(room.id)?.unsaved).toBe("the browser's storage refused it");
    // Until a history write lands again (Cat's own next message).
    storage.full = false;
    rooms(c).send(room.id, "space again");
    await until(() => rooms(c).room(room.id)?.unsaved === undefined, "the warning goes once a write lands");
    // A new session: Ann sends it again (no receipt yet), Cat has it and confirms it.
    await c.engine.stop();
    await until(() => online(a, room.id) === 0, "cat away");
    const again = h.node("cat", c.user, storage);
    await again.engine.start();
    await until(() => state("refused") === "delivered", "sent again, kept, confirmed");
    expect(texts(again, room.id)).toContain("refused");
  });

  it("a member who leaves takes its pair queues with it, on both sides (no queue left for the departed)", async () => {
    h.hub.blockDirect = false;
    const [a, b, c] = [await started("ann"), await started("bea"), await started("cat")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await rooms(c).join(room.fragment);
    await until(() => [a, b, c].every((n) => online(n, room.id) === 2), "full mesh of three");
    const pairs = [
      [a, b],
      [a, c],
      [b, a],
      [b, c],
      [c, a],
      [c, b],
    ] as const;
    await until(
      () => pairs.every(([x, y]) => x.storage.secrets.has(`room-tx/${room.id}/${y.id}`)),
      "mailboxes exchanged",
    );
    const queues = () => relay.service.store.stats().queues;
    const before = queues();
    await rooms(c).leave(room.id);
    // Cat deleted its two receiving queues; Ann and Bea delete theirs for Cat on its bye.
    await until(() => queues() === before - 4, "the four queues of Cat's pairs deleted at the relay");
    for (const [x, y] of [
      [a, c],
      [b, c],
    ] as const) {
      await until(
        () => ["dr", "rx", "tx"].every((k) => !x.storage.secrets.has(`room-${k}/${room.id}/${y.id}`)),
        "the pair's records forgotten",
      );
      expect(x.storage.secrets.has(`room-tx/${room.id}/${x === a ? b.id : a.id}`)).toBe(true);
    }
    expect([...c.storage.secrets.keys()].filter((k) => k.includes(room.id))).toEqual([]);
  });

  it("a member who leaves while its session's ratchet sync is being stored: no queue of ours is made for it after", async () => {
    h.hub.blockDirect = false;
    // Ann's pair ratchets wait at her storage while `held` (a slow disk): her sync of the session
    // with Bea (rooms/mesh.ts `#onRatchetSync`) is still storing when Bea says her bye.
    class HeldRatchets extends MemoryStorage {
      held: (() => void)[] | undefined;
      override async saveSecret(name: string, v: Uint8Array) {
        const held = this.held;
        if (held && name.startsWith("room-dr/")) await new Promise<void>((r) => held.push(r));
        return super.saveSecret(name, v);
      }
    }
    const storage = new HeldRatchets(signaling.url, [relay.url]);
    const a = h.node("ann", undefined, storage);
    const b = await started("bea");
    await a.engine.start();
    await until(() => a.engine.serviceStatus().signaling === "connected", "ann registered");
    // Each has its contact address on the relay by now: what the room adds is counted from here.
    await until(
      () => [a, b].every((n) => n.logs.includes("prekeys published (16 one-time)")),
      "addresses up",
    );
    const queues = () => relay.service.store.stats().queues;
    const before = queues();
    const room = await rooms(a).create();
    storage.held = [];
    await rooms(b).join(room.fragment);
    // Ann dialed (she was there first): her sync starts their ratchet, and its store waits.
    await until(() => (storage.held?.length ?? 0) > 0, "ann's ratchet sync storing");
    await until(() => b.storage.secrets.has(`room-rx/${room.id}/${a.id}`), "bea's queue for ann made");
    await rooms(b).leave(room.id);
    await until(() => rooms(a).room(room.id)?.members.length === 0, "ann saw bea leave");
    const release = storage.held ?? [];
    storage.held = undefined;
    for (const r of release) r();
    const ofBea = () => [...storage.secrets.keys()].filter((k) => k.includes(b.id));
    await until(
      () =>
        a.logs.some((l) => l.includes("ended during its ratchet sync")) ||
        ofBea().includes(`room-rx/${room.id}/${b.id}`),
      "ann's sync of the ended session done",
    );
    // Before: once its sync and its first sealed frame were done, Ann asked for her queue for
    // Bea — on a pair made anew after the bye's forget: made at the relay, stored and listed,
    // subscribed at every start for a member gone (§9).
    expect(ofBea()).toEqual([]);
    const list = storage.secrets.get("room-pairs");
    expect(list && new TextDecoder().decode(list).includes(b.id)).toBeFalsy();
    expect(queues()).toBe(before);
  });

  it("a member that left while we were away: its deleted queue ends the deposits for it, no endless retry", async () => {
    h.hub.blockDirect = false;
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await mailboxesExchanged(a, b, room.id);
    await a.engine.stop();
    await rooms(b).leave(room.id); // Ann never hears the bye; Bea's queues are deleted at the relay
    const again = h.node("ann", a.user, a.storage);
    await again.engine.start();
    await until(() => rooms(again).room(room.id)?.status === "in", "ann back");
    rooms(again).send(room.id, "anyone?");
    await until(() => !again.storage.secrets.has(`room-tx/${room.id}/${b.id}`), "bea's queue forgotten");
    expect(
      again.logs.filter((l) => l.includes("room mailbox send failed: LOFT_ERR_RELAY_AUTH")),
    ).toHaveLength(1);
    expect(rooms(again).messages(room.id)[0]?.to).toMatchObject([{ key: b.id, state: "sending" }]);
  });

  it("a deposit the relay refuses is tried again: per member sending → sent to relay → delivered, in order", async () => {
    // A real relay that lets our address store about four mailbox bodies a second after a burst of
    // two: a burst of messages for an away member meets real refusals, then the rest goes later.
    const busy = await startTestRelay({ sourceStoreRate: 4 * 16_640, sourceStoreBurst: 2 * 16_640 });
    try {
      const on = (name: string, from?: string) =>
        h.node(name, undefined, new MemoryStorage(signaling.url, [busy.url]), undefined, {
          relayWebSocket: (url) => relaySocket(url, from),
        });
      // Bea's relay connections come from an address of their own: her receipts are not rationed
      // together with Ann's messages.
      const [a, b] = [on("ann"), on("bea", "127.0.0.3")];
      await Promise.all([a.engine.start(), b.engine.start()]);
      const room = await rooms(a).create();
      await rooms(b).join(room.fragment);
      await mailboxesExchanged(a, b, room.id);
      await b.engine.stop();
      await until(() => online(a, room.id) === 0, "bea away");
      const sent = ["r1", "r2", "r3", "r4", "r5", "r6"];
      for (const t of sent) rooms(a).send(room.id, t);
      const stateOf = (text: string) =>
        rooms(a)
          .messages(room.id)
          .find((x) => x.text === text)
          ?.to.find((t) => t.key === b.id)?.state;
      // Each starts "sending"; some meet a refusal (logged) and are retried until the relay has all.
      expect(stateOf("r6")).toBe("sending");
      await until(() => a.logs.some((l) => l.includes("room mailbox send failed")), "the relay refused one");
      await until(() => sent.every((t) => stateOf(t) === "relayed"), "all sent to relay", 30_000);
      expect(rooms(a).messages(room.id).at(-1)).toMatchObject({ state: "sent", relayed: 1, delivered: 0 });
      // Bea back without signaling: only her mailbox brings them, every one, in order.
      const again = h.node("bea", b.user, b.storage, "", {
        relayWebSocket: (url) => relaySocket(url, "127.0.0.3"),
      });
      await again.engine.start();
      await until(() => texts(again, room.id).length === sent.length, "bea read her mailbox", 30_000);
      expect(texts(again, room.id)).toEqual(sent);
      await until(() => sent.every((t) => stateOf(t) === "delivered"), "delivered", 30_000);
    } finally {
      await h.stopAll();
      await busy.close();
    }
  });
});
