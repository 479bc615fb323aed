/**
 * The receiver's rule for `file.part` (docs/protocol/files.md §9), driven straight into the
 * transfers with a contact stand-in (real chunk AEAD, hash and store): parts in order give the
 * file with its hash checked; a slice out of order, a repeated part, a part of a chunk already
 * stored, a chunk the mailbox and the live session bring at once, and parts of a file above the
 * mailbox bound are not taken twice or at all; a changed slice fails the
 * chunk's integrity check and discards the file; random part sequences never throw.
 * The window (files.md §5): with storage slower than the link, a live chunk beyond the last ACK +
 * 64 ends the transfer (both sides told why, in words: `file.fail`) and nothing past it is kept;
 * fuzzed over greedy and honest senders. A session that replaces one still delivering resumes
 * from what was taken, not from what was stored when the resume began; two resumes at once after
 * a reload rebuild the file hash once.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../../../core/bytes.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../../../core/crypto/webcrypto.ts";
import { MemoryStorage, until } from "../../../../test/support/engine.ts";
import { filesContext, seededBytes } from "../../../../test/support/files.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import type { EngineEvent } from "../api.ts";
import { MemoryFileStore } from "./store.ts";
import {
  type FileLive,
  type FilePeer,
  FileTransfers,
  MAX_MAILBOX_FILE_BYTES,
  WINDOW_CHUNKS,
  windowChunks,
} from "./transfers.ts";
import {
  chunkCount,
  decodeFileFrame,
  encodeChunkFrame,
  FILE_CHUNK_BYTES,
  type FileAppMessage,
  type FilePart,
  fileHash,
  LANE_CHUNK_BYTES,
  MAILBOX_PART_BYTES,
  MAX_CHUNK_BYTES,
  SEALED_CHUNK_BYTES,
  sealChunkBytes,
} from "./wire.ts";
import { declinedThere, failedHere, failedThere } from "./words.ts";

const KEY = new Uint8Array(32).map((_, i) => i + 1);
const ID = 0x0a0b0c0d;

/** The offer and the parts a sender deposits for `data` (as transfers.ts `#deposit` cuts them). */
/** Chunk `i` as the live session carries it (a FILE_CHUNK frame): its mailbox parts joined again. */
function chunkFrame(parts: readonly FilePart[], i: number, total: number): Uint8Array {
  const sealed = concatBytes(...parts.filter((p) => p.i === i).map((p) => p.d));
  return encodeChunkFrame({ header: { id: ID, index: i, total, chunkSize: SEALED_CHUNK_BYTES }, sealed });
}

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

/**
 * FileTransfers on a context of its own (no engine): the engine events it emits, and `tell` for
 * its peer, which records the app messages it says (`told`).
 */
function transfers(
  store: MemoryFileStore = new MemoryFileStore(),
  crypto: CryptoProvider = nobleCrypto,
  storage = new MemoryStorage(""),
) {
  const events: EngineEvent[] = [];
  const told: FileAppMessage[] = [];
  const ctx = filesContext({ store, crypto, storage, onEvent: (e) => events.push(e) });
  const tell = async (m: FileAppMessage) => {
    told.push(m);
    return true;
  };
  return { files: new FileTransfers(ctx), events, told, tell };
}

function receiver(
  opts: { store?: MemoryFileStore; crypto?: CryptoProvider; live?: FileLive; storage?: MemoryStorage } = {},
) {
  const { files, events, told, tell } = transfers(opts.store, opts.crypto, opts.storage);
  const peer: FilePeer = {
    id: "c0ffee",
    name: "Ann",
    live: () => opts.live,
    ready: () => opts.live !== undefined,
    tell,
  };
  const state = () => {
    let last: string | undefined;
    for (const e of events) if (e.type === "file") last = e.transfer.state;
    return last;
  };
  return { files, peer, told, state, events };
}

/**
 * A sender on `store` reaching Ann through the room path (which needs no contact record), her
 * member ready, the app messages it says recorded (`told`).
 */
function roomSender(store?: MemoryFileStore, storage?: MemoryStorage) {
  const { files, told, tell, events } = transfers(store, nobleCrypto, storage);
  const peer: FilePeer = {
    id: "ann",
    name: "Ann",
    room: { room: "r00m", member: "ann" },
    live: () => undefined,
    ready: () => true,
    tell,
  };
  files.rooms = { peer: () => peer };
  return { files, peer, told, events };
}

/**
 * A sender with a file offered to Ann (through the room path): the transfer id it chose, its
 * offer, and the engine events, to hand it what a receiver said.
 */
async function sender() {
  const { files, peer, told } = roomSender();
  const [t] = await files.sendToRoom(
    "r00m",
    ["ann"],
    new Blob([seededBytes(3 * FILE_CHUNK_BYTES, 9)]),
    "p.bin",
  );
  if (t?.state !== "offered") throw new Error(`the file was not offered: ${t?.state}`);
  return { files, peer, id: t.id, key: t.key, told };
}

/** The receiver's live session, open until the test sets its `state` (or `closed` resolves). */
const openLive = (closed: Promise<void> = new Promise(() => {})) =>
  ({
    session: { state: "open", writable: true, send: () => {}, closed, close: () => {} },
  }) as unknown as FileLive & { session: { state: string } };

