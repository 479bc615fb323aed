/**
 * Keeps docs/protocol/rooms.md honest: the vectors it prints are those of docs/vectors/rooms-v1.json,
 * and that file is what scripts/gen-room-vectors.ts makes from this code (room-link.ts, host.ts,
 * wire.ts) — test/interop/vectorcheck/rooms.py recomputes it from the page.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type buildRoomVectors,
  ROOM_VECTOR_FILE,
  roomVectorText,
} from "../../../../scripts/gen-room-vectors.ts";

const doc = readFileSync(new URL("../../../../docs/protocol/rooms.md", import.meta.url), "utf8");
const file = JSON.parse(readFileSync(ROOM_VECTOR_FILE, "utf8")) as ReturnType<typeof buildRoomVectors>;

describe("docs/protocol/rooms.md", () => {
  it("prints the file's first link, its room hash and its binding (§1, §2, §4)", () => {
    const link = file.links[0]!;
    expect(link.id).toBe("000102030405060708090a0b0c0d0e0f");
    expect(doc).toContain(`\n${link.fragment}\n`);
    expect(doc).toContain(`Vector: \`${link.hash}\`.`);
    expect(doc).toContain(`(the link of §1): \`${link.binding}\`.`);
  });

  it("prints the file's first signed state (§8)", () => {
    const state = file.states[0]!;
    expect(doc).toContain(`h = ${state.hostKeys[0]}`);
    expect(doc).toContain(`c     = ${state.c}\n`);
    expect(doc).toContain(`state = ${state.state}\n`);
    expect(doc).toContain(`(${state.state.length / 2} bytes;`);
  });

  it("prints the file's first frame, room.hi (§5)", () => {
    const frame = file.frames[0]!;
    expect(frame.message).toEqual({ t: "room.hi", name: "Ann" });
    const head = frame.frame.replace(/(00)+$/, "");
    expect(doc).toContain(`${head} followed by ${(frame.frame.length - head.length) / 2} zero bytes`);
    expect(doc).toContain(`is ${frame.frame.length / 2} bytes,`);
  });

  it("the file is what the generator produces", () => {
    expect(roomVectorText()).toBe(readFileSync(ROOM_VECTOR_FILE, "utf8"));
  });
});
