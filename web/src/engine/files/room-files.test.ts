/**
 * Files to a room (docs/protocol/files.md §8). The FILE_MSG codec: round trips, a byte-exact
 * vector, malformed, oversized and non-canonical frames refused with typed errors (fuzzed). Then
 * three engines in Node (real signaling and Noise, in-memory links: test/support/engine.ts): one
 * file sent to a room is read once and reaches both members with the right bytes, each member's
 * transfer its own (one cancels, the other still gets it); a member away gets the offer when it
 * is back; a room with nobody else in it is refused in words.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import type { Session } from "../../../../core/session/index.ts";
import {
  type EngineNode,
  engineHarnessPerSuite,
  FAST_ENGINE,
  refuseWhenArmed,
  until,
} from "../../../../test/support/engine.ts";
import { filesContext, fileTransfers, seededBytes } from "../../../../test/support/files.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { Held } from "../../../../test/support/held.ts";
import type { EngineConfig } from "../engine.ts";
import type { RoomsApi } from "../rooms/api.ts";
import { decodeFileMsgFrame, encodeFileMsgFrame, RoomFiles, type RoomLinks } from "./room-files.ts";
import { MemoryFileStore } from "./store.ts";
import { FileTransfers } from "./transfers.ts";
import { FILE_CHUNK_BYTES, FILE_FRAME, type FileAppMessage } from "./wire.ts";

const KEY = new Uint8Array(32).map((_, i) => i);

describe("FILE_MSG frames (member sessions)", () => {
  it.each<FileAppMessage>([
    {
      t: "file.offer",
      id: 0x01020304,
      name: "hello.txt",
      size: 10,
      type: "text/plain",
      hash: new Uint8Array(32).fill(9),
      key: KEY,
    },
    {
      t: "file.offer",
      id: 7,
      name: "p.png",
      size: 1,
      type: "image/png",
      hash: new Uint8Array(32),
      key: KEY,
      thumb: new Uint8Array(16 * 1024).fill(3),
    },
    // The largest `file.*` message: an image offered in 255 KiB chunks, its 9 fields all there
    // (FILE_APP_MAX_FIELDS; files.md §1, §2).
    {
      t: "file.offer",
      id: 8,
      name: "q.png",
      size: 300_000,
      type: "image/png",
      hash: new Uint8Array(32),
      key: KEY,
      thumb: new Uint8Array(100).fill(4),
      cs: 261_120,
    },
    { t: "file.accept", id: 1, from: 65_535 },
    { t: "file.decline", id: 2, r: "busy" },
    { t: "file.cancel", id: 3, own: true },
    { t: "file.done", id: 4, ok: false },
    { t: "file.part", id: 5, i: 2, s: 8, n: 9, d: new Uint8Array(8127).fill(1) },
  ])("round trip: %o", (m) => {
    const frame = encodeFileMsgFrame(m);
    expect(frame[0]).toBe(FILE_FRAME.MSG);
    expect((frame.length - 1) % 256).toBe(0);
    expect(decodeFileMsgFrame(frame)).toEqual({ ok: true, value: m });
  });

  it("vector: file.accept {id 0x01020304, from 3} is 0x12 ‖ the map of files.md §1 ‖ 0x80 ‖ zeros", () => {
    const frame = encodeFileMsgFrame({ t: "file.accept", id: 0x01020304, from: 3 });
    expect(frame.length).toBe(257);
    expect(toHex(frame.subarray(0, 31))).toBe(
      "1283a466726f6d03a26964ce01020304a174ab66696c652e61636365707480",
    );
    expect(frame.subarray(31).every((b) => b === 0)).toBe(true);
  });

  const raw = (m: unknown) => {
    const body = padToBucket(encodeCanonical(m));
    const out = new Uint8Array(1 + body.length);
    out[0] = FILE_FRAME.MSG;
    out.set(body, 1);
    return out;
  };
  it.each([
    ["another frame type", new Uint8Array([FILE_FRAME.CHUNK, 0x80])],
    ["empty", new Uint8Array(0)],
    ["bad padding", new Uint8Array([FILE_FRAME.MSG, 1, 2, 3])],
    ["a room message", raw({ t: "room.bye" })],
    ["transfer id 0", raw({ t: "file.cancel", id: 0, own: true })],
    ["extra field", raw({ t: "file.done", id: 1, ok: true, x: 1 })],
    [
      "a key of 31 bytes",
      raw({ t: "file.offer", id: 1, name: "a", size: 1, type: "", hash: KEY, key: KEY.subarray(1) }),
    ],
    [
      "a preview over 16 KiB",
      raw({
        t: "file.offer",
        id: 1,
        name: "a",
        size: 1,
        type: "",
        hash: KEY,
        key: KEY,
        thumb: new Uint8Array(16 * 1024 + 1),
      }),
    ],
    ["an empty name", raw({ t: "file.offer", id: 1, name: "", size: 1, type: "", hash: KEY, key: KEY })],
    ["chunk index past u16", raw({ t: "file.accept", id: 1, from: 65_536 })],
    ["a part slice past the last", raw({ t: "file.part", id: 1, i: 0, s: 9, n: 9, d: new Uint8Array(1) })],
    ["a part of no slices", raw({ t: "file.part", id: 1, i: 0, s: 0, n: 0, d: new Uint8Array(1) })],
    ["an empty part", raw({ t: "file.part", id: 1, i: 0, s: 0, n: 1, d: new Uint8Array(0) })],
    ["a part over 8 127 bytes", raw({ t: "file.part", id: 1, i: 0, s: 0, n: 1, d: new Uint8Array(8128) })],
  ])("refused: %s", (_, frame) => {
    const r = decodeFileMsgFrame(frame);
    expect(r.ok).toBe(false);
  });

  it("refused: not canonical (keys out of order)", () => {
    const m = new Map<string, unknown>([
      ["t", "file.done"],
      ["id", 1],
      ["ok", true],
    ]);
    const r = decodeFileMsgFrame(raw(m));
    expect(r.ok).toBe(false);
  });

  it("fuzz: random and mutated frames never throw, and anything accepted re-encodes to itself", () => {
    const base = encodeFileMsgFrame({ t: "file.accept", id: 9, from: 2 });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc
            .array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
            .map((edits) => {
              const f = base.slice();
              for (const [at, b] of edits) f[at] = b;
              return f;
            }),
          fc.nat(base.length).map((n) => base.subarray(0, n)),
          fc.uint8Array({ maxLength: 40 }).map((tail) => {
            const f = new Uint8Array(base.length + tail.length);
            f.set(base);
            f.set(tail, base.length);
            return f;
          }),
        ),
        (frame) => {
          const r = decodeFileMsgFrame(frame);
          if (r.ok) expect(encodeFileMsgFrame(r.value)).toEqual(frame);
          else expect(r.error.code).toMatch(/^LOFT_ERR_/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("the files lane hands the member's read loop a promise (backpressure: files.md §5)", () => {
  it("a frame of the files range resolves once it is handled, so rooms/mesh.ts `#read` awaits it", async () => {
    const ctx = filesContext();
    const files = new FileTransfers(ctx);
    const session = { state: "open", closed: new Promise(() => {}) } as unknown as Session;
    const links: RoomLinks = {
      sendFrame: () => true,
      memberSession: () => ({ session }),
      memberName: () => "Ann",
      memberMailbox: async () => undefined,
      list: () => [],
      subscribe: () => () => {},
    };
    const lane = new RoomFiles(files, links, () => {});
    const offer: FileAppMessage = {
      t: "file.offer",
      id: 9,
      name: "a.bin",
      size: 1,
      type: "",
      hash: new Uint8Array(32),
      key: KEY,
    };
    expect(lane.onFrame("r00m", "a11ce", new Uint8Array([0x01, 0x80]))).toBe(false); // not the lane's
    const handled = lane.onFrame("r00m", "a11ce", encodeFileMsgFrame(offer));
    expect(handled).toBeInstanceOf(Promise);
    await handled;
    expect((await files.listRoom("r00m")).map((t) => [t.name, t.state])).toEqual([["a.bin", "offered"]]);
  });
});

/** A Blob that counts the reads of its bytes (each `slice` is read once by the engine). */
class CountedBlob extends Blob {
  slices = 0;
  override slice(start?: number, end?: number, type?: string): Blob {
    this.slices++;
    return super.slice(start, end, type);
  }
}

