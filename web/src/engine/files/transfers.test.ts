/**
 * File transfer between two engines in Node (docs/protocol/files.md): real signaling, real Noise
 * sessions and ratchets, in-memory Links for the data channels and the real bulk lane
 * (web/src/net/bulk-lane.ts) over in-memory channels beside them (test/support/engine.ts). Sends
 * both ways with the hash checked, every chunk on the bulk lane; without a lane (the relay, an
 * older peer) inside the session; decline, cancel on either side, a link cut mid-transfer that
 * resumes from the last stored chunk, a chunk changed before it was sealed (a sender whose
 * AES-GCM output is flipped) and one changed in transit on the lane, both reported and
 * discarded; replayed, reordered and malformed lane frames.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { SEAL_BATCH } from "../../../../core/session/session.ts";
import { type RunningSignaling, startSignaling } from "../../../../signaling/testing.ts";
import {
  EngineHarness,
  type EngineNode,
  FAST_ENGINE,
  handedSizes,
  sealGate,
  until,
} from "../../../../test/support/engine.ts";
import { fileTransfers, seededBytes } from "../../../../test/support/files.ts";
import { downloadProblem } from "../../app/files.ts";
import { BULK_CHUNK_MAX, BULK_CHUNKS_BYTES } from "../../net/bulk-lane.ts";
import { batches } from "../../ui/save-file.ts";
import { type EngineRefusal, type FileTransfer, FileUnavailable } from "../api.ts";
import type { EngineConfig } from "../engine.ts";
import { type FileRecord, MemoryFileStore } from "./store.ts";
import { type ChunkCrypto, FILE_CHUNK_BYTES, FILE_FRAME, fileHash, LANE_CHUNK_BYTES } from "./wire.ts";
import { failedHere, receivingStopped, sendingStopped, stoppedThere } from "./words.ts";

const FAST: Partial<EngineConfig> = {
  ...FAST_ENGINE,
  log: process.env.FILES_DEBUG ? (m) => console.log(m) : () => {},
};

function randomFile(bytes: number, seed: number): Blob {
  return new Blob([seededBytes(bytes, seed)], { type: "application/octet-stream" });
}

/** Run `act` once, from inside the engine's own event, when `when` first holds for a `file` event. */
function onFile(n: EngineNode, when: (t: FileTransfer) => boolean, act: () => void): Promise<void> {
  return new Promise((resolve) => {
    const off = n.engine.subscribe((e) => {
      if (e.type !== "file" || !when(e.transfer)) return;
      off();
      act();
      resolve();
    });
  });
}

/**
 * A file of `size` bytes made on demand from each byte's offset: no byte exists until a slice of it
 * is read, so a 2 GiB file costs nothing — and reading it whole throws. Records every slice read.
 */
