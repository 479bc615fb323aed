/**
 * The room hash in direct offers (docs/protocol/rooms.md §3): carried by offers, canonical,
 * refused in answers and at any other length; and the room routes of the app.
 */
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { parseRoute, routePath } from "../app/routes.ts";
import { decodeSignalPayload, encodeSignalPayload } from "./signal-payload.ts";

const conn = new Uint8Array(8).fill(1);
const room = new Uint8Array(32).fill(7);

describe("room offers", () => {
  it("an offer carries `rm` and decodes to the same room; one without it has none", () => {
    const bytes = encodeSignalPayload({ kind: "offer", conn, sdp: "v=0", room });
    const r = decodeSignalPayload("offer", bytes);
    expect(r.ok && r.value.kind === "offer" && [...(r.value.room ?? [])]).toEqual([...room]);
    const plain = decodeSignalPayload("offer", encodeSignalPayload({ kind: "offer", conn, sdp: "v=0" }));
    expect(plain.ok && plain.value.kind === "offer" && plain.value.room).toBeUndefined();
  });

  it("refuses `rm` in an answer, and an `rm` of another length", () => {
    const answer = encodeCanonical({ c: conn, rm: room, sdp: "v=0" });
    expect(decodeSignalPayload("answer", answer)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_SCHEMA" },
    });
    const short = encodeCanonical({ c: conn, rm: room.subarray(0, 31), sdp: "v=0" });
    expect(decodeSignalPayload("offer", short).ok).toBe(false);
  });
});

describe("room relay offers", () => {
  const sid = new Uint8Array(24).fill(3);
  it("a relay offer carries `rm` (canonical, keys in order) and decodes to the same room", () => {
    const bytes = encodeSignalPayload({ kind: "relay-offer", conn, url: "wss://r.example/relay", sid, room });
    expect(bytes).toEqual(encodeCanonical({ c: conn, rm: room, rs: sid, ru: "wss://r.example/relay" }));
    const r = decodeSignalPayload("offer", bytes);
    expect(r.ok && r.value.kind === "relay-offer" && [...(r.value.room ?? [])]).toEqual([...room]);
    const plain = decodeSignalPayload(
      "offer",
      encodeSignalPayload({ kind: "relay-offer", conn, url: "wss://r.example/relay", sid }),
    );
    expect(plain.ok && plain.value.kind === "relay-offer" && plain.value.room).toBeUndefined();
  });

  it("refuses an `rm` of another length in a relay offer", () => {
    const short = encodeCanonical({
      c: conn,
      rm: room.subarray(0, 31),
      rs: sid,
      ru: "wss://r.example/relay",
    });
    expect(decodeSignalPayload("offer", short).ok).toBe(false);
  });
});

describe("room routes", () => {
  it("/rooms/new and /room#<32 hex> round trip (the older /room/<32 hex> still parses); other forms are not routes", () => {
    expect(parseRoute("/rooms/new")).toEqual({ name: "new-room" });
    const id = "0123456789abcdef0123456789abcdef";
    expect(parseRoute(`/room/${id}`)).toEqual({ name: "room", room: id });
    expect(parseRoute(`/room/${id.toUpperCase()}`)).toEqual({ name: "room", room: id });
    // The id in the fragment, which no server is sent (app/routes.ts).
    expect(routePath({ name: "room", room: id })).toBe(`/room#${id}`);
    expect(parseRoute("/room/abc")).toBeUndefined();
    expect(parseRoute(`/room/${id}/x`)).toBeUndefined();
  });
});
