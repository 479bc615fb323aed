/**
 * Room rendezvous on the real service (docs/protocol/rooms.md §2): join/leave/presence under a
 * room hash, the member cap (the joiner's and the operator's), rooms per connection, the join
 * rate, NOT_REGISTERED, malformed joins, and SIGNAL between members whose presence is "contacts
 * only" (allowed while they share a room, PEER_OFFLINE otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeCanonical } from "../core/codec/codec.ts";
import { isLoftError } from "../core/errors.ts";
import { SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import { clientCodec } from "../core/wire/signaling.ts";
import { makeUser, RawClient, type RunningSignaling, startSignaling, wsFactory } from "./testing.ts";

let server: RunningSignaling;
beforeAll(async () => {
  server = await startSignaling({ maxRoomsPerConnection: 2, roomJoinRate: 2 });
});
afterAll(async () => {
  await server.close();
});

const room = (n: number) => new Uint8Array(32).fill(n);

async function client(name: string) {
  const user = makeUser(name);
  const events: SignalingEvent[] = [];
  const c = new SignalingClient({ url: server.url, user, connect: wsFactory(), presence: "watched" });
  c.on((e) => events.push(e));
  await c.start();
  return { c, key: user.identity.verified.identity_key, events };
}

/** Wait on a condition (a push, a count), bounded well below the test timeout, not by a tick count. */
async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (e) {
    return isLoftError(e) ? e.code : String(e);
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("room rendezvous", () => {
  it("members meet under the hash, are told of joins and leaves, and may signal each other only there", async () => {
    const [a, b, c, d] = await Promise.all(["ann", "bea", "cat", "dan"].map(client));
    if (!a || !b || !c || !d) throw new Error("clients");
    // Contacts-only presence: strangers cannot signal each other.
    expect(await codeOf(a.c.signal(b.key, "offer", new Uint8Array(4)))).toBe(
      "LOFT_ERR_SIGNALING_PEER_OFFLINE",
    );
    expect(await a.c.joinRoom(room(1), 3)).toEqual([]);
    expect((await b.c.joinRoom(room(1), 3)).map(hex)).toEqual([hex(a.key)]);
    await until(
      () => a.events.some((e) => e.type === "room-presence" && e.present && hex(e.key) === hex(b.key)),
      "ann told of bea",
    );
    // Present together: signaling between them is allowed.
    await a.c.signal(b.key, "offer", new Uint8Array(4));
    await b.c.signal(a.key, "answer", new Uint8Array(4));
    // Joining again is idempotent (no second push).
    expect((await b.c.joinRoom(room(1), 3)).map(hex)).toEqual([hex(a.key)]);
    expect((await c.c.joinRoom(room(1), 3)).map(hex).sort()).toEqual([hex(a.key), hex(b.key)].sort());
    // The cap counts the joiner: a fourth is refused, and learns nothing.
    expect(await codeOf(d.c.joinRoom(room(1), 3))).toBe("LOFT_ERR_SIGNALING_ROOM_FULL");
    // A stranger in another room still cannot signal them.
    await d.c.joinRoom(room(2), 8);
    expect(await codeOf(d.c.signal(a.key, "offer", new Uint8Array(4)))).toBe(
      "LOFT_ERR_SIGNALING_PEER_OFFLINE",
    );
    // Leaving: the others are told, signaling between them ends.
    await b.c.leaveRoom(room(1));
    await until(
      () => a.events.some((e) => e.type === "room-presence" && !e.present && hex(e.key) === hex(b.key)),
      "ann told bea left",
    );
    expect(await codeOf(a.c.signal(b.key, "offer", new Uint8Array(4)))).toBe(
      "LOFT_ERR_SIGNALING_PEER_OFFLINE",
    );
    // Closing the connection leaves every room.
    c.c.close();
    await until(
      () => a.events.some((e) => e.type === "room-presence" && !e.present && hex(e.key) === hex(c.key)),
      "ann told cat left",
    );
    expect(server.service.stats().rooms).toBe(2);
    for (const x of [a, b, d]) x.c.close();
    await until(() => server.service.stats().rooms === 0, "rooms emptied");
  });

  it("rooms per connection and the join rate are bounded; refusals are typed", async () => {
    const a = await client("eve");
    await a.c.joinRoom(room(3), 8);
    await a.c.joinRoom(room(4), 8);
    expect(await codeOf(a.c.joinRoom(room(5), 8))).toBe("LOFT_ERR_SIGNALING_TOO_MANY_ROOMS");
    // Burst 10 at 2/s: repeated joins of a room we are in soon answer RATE_LIMITED.
    const codes: string[] = [];
    for (let i = 0; i < 14; i++) codes.push(await codeOf(a.c.joinRoom(room(3), 8)));
    expect(codes).toContain("LOFT_ERR_SIGNALING_RATE_LIMITED");
    a.c.close();
  });

  it("a join before REGISTER answers NOT_REGISTERED; a malformed one MALFORMED; the connection stays", async () => {
    const raw = await RawClient.hello(server.url);
    const reply = await raw.request({ t: "ROOM_JOIN", id: 1, room: room(6), max: 4 });
    expect(reply).toMatchObject({ t: "ERROR", id: 1, code: "NOT_REGISTERED" });
    const short = clientCodec.encode({ t: "ROOM_LEAVE", id: 2, room: room(6) });
    // 32 → 31 bytes: bin8 length byte and one byte less.
    const at = short.indexOf(32);
    const bad = new Uint8Array([
      ...short.subarray(0, at),
      31,
      ...short.subarray(at + 1, at + 32),
      ...short.subarray(at + 33),
    ]);
    raw.ws.send(bad);
    expect(await raw.next()).toMatchObject({ t: "ERROR", code: "MALFORMED" });
    // A cap of 1 (a room of one is no room).
    raw.ws.send(encodeCanonical({ t: "ROOM_JOIN", id: 3, room: room(6), max: 1 }));
    expect(await raw.next()).toMatchObject({ t: "ERROR", code: "MALFORMED" });
    expect(raw.isClosed).toBe(false);
    raw.close();
  });
});