/** Storage keeps up (`flush`) until the transfer ends, done or failed. */
async function untilEnded(r: { state(): string | undefined }, store: SlowStore): Promise<void> {
  await until(() => {
    void store.flush();
    return r.state() === "done" || r.state() === "failed";
  }, "the transfer ends");
}

/** A store whose chunk writes wait until `flush` (a device whose storage is slower than the link). */
class SlowStore extends MemoryFileStore {
  #waiting: (() => void)[] = [];
  /** Each write as it began: its chunk indices. */
  readonly writes: { first: number; count: number }[] = [];
  /** Writes that reached the store (`super.putChunks` resolved). */
  #landed = 0;
  override async putChunks(key: string, first: number, sealed: Uint8Array[]): Promise<void> {
    this.writes.push({ first, count: sealed.length });
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    await super.putChunks(key, first, sealed);
    this.#landed++;
  }
  /**
   * Let the writes begun so far finish (and the ACKs after them go): waits on their landing, not
   * on a fixed number of turns (how many the store takes is its own business), bounded by `until`.
   */
  async flush(): Promise<void> {
    const begun = this.writes.length;
    for (const w of this.#waiting.splice(0)) w();
    await until(() => this.#landed >= begun, "the released chunk writes land", 5_000);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * A store whose chunk reads can be held (`hold`), then let go one at a time by index (`letOne`)
 * or all at once (`open`), and whose writes stall until `flush` once `slow` is set.
 */
class GatedStore extends SlowStore {
  slow = false;
  readonly held: { index: number; go: () => void }[] = [];
  #holding = false;
  #reads = new Map<number, number>();
  /** getChunk calls for chunk `index` so far, held or not. */
  reads(index: number): number {
    return this.#reads.get(index) ?? 0;
  }
  hold(): void {
    this.#holding = true;
  }
  letOne(index: number): void {
    const at = this.held.findIndex((h) => h.index === index);
    if (at >= 0) this.held.splice(at, 1)[0]?.go();
  }
  open(): void {
    this.#holding = false;
    for (const h of this.held.splice(0)) h.go();
  }
  override async getChunk(key: string, index: number): Promise<Uint8Array | undefined> {
    this.#reads.set(index, this.reads(index) + 1);
    if (this.#holding) await new Promise<void>((go) => this.held.push({ index, go }));
    return super.getChunk(key, index);
  }
  /** A read of several chunks: counted for each, held as one by its first index. */
  override async getChunks(key: string, first: number, count: number): Promise<Uint8Array[]> {
    for (let index = first; index < first + count; index++) this.#reads.set(index, this.reads(index) + 1);
    if (this.#holding) await new Promise<void>((go) => this.held.push({ index: first, go }));
    return super.getChunks(key, first, count);
  }
  override async putChunks(key: string, first: number, sealed: Uint8Array[]): Promise<void> {
    if (this.slow) return super.putChunks(key, first, sealed);
    await MemoryFileStore.prototype.putChunks.call(this, key, first, sealed);
  }
}

/**
 * A receiver of a `total`-chunk transfer it accepted, on a live session whose FILE_ACKs are read
 * back (`acked`: the newest `next` it told the sender, from the accept's `from` on), and the
 * sealed FILE_CHUNK frames of the file (native AES-GCM: a window's worth is ≈ 4 MiB).
 */
async function windowSetup(
  total: number,
  frames: number,
  receiving: (c: CryptoProvider) => CryptoProvider = (c) => c,
  cs = FILE_CHUNK_BYTES,
  /** The store opens and digests what it stores (`putOpened`, as the OPFS store's worker). */
  storeOpens = false,
) {
  const crypto = await createWebCryptoProvider();
  const store = new SlowStore(storeOpens ? { opens: crypto } : {});
  const storage = new MemoryStorage("");
  const acks: number[] = [];
  const session = {
    state: "open",
    writable: true,
    send: (b: Uint8Array) => {
      const f = decodeFileFrame(b);
      if (f.ok && f.value.type === "ack") acks.push(f.value.ack.next);
    },
    closed: new Promise(() => {}),
    close: () => {},
  };
  const live = { session } as unknown as FileLive;
  const r = receiver({ store, crypto: receiving(crypto), live, storage });
  const size = total * cs;
  const offer = (await senderSide(new Uint8Array(0), size)).offer;
  await r.files.message(r.peer, cs === FILE_CHUNK_BYTES ? offer : { ...offer, cs });
  const [t] = await r.files.list("c0ffee");
  await r.files.accept(t!.key);
  r.files.up(r.peer, live); // the session is up: the accepted transfer asks for its chunks
  await until(() => r.told.some((m) => m.t === "file.accept"), "the accept goes out");
  const plain = new Uint8Array(cs).fill(7);
  const sealed = await Promise.all(
    Array.from({ length: frames }, async (_, index) => {
      const header = { id: ID, index, total, chunkSize: cs + 16 };
      return encodeChunkFrame({ header, sealed: await sealChunkBytes(crypto, KEY, header, plain) });
    }),
  );
  const acked = () => Math.max(0, ...acks);
  return { r, store, storage, live, sealed, acked, key: t!.key };
}

/**
 * Storage keeping up, `windowSetup`'s transfer ends failed as damaged: said so on the transfer
 * and to the sender (fail, then cancel), and the writes begun by then have landed.
 */
async function endsDamaged(w: Awaited<ReturnType<typeof windowSetup>>): Promise<void> {
  await until(() => {
    void w.store.flush();
    return w.r.state() === "failed";
  }, "ends as damaged");
  const [t] = await w.r.files.list("c0ffee");
  expect(t?.reason).toBe(failedHere("Ann", "p.bin", "damaged"));
  expect(w.r.told.slice(1)).toEqual([
    { t: "file.fail", id: ID, r: "damaged" },
    { t: "file.cancel", id: ID, own: false },
  ]);
  await w.store.flush();
}

/**
 * A three-chunk file (seeded by `seed`) received whole into `store`, part by part: it ends done
 * and reads back as sent. Its offer and parts, for sending again.
 */
async function receivedWhole(store: MemoryFileStore, seed: number) {
  const data = seededBytes(2 * FILE_CHUNK_BYTES + 1, seed);
  const sent = await senderSide(data);
  const r = receiver({ store });
  await r.files.message(r.peer, sent.offer);
  for (const p of sent.parts) await r.files.message(r.peer, p);
  expect(r.state()).toBe("done");
  const [t] = await r.files.list("c0ffee");
  expect(new Uint8Array(await (await r.files.blob(t!.key))!.arrayBuffer())).toEqual(data);
  return sent;
}

/**
 * Send all of `windowSetup`'s frames as an honest sender does (only what the window allows past
 * the newest ACK, in `cs`-byte chunks), storage catching up between rounds, until the transfer ends.
 */
async function sendHonestly(w: Awaited<ReturnType<typeof windowSetup>>, cs: number): Promise<void> {
  const { r, store, live, sealed, acked } = w;
  let sent = 0;
  // The last frame's handling waits for its store (the hash check follows): not awaited here,
  // or the store it waits for would never be let go.
  let last: Promise<void> | undefined;
  while (sent < sealed.length) {
    while (sent < sealed.length && sent < acked() + windowChunks(cs)) {
      const handled = r.files.frame(r.peer, live, sealed[sent++] as Uint8Array);
      if (sent === sealed.length) last = handled;
      else await handled;
    }
    await store.flush();
  }
  await untilEnded(r, store);
  await last;
}

/**
 * A transfer of `total` chunks of `cs` bytes: `window` chunks past the last ACK are taken, the
 * next one ends it as `window`, and nothing past the window was stored (files.md §5).
 */
async function windowOverstepped(cs: number, window: number, total: number): Promise<void> {
  const { r, store, live, sealed } = await windowSetup(total, window + 1, (c) => c, cs);
  for (const frame of sealed.slice(0, window)) await r.files.frame(r.peer, live, frame);
  expect(r.state()).toBe("receiving");
  await r.files.frame(r.peer, live, sealed[window] as Uint8Array);
  expect(r.state()).toBe("failed");
  expect(r.told.at(-2)).toEqual({ t: "file.fail", id: ID, r: "window" });
  await store.flush();
  await store.flush();
  expect(Math.max(...store.writes.map((w) => w.first + w.count))).toBeLessThanOrEqual(window);
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
    expect(r.told).toEqual([
      { t: "file.fail", id: ID, r: "damaged" },
      { t: "file.cancel", id: ID, own: false },
    ]);
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
    const live = (i: number) => chunkFrame(parts, i, total);
    const acks: Uint8Array[] = [];
    const session = {
      state: "open",
      writable: true,
      send: (b: Uint8Array) => acks.push(b),
      closed: new Promise(() => {}),
    };
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

describe("the window: a live chunk beyond it is refused (files.md §5)", () => {
  it("a sender pushing past 64 chunks beyond the last ACK ends the transfer, both sides told; nothing past it is kept", async () => {
    // Storage stalls on the first write: no ACK goes; chunks 0–63 wait (the window), chunk 64 is
    // one the sender was never allowed to send. Before the window was enforced it was taken, and
    // so was every chunk after it, all waiting in memory for a store.
    const { r, store, live, sealed, key } = await windowSetup(80, WINDOW_CHUNKS + 4);
    for (const frame of sealed.slice(0, WINDOW_CHUNKS)) await r.files.frame(r.peer, live, frame);
    expect(r.state()).toBe("receiving");
    for (const frame of sealed.slice(WINDOW_CHUNKS)) await r.files.frame(r.peer, live, frame);
    expect(r.state()).toBe("failed");
    const [t] = await r.files.list("c0ffee");
    expect(t?.reason).toBe(failedHere("Ann", "p.bin", "window"));
    expect(r.told).toEqual([
      { t: "file.accept", id: ID, from: 0 },
      { t: "file.fail", id: ID, r: "window" },
      { t: "file.cancel", id: ID, own: false },
    ]);
    expect(
      r.events.some((e) => e.type === "error" && e.error.message === t?.reason),
      "the person is told",
    ).toBe(true);
    // The sender gets those two messages (under its own transfer id): it says why, not a bare
    // "Ann cancelled." — and the `file.cancel` after (for older senders) changes nothing.
    const s = await sender();
    for (const m of r.told.slice(1)) await s.files.message(s.peer, { ...m, id: s.id } as FileAppMessage);
    const [out] = await s.files.listRoom("r00m");
    expect(out?.state).toBe("failed");
    expect(out?.reason).toBe(failedThere("Ann", "p.bin", "window"));
    await store.flush();
    await store.flush();
    expect(Math.max(...store.writes.map((w) => w.first + w.count))).toBeLessThanOrEqual(WINDOW_CHUNKS);
    // The stalled write landed (flush waited for it), then went: its removal follows the write
    // by some turns, so it is waited for (bounded), not assumed done after one.
    await until(
      async () => (await store.getChunk(key, 0)) === undefined,
      "the landed chunk is removed",
      5_000,
    );
    expect(await store.getChunk(key, 0)).toBeUndefined();
  });

  it("in 255 KiB chunks the window is 16 of them (≈ 4 MiB, as 64 of the default): the 17th beyond the last ACK ends the transfer", async () => {
    const window = windowChunks(LANE_CHUNK_BYTES);
    expect(window).toBe(16);
    expect(window * LANE_CHUNK_BYTES).toBeLessThanOrEqual(
      WINDOW_CHUNKS * FILE_CHUNK_BYTES + LANE_CHUNK_BYTES,
    );
    await windowOverstepped(LANE_CHUNK_BYTES, window, 24);
  });

  it("chunks smaller than the default get no wider window: 64 of them at most, the 65th beyond the last ACK ends the transfer", async () => {
    // No sender of ours offers them (files.md §2: the default or larger), but `cs` decodes from
    // 1 on: ⌊4 MiB / cs⌋ alone would let a contact have 4 096 chunks of 1 KiB (or every chunk of
    // a file of 16-byte ones) taken and opening at once where the default allows 64.
    const cs = 1024;
    expect(windowChunks(cs)).toBe(WINDOW_CHUNKS);
    await windowOverstepped(cs, WINDOW_CHUNKS, 200);
  });

  it("in 255 KiB chunks an honest sender fills the window, storage catches up, and the file ends (hash over that chunking)", async () => {
    const w = await windowSetup(20, 20, (c) => c, LANE_CHUNK_BYTES);
    const { r, store } = w;
    await sendHonestly(w, LANE_CHUNK_BYTES);
    // The offer's hash was made for another file: it ends as not matching, never as `window`.
    expect(r.told.some((m) => m.t === "file.fail")).toBe(false);
    expect(r.told.at(-1)).toEqual({ t: "file.done", id: ID, ok: false });
    expect(store.writes.every((w) => w.first + w.count <= 20)).toBe(true);
  });

  it("an offer in chunks this end does not take is declined in words (`chunks`), nothing kept; the sender reads why", async () => {
    const r = receiver();
    const { offer } = await senderSide(new Uint8Array(10));
    await r.files.message(r.peer, { ...offer, cs: MAX_CHUNK_BYTES + 1 });
    // A size whose chunks a u16 cannot count.
    await r.files.message(r.peer, { ...offer, id: ID + 1, size: 65_535 * 1000 + 1, cs: 1000 });
    // The largest it takes is taken.
    await r.files.message(r.peer, { ...offer, id: ID + 2, cs: MAX_CHUNK_BYTES });
    await until(() => r.told.length >= 2, "both declines go");
    expect(r.told).toEqual([
      { t: "file.decline", id: ID, r: "chunks" },
      { t: "file.decline", id: ID + 1, r: "chunks" },
    ]);
    const kept = await r.files.list("c0ffee");
    expect(kept.map((t) => [t.id, t.cs])).toEqual([[ID + 2, MAX_CHUNK_BYTES]]);
    const s = await sender();
    await s.files.message(s.peer, { t: "file.decline", id: s.id, r: "chunks" });
    const [out] = await s.files.listRoom("r00m");
    expect(out?.state).toBe("declined");
    expect(out?.reason).toBe(declinedThere("Ann", "chunks"));
  });

  it("the receiver reads on while chunks open; one that does not open ends it as damaged, nothing from it on kept", async () => {
    // Every AES-GCM opening held until released: the frames are taken (checked, their openings
    // started) without one waiting for the last (files.md §4) — a window's chunks are with the
    // crypto thread together, not one round trip each before the next frame is read.
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let opening = 0;
    const gated = (c: CryptoProvider): CryptoProvider => ({
      ...c,
      aes256gcm: {
        nonceLength: c.aes256gcm.nonceLength,
        seal: (k, n, ad, p, out) => c.aes256gcm.seal(k, n, ad, p, out),
        open: async (k, n, ad, x, out) => {
          opening++;
          await gate;
          return c.aes256gcm.open(k, n, ad, x, out);
        },
      },
    });
    const w = await windowSetup(80, 8, gated);
    const frames = w.sealed.map((f) => f.slice());
    frames[5]![100]! ^= 1; // changed in transit
    for (const f of frames) await w.r.files.frame(w.r.peer, w.live, f);
    await until(() => opening === 8, "all eight opening at once");
    expect(w.store.writes).toEqual([]); // nothing stored before its chunk opened
    expect(w.r.state()).toBe("receiving");
    release();
    await endsDamaged(w);
    // No write ever held the damaged chunk or one after it, and what was stored is gone (its
    // removal follows the write that landed: waited for, bounded).
    for (const { first, count } of w.store.writes) expect(first + count).toBeLessThanOrEqual(5);
    await until(
      async () => (await w.store.getChunk(w.key, 0)) === undefined,
      "the stored chunks are removed",
      5_000,
    );
    expect(await w.store.getChunk(w.key, 0)).toBeUndefined();
  });

  it.each([
    ["the page opens the chunks", false],
    ["the store opens them (putOpened)", true],
  ])(
    "a session that replaces a live one while chunks wait for storage: the resume asks from what was taken, nothing is taken twice, the file ends done (%s)",
    async (_, storeOpens) => {
      // A new session comes up while the transfer is still `receiving` (the old one has not been
      // seen closing): the resume waits for the store, and meanwhile the old session's chunks 2 and 3
      // are taken. Before the fix the resume then set `taken` back to what was stored when it began
      // (2) and asked from there: chunks 2 and 3 came again, were taken a second time, and their
      // digests went into the file hash twice — the file failed as changed (files.md §5, Resume).
      const data = seededBytes(6 * FILE_CHUNK_BYTES + 3, 8);
      const { offer, parts } = await senderSide(data);
      const total = chunkCount(data.length);
      const frameOf = (i: number) => chunkFrame(parts, i, total);
      const [first, second] = [openLive(), openLive()];
      const store = new SlowStore(storeOpens ? { opens: nobleCrypto } : {});
      const r = receiver({ store, live: first });
      await r.files.message(r.peer, offer);
      const [t] = await r.files.list("c0ffee");
      await r.files.accept(t!.key);
      r.files.up(r.peer, first);
      const accepts = () => r.told.filter((m) => m.t === "file.accept");
      await until(() => accepts().length === 1, "the accept goes out");
      for (const i of [0, 1]) await r.files.frame(r.peer, first, frameOf(i));
      await store.flush(); // chunk 0 lands; the write of chunk 1 begins and stalls
      await until(() => store.writes.length === 2, "the second write begins");
      r.files.up(r.peer, second); // its resume waits for that write
      await new Promise((resolve) => setImmediate(resolve));
      for (const i of [2, 3]) await r.files.frame(r.peer, first, frameOf(i)); // the old session's
      await store.flush(); // chunk 1 lands; the write of 2 and 3 begins and stalls
      await until(() => {
        void store.flush();
        return accepts().length === 2;
      }, "the resume asks again");
      const from = (accepts()[1] as { from: number }).from;
      expect(from).toBe(4); // every chunk taken (0–3) was stored before the resume asked
      // An honest sender starts again from `from` on the new session.
      for (let i = from; i < total; i++) void r.files.frame(r.peer, second, frameOf(i));
      await untilEnded(r, store);
      expect(r.state()).toBe("done");
      const blob = await r.files.blob(t!.key);
      expect(new Uint8Array(await blob!.arrayBuffer())).toEqual(data);
    },
  );

  it("chunks queued on a session that closed before their turn are neither opened nor stored; the resume asks for them again and the file ends done", async () => {
    const data = seededBytes(4 * FILE_CHUNK_BYTES + 5, 11);
    const { offer, parts } = await senderSide(data);
    const total = chunkCount(data.length);
    const frameOf = (i: number) => chunkFrame(parts, i, total);
    const [first, second] = [openLive(), openLive()];
    const store = new SlowStore();
    const r = receiver({ store, live: first });
    await r.files.message(r.peer, offer);
    const [t] = await r.files.list("c0ffee");
    await r.files.accept(t!.key);
    r.files.up(r.peer, first);
    const accepts = () => r.told.filter((m) => m.t === "file.accept");
    await until(() => accepts().length === 1, "the accept goes out");
    await r.files.frame(r.peer, first, frameOf(0)); // taken; its write begins and stalls
    await until(() => store.writes.length === 1, "the first write begins");
    const late = [1, 2].map((i) => r.files.frame(r.peer, first, frameOf(i)));
    first.session.state = "closed"; // the link dropped before their turn came
    await Promise.all(late);
    await store.flush(); // chunk 0 lands
    r.files.up(r.peer, second);
    await until(() => accepts().length === 2, "the resume asks again");
    expect((accepts()[1] as { from: number }).from).toBe(1);
    expect(store.writes).toEqual([{ first: 0, count: 1 }]); // nothing of chunks 1 and 2 written
    for (let i = 1; i < total; i++) void r.files.frame(r.peer, second, frameOf(i));
    await untilEnded(r, store);
    expect(r.state()).toBe("done");
    expect(new Uint8Array(await (await r.files.blob(t!.key))!.arrayBuffer())).toEqual(data);
  });

  it("a new session resumes a contact's transfers at once: one waiting on its store does not hold another's", async () => {
    const data = seededBytes(3 * FILE_CHUNK_BYTES, 12);
    const { offer, parts } = await senderSide(data);
    const total = chunkCount(data.length);
    const [first, second] = [openLive(), openLive()];
    const store = new SlowStore();
    const r = receiver({ store, live: first });
    await r.files.message(r.peer, offer); // A: its chunk's write will stall
    await r.files.message(r.peer, { ...offer, id: ID + 1 }); // B: nothing to store
    for (const t of await r.files.list("c0ffee")) await r.files.accept(t.key);
    r.files.up(r.peer, first);
    const accepts = (id: number) => r.told.filter((m) => m.t === "file.accept" && m.id === id);
    await until(() => accepts(ID).length === 1 && accepts(ID + 1).length === 1, "both accepts go out");
    await r.files.frame(r.peer, first, chunkFrame(parts, 0, total));
    await until(() => store.writes.length === 1, "A's write begins and stalls");
    r.files.up(r.peer, second);
    await until(() => accepts(ID + 1).length === 2, "B's resume asks while A's write stalls");
    expect(accepts(ID)).toHaveLength(1); // A waits for its chunk to be stored (files.md §5)
    await until(() => {
      void store.flush();
      return accepts(ID).length === 2;
    }, "A's resume asks once its chunk landed");
    expect((accepts(ID)[1] as { from: number }).from).toBe(1);
  });

  it("two resumes at once after a reload hash the stored chunks again once: a chunk taken meanwhile stays counted and the file ends done", async () => {
    const data = seededBytes(5 * FILE_CHUNK_BYTES + 9, 13);
    const { offer, parts } = await senderSide(data);
    const total = chunkCount(data.length);
    const frameOf = (i: number) => chunkFrame(parts, i, total);
    const store = new GatedStore();
    const storage = new MemoryStorage("");
    // Before the reload: chunks 0 and 1 stored, then the session ends (the record keeps next = 2).
    let end = () => {};
    const before = openLive(new Promise<void>((resolve) => (end = resolve)));
    const r1 = receiver({ store, storage, live: before });
    await r1.files.message(r1.peer, offer);
    const [t] = await r1.files.list("c0ffee");
    await r1.files.accept(t!.key);
    r1.files.up(r1.peer, before);
    await until(() => r1.told.some((m) => m.t === "file.accept"), "the accept goes out");
    for (const i of [0, 1]) await r1.files.frame(r1.peer, before, frameOf(i));
    await until(async () => (await store.getChunks(t!.key, 0, 2)).length === 2, "chunks 0 and 1 stored");
    before.session.state = "closed";
    end();
    await until(
      async () => (await receiver({ store, storage }).files.list("c0ffee"))[0]?.next === 2,
      "the record says next = 2",
    );
    // After the reload two sessions come up at once (one replacing the other): two resumes.
    const [s2, s3] = [openLive(), openLive()];
    const r = receiver({ store, storage, live: s3 });
    const accepts = () => r.told.filter((m) => m.t === "file.accept");
    const base = store.reads(0); // the test's own reads of the stored chunks above
    store.hold();
    r.files.up(r.peer, s2);
    await until(() => store.held.length === 1, "the first resume's read of chunks 0 and 1 waits");
    r.files.up(r.peer, s3);
    await new Promise((resolve) => setImmediate(resolve)); // the second resume reaches the rehash too
    store.letOne(0); // the first one's (chunks 0 and 1: one read)
    await until(() => accepts().length >= 1, "the first resume asks (the second too, sharing its rehash)");
    expect((accepts()[0] as { from: number }).from).toBe(2);
    // Chunk 2 is taken and hashed; its write stalls.
    store.slow = true;
    await r.files.frame(r.peer, s2, frameOf(2));
    await until(() => store.writes.length === 1, "chunk 2's write begins");
    // A rehash of the second resume's own (before the fix) ends now, before chunk 2 lands.
    store.open();
    await until(
      () => store.reads(0) - base === 1 || accepts().length === 2,
      "the second resume past its rehash",
    );
    for (let i = 3; i < total; i++) void r.files.frame(r.peer, s3, frameOf(i));
    await untilEnded(r, store);
    expect(r.state()).toBe("done");
    expect(store.reads(0) - base).toBe(1); // what was stored was hashed again once
    expect(new Uint8Array(await (await r.files.blob(t!.key))!.arrayBuffer())).toEqual(data);
  });

  it("fuzz: whatever a sender pushes and however storage keeps up, what is kept stays in the window; an honest sender is never refused", async () => {
    const total = 100;
    const { sealed } = await windowSetup(total, WINDOW_CHUNKS + 8);
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        // Runs of chunks pushed between runs of storage catching up (a write and its ACK each).
        fc.array(fc.record({ sends: fc.nat(80), stores: fc.nat(2) }), { minLength: 1, maxLength: 5 }),
        async (honest, steps) => {
          const w = await windowSetup(total, 0);
          let sent = 0;
          let overstepped = false;
          for (const { sends, stores } of steps) {
            for (let n = 0; n < sends && sent < sealed.length && !overstepped; n++) {
              // An honest sender waits for an ACK at the window's end; a greedy one never does.
              if (honest && sent >= w.acked() + WINDOW_CHUNKS) break;
              if (sent >= w.acked() + WINDOW_CHUNKS) overstepped = true;
              await w.r.files.frame(w.r.peer, w.live, sealed[sent++]!);
            }
            for (let n = 0; n < stores; n++) await w.store.flush();
            // Every write begun covers chunks the sender was allowed (the ACKs before it).
            for (const { first, count } of w.store.writes)
              expect(first + count).toBeLessThanOrEqual(w.acked() + WINDOW_CHUNKS);
          }
          expect(w.r.state()).toBe(overstepped ? "failed" : "receiving");
          await w.store.flush();
        },
      ),
      { numRuns: 12 },
    );
  });
});

describe("stop: nothing of a stopped engine writes after the store lets go of its files (files.md §6)", () => {
  it("preparing stops at the next block: no write once stopped; the next engine on the store prepares it again and offers it", async () => {
    // A 3 MiB file is three blocks; the first block's write stalls while the engine stops. Before
    // `stop`, preparing went on with blocks 2 and 3 into a store already let go of.
    const store = new SlowStore();
    const storage = new MemoryStorage("");
    const data = seededBytes(3 * 16 * FILE_CHUNK_BYTES, 11);
    const a = roomSender(store, storage);
    const sent = a.files.sendToRoom("r00m", ["ann"], new Blob([data]), "big.bin");
    await until(() => store.writes.length === 1, "the first block is being written", 5_000);
    const stopping = a.files.stop();
    await store.flush(); // the write under way ends: `stop` waited for it
    await stopping;
    // Whatever preparing still does, its writes are let through (bounded): none should come.
    let ended = false;
    void sent.finally(() => {
      ended = true;
    });
    await until(
      () => {
        void store.flush();
        return ended;
      },
      "sendToRoom returns",
      5_000,
    );
    const [t] = await sent;
    expect(t?.state).toBe("hashing");
    expect(store.writes).toHaveLength(1);
    expect(a.told).toEqual([]);
    // The stopped engine's store refuses from now on (a late pump or chain cannot write).
    await expect(a.files.cancel(t!.key)).resolves.toBeUndefined();
    expect(store.writes).toHaveLength(1);
    // A new engine in this page on the same store (a new username) takes the file over.
    const b = roomSender(store, storage);
    const [again] = await b.files.listRoom("r00m");
    expect(again?.state).toBe("hashing");
    const writes = () => store.writes.length;
    await until(
      async () => {
        if (writes() > 1) void store.flush();
        return (await b.files.listRoom("r00m"))[0]?.state === "offered";
      },
      "the file handed over is offered",
      10_000,
    );
    const offer = b.told.find((m) => m.t === "file.offer");
    expect(offer?.t === "file.offer" && offer.hash).toEqual(await fileHash(nobleCrypto, data));
    expect(store.writes.slice(1).map((w) => w.first)).toEqual([0, 16, 32]);
  });

  it("a receiver stops: the batch being stored ends and its resume point is saved; later chunks are neither stored nor counted", async () => {
    const { r, store, storage, live, sealed, key } = await windowSetup(40, 8);
    for (const frame of sealed.slice(0, 4)) await r.files.frame(r.peer, live, frame);
    await until(() => store.writes.length === 1, "a batch is being stored", 5_000);
    const stopping = r.files.stop();
    // A second stop while the first waits for the batch gets the first one's end: before, it
    // answered `true` at once, and a caller letting go of the files next did so mid-write.
    const twice = r.files.stop();
    let twiceEnded = false;
    void twice.then(() => {
      twiceEnded = true;
    });
    await new Promise((resolve) => setImmediate(resolve)); // the write is held until `flush`
    expect(twiceEnded).toBe(false);
    await store.flush();
    expect(await stopping).toBe(true);
    expect(await twice).toBe(true);
    for (const frame of sealed.slice(4)) await r.files.frame(r.peer, live, frame);
    expect(store.writes).toHaveLength(1);
    const stored = store.writes[0]!;
    // The next engine (or page) finds the resume point just past what was stored, nothing beyond.
    const [t] = await receiver({ store, storage }).files.list("c0ffee");
    expect(t?.key).toBe(key);
    expect(t?.state).toBe("waiting");
    expect(t?.next).toBe(stored.first + stored.count);
  });
});

describe("a store that fails: the person is told why in words that fit (files.md §7)", () => {
  it.each([
    ["QuotaExceededError", "full"],
    ["InvalidStateError", "storage"],
  ] as const)("%s: %s", async (name, words) => {
    class Failing extends MemoryFileStore {
      override async putChunks(): Promise<void> {
        throw Object.assign(new Error("no"), { name });
      }
    }
    const data = seededBytes(FILE_CHUNK_BYTES + 5, 12);
    const { offer, parts } = await senderSide(data);
    const r = receiver({ store: new Failing() });
    await r.files.message(r.peer, offer);
    for (const p of parts) await r.files.message(r.peer, p);
    expect(r.state()).toBe("failed");
    const [t] = await r.files.list("c0ffee");
    // A worker that crashed or a file held elsewhere is not a full device.
    expect(t?.reason).toBe(failedHere("Ann", "p.bin", words));
    expect(r.told[0]).toEqual({ t: "file.fail", id: ID, r: "storage" });
  });
});

describe("the rehash after a reload (files.md §5, Resume)", () => {
  it("reads the stored chunks a block at a time; a chunk in the wrong place ends the resume point there", async () => {
    const total = 200;
    const { r, store, storage, live, sealed, acked, key } = await windowSetup(total, 160);
    for (const [n, frame] of sealed.entries()) {
      await until(async () => {
        if (n < acked() + WINDOW_CHUNKS) return true;
        await store.flush();
        return false;
      }, "room in the window");
      await r.files.frame(r.peer, live, frame);
    }
    await until(async () => {
      await store.flush();
      return acked() >= 160;
    }, "160 chunks stored");
    await r.files.stop(); // saves the resume point where it stands
    // Chunk 150's slot holds chunk 151 (as if 150 were missing and the rest moved up).
    const moved = (await store.getChunks(key, 151, 1))[0]!;
    const stored = [...(await store.getChunks(key, 0, 160))].length;
    await MemoryFileStore.prototype.putChunks.call(store, key, 150, [moved]);
    const reads = { calls: 0 };
    for (const name of ["getChunk", "getChunks"] as const) {
      const real = store[name].bind(store) as (...a: unknown[]) => Promise<unknown>;
      (store as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
        reads.calls++;
        return real(...a);
      };
    }
    const again = receiver({ store, storage, live });
    const started = performance.now();
    again.files.up(again.peer, live);
    await until(() => again.told.some((m) => m.t === "file.accept"), "the resume asks the sender");
    // A figure, not an assertion (bench/README.md, "Resume after a reload").
    console.log(
      `rehash of ${stored} stored chunks: ${reads.calls} store reads, ${(performance.now() - started).toFixed(0)} ms`,
    );
    expect(again.told.find((m) => m.t === "file.accept")).toEqual({ t: "file.accept", id: ID, from: 150 });
    expect(reads.calls).toBe(Math.ceil(160 / 16));
  });
});

describe("a store that opens and digests what it stores (putOpened: the OPFS store's worker)", () => {
  /** `c` counting its AES-GCM openings: the page's (the engine's provider) when given to it. */
  const counting = (c: CryptoProvider) => {
    const n = { opens: 0 };
    const provider: CryptoProvider = {
      ...c,
      aes256gcm: {
        ...c.aes256gcm,
        open: (...a) => {
          n.opens++;
          return c.aes256gcm.open(...a);
        },
      },
    };
    return { n, provider };
  };

  it("parts in order give the file, hash checked, and the page opens no chunk: the store did", async () => {
    const data = seededBytes(3 * FILE_CHUNK_BYTES + 7, 21);
    const { offer, parts } = await senderSide(data);
    const page = counting(nobleCrypto);
    const inStore = counting(nobleCrypto);
    const store = new MemoryFileStore({ opens: inStore.provider });
    const r = receiver({ store, crypto: page.provider });
    await r.files.message(r.peer, offer);
    for (const p of parts) await r.files.message(r.peer, p);
    expect(r.state()).toBe("done");
    expect(r.told).toEqual([{ t: "file.done", id: ID, ok: true }]);
    expect(page.n.opens).toBe(0);
    expect(inStore.n.opens).toBe(4);
    const [t] = await r.files.list("c0ffee");
    const blob = await r.files.blob(t!.key);
    expect(new Uint8Array(await blob!.arrayBuffer())).toEqual(data);
  });

  it("a chunk changed in transit: nothing of its batch is stored, the transfer ends damaged, nothing from it on kept", async () => {
    const w = await windowSetup(80, 8, (c) => c, FILE_CHUNK_BYTES, true);
    const frames = w.sealed.map((f) => f.slice());
    frames[5]![100]! ^= 1;
    for (const f of frames) await w.r.files.frame(w.r.peer, w.live, f);
    await endsDamaged(w);
    expect(w.store.writes.length).toBeGreaterThan(0); // the batches before it were stored …
    for (const { first, count } of w.store.writes) expect(first + count).toBeLessThanOrEqual(5);
    await until(
      async () => (await w.store.getChunk(w.key, 0)) === undefined,
      "the stored chunks are removed",
      5_000,
    );
  });

  it("in 255 KiB chunks the file hash is still checked before the file is offered: another file's hash ends it failed", async () => {
    const w = await windowSetup(20, 20, (c) => c, LANE_CHUNK_BYTES, true);
    const { r } = w;
    await sendHonestly(w, LANE_CHUNK_BYTES);
    expect(r.state()).toBe("failed");
    expect(r.told.some((m) => m.t === "file.fail")).toBe(false);
    expect(r.told.at(-1)).toEqual({ t: "file.done", id: ID, ok: false });
  });

  it("a store that cannot after all (no worker: undefined) stores nothing; the page opens the batch, the file ends done, a changed chunk damaged", async () => {
    class NoWorker extends MemoryFileStore {
      asked = 0;
      // It said it could (its worker started), then cannot (the worker died, none starts again).
      override opensChunks = async () => true;
      override putOpened = async () => {
        this.asked++;
        return undefined;
      };
    }
    const store = new NoWorker();
    const { offer, parts } = await receivedWhole(store, 22);
    expect(store.asked).toBe(3);

    const bad = receiver({ store: new NoWorker() });
    await bad.files.message(bad.peer, offer);
    const changed = parts.map((p) => ({ ...p, d: p.d.slice() }));
    changed.at(-1)!.d[3]! ^= 1;
    for (const p of changed) await bad.files.message(bad.peer, p);
    expect(bad.state()).toBe("failed");
    expect(bad.told[0]).toEqual({ t: "file.fail", id: ID, r: "damaged" });
  });

  it("a store that has putOpened but says it cannot open (the OPFS store whose worker cannot start) is never asked to: each chunk is opened as it is taken", async () => {
    class Cannot extends MemoryFileStore {
      asked = 0;
      override opensChunks = async () => false;
      override putOpened = async () => {
        this.asked++;
        return undefined;
      };
    }
    const store = new Cannot();
    await receivedWhole(store, 23);
    expect(store.asked).toBe(0);
  });
});
