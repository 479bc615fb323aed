/**
 * Keeps docs/protocol/rooms.md honest: its vectors are what the code computes.
 */
import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { secretCommitment, signState } from "./host.ts";
import { roomBinding, roomFragment, roomHash } from "./room-link.ts";
import { encodeRoomFrame } from "./wire.ts";

const doc = readFileSync(new URL("../../../../docs/protocol/rooms.md", import.meta.url), "utf8");
const id = Uint8Array.from({ length: 16 }, (_, i) => i);
const secret = Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i);
const host = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);

describe("docs/protocol/rooms.md", () => {
  it("shows the link, hash and binding vectors the code computes", () => {
    expect(doc).toContain(roomFragment({ id, secret, host }));
    expect(doc).toContain(toHex(roomHash(id)));
    expect(doc).toContain(toHex(roomBinding({ id, secret, host })));
  });

  it("shows the host's signed state vector (§8)", () => {
    const hostPriv = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
    const c = secretCommitment(id, 0, secret);
    const signed = signState(
      {
        c,
        e: 0,
        hid: new Uint8Array(32).fill(0xa1),
        host: ed25519.getPublicKey(hostPriv),
        id,
        m: [new Uint8Array(32).fill(0xb2), new Uint8Array(32).fill(0xc3)],
        v: 1,
        x: [],
      },
      hostPriv,
      [],
    );
    expect(doc).toContain(`h = ${toHex(ed25519.getPublicKey(hostPriv))}`);
    expect(doc).toContain(`c     = ${toHex(c)}`);
    expect(doc).toContain(`state = ${toHex(signed.bytes)}`);
    expect(doc).toContain(`(${signed.bytes.length} bytes;`);
  });

  it("shows the room.hi frame vector", () => {
    const frame = encodeRoomFrame({ t: "room.hi", name: "Ann" });
    const head = toHex(frame.subarray(0, 22));
    expect(doc).toContain(`${head} followed by ${frame.length - 22} zero bytes`);
    expect([...frame.subarray(22)].every((b) => b === 0)).toBe(true);
  });
});