const transfers = (n: EngineNode, dir: "in" | "out") =>
  [...fileTransfers(n).values()].filter((t) => t.direction === dir);

describe("files to a room (Node engines, real signaling and Noise, in-memory links)", () => {
  const { h } = engineHarnessPerSuite({ ...FAST_ENGINE, log: () => {} });

  const rooms = (n: EngineNode): RoomsApi => {
    if (!n.engine.rooms) throw new Error("no rooms");
    return n.engine.rooms;
  };
  const started = async (name: string, config: Partial<EngineConfig> = {}) => {
    const n = h.node(name, undefined, undefined, undefined, config);
    await n.engine.start();
    await until(() => n.engine.serviceStatus().signaling === "connected", `${name} registered`);
    return n;
  };
  const online = (n: EngineNode, id: string) =>
    rooms(n)
      .room(id)
      ?.members.filter((m) => m.state === "online").length ?? 0;

  /** `ann` (the sender in these tests) with `config` over the harness's. */
  /** Each of `members` accepts the room file offered to it, and ends with it done: `bytes`, whole. */
  async function everyMemberTakes(members: EngineNode[], bytes: Uint8Array): Promise<void> {
    await until(
      () => members.every((n) => transfers(n, "in").some((t) => t.state === "offered")),
      "every member offered",
    );
    for (const n of members) await n.engine.acceptFile(transfers(n, "in")[0]!.key);
    await until(
      () =>
        members.every((n) => ["done", "failed", "cancelled"].includes(transfers(n, "in")[0]?.state ?? "")),
      "every member ended",
    );
    for (const n of members) {
      expect(transfers(n, "in")[0]?.state).toBe("done");
      const got = new Uint8Array(await (await n.engine.fileBlob(transfers(n, "in")[0]!.key))!.arrayBuffer());
      expect(toHex(got)).toBe(toHex(bytes));
    }
  }

  async function roomOfThree(config: Partial<EngineConfig> = {}) {
    const [a, b, c] = [await started("ann", config), await started("bea"), await started("cat")];
    const room = await rooms(a).create();
    await rooms(b).join(room.fragment);
    await rooms(c).join(room.fragment);
    await until(() => [a, b, c].every((n) => online(n, room.id) === 2), "full mesh of three");
    return { a, b, c, room: room.id };
  }

  it("one file, read once, reaches every member with the right bytes; a member's cancel stops only its own", async () => {
    const { a, b, c, room } = await roomOfThree();
    const bytes = seededBytes(20 * FILE_CHUNK_BYTES + 5, 3);
    const blob = new CountedBlob([bytes], { type: "application/octet-stream" });
    const sent = await a.engine.sendFileToRoom(room, blob, "plan.bin");
    expect(sent).toHaveLength(2);
    expect(new Set(sent.map((t) => t.id)).size).toBe(1); // one transfer id for the room
    expect(sent.every((t) => t.room === room && t.state === "offered")).toBe(true);
    await until(
      () =>
        transfers(b, "in").some((t) => t.state === "offered") &&
        transfers(c, "in").some((t) => t.state === "offered"),
      "both offered",
    );
    const [forB] = transfers(b, "in");
    const [forC] = transfers(c, "in");
    expect(forB?.memberName).toBe("ann");
    await b.engine.acceptFile(forB!.key);
    await c.engine.acceptFile(forC!.key);
    await until(() => transfers(c, "in")[0]?.state === "receiving", "cat receiving");
    await c.engine.cancelFile(forC!.key);
    await until(() => transfers(b, "in")[0]?.state === "done", "bea got it");
    const got = new Uint8Array(await (await b.engine.fileBlob(forB!.key))!.arrayBuffer());
    expect(toHex(got)).toBe(toHex(bytes));
    // On the member links' bulk lanes, claimed for the member sessions (files.md §2, §8): Bea's
    // 21 chunks at least (Cat's until its cancel), none inside the session.
    expect(h.hub.links.reduce((n, l) => n + (l.channel?.frames ?? 0), 0)).toBeGreaterThanOrEqual(21);
    expect(a.logs.filter((l) => l.startsWith("files: sending from chunk"))).toEqual(
      expect.arrayContaining(["files: sending from chunk 0 on the bulk lane"]),
    );
    expect(a.logs).not.toContain("files: sending from chunk 0 inside the session");
    const out = transfers(a, "out");
    await until(
      () => transfers(a, "out").every((t) => t.state === "done" || t.state === "cancelled"),
      "ann sees both ends",
    );
    expect(Object.fromEntries(transfers(a, "out").map((t) => [t.member, t.state]))).toEqual({
      [toHex(b.user.identity.verified.identity_key)]: "done",
      [toHex(c.user.identity.verified.identity_key)]: "cancelled",
    });
    expect(out).toHaveLength(2);
    // Read once: 21 chunks are 2 slices of up to 16 chunks, whatever the number of members.
    expect(blob.slices).toBe(2);
    expect(await a.engine.listRoomFiles(room)).toHaveLength(2);
  });

  it("a shared block whose sealed copy cannot be read back while the file is at hand comes from the file: every member gets it", async () => {
    // transfers.ts `#readCopyOrFile`, as for a 1:1 send (transfers.test.ts): the OPFS store's
    // worker failing mid-read rejects the read under way. Before, every member's transfer failed
    // ("copy gone") with the file right there.
    const store = new MemoryFileStore();
    const getChunks = store.getChunks.bind(store);
    let failed = 0;
    store.getChunks = (key, first, count) =>
      first === 16 && failed++ === 0
        ? Promise.reject(new Error("the file store's worker failed"))
        : getChunks(key, first, count);
    const { a, b, c, room } = await roomOfThree({ fileStore: store });
    const bytes = seededBytes(40 * FILE_CHUNK_BYTES + 11, 5); // 3 blocks of up to 16 chunks
    const blob = new CountedBlob([bytes], { type: "application/octet-stream" });
    await a.engine.sendFileToRoom(room, blob, "copy-lost.bin");
    await everyMemberTakes([b, c], bytes);
    expect(failed).toBeGreaterThanOrEqual(1); // block 16's reads: the first failed (shared when in step)
    expect(a.logs).toContain("files: reading the sealed copy failed (Error): from the file");
    // Preparing read the file's 3 blocks; the block that could not be read back, once more.
    expect(blob.slices).toBe(4);
  });

  it("a room's shared blocks never go back to the store for reuse: every member gets them whole", async () => {
    // transfers.ts `#pump` gives a contact's read buffers back once sent on the lane (store.ts
    // `reuse`); a room's block is every member's in step (`#blocks`). The store here takes each
    // buffer given back as the OPFS store does at its next read — transferred to its worker,
    // detached here at once — so a block given back would reach the next member empty.
    let given = 0;
    const store = Object.assign(new MemoryFileStore(), {
      reuse: (b: ArrayBuffer) => {
        given++;
        structuredClone(b, { transfer: [b] });
      },
    });
    const { a, b, c, room } = await roomOfThree({ fileStore: store });
    const bytes = seededBytes(40 * FILE_CHUNK_BYTES + 11, 7);
    await a.engine.sendFileToRoom(room, new Blob([bytes]), "shared.bin");
    await everyMemberTakes([b, c], bytes);
    expect(a.logs).toContain("files: sending from chunk 0 on the bulk lane");
    expect(given).toBe(0);
  });

  it("a member's transfer cancelled while the shared block it asked for is being read: the other member still gets that block, whole", async () => {
    // transfers.ts `#readCopy` opens a shared block's chunks (files.md §5, §8). Before, it opened
    // them under the key of the member whose pump asked first; that member cancelled meanwhile had
    // its key wiped, so every chunk "did not open", was sealed again under the wiped key, and Cat
    // got chunks that fail their AEAD: its transfer failed as damaged.
    const store = new MemoryFileStore();
    const getChunks = store.getChunks.bind(store);
    const read = new Held();
    let asked = false; // only the first read of block 0 is held
    store.getChunks = async (key, first, count) => {
      if (first === 0 && !asked) {
        asked = true;
        await read.wait();
      }
      return getChunks(key, first, count);
    };
    const { a, b, c, room } = await roomOfThree({ fileStore: store });
    const bytes = seededBytes(20 * FILE_CHUNK_BYTES + 9, 8);
    const blob = new CountedBlob([bytes], { type: "application/octet-stream" });
    const sent = await a.engine.sendFileToRoom(room, blob, "shared.bin");
    await until(
      () => [b, c].every((n) => transfers(n, "in").some((t) => t.state === "offered")),
      "both offered",
    );
    await b.engine.acceptFile(transfers(b, "in")[0]!.key);
    await until(() => read.held.length === 1, "Bea's pump reads block 0 of the copy");
    await c.engine.acceptFile(transfers(c, "in")[0]!.key);
    const sending = () => a.logs.filter((l) => l === "files: sending from chunk 0 on the bulk lane").length;
    await until(() => sending() === 2, "Cat's pump waits for the same block");
    const forBea = sent.find((t) => t.member === toHex(b.user.identity.verified.identity_key));
    await a.engine.cancelFile(forBea!.key);
    read.letGo();
    await until(() => ["done", "failed"].includes(transfers(c, "in")[0]?.state ?? ""), "Cat's ends");
    expect(transfers(c, "in")[0]?.reason).toBeUndefined();
    expect(transfers(c, "in")[0]?.state).toBe("done");
    const got = new Uint8Array(await (await c.engine.fileBlob(transfers(c, "in")[0]!.key))!.arrayBuffer());
    expect(toHex(got)).toBe(toHex(bytes));
    expect(a.logs.filter((l) => l.includes("do not open"))).toEqual([]);
  });

  it("without bulk lanes a room file goes inside each member's session: frames encoded once, sealed per member", async () => {
    h.hub.noBulk = true; // the relay, or members of an older version: everything in the sessions
    const onLanes = () => h.hub.links.reduce((n, l) => n + (l.channel?.frames ?? 0), 0);
    const before = onLanes(); // the hub's links of earlier tests
    try {
      const { a, b, c, room } = await roomOfThree();
      const bytes = seededBytes(18 * FILE_CHUNK_BYTES + 77, 4);
      await a.engine.sendFileToRoom(room, new Blob([bytes]), "shared.bin");
      await until(
        () => [b, c].every((n) => transfers(n, "in").some((t) => t.state === "offered")),
        "both offered",
      );
      await b.engine.acceptFile(transfers(b, "in")[0]!.key);
      await c.engine.acceptFile(transfers(c, "in")[0]!.key);
      await until(() => [b, c].every((n) => transfers(n, "in")[0]?.state === "done"), "both got it");
      // Each member's frames carry the one shared encoding of the block, sealed by its own session.
      for (const n of [b, c]) {
        const got = new Uint8Array(
          await (await n.engine.fileBlob(transfers(n, "in")[0]!.key))!.arrayBuffer(),
        );
        expect(toHex(got)).toBe(toHex(bytes));
      }
      expect(a.logs.filter((l) => l === "files: sending from chunk 0 inside the session")).toHaveLength(2);
      expect(onLanes()).toBe(before);
    } finally {
      h.hub.noBulk = false;
    }
  });

  it("a file.done the member link refuses as it closes under the session goes again on the next session: the sender ends done, not waiting", async () => {
    // A `file.*` frame handed to a member session that was still `writable`, dropped when its
    // link refused it (core/session `flushed`): counted as told, it left Ann's copy `waiting`
    // for good (files.md §5). Far heartbeats: no PING may take the refused frame's place.
    const quiet = { heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 60_000 };
    const [a, b] = [await started("ann", quiet), await started("bea", quiet)];
    const created = await rooms(a).create();
    const room = created.id;
    await rooms(b).join(created.fragment);
    await until(() => online(a, room) === 1 && online(b, room) === 1, "both present");
    const bytes = seededBytes(2 * FILE_CHUNK_BYTES + 3, 9);
    await a.engine.sendFileToRoom(room, new Blob([bytes]), "done.bin");
    await until(() => transfers(b, "in").some((t) => t.state === "offered"), "offered");
    const [offer] = transfers(b, "in");
    // Bea's link to Ann refuses the first frame after her copy is done — her file.done — as it
    // closes under her session (a data channel found closing: web/src/net/webrtc-link.ts).
    const link = h.hub.links.findLast((l) => l.owner === b.id && l.state === "open");
    if (!link) throw new Error("no member link");
    const refusing = refuseWhenArmed(link);
    const off = b.engine.subscribe((e) => {
      if (e.type === "file" && e.transfer.key === offer!.key && e.transfer.state === "done") refusing.arm();
    });
    await b.engine.acceptFile(offer!.key);
    await until(refusing.refused, "the link refused Bea's file.done");
    off();
    await until(
      () => transfers(a, "out")[0]?.state === "done",
      "Ann's copy done on the next session",
      30_000,
    );
    // The member session's drop is said, as a contact session's is (dialing.ts `logDropsOf`).
    const said =
      /^session [0-9a-f]{8} \(room [0-9a-f]{8}\): [1-9]\d* frames dropped, its link had closed under it$/;
    await until(() => b.logs.some((l) => said.test(l)), "Bea's log says what her member session dropped");
  });

  it("a member away is offered the file when back; a refused send says why", async () => {
    const { a, b, c, room } = await roomOfThree();
    await c.engine.stop();
    await until(() => online(a, room) === 1, "cat gone");
    const bytes = seededBytes(3 * FILE_CHUNK_BYTES, 5);
    const sent = await a.engine.sendFileToRoom(room, new Blob([bytes]), "later.bin");
    const catKey = toHex(c.user.identity.verified.identity_key);
    expect(sent.find((t) => t.member === catKey)?.state).toBe("queued");
    const c2 = h.node("cat", c.user, c.storage);
    await c2.engine.start();
    await until(() => transfers(c2, "in").some((t) => t.state === "offered"), "offered when back", 30_000);
    const [offer] = transfers(c2, "in");
    await c2.engine.acceptFile(offer!.key);
    await until(() => transfers(c2, "in")[0]?.state === "done", "cat got it", 30_000);
    const got = new Uint8Array(await (await c2.engine.fileBlob(offer!.key))!.arrayBuffer());
    expect(toHex(got)).toBe(toHex(bytes));
    // An empty room: nobody to send to, said in words.
    await rooms(b).leave(room);
    const lone = await rooms(b).create();
    await expect(b.engine.sendFileToRoom(lone.id, new Blob([bytes]), "x.bin")).rejects.toMatchObject({
      reason: {
        message:
          "Nobody else is in this room yet, so there is no one to send it to. Share the room link, then send it once someone has joined.",
      },
    });
  });
});
