/**
 * Relay pushes routed by queue (engine.ts `onMessage`: room mailboxes first, then the 1:1 links):
 * a push still on its way to a room queue we just forgot — a room left while the relay delivered
 * what a member had left there — is the room mailbox's, left at the relay for the queue's DEL to
 * delete (docs/protocol/relay.md §Commands, DEL), not handed to the 1:1 links as a queue nobody knows.
 * A real relay and real signaling; the relay's store is the real LMDB store, only the moment its
 * answers reach the relay is held by the test, so the push lands between the forget and the DEL.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LmdbStore } from "../../../relay-ws/store/lmdb.ts";
import type { RelayStore } from "../../../relay-ws/store/types.ts";
import { masterKeyFor, startTestRelay, type TestRelay } from "../../../relay-ws/testing.ts";
import { type RunningSignaling, startSignaling } from "../../../signaling/testing.ts";
import { EngineHarness, type EngineNode, until } from "../../../test/support/engine.ts";
import type { RoomsApi } from "./rooms/api.ts";

type Held = "readBucket" | "queueByRecipient";

/** The real store; a method named in `on` answers only once the test releases it. */
function holding(store: RelayStore) {
  const waiting = new Map<Held, (() => void)[]>([
    ["readBucket", []],
    ["queueByRecipient", []],
  ]);
  const held = {
    on: new Set<Held>(),
    waiting: (m: Held) => waiting.get(m)!.length,
    release: (m: Held) => {
      held.on.delete(m);
      for (const r of waiting.get(m)!.splice(0)) r();
    },
  };
  const later = <T>(m: Held, answer: () => T | Promise<T>): Promise<T> =>
    new Promise<void>((resolve) => waiting.get(m)!.push(resolve)).then(answer);
  const proxy = new Proxy(store, {
    get(target, p) {
      if (p === "readBucket")
        return (rid: Uint8Array, seq: number) =>
          held.on.has("readBucket")
            ? later("readBucket", () => target.readBucket(rid, seq))
            : target.readBucket(rid, seq);
      if (p === "queueByRecipient")
        return (rid: Uint8Array) =>
          held.on.has("queueByRecipient")
            ? later("queueByRecipient", () => target.queueByRecipient(rid))
            : target.queueByRecipient(rid);
      const v = Reflect.get(target, p, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { held, store: proxy };
}

describe("relay pushes routed by queue (Node, real relay and signaling)", () => {
  let signaling: RunningSignaling;
  let relay: TestRelay;
  let held: ReturnType<typeof holding>["held"];
  const h = new EngineHarness(() => ({
    signalingUrl: signaling.url,
    relayUrl: relay.url,
    config: { relayBackoffInitialMs: 50, relayBackoffMaxMs: 300, relayTimeoutMs: 10_000, log: () => {} },
  }));

  beforeAll(async () => {
    [signaling, relay] = await Promise.all([
      startSignaling(),
      startTestRelay(
        {},
        {
          store: (dir) => {
            const x = holding(new LmdbStore({ path: dir, masterKey: masterKeyFor(dir) }));
            held = x.held;
            return x.store;
          },
        },
      ),
    ]);
  });
  afterEach(async () => {
    held.release("readBucket");
    held.release("queueByRecipient");
    await h.stopAll();
  });
  afterAll(async () => {
    await Promise.all([signaling?.close(), relay?.close()]);
  });

  const rooms = (n: EngineNode): RoomsApi => {
    if (!n.engine.rooms) throw new Error("no rooms");
    return n.engine.rooms;
  };
  const online = (n: EngineNode, id: string) =>
    rooms(n)
      .room(id)
      ?.members.filter((m) => m.state === "online").length ?? 0;

  it("a push for a room queue forgotten by a leave is the room mailbox's, left for the queue's DEL", async () => {
    const [a, c] = [h.node("ann"), h.node("cat")];
    await Promise.all([a.engine.start(), c.engine.start()]);
    const room = await rooms(a).create();
    await rooms(c).join(room.fragment);
    await until(
      () =>
        a.storage.secrets.has(`room-tx/${room.id}/${c.id}`) &&
        c.storage.secrets.has(`room-tx/${room.id}/${a.id}`),
      "mailboxes exchanged",
    );
    await c.engine.stop();
    await until(() => online(a, room.id) === 0, "cat away");
    rooms(a).send(room.id, "for cat's mailbox");
    await until(
      () =>
        rooms(a)
          .messages(room.id)
          .at(-1)
          ?.to.find((t) => t.key === c.id)?.state === "relayed",
      "left in cat's mailbox",
    );
    // Cat back without signaling (only her mailbox): the relay's push of it waits for its block.
    held.on.add("readBucket");
    const cat = h.node("cat", c.user, c.storage, "");
    await cat.engine.start();
    await until(() => rooms(cat).room(room.id) !== undefined, "cat's room loaded");
    await until(() => held.waiting("readBucket") === 1, "the push waits for its block");
    // Cat leaves: her pair with Ann is forgotten, and the queue's DEL waits at the relay (for
    // its queue record: the relay has not ended the subscription yet).
    held.on.add("queueByRecipient");
    const left = rooms(cat).leave(room.id);
    await until(() => held.waiting("queueByRecipient") === 1, "the DEL of cat's queue waits");
    // Now the push goes out: it reaches Cat after her mailbox forgot the queue, before the DEL.
    held.release("readBucket");
    await until(
      () => cat.logs.some((l) => l.includes("a push for a room queue we forgot")),
      "the room mailbox took the push",
    );
    held.release("queueByRecipient");
    await left;
    expect(cat.logs.filter((l) => l.includes("a relay message for a queue we do not know"))).toEqual([]);
  });
});
