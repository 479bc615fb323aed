/**
 * The rooms engine in Node (docs/protocol/rooms.md): real signaling (room rendezvous), real Noise
 * XXhfs sessions with the room binding, the engine's own transport seam with in-memory links
 * (test/support/engine.ts Hub). Joining, a late joiner, fan-out with per-member delivery, a wrong
 * secret refused on both sides, the member cap, leaving, a message stored before it goes, and the
 * history surviving a restart.
 */
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { startSignaling, wsFactory } from "../../../../signaling/testing.ts";
import {
  EngineHarness,
  type EngineNode,
  engineHarnessPerSuite,
  MemoryStorage,
  until,
} from "../../../../test/support/engine.ts";
import type { RoomsApi } from "./api.ts";
import { MAX_LOG, RoomStore } from "./store.ts";
import { encodeRoomFrame } from "./wire.ts";

describe("rooms engine (Node, real signaling, in-memory links)", () => {
  const { h, signaling } = engineHarnessPerSuite({ log: () => {} });

  const rooms = (n: EngineNode): RoomsApi => {
    if (!n.engine.rooms) throw new Error("no rooms");
    return n.engine.rooms;
  };
  const started = async (name: string, cap?: number) => {
    const n = h.node(name, undefined, undefined, undefined, cap ? { roomMemberCap: cap } : {});
    await n.engine.start();
    await until(() => n.engine.serviceStatus().signaling === "connected", `${name} registered`);
    return n;
  };
  /** A storage that refuses to delete a room's history while `refusing.on` (a disk gone read-only). */
  const refusingHistoryDeletes = () => {
    const refusing = { on: false };
    const storage = new (class extends MemoryStorage {
      override async deleteSecret(name: string) {
        if (refusing.on && name.startsWith("room-log/"))
          throw new DOMException("read-only", "InvalidStateError");
        return super.deleteSecret(name);
      }
    })(signaling().url);
    return { storage, refusing };
  };
  const online = (n: EngineNode, id: string) =>
    rooms(n)
      .room(id)
      ?.members.filter((m) => m.state === "online").length ?? 0;
  const texts = (n: EngineNode, id: string) =>
    rooms(n)
      .messages(id)
      .filter((m) => m.from !== undefined)
      .map((m) => m.text);

  /** Ann creates a room, Bea and Cat join from its link, and all three are linked to each other. */
  const meshOfThree = async () => {
    const [a, b, c] = [await started("ann"), await started("bea"), await started("cat")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await rooms(c).join(room.fragment);
    await until(() => [a, b, c].every((n) => online(n, room.id) === 2), "full mesh of three");
    return { a, b, c, room };
  };

  it("members meet, a late joiner connects to everyone, messages fan out and are delivered per member", async () => {
    const [a, b, c] = [await started("ann"), await started("bea"), await started("cat")];
    const room = await rooms(a).create();
    const link = room.fragment;
    await rooms(b).join(link);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "ann and bea linked");
    const sent = rooms(a).send(room.id, "one");
    rooms(a).send(room.id, "two");
    await until(() => texts(b, room.id).length === 2, "bea has both");
    expect(texts(b, room.id)).toEqual(["one", "two"]);
    expect(rooms(b).messages(room.id)[0]?.name).toBe("ann");
    await until(
      () =>
        rooms(a)
          .messages(room.id)
          .every((m) => m.state === "delivered"),
      "delivered to bea",
    );
    expect(sent.recipients).toBe(1);

    await rooms(c).join(link);
    await until(() => [a, b, c].every((n) => online(n, room.id) === 2), "full mesh of three");
    expect(texts(c, room.id)).toEqual([]); // history from before it came is not sent
    rooms(c).send(room.id, "cat here");
    await until(
      () => texts(a, room.id).includes("cat here") && texts(b, room.id).includes("cat here"),
      "both got it",
    );
    await until(() => rooms(c).messages(room.id)[0]?.state === "delivered", "delivered to both");
    expect(rooms(c).messages(room.id)[0]).toMatchObject({ delivered: 2, recipients: 2 });
    // Unread counts on Home: bea has not read cat's message.
    expect(rooms(b).room(room.id)?.unread).toBeGreaterThan(0);
    rooms(b).markRead(room.id);
    expect(rooms(b).room(room.id)?.unread).toBe(0);

    // Leaving: the others see the member go.
    await rooms(c).leave(room.id);
    await until(() => rooms(a).room(room.id)?.members.length === 1, "ann sees cat gone");
    expect(rooms(c).list()).toEqual([]);
  });

  it("a member link that fails while both stay in the room is dialed again by the member that dialed it", async () => {
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked");
    const before = h.hub.links.length;
    // Bea's end of their link fails (a channel closed under it, no bye): both sessions end.
    for (const l of h.hub.links) if (l.owner === b.id && l.state === "open") l.close("transport-closed");
    await until(() => online(a, room.id) === 0 && online(b, room.id) === 0, "the link is down");
    // Ann, who dialed it (present first, §3), dials again; both are still in the rendezvous.
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked again");
    expect(h.hub.links.length).toBeGreaterThan(before);
    rooms(b).send(room.id, "after the failure");
    await until(() => texts(a, room.id).includes("after the failure"), "ann has it live");
  });

  it("a member still present is dialed again after every failed dial, never given up, until the link opens", async () => {
    // Fast backoff (the engine's backoffInitialMs/backoffMaxMs): many failures in little time.
    const fast = { backoffInitialMs: 10, backoffMaxMs: 80 };
    const a = h.node("ann", undefined, undefined, undefined, fast);
    const b = h.node("bea", undefined, undefined, undefined, fast);
    for (const n of [a, b]) {
      await n.engine.start();
      await until(
        () => n.engine.serviceStatus().signaling === "connected",
        `${n.user.identity.verified.username} registered`,
      );
    }
    // Bea stays in the rendezvous, but no dial reaches her (her end of the path is gone).
    const beaEnd = h.hub.endpoints.get(b.id);
    if (!beaEnd) throw new Error("no endpoint for bea");
    h.hub.endpoints.delete(b.id);
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    const failed = () => a.logs.filter((l) => l.startsWith("room dial failed")).length;
    // Well past the four retries that were once all a member got.
    await until(() => failed() >= 8, "ann kept dialing bea");
    // Meanwhile each chip says what is true: connecting, no path yet.
    expect(
      rooms(a)
        .room(room.id)
        ?.members.map((m) => [m.state, m.path]),
    ).toEqual([["connecting", undefined]]);
    expect(
      rooms(b)
        .room(room.id)
        ?.members.map((m) => m.state),
    ).toEqual(["connecting"]);
    // The path is back: the next retry links them, with nobody re-joining.
    h.hub.endpoints.set(b.id, beaEnd);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked at last");
    rooms(b).send(room.id, "there you are");
    await until(() => texts(a, room.id).includes("there you are"), "ann has it");
  });

  it("a wrong secret is refused: the member records the attempt, the stranger is told, reads nothing", async () => {
    const [a, m] = [await started("ann"), await started("mal")];
    const room = await rooms(a).create();
    const wrong = room.fragment.replace(/&k=(.)/, (_, ch: string) => `&k=${ch === "A" ? "B" : "A"}`);
    const theirs = await rooms(m).join(wrong);
    expect(theirs.id).toBe(room.id); // the same id, so the same rendezvous
    await until(() => (rooms(a).room(room.id)?.refused.length ?? 0) === 1, "ann saw a refused attempt");
    await until(() => rooms(m).room(room.id)?.status === "refused", "mal told it was refused");
    expect(rooms(a).room(room.id)?.members).toEqual([]); // not listed as a member
    rooms(a).send(room.id, "secret plans");
    expect(rooms(a).messages(room.id)[0]?.state).toBe("alone");
    expect(texts(m, room.id)).toEqual([]);
    // Given the right link afterwards, the refused one joins with it (same room, same host).
    await rooms(m).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(m, room.id) === 1, "mal in with the right link");
    expect(rooms(m).room(room.id)).toMatchObject({ status: "in", fragment: room.fragment, refused: [] });
  });

  it("the member cap: a joiner past it is told the room is full", async () => {
    const [a, b, c] = [await started("ann", 2), await started("bea", 2), await started("cat", 2)];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1, "two in");
    await rooms(c).join(room.fragment);
    await until(() => rooms(c).room(room.id)?.status === "full", "cat told the room is full");
    expect(online(a, room.id)).toBe(1);
  });

  it("a device in as many rooms as the server allows is told so, not that the room is full", async () => {
    const few = await startSignaling({ maxRoomsPerConnection: 1 });
    const h2 = new EngineHarness(() => ({ signalingUrl: few.url, config: { log: () => {} } }));
    try {
      const a = h2.node("ann");
      await a.engine.start();
      await until(() => a.engine.serviceStatus().signaling === "connected", "ann registered");
      const one = await rooms(a).create();
      await until(() => rooms(a).room(one.id)?.status === "in", "in the first room");
      const two = await rooms(a).create();
      await until(() => rooms(a).room(two.id)?.status === "too-many", "told: too many rooms");
      expect(rooms(a).room(one.id)?.status).toBe("in");
      // Leaving one makes room: the second room's link, opened again, gets it in.
      await rooms(a).leave(one.id);
      await rooms(a).join(two.fragment);
      await until(() => rooms(a).room(two.id)?.status === "in", "in the second room");
    } finally {
      await h2.stopAll();
      await few.close();
    }
  });

  it("the history and the rooms survive a restart (sealed in the engine's secrets); the newest MAX_LOG kept", async () => {
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked");
    rooms(a).send(room.id, "keep me");
    await until(() => texts(b, room.id).includes("keep me"), "bea has it");
    await until(() => rooms(a).messages(room.id)[0]?.state === "delivered", "delivered");
    await b.engine.stop();
    const again = h.node("bea", b.user, b.storage);
    await rooms(again).load();
    expect(texts(again, room.id)).toEqual(["keep me"]);
    expect(rooms(again).room(room.id)?.fragment).toBe(room.fragment);
    // Back online, it is in the room again and linked to ann.
    await again.engine.start();
    await until(() => online(again, room.id) === 1 && online(a, room.id) === 1, "linked again");

    // A full history (MAX_LOG stored), then more: the oldest go, in memory as in storage, and the
    // unread count never exceeds what the history holds.
    await again.engine.stop();
    await until(() => online(a, room.id) === 0, "bea gone");
    const old = Array.from({ length: MAX_LOG }, (_, i) => `old ${i}`);
    const ann = toHex(a.user.identity.verified.identity_key);
    await new RoomStore(b.storage).saveLog(room.id, () =>
      old.map((text, i) => ({ id: `o${i}`, from: ann, name: "ann", at: i, text })),
    );
    const full = h.node("bea", b.user, b.storage);
    await rooms(full).load();
    await full.engine.start();
    await until(() => online(full, room.id) === 1 && online(a, room.id) === 1, "linked, history full");
    const more = Array.from({ length: 100 }, (_, i) => `new ${i}`);
    for (const t of more) rooms(a).send(room.id, t);
    await until(() => texts(full, room.id).at(-1) === more.at(-1), "bea has them");
    const kept = [...old, ...more].slice(-MAX_LOG);
    expect(texts(full, room.id)).toEqual(kept);
    expect(rooms(full).room(room.id)?.unread).toBeLessThanOrEqual(MAX_LOG);
    await full.engine.stop();
    const reloaded = h.node("bea", b.user, b.storage);
    await rooms(reloaded).load();
    expect(texts(reloaded, room.id)).toEqual(kept);
    expect(rooms(reloaded).room(room.id)?.unread).toBeLessThanOrEqual(MAX_LOG);
  });

  it("a message is stored before it goes: while its log write waits, nothing of it leaves", async () => {
    // Ann's room-log writes wait on a gate. Once her write of it waits there (every turn of hers
    // before it has run), a frame she sends on the same ordered link — a `room.hi`, which writes
    // no history — reaches bea after anything of the message that had left. (A receipt of ann's
    // for a message of bea's served here before; it now waits for ann's own history write too.)
    let open: () => void = () => {};
    let gate: Promise<void> | undefined;
    let waiting = 0;
    class GatedLog extends MemoryStorage {
      override async saveSecret(name: string, v: Uint8Array) {
        if (gate && name.startsWith("room-log/")) {
          waiting++;
          await gate;
        }
        return super.saveSecret(name, v);
      }
    }
    const a = h.node("ann", undefined, new GatedLog(signaling().url));
    await a.engine.start();
    const b = await started("bea");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked");
    gate = new Promise((r) => {
      open = r;
    });
    rooms(a).send(room.id, "held");
    await until(() => waiting > 0, "ann's write of it waits");
    expect(
      a.engine.rooms?.sendFrame(room.id, keyOf(b), encodeRoomFrame({ t: "room.hi", name: "after" })),
    ).toBe(true);
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.some((m) => m.name === "after") === true,
      "bea has what ann sent after it",
    );
    expect(texts(b, room.id)).toEqual([]);
    open();
    gate = undefined;
    await until(() => texts(b, room.id).includes("held"), "sent once stored");
    expect(texts(b, room.id)).toEqual(["held"]);
  });

  const keyOf = (n: EngineNode) => toHex(n.user.identity.verified.identity_key);

  it("the host removes a member: its links closed and refused, the secret rotated, the old link admits it no more", async () => {
    const { a, b, c, room } = await meshOfThree();
    expect(rooms(a).room(room.id)?.host).toBe(true);
    expect(rooms(b).room(room.id)?.host).toBe(false);
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.find((m) => m.key === keyOf(a))?.host === true,
      "bea sees ann host",
    );
    // Only the host removes.
    await expect(rooms(b).remove(room.id, keyOf(c))).rejects.toThrow(/Only the room's host/);

    await rooms(a).remove(room.id, keyOf(c));
    await until(() => rooms(c).room(room.id)?.status === "removed", "cat told it was removed");
    // Cat dials no one any more (removed: mesh.ts `#dial`), so no member is "connecting" for her:
    // each is refused, which her chips say as "you were removed" (ui/format.ts `refusedWords`).
    await until(
      () =>
        rooms(c)
          .room(room.id)
          ?.members.every((m) => m.state === "refused") === true,
      "cat's members no longer connecting",
    );
    expect(rooms(c).room(room.id)?.members.length).toBe(2);
    await until(() => rooms(b).room(room.id)?.members.length === 1, "bea no longer lists cat");
    expect(
      rooms(a)
        .room(room.id)
        ?.members.map((m) => m.key),
    ).toEqual([keyOf(b)]);
    // The new secret reached bea, inside her session: her link is the host's new one.
    await until(
      () => rooms(b).room(room.id)?.fragment === rooms(a).room(room.id)?.fragment,
      "bea has the new secret",
    );
    expect(rooms(a).room(room.id)?.fragment).not.toBe(room.fragment);
    expect(rooms(c).room(room.id)?.fragment).toBe(room.fragment); // cat never gets it
    rooms(a).send(room.id, "without cat");
    await until(() => texts(b, room.id).includes("without cat"), "bea has it");
    expect(texts(c, room.id)).not.toContain("without cat");
    expect(() => rooms(c).send(room.id, "still here?")).toThrow(/removed you/);

    // Cat leaves and comes back with the old link: refused by everyone.
    await rooms(c).leave(room.id);
    await rooms(c).join(room.fragment);
    await until(() => rooms(c).room(room.id)?.status === "refused", "the old link admits cat no more");
    expect(online(a, room.id)).toBe(1);
    expect(texts(c, room.id)).toEqual([]);

    // The host leaves: the role goes to Bea first, so the room keeps a host.
    await rooms(a).leave(room.id);
    await until(() => rooms(b).room(room.id)?.host === true, "bea is host after ann left");
    await until(() => rooms(b).room(room.id)?.members.length === 0, "ann gone");
  });

  it("a leave the storage refuses throws and changes nothing: still listed and linked, nobody told goodbye", async () => {
    const [a] = [await started("ann")];
    // Bea's storage refuses to write the rooms list once asked to (a full disk).
    let refuse = false;
    const storage = new (class extends MemoryStorage {
      override async saveSecret(name: string, v: Uint8Array) {
        if (refuse && name === "rooms")
          throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
        return super.saveSecret(name, v);
      }
    })(signaling().url);
    const b = h.node("bea", undefined, storage);
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "ann and bea linked");
    refuse = true;
    await expect(rooms(b).leave(room.id)).rejects.toThrow(/quota/);
    refuse = false;
    // Still in, on her device and for Ann: no goodbye went, the link stayed up.
    expect(rooms(b).room(room.id)).toBeDefined();
    expect(online(b, room.id)).toBe(1);
    expect((await new RoomStore(storage).rooms()).map((r) => toHex(r.id))).toEqual([room.id]);
    rooms(a).send(room.id, "still here?");
    await until(() => texts(b, room.id).includes("still here?"), "bea still gets ann's words");
    expect(online(a, room.id)).toBe(1);
    // Allowed, the leave goes through: stored, then Ann told.
    await rooms(b).leave(room.id);
    expect(await new RoomStore(storage).rooms()).toEqual([]);
    await until(() => rooms(a).room(room.id)?.members.length === 0, "bea gone for ann");
  });

  it("a leave whose clean-up fails: swept at the next registration too, with no restart", async () => {
    const [a] = [await started("ann")];
    const { storage, refusing } = refusingHistoryDeletes();
    // Bea's signaling connections, to drop one (a network change): her client registers again.
    const sockets: WebSocket[] = [];
    const ws = wsFactory();
    const b = h.node("bea", undefined, storage, undefined, {
      webSocket: (url) => {
        const socket = ws(url);
        sockets.push(socket as unknown as WebSocket);
        return socket;
      },
    });
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "ann and bea linked");
    rooms(a).send(room.id, "kept only until the sweep");
    await until(() => storage.secrets.has(`room-log/${room.id}`), "bea's history stored");
    refusing.on = true;
    await rooms(b).leave(room.id);
    expect(b.logs).toContain(
      `room ${room.id.slice(0, 8)} left; deleting its history (InvalidStateError) failed: again at the next registration or start`,
    );
    expect(storage.secrets.has(`room-log/${room.id}`)).toBe(true);
    refusing.on = false;
    // The same engine, registered again: the history goes. Before, it stayed until a restart.
    for (const socket of sockets) socket.close();
    await until(() => !storage.secrets.has(`room-log/${room.id}`), "the left room's history swept");
    await until(async () => (await new RoomStore(storage).left()).length === 0, "nothing left to sweep");
    expect(b.logs).toContain(`room ${room.id.slice(0, 8)}: deleting what was left of it`);
  });

  it("a message sent again (a resend, a mailbox copy after the live one) writes no history again", async () => {
    const [a] = [await started("ann")];
    const storage = new (class extends MemoryStorage {
      logWrites = 0;
      override async saveSecret(name: string, v: Uint8Array) {
        if (name.startsWith("room-log/")) this.logWrites++;
        return super.saveSecret(name, v);
      }
    })(signaling().url);
    const b = h.node("bea", undefined, storage);
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "linked");
    rooms(a).send(room.id, "once");
    await until(() => rooms(a).messages(room.id)[0]?.state === "delivered", "delivered");
    const sent = rooms(a).messages(room.id)[0];
    if (!sent) throw new Error("no message");
    const writes = storage.logWrites;
    // Ann's copy again on the session, then a room.hi: once Bea has the name, she handled the copy.
    const again = { t: "room.msg", id: sent.id, at: sent.at, text: sent.text } as const;
    expect(a.engine.rooms?.sendFrame(room.id, b.id, encodeRoomFrame(again))).toBe(true);
    expect(a.engine.rooms?.sendFrame(room.id, b.id, encodeRoomFrame({ t: "room.hi", name: "after" }))).toBe(
      true,
    );
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.some((x) => x.name === "after") === true,
      "bea read on",
    );
    expect(texts(b, room.id)).toEqual(["once"]);
    expect(storage.logWrites).toBe(writes); // before: the whole history written again
  });

  it("a sweep finishing while a leave stores its lists keeps the room being left in rooms-left", async () => {
    const [a] = [await started("ann")];
    // Bea's storage refuses to delete the histories named in `refused`, and holds the write of
    // her room list while `holding` (a slow disk).
    const refused = new Set<string>();
    let holding: (() => void)[] | undefined;
    const storage = new (class extends MemoryStorage {
      override async deleteSecret(name: string) {
        if (refused.has(name)) throw new DOMException("read-only", "InvalidStateError");
        return super.deleteSecret(name);
      }
      override async saveSecret(name: string, v: Uint8Array) {
        const held = holding;
        if (held && name === "rooms") await new Promise<void>((r) => held.push(r));
        return super.saveSecret(name, v);
      }
    })(signaling().url);
    const sockets: WebSocket[] = [];
    const ws = wsFactory();
    const b = h.node("bea", undefined, storage, undefined, {
      webSocket: (url) => {
        const socket = ws(url);
        sockets.push(socket as unknown as WebSocket);
        return socket;
      },
    });
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    const [one, two] = [await rooms(a).create(), await rooms(a).create()];
    for (const r of [one, two]) {
      await rooms(b).join(r.fragment);
      await until(() => online(b, r.id) === 1, "bea linked");
      rooms(a).send(r.id, "history");
      await until(() => storage.secrets.has(`room-log/${r.id}`), "bea's history stored");
    }
    const left = async () => new RoomStore(storage).left();
    // Room one left, its clean-up failed: a leftover, swept at the next registration.
    refused.add(`room-log/${one.id}`);
    await rooms(b).leave(one.id);
    expect(await left()).toEqual([one.id]);
    refused.delete(`room-log/${one.id}`);
    // Room two's leave: `rooms-left` stored with it, the room list held. Meanwhile Bea registers
    // again and the sweep cleans up room one, storing `rooms-left` as it then is.
    refused.add(`room-log/${two.id}`);
    holding = [];
    const leaving = rooms(b).leave(two.id);
    await until(() => (holding?.length ?? 0) > 0, "the room list's write held");
    for (const socket of sockets) socket.close();
    await until(() => !storage.secrets.has(`room-log/${one.id}`), "room one swept");
    await until(async () => !(await left()).includes(one.id), "the sweep stored rooms-left");
    const release = holding.splice(0);
    holding = undefined;
    for (const r of release) r();
    await leaving; // its clean-up fails (history refused): room two must stay a leftover
    expect(storage.secrets.has(`room-log/${two.id}`)).toBe(true);
    expect(await left()).toEqual([two.id]); // before: [] — its history never swept
  });

  it("a leave whose clean-up fails stands: the room is gone from the list, and its history is swept at the next start", async () => {
    const [a] = [await started("ann")];
    // Bea's storage refuses to delete a room's history once asked to (a disk gone read-only).
    const { storage, refusing } = refusingHistoryDeletes();
    const b = h.node("bea", undefined, storage);
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "ann and bea linked");
    rooms(a).send(room.id, "kept only until the sweep");
    await until(() => texts(b, room.id).length === 1, "bea has it");
    await until(() => storage.secrets.has(`room-log/${room.id}`), "bea's history stored");
    refusing.on = true;
    // The leave stands (anyone may leave; Ann was told): only the clean-up failed, and says so.
    await rooms(b).leave(room.id);
    expect(rooms(b).list()).toEqual([]);
    await until(() => rooms(a).room(room.id)?.members.length === 0, "bea gone for ann");
    expect(b.logs).toContain(
      `room ${room.id.slice(0, 8)} left; deleting its history (InvalidStateError) failed: again at the next registration or start`,
    );
    expect(storage.secrets.has(`room-log/${room.id}`)).toBe(true);
    refusing.on = false;
    await b.engine.stop();
    // The next start deletes it. Before, the history of a room no longer listed stayed for good.
    const again = h.node("bea", b.user, storage);
    await rooms(again).load();
    await until(() => !storage.secrets.has(`room-log/${room.id}`), "the left room's history swept");
    await until(async () => (await new RoomStore(storage).left()).length === 0, "nothing left to sweep");
    expect(rooms(again).list()).toEqual([]);
  });

  it("hand-over: the new host signs, everyone takes it; the former host can no longer remove; a listed member offline during a removal catches up", async () => {
    const { a, b, c, room } = await meshOfThree();
    await until(
      () =>
        rooms(a)
          .room(room.id)
          ?.members.every((m) => m.canBeHost) === true,
      "room keys known",
    );
    await rooms(a).handOver(room.id, keyOf(b));
    await until(() => rooms(b).room(room.id)?.host === true, "bea is host");
    await until(
      () =>
        rooms(c)
          .room(room.id)
          ?.members.find((m) => m.key === keyOf(b))?.host === true,
      "cat sees bea host",
    );
    expect(rooms(a).room(room.id)?.host).toBe(false);
    await expect(rooms(a).remove(room.id, keyOf(c))).rejects.toThrow(/Only the room's host/);

    // Bea removes Cat while Ann is away: Ann, listed, comes back on the old secret, is let in on it
    // and is given the new one inside her session.
    await a.engine.stop();
    await until(() => online(b, room.id) === 1, "ann gone");
    await rooms(b).remove(room.id, keyOf(c));
    await until(() => rooms(c).room(room.id)?.status === "removed", "cat removed");
    const again = h.node("ann", a.user, a.storage);
    await again.engine.start();
    await until(() => online(again, room.id) === 1 && online(b, room.id) === 1, "ann back, linked to bea");
    await until(
      () => rooms(again).room(room.id)?.fragment === rooms(b).room(room.id)?.fragment,
      "ann got the new secret",
    );
    expect(
      rooms(again)
        .room(room.id)
        ?.members.map((m) => m.key),
    ).toEqual([keyOf(b)]);
  });

  it("a listed member away during two removals catches up, whether it comes back last or first", async () => {
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.some((m) => m.host) === true,
      "the host listed bea",
    );
    // Two rotations Bea does not see (the host may remove anyone it names: keys of nobody here).
    const removeTwo = async (from: number) => {
      for (const i of [from, from + 1])
        await rooms(a).remove(room.id, i.toString(16).padStart(2, "0").repeat(32));
    };
    await b.engine.stop();
    await until(() => online(a, room.id) === 0, "bea away");
    await removeTwo(1);
    // She comes back last (Ann dials her): Ann tries her older secrets, newest first.
    const b2 = h.node("bea", b.user, b.storage);
    await b2.engine.start();
    await until(() => online(b2, room.id) === 1 && online(a, room.id) === 1, "bea back, linked to ann");
    await until(
      () => rooms(b2).room(room.id)?.fragment === rooms(a).room(room.id)?.fragment,
      "bea has the newest secret",
    );
    expect(
      rooms(b2)
        .room(room.id)
        ?.members.map((m) => m.key),
    ).toEqual([keyOf(a)]);
    rooms(a).send(room.id, "caught up");
    await until(() => texts(b2, room.id).includes("caught up"), "bea reads on");

    // Now she misses two more and comes back *first*: Ann, arriving after her, is dialed by Bea
    // on her old secret, closes it, and dials her back on the older ones.
    await b2.engine.stop();
    await until(() => online(a, room.id) === 0, "bea away again");
    await removeTwo(3);
    await a.engine.stop();
    const b3 = h.node("bea", b.user, b.storage);
    await b3.engine.start();
    await until(() => rooms(b3).room(room.id)?.status === "in", "bea in, alone");
    const a2 = h.node("ann", a.user, a.storage);
    await a2.engine.start();
    await until(() => online(b3, room.id) === 1 && online(a2, room.id) === 1, "linked again", 30_000);
    await until(
      () => rooms(b3).room(room.id)?.fragment === rooms(a2).room(room.id)?.fragment,
      "bea has the newest secret again",
    );
    expect(
      rooms(b3)
        .room(room.id)
        ?.members.map((m) => m.key),
    ).toEqual([keyOf(a)]);
    expect(rooms(b3).room(room.id)?.refused).toEqual([]);
  });

  it("a member away during more removals than it keeps secrets for is told to ask for the new link, and gets in with it", async () => {
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.some((m) => m.host) === true,
      "bea listed",
    );
    await b.engine.stop();
    await until(() => online(a, room.id) === 0, "bea away");
    // Nine rotations (keys of nobody present: the host may remove anyone it names).
    for (let i = 0; i < 9; i++)
      await rooms(a).remove(room.id, (i + 1).toString(16).padStart(2, "0").repeat(32));
    const again = h.node("bea", b.user, b.storage);
    await again.engine.start();
    await until(() => rooms(again).room(room.id)?.status === "refused", "bea refused", 30_000);
    expect(rooms(again).room(room.id)?.wasMember).toBe(true);
    // Ann, the host, refused Bea both ways: on Bea's screen she is the member who refused her (the
    // chip says their links differ: alone, Ann could be the one behind — ui/format.ts
    // `whoIsBehind`), not "someone without this room's secret".
    expect(
      rooms(again)
        .room(room.id)
        ?.members.map((m) => [m.key, m.state]),
    ).toEqual([[keyOf(a), "refused"]]);
    expect(rooms(again).room(room.id)?.refused).toEqual([]);
    await rooms(again).join(rooms(a).room(room.id)?.fragment ?? "");
    await until(() => online(again, room.id) === 1 && online(a, room.id) === 1, "bea in with the new link");
    expect(rooms(again).room(room.id)?.fragment).toBe(rooms(a).room(room.id)?.fragment);
  });

  it("a listed member who was away gets what was said meanwhile when it is back, in order", async () => {
    const { a, b, c, room } = await meshOfThree();
    await until(
      () =>
        rooms(b)
          .room(room.id)
          ?.members.some((m) => m.host) === true,
      "the host listed them",
    );
    await c.engine.stop();
    await until(() => online(a, room.id) === 1 && online(b, room.id) === 1, "cat away");
    rooms(a).send(room.id, "while cat was away 1");
    rooms(b).send(room.id, "while cat was away 2");
    rooms(a).send(room.id, "while cat was away 3");
    await until(() => texts(b, room.id).includes("while cat was away 3"), "bea has them");
    const ours = () =>
      rooms(a)
        .messages(room.id)
        .filter((m) => m.from === undefined);
    expect(ours().at(-1)).toMatchObject({ state: "sent", delivered: 1, recipients: 2 });
    const again = h.node("cat", c.user, c.storage);
    await again.engine.start();
    await until(() => texts(again, room.id).length === 3, "cat got what it missed");
    expect(texts(again, room.id).filter((t) => t.endsWith("1") || t.endsWith("3"))).toEqual([
      "while cat was away 1",
      "while cat was away 3",
    ]);
    await until(() => ours().every((m) => m.state === "delivered"), "delivered to both");
  });

  it("host away: the others still chat, the room says so, removals wait for the host", async () => {
    const { a, b, c, room } = await meshOfThree();
    await until(() => rooms(b).room(room.id)?.hostAway === false, "bea linked to the host");
    expect(rooms(a).room(room.id)?.hostAway).toBe(false); // the host itself
    await a.engine.stop();
    await until(() => rooms(b).room(room.id)?.hostAway === true, "bea sees the host away");
    await until(() => rooms(c).room(room.id)?.hostAway === true, "cat sees the host away");
    rooms(b).send(room.id, "without the host");
    await until(() => texts(c, room.id).includes("without the host"), "cat has it");
    await expect(rooms(b).remove(room.id, keyOf(c))).rejects.toThrow(/Only the room's host/);
    const again = h.node("ann", a.user, a.storage);
    await again.engine.start();
    await until(() => rooms(b).room(room.id)?.hostAway === false, "the host is back");
    // What was said while it was away reaches the host too (it is listed: §6).
    await until(() => texts(again, room.id).includes("without the host"), "ann has it");
  });

  it("verify: a member marked verified stays so across a restart", async () => {
    const [a, b] = [await started("ann"), await started("bea")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await until(() => online(a, room.id) === 1, "linked");
    rooms(a).verify(room.id, keyOf(b), true);
    expect(rooms(a).room(room.id)?.members[0]?.verified).toBe(true);
    expect(rooms(b).room(room.id)?.members[0]?.verified).toBe(false);
    await a.engine.stop();
    const again = h.node("ann", a.user, a.storage);
    await again.engine.start();
    await until(() => online(again, room.id) === 1, "linked again");
    expect(rooms(again).room(room.id)?.members[0]?.verified).toBe(true);
  });

  it("a bad link is refused with words, and nothing is stored", async () => {
    const a = await started("ann");
    await expect(rooms(a).join("#room=abc&k=def")).rejects.toThrow(/not a room link/);
    expect(rooms(a).list()).toEqual([]);
    expect(() => rooms(a).send("00".repeat(16), "x")).toThrow(/not in this room/);
  });
});
