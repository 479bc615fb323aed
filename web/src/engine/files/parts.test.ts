/**
 * The receiver's rule for `file.part` (docs/protocol/files.md §9), driven straight into the
 * transfers with a contact stand-in (real chunk AEAD, hash and store): parts in order give the
 * file with its hash checked; a slice out of order, a repeated part, a part of a chunk already
 * stored, a chunk the mailbox and the live session bring at once, and parts of a file above the
 * mailbox bound are not taken twice or at all; a changed slice fails the
 * chunk's integrity check and discards the file; random part sequences never throw.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import { MemoryStorage } from "../../../../test/support/engine.ts";
import { seededBytes } from "../../../../test/support/files.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import type { EngineEvent } from "../api.ts";
import type { EngineConfig } from "../engine.ts";
import { MemoryFileStore } from "./store.ts";
import {
  type FileLive,
  type FilePeer,
  type FilesContext,
  FileTransfers,
  MAX_MAILBOX_FILE_BYTES,
} from "./transfers.ts";
import {
  chunkCount,
  encodeChunkFrame,
  FILE_CHUNK_BYTES,
  type FileAppMessage,
  type FilePart,
  fileHash,
  MAILBOX_PART_BYTES,
  SEALED_CHUNK_BYTES,
  sealChunkBytes,
} from "./wire.ts";

const KEY = new Uint8Array(32).map((_, i) => i + 1);
const ID = 0x0a0b0c0d;

/** The offer and the parts a sender deposits for `data` (as transfers.ts `#deposit` cuts them). */
async function senderSide(data: Uint8Array, size = data.length) {
  const total = chunkCount(size);
  const parts: FilePart[] = [];
  for (let i = 0; i < total; i++) {
    const plain = data.subarray(i * FILE_CHUNK_BYTES, (i + 1) * FILE_CHUNK_BYTES);
    const sealed = await sealChunkBytes(
      nobleCrypto,
      KEY,
      { id: ID, index: i, total, chunkSize: SEALED_CHUNK_BYTES },
      plain,
    );
    const n = Math.ceil(sealed.length / MAILBOX_PART_BYTES);
    for (let s = 0; s < n; s++)
      parts.push({
        t: "file.part",
        id: ID,
        i,
        s,
        n,
        d: sealed.slice(s * MAILBOX_PART_BYTES, (s + 1) * MAILBOX_PART_BYTES),
      });
  }
  const offer: FileAppMessage = {
    t: "file.offer",
    id: ID,
    name: "p.bin",
    size,
    type: "",
    hash: (await fileHash(nobleCrypto, data)) as Uint8Array<ArrayBuffer>,
    key: KEY.slice(),
  };
  return { offer, parts };
}

function receiver() {
  const events: EngineEvent[] = [];
  const told: FileAppMessage[] = [];
  const ctx = {
    cfg: { fileStore: new MemoryFileStore(), crypto: nobleCrypto, log: () => {} } as unknown as EngineConfig,
    storage: new MemoryStorage(""),
    listeners: new Set([(e: EngineEvent) => events.push(e)]),
    peers: new Map(),
    stopped: false,
    pool: undefined,
  } as unknown as FilesContext;
  const files = new FileTransfers(ctx);
  const peer: FilePeer = {
    id: "c0ffee",
    name: "Ann",
    live: () => undefined,
    ready: () => false,
    tell: async (m) => {
      told.push(m);
      return true;
    },
  };
  const state = () => {
    let last: string | undefined;
    for (const e of events) if (e.type === "file") last = e.transfer.state;
    return last;
  };
  return { files, peer, told, state, events };
}