class GeneratedFile extends Blob {
  readonly #size: number;
  readonly reads: number[] = [];
  constructor(size: number) {
    super([], { type: "application/octet-stream" });
    this.#size = size;
  }
  override get size(): number {
    return this.#size;
  }
  override slice(start = 0, end = this.#size): Blob {
    const from = Math.min(Math.max(0, start), this.#size);
    const to = Math.min(Math.max(from, end), this.#size);
    this.reads.push(to - from);
    return new Blob([GeneratedFile.bytes(from, to)]);
  }
  override arrayBuffer(): Promise<ArrayBuffer> {
    throw new Error("the whole file was read at once");
  }
  override stream(): never {
    throw new Error("the whole file was read at once");
  }
  override text(): Promise<string> {
    throw new Error("the whole file was read at once");
  }
  /** Bytes `from` … `to − 1` of any generated file. */
  static bytes(from: number, to: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(to - from);
    for (let i = 0; i < out.length; i++) out[i] = (Math.imul(from + i, 2654435761) >>> 24) & 0xff;
    return out;
  }
}

const hashOf = async (b: Blob) => toHex(sha256(new Uint8Array(await b.arrayBuffer())));

/** The chunk index of a FILE_CHUNK frame on the bulk lane (docs/protocol/files.md §2). */
const chunkIndexOf = (m: Uint8Array) =>
  m[0] === 0x10 && m.length > 7 ? ((m[5] ?? 0) << 8) | (m[6] ?? 0) : -1;

/** The last `file` event a node saw for each transfer key. */
const incoming = (n: EngineNode) => [...fileTransfers(n).values()].filter((t) => t.direction === "in");
const stateOf = (n: EngineNode, key: string) => fileTransfers(n).get(key)?.state;

describe("file transfer (Node engines, real signaling and Noise, in-memory links)", () => {
  let signaling: RunningSignaling;
  let extra: Partial<EngineConfig> = {};
  const h = new EngineHarness(() => ({ signalingUrl: signaling.url, config: { ...FAST, ...extra } }));

  beforeAll(async () => {
    signaling = await startSignaling();
  });
  afterAll(async () => {
    await signaling?.close();
  });
  afterEach(async () => {
    extra = {};
    await h.stopAll();
  });

  /**
   * Cuts every link (the network vanishes, nobody sees a close) once `n` sees a transfer event
   * `when` holds for, after `then` (say, the next session's setting). `seen(key)`: `n`'s events of
   * that transfer since the cut, in order.
   */
  function cutLinksWhen(n: EngineNode, when: (t: FileTransfer) => boolean, then?: () => void) {
    let cutAt = 0;
    const cut = onFile(n, when, () => {
      for (const l of h.hub.links) l.cut = true;
      then?.();
      cutAt = n.events.length;
    });
    const seen = (key: string) =>
      n.events.slice(cutAt).flatMap((e) => (e.type === "file" && e.transfer.key === key ? [e.transfer] : []));
    return { cut, seen };
  }

  /** Alice offers `blob` to Bob; Bob accepts; resolves with both keys. */
  async function offerAndAccept(a: EngineNode, b: EngineNode, blob: Blob, name = "data.bin") {
    const sent = await a.engine.sendFile(b.id, blob, name);
    expect(sent.state).toBe("offered");
    await until(() => incoming(b).some((t) => t.state === "offered"), "offer arrives");
    const offered = incoming(b).find((t) => t.key.endsWith(`/in/${sent.id}`));
    if (!offered) throw new Error("no offer");
    expect(offered).toMatchObject({ name, size: blob.size, contactId: a.id });
    await b.engine.acceptFile(offered.key);
    return { out: sent.key, in: offered.key };
  }

  it("sends a multi-chunk file both ways; the receiver's copy has the sender's hash", async () => {
    const [a, b] = await h.pair();
    const ab = randomFile(5 * FILE_CHUNK_BYTES + 1234, 1);
    const keys = await offerAndAccept(a, b, ab, "report.pdf");
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "a→b done");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(ab));
    // Every chunk went on the bulk lane beside the session (one AEAD pass per byte: files.md §2).
    const onLane = () => h.hub.links.reduce((n, l) => n + (l.channel?.frames ?? 0), 0);
    expect(onLane()).toBe(6);
    // The streamed read (a save to disk) gives the same bytes, one chunk per pull.
    const stream = await b.engine.fileStream(keys.in);
    if (!stream) throw new Error("no stream");
    const pieces: Uint8Array<ArrayBuffer>[] = [];
    for (const reader = stream.getReader(); ; ) {
      const r = await reader.read();
      if (r.done) break;
      expect(r.value.length).toBeLessThanOrEqual(FILE_CHUNK_BYTES);
      pieces.push(r.value as Uint8Array<ArrayBuffer>);
    }
    expect(pieces).toHaveLength(6);
    expect(await hashOf(new Blob(pieces))).toBe(await hashOf(ab));
    expect(await a.engine.fileStream(keys.out)).toBeUndefined(); // only received files

    const ba = randomFile(3 * FILE_CHUNK_BYTES, 2); // an exact multiple of the chunk size
    const back = await offerAndAccept(b, a, ba);
    await until(() => stateOf(b, back.out) === "done" && stateOf(a, back.in) === "done", "b→a done");
    const gotBack = await a.engine.fileBlob(back.in);
    expect(gotBack && (await hashOf(gotBack))).toBe(await hashOf(ba));
    expect(onLane()).toBe(6 + 3);
    // A new session has a new link and lane: the next file goes on that one.
    a.engine.disconnect(b.id);
    await until(() => a.engine.presence(b.id).status !== "online", "offline");
    a.engine.connect(b.id);
    await until(() => a.engine.presence(b.id).status === "online", "online again");
    const again = await offerAndAccept(a, b, randomFile(2 * FILE_CHUNK_BYTES, 3));
    await until(() => stateOf(a, again.out) === "done" && stateOf(b, again.in) === "done", "again done");
    expect(onLane()).toBe(6 + 3 + 2);
    // Progress reached the whole size on both sides; the stored list says the same.
    expect((await a.engine.listFiles(b.id)).map((t) => t.state)).toEqual(["done", "done", "done"]);
    // The per-transfer key is a sealed secret of the receiver's storage, never in the file store.
    expect([...b.storage.secrets.keys()].some((k) => k.startsWith("file/"))).toBe(true);

    // Deleting the contact deletes its files, their chunks and keys.
    await b.engine.changeContact(a.id, { kind: "delete" });
    expect(await b.engine.listFiles(a.id)).toEqual([]);
    expect(await b.engine.fileBlob(keys.in)).toBeUndefined();
    expect([...b.storage.secrets.keys()].some((k) => k.startsWith("file/"))).toBe(false);
  });

  it("to a peer whose lane takes 255 KiB chunks the file goes in them both ways, the hash over that chunking (files.md §2)", async () => {
    const [a, b] = await h.pair(false, false, {}, BULK_CHUNK_MAX);
    // Every frame sent on any lane, by its first byte and length.
    const sent: [number, number][] = [];
    for (const l of h.hub.links)
      if (l.channel)
        l.channel.tamper = (m) => {
          if (m[0] !== 0) sent.push([m[0] as number, m.length]);
          return [m];
        };
    const ab = randomFile(5 * LANE_CHUNK_BYTES + 1234, 21);
    const keys = await offerAndAccept(a, b, ab, "big.bin");
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "a→b done");
    expect(fileTransfers(b).get(keys.in)?.cs).toBe(LANE_CHUNK_BYTES);
    expect(fileTransfers(a).get(keys.out)?.cs).toBe(LANE_CHUNK_BYTES);
    // Six FILE_CHUNK_WIDE frames (13-byte header, 16-byte tag), each one lane message.
    expect(sent).toEqual([
      ...Array.from({ length: 5 }, () => [FILE_FRAME.CHUNK_WIDE, 13 + LANE_CHUNK_BYTES + 16]),
      [FILE_FRAME.CHUNK_WIDE, 13 + 1234 + 16],
    ]);
    const data = new Uint8Array(await ab.arrayBuffer());
    expect(toHex(fileTransfers(b).get(keys.in)?.hash ?? new Uint8Array())).toBe(
      toHex(await fileHash(nobleCrypto, data, LANE_CHUNK_BYTES)),
    );
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(ab));
    // The streamed read: one chunk of the transfer's size per pull.
    const stream = await b.engine.fileStream(keys.in);
    if (!stream) throw new Error("no stream");
    const sizes: number[] = [];
    for (const reader = stream.getReader(); ; ) {
      const r = await reader.read();
      if (r.done) break;
      sizes.push(r.value.length);
    }
    expect(sizes).toEqual([...Array.from({ length: 5 }, () => LANE_CHUNK_BYTES), 1234]);
    // And back, a file of the default size's multiple: still in the lane's size.
    sent.length = 0;
    const ba = randomFile(3 * FILE_CHUNK_BYTES, 22);
    const back = await offerAndAccept(b, a, ba);
    await until(() => stateOf(b, back.out) === "done" && stateOf(a, back.in) === "done", "b→a done");
    const gotBack = await a.engine.fileBlob(back.in);
    expect(gotBack && (await hashOf(gotBack))).toBe(await hashOf(ba));
    expect(sent).toEqual([[FILE_FRAME.CHUNK_WIDE, 13 + 3 * FILE_CHUNK_BYTES + 16]]);
  });

  it("a transfer in 255 KiB chunks cut mid-way resumes on a session with no lane (the relay, say): inside it, whole", async () => {
    const [a, b] = await h.pair(false, false, {}, BULK_CHUNK_MAX);
    const blob = randomFile(40 * LANE_CHUNK_BYTES + 99, 23);
    const { cut, seen: seenOf } = cutLinksWhen(
      b,
      (t) => t.next > 5,
      () => {
        h.hub.noBulk = true; // the next session has no lane: its chunks go inside it
      },
    );
    const keys = await offerAndAccept(a, b, blob);
    await cut;
    const seen = () => seenOf(keys.in);
    await until(() => seen().some((t) => t.state === "waiting"), "receiver waits");
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "done after resume");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    // It resumed past where it was cut, inside the session, with the size it was offered in.
    const resumed = a.logs.filter((l) => /^files: sending from chunk [1-9]\d* inside the session$/.test(l));
    expect(resumed.length).toBeGreaterThan(0);
    expect(fileTransfers(b).get(keys.in)?.cs).toBe(LANE_CHUNK_BYTES);
  });

  it("to a peer whose lane says nothing (session 17 and before) files go in the default size", async () => {
    const [a, b] = await h.pair();
    const keys = await offerAndAccept(a, b, randomFile(2 * FILE_CHUNK_BYTES + 1, 24));
    await until(() => stateOf(b, keys.in) === "done", "received");
    expect(fileTransfers(a).get(keys.out)?.cs).toBeUndefined();
    expect(fileTransfers(b).get(keys.in)?.cs).toBeUndefined();
  });

  /**
   * From the next links on, each lane's `BULK_CHUNKS` is held in transit until `release` (a lane
   * whose answer is late: the peer claimed it a round trip after the session came up here).
   * `lane(n)`: n's end of its open link's lane.
   */
  function holdLaneAnswers() {
    const held: (() => void)[] = [];
    let holding = true;
    h.hub.onLinks = (...links) => {
      for (const l of links)
        if (l.channel)
          l.channel.tamper = (m) => {
            if (!holding || m[0] !== 0 || m.length !== BULK_CHUNKS_BYTES) return [m];
            const to = l.channel?.other;
            held.push(() => to?.receive(m));
            return [];
          };
    };
    const release = () => {
      holding = false;
      for (const deliver of held.splice(0)) deliver();
    };
    const lane = (n: EngineNode) => h.hub.links.find((l) => l.owner === n.id && l.state === "open")?.bulk;
    return { held: () => held.length, release, lane };
  }

  it("a file picked before the peer's lane said which chunks it takes waits for it: 255 KiB chunks, and the log says why", async () => {
    extra = { laneAnswerMs: 600_000 }; // the answer, not a timer, decides (files.md §2)
    const [a, b] = await h.pair(false, false, {}, BULK_CHUNK_MAX);
    const late = holdLaneAnswers();
    a.engine.disconnect(b.id); // the next session's lanes answer late
    await until(() => a.engine.presence(b.id).status !== "online", "offline");
    a.engine.connect(b.id);
    await until(() => h.online(a, b) && h.online(b, a) && late.held() === 2, "online, both answers held");
    await until(() => late.lane(a)?.ready === true, "Bob reads the lane (his hello came)");
    expect(late.lane(a)?.peerChunkBytes).toBeUndefined();
    const blob = randomFile(3 * LANE_CHUNK_BYTES + 5, 25);
    const sending = a.engine.sendFile(b.id, blob, "early.bin");
    // Before, it went in 64 KiB chunks right away; now it waits for the answer.
    await until(
      () => a.logs.includes("files: waiting for 1 bulk lane(s) to say which chunks they take"),
      "waits",
    );
    expect(a.logs.filter((l) => l.startsWith("files: preparing"))).toEqual([]);
    // Meanwhile the file shows at once, "Preparing…" (ui/chat/Files.tsx: `hashing`), listed and
    // stored: before, nothing of it existed until the lane answered — up to `laneAnswerMs`.
    const waiting = a.events.flatMap((e) =>
      e.type === "file" && e.transfer.name === "early.bin" ? [e.transfer] : [],
    );
    expect(waiting.map((t) => t.state)).toEqual(["hashing"]);
    expect((await a.engine.listFiles(b.id)).map((t) => [t.name, t.state])).toEqual([
      ["early.bin", "hashing"],
    ]);
    late.release();
    const sent = await sending;
    expect(sent.cs).toBe(LANE_CHUNK_BYTES);
    expect(a.logs).toContain(
      `files: preparing a file in chunks of ${LANE_CHUNK_BYTES} bytes: every end's bulk lane takes them`,
    );
    await until(() => incoming(b).some((t) => t.state === "offered"), "offer arrives");
    const offered = incoming(b).find((t) => t.key.endsWith(`/in/${sent.id}`));
    await b.engine.acceptFile(offered?.key ?? "");
    await until(() => stateOf(b, offered?.key ?? "") === "done", "received");
    const got = await b.engine.fileBlob(offered?.key ?? "");
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
  });

  it("a lane that never says which chunks it takes costs a file its bound at most: the default size, and why", async () => {
    extra = { laneAnswerMs: 50 };
    const [a, b] = await h.pair(false, false, {}, BULK_CHUNK_MAX);
    const late = holdLaneAnswers();
    a.engine.disconnect(b.id);
    await until(() => a.engine.presence(b.id).status !== "online", "offline");
    a.engine.connect(b.id);
    await until(() => h.online(a, b) && late.lane(a)?.ready === true && late.held() === 2, "online, held");
    const sent = await a.engine.sendFile(b.id, randomFile(2 * LANE_CHUNK_BYTES, 26), "late.bin");
    expect(sent.cs).toBeUndefined();
    expect(a.logs).toContain(
      `files: preparing a file in chunks of ${FILE_CHUNK_BYTES} bytes: an end's bulk lane did not say which chunks it takes (an older version, or no answer in time)`,
    );
    // A file of one chunk at the default size waits for nothing (one chunk either way).
    const small = await a.engine.sendFile(b.id, randomFile(FILE_CHUNK_BYTES, 27), "small.bin");
    expect(small.cs).toBeUndefined();
    late.release();
  });

  it("chunks inside the session are bulk: a chat message sent while a window of them waits to be sealed leaves before it", async () => {
    // docs/protocol/session.md §5, "Bulk frames"; files.md §5: a chat message does not wait behind
    // the window. Alice's Noise seals are the real ones (noble), but the first one of a chunk-sized
    // frame waits at a gate (`sealGate`): her session's send chain stops there, so the whole window
    // of 64 chunks is queued in it, then the chat message. Marked anything but bulk, the chunks
    // leave first, all of them.
    const gate = sealGate();
    extra = { crypto: gate.provider };
    const [a, b] = await h.pair(false, true); // no lane: the chunks go inside the session
    const link = h.hub.links.find((l) => l.owner === a.id && l.state === "open");
    if (!link) throw new Error("no link");
    // What Alice's link is handed, in order: a chunk ("big": a 65 051-byte frame), the chat message
    // (a 16 000-character text, one frame of its own size) or anything else (PINGs, file.* messages).
    const handed = handedSizes(link, { chat: [20_000, 60_000] });
    const fileSeals = () => gate.seals.filter((x) => x.ad === "file").length;
    const chatSeals = () => gate.seals.filter((x) => x.ad === "other" && x.length > 20_000).length;
    const CHUNKS = 64; // one window (files.md §5)
    const blob = randomFile(CHUNKS * FILE_CHUNK_BYTES, 28);
    gate.arm();
    const keys = await offerAndAccept(a, b, blob);
    await until(gate.held, "Alice's send chain waits at the gate, sealing the first chunks");
    // Every chunk sealed for sending (the store reads no copy back: each sealed again from the
    // File, once to prepare and once to send) and so queued in the session, behind the gate.
    await until(() => fileSeals() === 2 * CHUNKS, "the window queued in the session");
    const before = a.storage.sessions.get(b.id);
    const sending = a.engine.send(b.id, "é".repeat(16_000));
    // Sealed by the ratchet and its state stored: the message is queued in the session next.
    await until(
      () => chatSeals() === 1 && a.storage.sessions.get(b.id) !== before,
      "the chat message queued",
    );
    gate.release();
    const id = await sending;
    await until(() => a.storage.messages.get(id)?.state === "delivered", "the chat message delivered");
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "the file done");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    const chunks = handed.filter((x) => x === "big").length;
    const chunksBeforeChat = handed.slice(0, handed.indexOf("chat")).filter((x) => x === "big").length;
    expect(chunks).toBe(CHUNKS);
    // After the one run being sealed at the gate (at most SEAL_BATCH frames), not behind the window.
    expect(chunksBeforeChat).toBeLessThanOrEqual(SEAL_BATCH);
  });

  it("hashing a file before the offer reports how far it got; the offer then carries the file hash", async () => {
    const [a, b] = await h.pair();
    const blob = randomFile(40 * FILE_CHUNK_BYTES + 7, 9); // 2.5 blocks of 16 chunks
    const keys = await offerAndAccept(a, b, blob);
    const hashing = a.events.flatMap((e) =>
      e.type === "file" && e.transfer.key === keys.out && e.transfer.state === "hashing"
        ? [e.transfer.done]
        : [],
    );
    expect(hashing.some((done) => done > 0 && done < blob.size)).toBe(true);
    await until(() => stateOf(b, keys.in) === "done", "received");
    const data = new Uint8Array(await blob.arrayBuffer());
    expect(toHex(fileTransfers(b).get(keys.in)?.hash ?? new Uint8Array())).toBe(
      toHex(await fileHash(nobleCrypto, data)),
    );
  });

  it("without a bulk lane (the relay, a peer of an older version) the chunks go inside the session", async () => {
    const [a, b] = await h.pair(false, true);
    const blob = randomFile(3 * FILE_CHUNK_BYTES + 5, 11);
    const keys = await offerAndAccept(a, b, blob);
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "done");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    expect(h.hub.links.every((l) => l.bulk === undefined)).toBe(true);
  });

  it("a bulk lane frame replayed is dropped; garbage naming no transfer, or of another type, is dropped; the file arrives whole", async () => {
    const [a, b] = await h.pair();
    for (const l of h.hub.links)
      if (l.channel)
        l.channel.tamper = (m) =>
          chunkIndexOf(m) === 2
            ? [m, m.slice(), Uint8Array.of(0x10, 0, 0), Uint8Array.of(0x20, ...m.subarray(1, 12))]
            : chunkIndexOf(m) === 3
              ? [m, m]
              : [m];
    const blob = randomFile(5 * FILE_CHUNK_BYTES, 12);
    const keys = await offerAndAccept(a, b, blob);
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "done");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    expect(b.logs.some((l) => /dropped a bulk frame: LOFT_ERR_MALFORMED/.test(l))).toBe(true);
    // A frame outside the files range (a proxy frame's type) is not the transfers' at all.
    expect(b.logs).toContain("bulk lane: dropped a frame of type 32 (LOFT_ERR_UNKNOWN_TYPE)");
  });

  it("bulk lane frames out of order, or malformed for a transfer being received, end it; both sides are told", async () => {
    const [a, b] = await h.pair();
    // Chunk 2 held back until chunk 3 passed: 3 arrives where 2 was due.
    let held: Uint8Array | undefined;
    for (const l of h.hub.links)
      if (l.channel)
        l.channel.tamper = (m) => {
          if (chunkIndexOf(m) === 2) {
            held = m;
            return [];
          }
          return chunkIndexOf(m) === 3 && held ? [m, held] : [m];
        };
    const k1 = await offerAndAccept(a, b, randomFile(5 * FILE_CHUNK_BYTES, 13));
    await until(() => stateOf(b, k1.in) === "failed", "receiver ends it");
    await until(() => stateOf(a, k1.out) === "failed", "sender is told");
    expect(fileTransfers(b).get(k1.in)?.reason).toBe(failedHere("alice", "data.bin", "malformed"));
    // The sender says why (file.fail), not a bare "… cancelled.".
    expect(fileTransfers(a).get(k1.out)?.reason).toBe(
      "Part of data.bin reached bob's device garbled or out of order, so it discarded the file. Try sending it again.",
    );
    // A FILE_ACK (a session frame) on the lane, naming the transfer: malformed for the lane.
    for (const l of h.hub.links)
      if (l.channel)
        l.channel.tamper = (m) =>
          chunkIndexOf(m) === 1 ? [Uint8Array.of(0x11, ...m.subarray(1, 5), 0, 9)] : [m];
    const k2 = await offerAndAccept(a, b, randomFile(4 * FILE_CHUNK_BYTES, 14));
    await until(() => stateOf(b, k2.in) === "failed", "receiver ends the second");
    await until(() => stateOf(a, k2.out) === "failed", "sender is told of the second");
    expect(b.logs.some((l) => /dropped a bulk frame: LOFT_ERR_UNKNOWN_TYPE/.test(l))).toBe(true);
    expect(await b.engine.fileBlob(k2.in)).toBeUndefined();
  });

  it("a chunk changed in transit on the bulk lane fails its AEAD: reported, the file discarded", async () => {
    const [a, b] = await h.pair();
    for (const l of h.hub.links)
      if (l.channel)
        l.channel.tamper = (m) => {
          if (chunkIndexOf(m) === 3) m[100] = (m[100] ?? 0) ^ 0x40;
          return [m];
        };
    const keys = await offerAndAccept(a, b, randomFile(6 * FILE_CHUNK_BYTES, 15));
    await until(() => stateOf(b, keys.in) === "failed", "receiver discards");
    await until(() => stateOf(a, keys.out) === "failed", "sender is told");
    expect(fileTransfers(a).get(keys.out)?.reason).toBe(
      "Part of data.bin was changed on the way to bob, so bob's device discarded the file. Try sending it again.",
    );
    const here = failedHere("alice", "data.bin", "damaged");
    expect(fileTransfers(b).get(keys.in)?.reason).toBe(here);
    expect(b.events.some((e) => e.type === "error" && e.error.message === here)).toBe(true);
    expect(await b.engine.fileBlob(keys.in)).toBeUndefined();
  });

  it("an empty file goes as one empty chunk", async () => {
    const [a, b] = await h.pair();
    const keys = await offerAndAccept(a, b, new Blob([]), "empty.txt");
    await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
    expect((await b.engine.fileBlob(keys.in))?.size).toBe(0);
  });

  it("a declined offer ends on both sides and nothing is stored", async () => {
    const [a, b] = await h.pair();
    const preview = Uint8Array.from([1, 2, 3, 4]);
    const sent = await a.engine.sendFile(b.id, randomFile(1000, 3), "no.bin", preview);
    await until(() => incoming(b).length === 1, "offer arrives");
    const [offer] = incoming(b);
    // The sender's preview came with the offer, before any answer.
    expect(offer?.thumb).toEqual(preview);
    await b.engine.declineFile(offer?.key ?? "");
    await until(() => stateOf(a, sent.key) === "declined", "sender sees the decline");
    expect(stateOf(b, offer?.key ?? "")).toBe("declined");
    expect([...b.storage.secrets.keys()].some((k) => k.startsWith("file/"))).toBe(false);
  });

  it("cancel on either side stops the transfer on both", async () => {
    const [a, b] = await h.pair();
    const big = randomFile(200 * FILE_CHUNK_BYTES, 4);
    // Loopback moves megabytes between two polls: the cancels run from the progress events.
    const flowing = onFile(
      a,
      (t) => t.state === "sending" && t.done > 0,
      () => void a.engine.cancelFile(k1.out),
    );
    const k1 = await offerAndAccept(a, b, big);
    await flowing;
    await until(() => stateOf(b, k1.in) === "cancelled", "receiver sees the sender's cancel");
    expect(stateOf(a, k1.out)).toBe("cancelled");
    expect(await b.engine.fileBlob(k1.in)).toBeUndefined();

    const flowingAgain = onFile(
      b,
      (t) => t.state === "receiving" && t.done > 0,
      (key = [...fileTransfers(b).values()].find((t) => t.state === "receiving")?.key) =>
        void b.engine.cancelFile(key ?? ""),
    );
    const k2 = await offerAndAccept(a, b, big);
    await flowingAgain;
    await until(() => stateOf(a, k2.out) === "cancelled", "sender sees the receiver's cancel");
    expect(stateOf(b, k2.in)).toBe("cancelled");
  });

  it("a link cut mid-transfer resumes from the last stored chunk on the next session", async () => {
    const [a, b] = await h.pair();
    const blob = randomFile(150 * FILE_CHUNK_BYTES + 17, 5);
    // The network vanishes once a part arrived; nobody sees a close.
    const { cut, seen: seenOf } = cutLinksWhen(b, (t) => t.next > 20);
    const keys = await offerAndAccept(a, b, blob);
    await cut;
    // Waiting can be brief (the next session may come up at once): it is looked for among the
    // events since the cut, not in whatever state a poll happens to see.
    const seen = () => seenOf(keys.in);
    await until(() => seen().some((t) => t.state === "waiting"), "receiver waits");
    await until(() => stateOf(a, keys.out) === "done" && stateOf(b, keys.in) === "done", "done after resume");
    // Where it stood at the end of the wait (the last `waiting` event before it moved again).
    const states = seen();
    const firstWait = states.findIndex((t) => t.state === "waiting");
    const moved = states.findIndex((t, i) => i > firstWait && t.state !== "waiting");
    const resumedAt = states[(moved === -1 ? states.length : moved) - 1]?.next ?? 0;
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    // It went on from where it stopped: the second session's first accept asked for `resumedAt`.
    const progress = b.events
      .filter((e) => e.type === "file" && e.transfer.key === keys.in)
      .map((e) => (e.type === "file" ? e.transfer.next : 0));
    const after = progress.slice(progress.lastIndexOf(resumedAt));
    expect(resumedAt).toBeGreaterThan(0);
    expect(Math.min(...after)).toBeGreaterThanOrEqual(resumedAt);
  });

  it("a chunk changed before it was sent is reported; the file is discarded", async () => {
    // Alice's AES-GCM output for chunk 2 has one bit flipped: the bulk lane carries it intact, the
    // per-transfer AEAD must catch it.
    const flipping: CryptoProvider = {
      ...nobleCrypto,
      aes256gcm: {
        ...nobleCrypto.aes256gcm,
        async seal(key, nonce, ad, plaintext, output) {
          const sealed = await nobleCrypto.aes256gcm.seal(key, nonce, ad, plaintext, output);
          if (nonce[11] === 2 && new TextDecoder().decode(ad.subarray(0, 12)) === "loft/file/v1")
            sealed[5] = (sealed[5] ?? 0) ^ 1;
          return sealed;
        },
      },
    };
    extra = { crypto: flipping };
    const [a, b] = await h.pair();
    const keys = await offerAndAccept(a, b, randomFile(6 * FILE_CHUNK_BYTES, 6));
    await until(() => stateOf(b, keys.in) === "failed", "receiver discards");
    await until(() => stateOf(a, keys.out) === "failed", "sender is told");
    const here = failedHere("alice", "data.bin", "damaged");
    expect(fileTransfers(b).get(keys.in)?.reason).toBe(here);
    expect(b.events.some((e) => e.type === "error" && e.error.message === here)).toBe(true);
    expect(await b.engine.fileBlob(keys.in)).toBeUndefined();
  });

  it("a file over the limit is refused; to a contact not connected it is queued, offered on the next session", async () => {
    extra = { maxFileBytes: 3 * FILE_CHUNK_BYTES };
    const [a, b] = await h.pair();
    const e = (await a.engine
      .sendFile(b.id, randomFile(3 * FILE_CHUNK_BYTES + 1, 7), "big.bin")
      .catch((x) => x)) as EngineRefusal;
    expect(e.reason).toMatchObject({ kind: "message-refused" });
    expect(e.reason.message).toBe(
      "This file is 0.2 MiB; files up to 0.2 MiB can be sent. Send a smaller file, or split it into parts.",
    );
    a.engine.disconnect(b.id);
    await until(() => a.engine.presence(b.id).status !== "online", "offline");
    const blob = randomFile(2 * FILE_CHUNK_BYTES + 3, 8);
    const queued = await a.engine.sendFile(b.id, blob, "later.bin");
    expect(queued.state).toBe("queued");
    expect(incoming(b)).toEqual([]); // nothing reached Bob
    a.engine.connect(b.id);
    await until(() => incoming(b).some((t) => t.state === "offered"), "offered on the next session");
    expect(stateOf(a, queued.key)).toBe("offered");
    const offered = incoming(b)[0]!;
    await b.engine.acceptFile(offered.key);
    await until(() => stateOf(a, queued.key) === "done" && stateOf(b, offered.key) === "done", "delivered");
    const got = await b.engine.fileBlob(offered.key);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
  });

  /** Alice and Bob as in `pair`, each engine with its own file store (kept across a restart). */
  /** `opens`: the stores open what they store and read, as the OPFS store's worker (`putOpened`, `getOpened`). */
  async function pairWithStores(
    opens?: ChunkCrypto,
  ): Promise<[EngineNode, EngineNode, MemoryFileStore, MemoryFileStore]> {
    const [sa, sb] = [new MemoryFileStore({ opens }), new MemoryFileStore({ opens })];
    const a = h.node("alice", undefined, undefined, undefined, { fileStore: sa });
    const b = h.node("bob", undefined, undefined, undefined, { fileStore: sb });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => h.online(a, b) && h.online(b, a), "both online");
    return [a, b, sa, sb];
  }

  it("a file whose record the storage refuses (a full disk) is refused, and leaves no transfer behind", async () => {
    const [a, b, sa] = await pairWithStores();
    const put = sa.putRecord.bind(sa);
    let full = true;
    sa.putRecord = async (r) => {
      if (full) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
      return put(r);
    };
    await expect(a.engine.sendFile(b.id, randomFile(1000, 5), "refused.bin")).rejects.toThrow(/quota/);
    // Before, its transfer stayed in memory, "hashing" for good, listed beside the others until a reload.
    expect(await a.engine.listFiles(b.id)).toEqual([]);
    full = false;
    await a.engine.sendFile(b.id, randomFile(1000, 6), "allowed.bin");
    expect((await a.engine.listFiles(b.id)).map((t) => t.name)).toEqual(["allowed.bin"]);
    await until(() => incoming(b).some((t) => t.name === "allowed.bin"), "bob offered the allowed file");
    expect(incoming(b).map((t) => t.name)).toEqual(["allowed.bin"]);
  });

  it("the receiver's page reloads mid-transfer: the new engine resumes from its stored chunks", async () => {
    const [a, b, , sb] = await pairWithStores();
    const blob = randomFile(120 * FILE_CHUNK_BYTES + 99, 9);
    const stopped = onFile(
      b,
      (t) => t.next > 40,
      () => void b.engine.stop(),
    );
    const keys = await offerAndAccept(a, b, blob, "reload-secret-name.bin");
    await stopped;
    await until(() => stateOf(a, keys.out) === "waiting", "sender waits");
    // A record an earlier version wrote in clear: read, then sealed on load.
    const legacy: FileTransfer = {
      ...structuredClone(fileTransfers(b).get(keys.in)!),
      key: `${a.id}/in/77`,
      id: 77,
      name: "legacy-clear-name.txt",
      state: "declined",
    };
    await sb.putRecord(legacy as unknown as FileRecord);
    const again = h.node("bob", b.user, b.storage, undefined, { fileStore: sb });
    await again.engine.start();
    await until(
      () => stateOf(a, keys.out) === "done" && stateOf(again, keys.in) === "done",
      "done after reload",
    );
    const got = await again.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    // It resumed: the new engine never asked for the file from its first chunk.
    const firstNext = again.events.find((e) => e.type === "file" && e.transfer.key === keys.in);
    expect(firstNext?.type === "file" && firstNext.transfer.next).toBeGreaterThan(0);
    // The file store holds no name in clear: every record is sealed, the legacy one too.
    expect((await again.engine.listFiles(a.id)).map((t) => t.name).sort()).toEqual([
      "legacy-clear-name.txt",
      "reload-secret-name.bin",
    ]);
    const stored = JSON.stringify([...sb.records.values()].map((r) => [r, "sealed" in r]));
    expect(stored).not.toContain("secret-name");
    expect(stored).not.toContain("legacy-clear");
    expect([...sb.records.values()].every((r) => "sealed" in r)).toBe(true);
  });

  it("offers not yet answered when the receiver's page reloads: the new engine accepts one (it arrives whole) and ends the other on the sender's cancel", async () => {
    // Before, #load left an offered incoming transfer out of the transfers it holds: after a
    // reload Accept did nothing, and the sender's cancel found nothing to end — both stayed
    // "offered" for good (docs/protocol/files.md §6: what a reload keeps).
    const [a, b, , sb] = await pairWithStores();
    const blob = randomFile(3 * FILE_CHUNK_BYTES + 5, 21);
    const kept = await a.engine.sendFile(b.id, blob, "kept.bin");
    const dropped = await a.engine.sendFile(b.id, randomFile(1000, 22), "dropped.bin");
    const inKey = (id: number) => `${a.id}/in/${id}`;
    await until(
      () => stateOf(b, inKey(kept.id)) === "offered" && stateOf(b, inKey(dropped.id)) === "offered",
      "both offers arrive",
    );
    await b.engine.stop();
    const again = h.node("bob", b.user, b.storage, undefined, { fileStore: sb });
    await again.engine.start();
    await until(() => h.online(a, again) && h.online(again, a), "online again");
    await again.engine.acceptFile(inKey(kept.id));
    await until(
      () => stateOf(again, inKey(kept.id)) === "done" && stateOf(a, kept.key) === "done",
      "the accepted offer arrives",
    );
    const got = await again.engine.fileBlob(inKey(kept.id));
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    await a.engine.cancelFile(dropped.key);
    await until(() => stateOf(again, inKey(dropped.id)) === "cancelled", "the cancelled offer ends");
    expect(await again.storage.loadSecret(`file/${inKey(dropped.id)}`)).toBeUndefined();
  });

  it("a received file whose chunks are gone: the save fails with the engine's typed error, in its words", async () => {
    const [a, b, , sb] = await pairWithStores();
    // A name a browser's own message could begin with: only the error's type tells them apart.
    const name = "The";
    const keys = await offerAndAccept(a, b, randomFile(3 * FILE_CHUNK_BYTES, 12), name);
    await until(() => stateOf(b, keys.in) === "done", "received");
    await sb.deleteChunks(keys.in); // the browser evicted the site's storage, say
    const stream = await b.engine.fileStream(keys.in);
    if (!stream) throw new Error("no stream for a received file");
    // As the save does (ui/save-file.ts): through the batching transform into a writable.
    const saved = stream.pipeThrough(batches(1024 * 1024)).pipeTo(new WritableStream());
    const e = await saved.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(FileUnavailable);
    expect((e as FileUnavailable).code).toBe("LOFT_ERR_FILE_UNAVAILABLE");
    expect(downloadProblem(name, e)).toBe(receivingStopped.incomplete(name));
    // The browser's errors are said around their text, even one starting with the file's name.
    const quota = new DOMException("The operation failed: no space left", "QuotaExceededError");
    expect(downloadProblem(name, quota)).toBe(
      "The could not be saved on this device (The operation failed: no space left). Free some space, then press Download again.",
    );
    expect(downloadProblem(name, new Error(""))).toContain("(Error)");
  });

  it("the sender's page reloads mid-transfer: it resumes from its sealed copy, and the hash matches", async () => {
    const [a, b, sa] = await pairWithStores();
    const blob = randomFile(100 * FILE_CHUNK_BYTES + 5, 10);
    // The page goes at once: its links die silently in the same tick (a stop alone could let the
    // rest of the file through first on a loaded machine, and nothing would be left to resume).
    // At the receiver's first progress event: it comes with the first stored batch, when the
    // sender has had one ACK at most, so about one window (64 of the 100 chunks) is on the way; the
    // next event comes only 100 ms on (PROGRESS_EVERY_MS), time enough for the whole file to
    // arrive on a fast session, and then nothing is left to resume.
    const stopped = onFile(
      b,
      (t) => t.next > 0,
      () => {
        for (const l of h.hub.links) l.cut = true;
        void a.engine.stop();
      },
    );
    const keys = await offerAndAccept(a, b, blob, "sender-reload.bin");
    await stopped;
    await until(() => stateOf(b, keys.in) === "waiting", "receiver waits");
    const again = h.node("alice", a.user, a.storage, undefined, { fileStore: sa });
    await again.engine.start();
    await until(
      () => stateOf(again, keys.out) === "done" && stateOf(b, keys.in) === "done",
      "done after the sender's reload",
    );
    const got = await b.engine.fileBlob(keys.in);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    // It resumed: the new engine sent from where the receiver was, not from the first chunk.
    const resumed = again.events.find(
      (e) => e.type === "file" && e.transfer.key === keys.out && e.transfer.state === "sending",
    );
    expect(resumed?.type === "file" && resumed.transfer.next).toBeGreaterThan(0);
    // Delivered: the sealed copy and its key are gone from the sender's device.
    await until(
      async () =>
        (await sa.getChunks(keys.out, 0, 1)).length === 0 &&
        !(await a.storage.loadSecret(`file/${keys.out}`)),
      "sender's copy deleted",
    );
  });

  // docs/protocol/files.md §5–§6: the sender reads the `File` ≈ 1 MiB at a time (16 chunks), the
  // receiver stores each chunk sealed as it comes and a save pulls one chunk at a time — what
  // either holds is bounded by the window and the block, whatever the file's size.
  const BLOCK = 16 * FILE_CHUNK_BYTES;

  it("a 2 GiB file is taken and read in slices of at most 16 chunks, never whole; a generated one streams through", async () => {
    const [a, b] = await h.pair();
    const file = new GeneratedFile(2 * 1024 * 1024 * 1024); // the default limit (files.md §7)
    // Cancelled once preparing it has read a few blocks: the rest would only repeat them.
    const off = a.engine.subscribe((e) => {
      if (e.type === "file" && e.transfer.state === "hashing" && e.transfer.done >= 2 * BLOCK) {
        off();
        void a.engine.cancelFile(e.transfer.key);
      }
    });
    const sent = await a.engine.sendFile(b.id, file, "disk.img");
    expect(sent.size).toBe(2 ** 31);
    expect(stateOf(a, sent.key)).toBe("cancelled");
    expect(file.reads.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...file.reads)).toBe(BLOCK);
    expect(file.reads.reduce((n, r) => n + r, 0)).toBeLessThan(file.size);
    expect(incoming(b)).toEqual([]); // never offered

    // One that goes through: never read whole, saved one chunk per pull.
    const size = 16 * FILE_CHUNK_BYTES + 11; // a block and a bit
    const small = new GeneratedFile(size);
    const keys = await offerAndAccept(a, b, small, "generated.bin");
    await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
    // Read once to prepare (hash, sealed copy) and once to send: 2 blocks each, none larger.
    expect(small.reads).toEqual([BLOCK, 11, BLOCK, 11]);
    const stream = await b.engine.fileStream(keys.in);
    if (!stream) throw new Error("no stream");
    let at = 0;
    for (const reader = stream.getReader(); ; ) {
      const r = await reader.read();
      if (r.done) break;
      expect(r.value.length).toBeLessThanOrEqual(FILE_CHUNK_BYTES);
      expect(toHex(r.value)).toBe(toHex(GeneratedFile.bytes(at, at + r.value.length)));
      at += r.value.length;
    }
    expect(at).toBe(size);
  });

  /**
   * A store that reads its sealed copy cheaply, as OPFS (store.ts `readsCopyCheaply`), shared by
   * both engines; `read` sees each read of a sender's copy, and fails it by returning an error.
   */
  function cheapCopyStore(
    read: (first: number, count: number) => Error | undefined,
    opens?: ChunkCrypto,
  ): MemoryFileStore {
    // With `opens`, its `getOpened` reads through this `getChunks` too: a read that fails fails it.
    const store = new MemoryFileStore({ opens });
    const getChunks = store.getChunks.bind(store);
    return Object.assign(store, {
      readsCopyCheaply: async () => true,
      getChunks: (key: string, first: number, count: number) => {
        const e = key.includes("/out/") ? read(first, count) : undefined;
        return e ? Promise.reject(e) : getChunks(key, first, count);
      },
    });
  }

  it("a store that reads its sealed copy cheaply (OPFS) sends from the copy: the file is read once, to prepare", async () => {
    // store.ts `readsCopyCheaply`: the sender's chunks come from its sealed copy while the `File`
    // is still at hand — no second read of the file, no second seal (docs/protocol/files.md §5).
    const copyReads: number[] = [];
    extra = { fileStore: cheapCopyStore((_, count) => void copyReads.push(count)) };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11; // 2.5 blocks
    const file = new GeneratedFile(size);
    const keys = await offerAndAccept(a, b, file, "from-copy.bin");
    await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11]); // preparing only
    expect(copyReads).toEqual([16, 16, 9]); // the sending, one store read per block
    const got = await b.engine.fileBlob(keys.in);
    expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
  });

  it("a sealed copy that cannot be read back while the file is at hand: that block comes from the file, the transfer goes on", async () => {
    // The OPFS store's worker failing mid-read rejects the read under way (opfs-store.ts `fail`;
    // the next call starts another). Before, the transfer failed ("copy gone") with the file there.
    let failed = 0;
    extra = {
      fileStore: cheapCopyStore((first) =>
        first === 16 && failed++ === 0 ? new Error("the file store's worker failed") : undefined,
      ),
    };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11;
    const file = new GeneratedFile(size);
    const keys = await offerAndAccept(a, b, file, "copy-lost.bin");
    await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
    expect(failed).toBe(1);
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11, BLOCK]); // preparing, then block 2
    expect(a.logs).toContain("files: reading the sealed copy failed (Error): from the file");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
  });

  it("a store that opens what it reads, whose read of the sealed copy fails while the file is at hand: that block comes from the file, the transfer goes on", async () => {
    // store.ts `getOpened` failing (the OPFS store's worker dying at every try under the read:
    // opfs-store.ts `#ask`) is a copy that cannot be read back, as a failing `getChunks` is.
    let failed = 0;
    const checked: number[] = [];
    const store = cheapCopyStore(
      (first) => (first === 16 && failed++ === 0 ? new Error("the file store's worker failed") : undefined),
      nobleCrypto,
    );
    const getOpened = store.getOpened?.bind(store);
    if (!getOpened) throw new Error("the store does not open");
    store.getOpened = (...args: Parameters<typeof getOpened>) => {
      if (args[0].includes("/out/")) checked.push(args[1][0]?.index ?? -1);
      return getOpened(...args);
    };
    extra = { fileStore: store };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11;
    const file = new GeneratedFile(size);
    const keys = await offerAndAccept(a, b, file, "checked-copy-lost.bin");
    await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
    expect(failed).toBe(1);
    expect(checked).toEqual([0, 16, 32]); // every block through the store's check
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11, BLOCK]); // preparing, then block 2
    expect(a.logs).toContain("files: reading the sealed copy failed (Error): from the file");
    const got = await b.engine.fileBlob(keys.in);
    expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
  });

  /**
   * `cheapCopyStore`, opening what it reads, with a `reuse` (store.ts) that takes each buffer
   * given back as the OPFS store takes it at its next read — transferred to its worker, so
   * detached here at once: a view of it still to be sent goes empty. `given`: how many so far.
   */
  function reusingStore(): { store: MemoryFileStore; given: () => number } {
    let given = 0;
    const store = Object.assign(
      cheapCopyStore(() => undefined, nobleCrypto),
      {
        reuse: (b: ArrayBuffer) => {
          given++;
          structuredClone(b, { transfer: [b] });
        },
      },
    );
    return { store, given: () => given };
  }

  it("the sender's read buffers go back to its store once their block went out — a contact's, on the lane and inside the session (sendParts copies at the call)", async () => {
    // Inside the session none was given back before (session 21: "the session seals later");
    // `sendParts` copies every part into the frame it queues at the call, so the block's buffer
    // is free once its frames are sent — detached here at once, the file still arrives whole.
    const size = 40 * FILE_CHUNK_BYTES + 11; // 41 chunks, each its own buffer in this store
    for (const noBulk of [false, true]) {
      const { store, given } = reusingStore();
      extra = { fileStore: store };
      const [a, b] = await h.pair(false, noBulk);
      const file = new GeneratedFile(size);
      const keys = await offerAndAccept(a, b, file, `given-back-${noBulk}.bin`);
      await until(() => stateOf(b, keys.in) === "done" && stateOf(a, keys.out) === "done", "done");
      const got = await b.engine.fileBlob(keys.in);
      expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
      expect(given()).toBe(41);
      await h.stopAll();
    }
  });

  /** One byte of chunk `index` of a stored sealed copy flipped in place: a slot damaged on disk. */
  async function damageSlot(store: MemoryFileStore, key: string, index: number): Promise<void> {
    const sealed = await store.getChunk(key, index);
    if (!sealed) throw new Error(`no chunk ${index} in ${key}`);
    sealed[0] = (sealed[0] ?? 0) ^ 0x40;
    await store.putChunks(key, index, [sealed]);
  }

  it("a slot of the sealed copy damaged while the file is at hand: that chunk is sealed again from the file, the file arrives whole", async () => {
    // docs/protocol/files.md §5: the sender opens each chunk of its copy before it sends it.
    // Before, chunk 20 went out as it was stored and Bob's device ended the transfer as changed on
    // the way (`damaged`), though Alice had the file to send the right bytes from.
    const store = cheapCopyStore(() => undefined);
    extra = { fileStore: store };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11;
    const file = new GeneratedFile(size);
    const sent = await a.engine.sendFile(b.id, file, "damaged-slot.bin");
    expect(sent.state).toBe("offered");
    await damageSlot(store, sent.key, 20);
    await until(() => incoming(b).some((t) => t.state === "offered"), "offer arrives");
    const offered = incoming(b).find((t) => t.key.endsWith(`/in/${sent.id}`));
    await b.engine.acceptFile(offered!.key);
    const keys = { out: sent.key, in: offered!.key };
    await until(
      () => stateOf(b, keys.in) === "done" || stateOf(b, keys.in) === "failed",
      "the receiver's transfer ends",
    );
    expect(fileTransfers(b).get(keys.in)?.reason).toBeUndefined();
    expect(stateOf(b, keys.in)).toBe("done");
    await until(() => stateOf(a, keys.out) === "done", "the sender is told");
    // Prepared from three reads of the file; then chunk 20 alone, read again to be sealed again.
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11, FILE_CHUNK_BYTES]);
    expect(a.logs).toContain(
      "files: 1 chunk(s) of the sealed copy from 16 do not open: sealed again from the file",
    );
    const got = await b.engine.fileBlob(keys.in);
    expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
  });

  it("a store that opens what it reads checks the sealed copy there: every block read and opened in one call, a damaged slot still sealed again from the file", async () => {
    // store.ts `getOpened` (the OPFS store's worker: opfs-worker.ts): the sender's check of its
    // copy (files.md §5) runs where the copy is read, so the page's main thread neither copies the
    // chunks into WebCrypto nor collects their plaintexts. Before, the copy was read with
    // `getChunks` and every chunk opened on the page: no block went through `getOpened`.
    const store = new MemoryFileStore({ opens: nobleCrypto });
    const checked: { first: number; count: number }[] = [];
    const getOpened = store.getOpened?.bind(store);
    if (!getOpened) throw new Error("the store does not open");
    Object.assign(store, {
      readsCopyCheaply: async () => true,
      getOpened: (...args: Parameters<typeof getOpened>) => {
        const [key, headers] = args;
        if (key.includes("/out/")) checked.push({ first: headers[0]?.index ?? -1, count: headers.length });
        return getOpened(...args);
      },
    });
    extra = { fileStore: store };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11;
    const file = new GeneratedFile(size);
    const sent = await a.engine.sendFile(b.id, file, "checked-in-store.bin");
    await damageSlot(store, sent.key, 20);
    await until(() => incoming(b).some((t) => t.state === "offered"), "offer arrives");
    const offered = incoming(b).find((t) => t.key.endsWith(`/in/${sent.id}`));
    await b.engine.acceptFile(offered!.key);
    await until(() => stateOf(a, sent.key) === "done" && stateOf(b, offered!.key) === "done", "done");
    expect(checked).toEqual([
      { first: 0, count: 16 },
      { first: 16, count: 16 },
      { first: 32, count: 9 },
    ]);
    expect(a.logs).toContain(
      "files: 1 chunk(s) of the sealed copy from 16 do not open: sealed again from the file",
    );
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11, FILE_CHUNK_BYTES]);
    const got = await b.engine.fileBlob(offered!.key);
    expect(got && toHex(new Uint8Array(await got.arrayBuffer()))).toBe(toHex(GeneratedFile.bytes(0, size)));
  });

  it("a damaged slot of the sealed copy is mended once: the chunk sealed again from the file is written back over it", async () => {
    // Before, the slot stayed damaged: every later read of it (a resume, another member, a mailbox
    // deposit) opened it, found it damaged and sealed it again from the file — and once the file
    // was gone (a reload), the transfer failed as "copy damaged" though the right bytes had been
    // at hand.
    const store = cheapCopyStore(() => undefined);
    extra = { fileStore: store };
    const [a, b] = await h.pair();
    const size = 40 * FILE_CHUNK_BYTES + 11;
    const file = new GeneratedFile(size);
    const sent = await a.engine.sendFile(b.id, file, "mended-slot.bin");
    const original = (await store.getChunk(sent.key, 20))?.slice();
    await damageSlot(store, sent.key, 20);
    const writes: { index: number; sealed: string }[] = [];
    const putChunks = store.putChunks.bind(store);
    store.putChunks = (key, first, sealed) => {
      if (key === sent.key)
        for (const [n, c] of sealed.entries()) writes.push({ index: first + n, sealed: toHex(c) });
      return putChunks(key, first, sealed);
    };
    await until(() => incoming(b).some((t) => t.state === "offered"), "offer arrives");
    const offered = incoming(b).find((t) => t.key.endsWith(`/in/${sent.id}`));
    await b.engine.acceptFile(offered!.key);
    await until(() => stateOf(a, sent.key) === "done" && stateOf(b, offered!.key) === "done", "done");
    // The copy's own bytes (same key, nonce, AAD and plaintext: files.md §5), written back once.
    expect(writes).toEqual([{ index: 20, sealed: toHex(original!) }]);
    expect(a.logs).toContain("files: 1 chunk(s) of the sealed copy mended from the file");
    expect(file.reads).toEqual([BLOCK, BLOCK, 8 * FILE_CHUNK_BYTES + 11, FILE_CHUNK_BYTES]);
  });

  it.each([
    ["the page opens the copy", undefined],
    ["the store opens it (getOpened)", nobleCrypto],
  ])(
    "a slot of the sealed copy damaged after a reload of the sender (the file gone): it fails on the sender in its words, and the receiver is told why (%s)",
    async (_, opens) => {
      const [a, b, sa] = await pairWithStores(opens);
      const blob = randomFile(100 * FILE_CHUNK_BYTES + 5, 12);
      // As in the sender's reload above: its page goes at the receiver's first progress event.
      const stopped = onFile(
        b,
        (t) => t.next > 0,
        () => {
          for (const l of h.hub.links) l.cut = true;
          void a.engine.stop();
        },
      );
      const keys = await offerAndAccept(a, b, blob, "lost-copy.bin");
      await stopped;
      await until(() => stateOf(b, keys.in) === "waiting", "receiver waits");
      // The last chunk of the copy is damaged on disk while the page is away: the resume reaches it.
      await damageSlot(sa, keys.out, 100);
      const again = h.node("alice", a.user, a.storage, undefined, { fileStore: sa });
      await again.engine.start();
      await until(
        () => stateOf(again, keys.out) === "failed" && stateOf(b, keys.in) === "failed",
        "both sides end the transfer",
      );
      // Before, the chunk went out as stored: Bob's device said it was changed on the way, and
      // Alice read that Bob's device had discarded it.
      expect(fileTransfers(again).get(keys.out)?.reason).toBe(sendingStopped.copyDamaged("lost-copy.bin"));
      expect(fileTransfers(b).get(keys.in)?.reason).toBe(stoppedThere("alice", "lost-copy.bin"));
      const said = /^files: 1 chunk\(s\) of the sealed copy from \d+ do not open: the file is not at hand$/;
      expect(again.logs.filter((l) => said.test(l))).toHaveLength(1);
      expect(await b.engine.fileBlob(keys.in)).toBeUndefined();
      // Nothing of it is left on either device: the sender's copy and key, the receiver's chunks.
      await until(
        async () =>
          (await sa.getChunks(keys.out, 0, 1)).length === 0 &&
          !(await again.storage.loadSecret(`file/${keys.out}`)) &&
          !(await b.storage.loadSecret(`file/${keys.in}`)),
        "both copies deleted",
      );
    },
  );
});