describe("file.part: the receiver's rule", () => {
  it("parts in order give the file, hash checked, without an accept; file.done goes back", async () => {
    const data = seededBytes(2 * FILE_CHUNK_BYTES + 100, 1);
    const { offer, parts } = await senderSide(data);
    const r = receiver();
    await r.files.message(r.peer, offer);
    expect(r.state()).toBe("offered");
    for (const p of parts) await r.files.message(r.peer, p);
    expect(r.state()).toBe("done");
    expect(r.told).toEqual([{ t: "file.done", id: ID, ok: true }]);
    const [t] = await r.files.list("c0ffee");
    const blob = await r.files.blob(t!.key);
    expect(new Uint8Array(await blob!.arrayBuffer())).toEqual(data);
  });

  it("a slice out of order is dropped and its chunk waits; repeats and stored chunks are not taken twice", async () => {
    const data = seededBytes(2 * FILE_CHUNK_BYTES, 2);
    const { offer, parts } = await senderSide(data);
    const r = receiver();
    await r.files.message(r.peer, offer);
    const [p0, p1, ...rest] = parts;
    await r.files.message(r.peer, p1!); // slice 1 before slice 0: dropped
    await r.files.message(r.peer, p0!);
    await r.files.message(r.peer, p0!); // slice 0 again: starts the chunk over
    for (const p of [p1!, ...rest]) await r.files.message(r.peer, p);
    // Everything again, once done: nothing is taken twice, one file.done.
    for (const p of parts) await r.files.message(r.peer, p);
    expect(r.state()).toBe("done");
    expect(r.told.filter((m) => m.t === "file.done")).toEqual([{ t: "file.done", id: ID, ok: true }]);
  });

  it("a changed slice fails the chunk's integrity check: the file is discarded and the sender told", async () => {
    const data = seededBytes(FILE_CHUNK_BYTES + 10, 3);
    const { offer, parts } = await senderSide(data);
    const r = receiver();
    await r.files.message(r.peer, offer);
    const bad = parts.map((p) => ({ ...p, d: p.d.slice() }));
    bad[3]!.d[17]! ^= 1;
    for (const p of bad) await r.files.message(r.peer, p);
    expect(r.state()).toBe("failed");
    expect(r.told).toEqual([{ t: "file.cancel", id: ID, own: false }]);
  });

  it("parts of a file above the mailbox bound are not taken: it waits for an accept", async () => {
    const data = seededBytes(FILE_CHUNK_BYTES, 4);
    const big = MAX_MAILBOX_FILE_BYTES + 1;
    const { offer, parts } = await senderSide(data, big);
    const r = receiver();
    await r.files.message(r.peer, offer);
    for (const p of parts.slice(0, 9)) await r.files.message(r.peer, p);
    expect(r.state()).toBe("offered");
  });

  it("one chunk brought by the mailbox and the live session at once is taken once: the file ends done", async () => {
    // The sender comes online mid-deposit (§9 Resume): chunk 1's last slice from the mailbox and
    // its live frame reach the receiver together, then chunk 2 both ways, and the same live frame
    // twice at once. Before one-take-at-a-time, the second copy passed the check and the hash failed.
    const data = seededBytes(3 * FILE_CHUNK_BYTES + 7, 6);
    const { offer, parts } = await senderSide(data);
    const total = chunkCount(data.length);
    const of = (i: number) => parts.filter((p) => p.i === i);
    const live = (i: number) => {
      const d = of(i).map((p) => p.d);
      const sealed = new Uint8Array(d.reduce((n, x) => n + x.length, 0));
      let at = 0;
      for (const x of d) {
        sealed.set(x, at);
        at += x.length;
      }
      return encodeChunkFrame({ header: { id: ID, index: i, total, chunkSize: SEALED_CHUNK_BYTES }, sealed });
    };
    const acks: Uint8Array[] = [];
    const session = { state: "open", send: (b: Uint8Array) => acks.push(b), closed: new Promise(() => {}) };
    const link = { session } as unknown as FileLive;
    const r = receiver();
    await r.files.message(r.peer, offer);
    for (const p of of(0)) await r.files.message(r.peer, p);
    for (const p of of(1).slice(0, -1)) await r.files.message(r.peer, p);
    await Promise.all([r.files.message(r.peer, of(1).at(-1)!), r.files.frame(r.peer, link, live(1))]);
    await Promise.all([r.files.frame(r.peer, link, live(2)), r.files.frame(r.peer, link, live(2))]);
    for (const p of of(2)) await r.files.message(r.peer, p);
    await Promise.all([
      r.files.frame(r.peer, link, live(3)),
      ...of(3).map((p) => r.files.message(r.peer, p)),
    ]);
    expect(r.state()).toBe("done");
    expect(r.told).toEqual([{ t: "file.done", id: ID, ok: true }]);
    const [t] = await r.files.list("c0ffee");
    const blob = await r.files.blob(t!.key);
    expect(new Uint8Array(await blob!.arrayBuffer())).toEqual(data);
  });

  it("fuzz: any sequence of parts, mutated or not, never throws and never ends done with other bytes", async () => {
    const data = seededBytes(FILE_CHUNK_BYTES + 5, 5);
    const { offer, parts } = await senderSide(data);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            at: fc.nat(parts.length - 1),
            flip: fc.option(fc.nat(MAILBOX_PART_BYTES - 1), { nil: undefined }),
          }),
          { maxLength: 30 },
        ),
        async (seq) => {
          const r = receiver();
          await r.files.message(r.peer, offer);
          for (const { at, flip } of seq) {
            const p = parts[at]!;
            const d = p.d.slice();
            if (flip !== undefined && flip < d.length) d[flip]! ^= 0x40;
            await r.files.message(r.peer, { ...p, d });
          }
          if (r.state() === "done") {
            const [t] = await r.files.list("c0ffee");
            const blob = await r.files.blob(t!.key);
            expect(new Uint8Array(await blob!.arrayBuffer())).toEqual(data);
          }
        },
      ),
      { numRuns: Math.min(FUZZ_RUNS, 300) },
    );
  });
});
