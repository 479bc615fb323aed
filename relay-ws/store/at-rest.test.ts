/**
 * Deletion that deletes, and keys not beside the data (docs/operations-relay.md §Keys): the real
 * LMDB store on a temp dir, its files read back as raw bytes the way someone holding a copy of the
 * disk would. Every data key and epoch key the store draws is recorded (real randomness, recorded
 * through the `keySource` option) so the scan knows exactly which 32-byte strings must not appear.
 */
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { open } from "lmdb";
import { afterEach, describe, expect, it } from "vitest";
import { BLOCK_SIZE, OTK_BLOCK_SIZE, padBlock } from "../../core/relay/protocol.ts";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { blockBody, bucketSize, unwrapDataKey } from "./at-rest.ts";
import { decodeSlot, KEYRING_FILE, keyringEpochs, SLOT_SIZE } from "./keyring.ts";
import { LmdbStore, type LmdbStoreOptions } from "./lmdb.ts";
import { newMessage, randomQueue as queue } from "./testing.ts";
import type { QueueRecord } from "./types.ts";

const MARKER = "LOFT-AT-REST-MARKER-5c1e";
const dirs: string[] = [];
const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `loft-${name}-`));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Every needle found in any file under `dir`, as "file: label". */
function scan(dir: string, needles: { label: string; bytes: Uint8Array }[]): string[] {
  const found: string[] = [];
  for (const f of filesUnder(dir)) {
    const bytes = readFileSync(f);
    for (const n of needles) if (bytes.includes(Buffer.from(n.bytes))) found.push(`${f}: ${n.label}`);
  }
  return found;
}

/** The live epochs of a data dir's keyring, opened with the master key (both slots agree). */
function decodeKeyring(dir: string, masterKey: Uint8Array) {
  const file = readFileSync(join(dir, KEYRING_FILE));
  return decodeSlot(masterKey, file.subarray(0, SLOT_SIZE))?.epochs ?? [];
}

const body = (i: number) => new TextEncoder().encode(`${MARKER}-${i}`);

/** A store whose drawn keys are recorded, with a master key that lives outside its data dir. */
function recordingStore(path: string, extra: Partial<LmdbStoreOptions> = {}) {
  const drawn: Buffer[] = [];
  const masterKey = extra.masterKey ?? randomBytes(32);
  const store = new LmdbStore({
    path,
    masterKey,
    keySource: (n) => {
      const k = randomBytes(n);
      drawn.push(Buffer.from(k));
      return k;
    },
    ...extra,
  });
  return { store, drawn, masterKey };
}

async function fill(store: LmdbStore, q: QueueRecord, n: number, now: number) {
  for (let i = 0; i < n; i++) {
    const r = await store.append(q.recipientId, newMessage(body(i), now, 3_600_000), 1000);
    expect(r).toBe("ok");
  }
}

async function ackAll(store: LmdbStore, q: QueueRecord): Promise<number> {
  let n = 0;
  for (let guard = 0; guard < 10_000; guard++) {
    const m = await store.next(q.recipientId, -1);
    if (!m) return n;
    expect(await store.read(q.recipientId, m.seq)).toBeDefined();
    expect(await store.ack(q.recipientId, m.seq, m.msgId)).toBe(true);
    n++;
  }
  throw new Error("ackAll: too many messages");
}

describe("relay store at rest", () => {
  it("no plaintext and no data, epoch or master key is in the files, before or after ACK and after compaction", async () => {
    const dir = tempDir("relay-at-rest");
    let now = Date.UTC(2031, 0, 1);
    const { store, drawn, masterKey } = recordingStore(dir, { clock: () => now, keyEpochMs: 3_600_000 });
    const q = queue();
    await store.createQueue(q);
    await store.setPrekeys(
      q.recipientId,
      { bundle: new TextEncoder().encode(`${MARKER}-bundle`), oneTime: [body(9999)], replaceOneTime: false },
      10,
    );
    await fill(store, q, 50, now);
    const needles = () => [
      ...drawn.map((k, i) => ({ label: `drawn key #${i}`, bytes: k })),
      { label: "server→recipient key", bytes: q.rcvKey },
      { label: "master key", bytes: masterKey },
      { label: "plaintext marker", bytes: new TextEncoder().encode(MARKER) },
    ];
    expect(drawn.length).toBeGreaterThanOrEqual(53); // 50 messages, bundle, one-time prekey, rcv key (+ epochs)
    // Live: the copy holds only sealed data and wrapped keys.
    expect(scan(dir, needles())).toEqual([]);

    expect(await ackAll(store, q)).toBe(50);
    expect(await store.takePrekeys(q.recipientId)).toBeDefined();
    expect(scan(dir, needles())).toEqual([]);

    // Two epochs later the epoch that wrapped the acknowledged messages' keys is destroyed (the
    // bundle, still stored, is re-wrapped under the current epoch first).
    now += 2 * 3_600_000 + 1;
    await store.gc(now);
    now += 2 * 3_600_000 + 1;
    await store.gc(now);
    const slots = keyringEpochs(dir, masterKey);
    expect(slots.every((s) => s !== undefined && !s.includes(0))).toBe(true);
    expect((await store.takePrekeys(q.recipientId))?.bundle).toEqual(
      new TextEncoder().encode(`${MARKER}-bundle`),
    );
    expect(scan(dir, needles())).toEqual([]);

    // A compacted copy (what `mdb_copy -c` makes) holds nothing more.
    await store.close();
    const compacted = tempDir("relay-compacted");
    const env = open({ path: dir, noSubdir: false, readOnly: true });
    await env.backup(compacted, true);
    await env.close();
    expect(filesUnder(compacted).length).toBeGreaterThan(0);
    expect(scan(compacted, needles())).toEqual([]);
  });

  it("a copy of the data dir without the master key decrypts nothing", async () => {
    const dir = tempDir("relay-copy-src");
    const { store, masterKey } = recordingStore(dir);
    const q = queue();
    await store.createQueue(q);
    await store.setPrekeys(
      q.recipientId,
      { bundle: new TextEncoder().encode(`${MARKER}-bundle`), oneTime: [body(7)], replaceOneTime: false },
      10,
    );
    await fill(store, q, 5, Date.now());
    await store.close();
    const copy = tempDir("relay-copy");
    cpSync(dir, copy, { recursive: true });

    // Another key: the store refuses to open, with a typed error; nothing is read.
    let wrong: LmdbStore | undefined;
    let refused: unknown;
    try {
      wrong = new LmdbStore({ path: copy, masterKey: randomBytes(32) });
    } catch (e) {
      refused = e;
    }
    if (wrong) {
      // A store that opens anyway: whatever it reads back is what the copy gives away.
      const leaked = await wrong.read(q.recipientId, 0);
      await wrong.close();
      expect(leaked, "a copy without the master key decrypted a message").toBeUndefined();
    }
    expect((refused as { code?: string })?.code).toBe("LOFT_ERR_RELAY_MASTER_KEY");

    // With the master key the same copy is whole: the key is the only thing missing above.
    const right = new LmdbStore({ path: copy, masterKey });
    const first = await right.read(q.recipientId, 0);
    expect(new TextDecoder().decode(first!.subarray(2, 2 + body(0).length))).toBe(`${MARKER}-0`);
    expect((await right.takePrekeys(q.recipientId))?.oneTime).toEqual(body(7));
    await right.close();
  });

  it("even with the master key, a copy taken once the epoch is destroyed unwraps no stale key of an ACKed message", async () => {
    const dir = tempDir("relay-stale");
    let now = Date.UTC(2031, 0, 1);
    const { store, masterKey } = recordingStore(dir, { clock: () => now, keyEpochMs: 3_600_000 });
    // Two rotations first, so the messages' epoch id (2) is not the zero word of empty pages.
    for (let i = 0; i < 2; i++) {
      now += 3_600_000;
      await store.gc(now);
    }
    const q = queue();
    await store.createQueue(q);
    await fill(store, q, 50, now);
    const keyKeys = Array.from({ length: 50 }, (_, seq) => {
      const k = Buffer.alloc(1 + 24 + 8);
      k[0] = 0x6d;
      Buffer.from(q.recipientId).copy(k, 1);
      k.writeBigUInt64BE(BigInt(seq), 25);
      return k;
    });
    expect(await ackAll(store, q)).toBe(50);

    // The attacker: every 64-byte window that starts with a live epoch id, tried as a key record
    // of every acknowledged message, unwrapped with the epoch keys the master key opens.
    const staleKeys = () => {
      const ring = decodeKeyring(dir, masterKey);
      const data = readFileSync(join(dir, "data.mdb"));
      let found = 0;
      for (const epoch of ring) {
        const id = Buffer.alloc(4);
        id.writeUInt32BE(epoch.id);
        for (let at = data.indexOf(id); at >= 0 && at + 64 <= data.length; at = data.indexOf(id, at + 1)) {
          const window = data.subarray(at, at + 64);
          if (window.subarray(4, 16).every((b) => b === 0)) continue;
          for (const keyKey of keyKeys) if (unwrapDataKey(window, epoch.key, keyKey)) found++;
        }
      }
      return found;
    };
    // While epoch 2 lives, freed LMDB pages still hold wrapped keys of ACKed messages: the attack works.
    expect(staleKeys()).toBeGreaterThan(0);
    now += 2 * 3_600_000 + 1;
    expect((await store.gc(now)).destroyedEpochs).toBeGreaterThan(0);
    await store.close();
    expect(decodeKeyring(dir, masterKey).map((e) => e.id)).not.toContain(2);
    expect(staleKeys()).toBe(0);
  });
});

describe("blockBody: the one reader of blocks padded at rest (both stores)", () => {
  it("gives back the body of any block padded to its bucket, or widened to the wire block", () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(BLOCK_SIZE, OTK_BLOCK_SIZE)
          .chain((max) => fc.tuple(fc.constant(max), fc.uint8Array({ maxLength: max - 2 }))),
        fc.boolean(),
        ([max, body], widen) => {
          const block = padBlock(body, bucketSize(body.length, max));
          const wide = new Uint8Array(max);
          wide.set(block);
          expect(Buffer.from(blockBody(widen ? wide : block)).equals(body)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("throws on a length header beyond the block, a non-zero fill, or a block too short for its header", () => {
    const block = padBlock(new Uint8Array([1, 2, 3]), 256);
    const long = block.slice();
    long[0] = 0x01; // 259 bytes claimed in a 256-byte block
    expect(() => blockBody(long)).toThrow(/^a stored block does not unpad \(.*length header out of range\)$/);
    const filled = block.slice();
    filled[200] = 1;
    expect(() => blockBody(filled)).toThrow(/^a stored block does not unpad \(.*non-zero padding\)$/);
    expect(() => blockBody(new Uint8Array(1))).toThrow("a stored block does not unpad");
    // A copy, even out of a Buffer (whose slice is a view): the stores wipe the block after.
    const opened = Buffer.from(padBlock(new Uint8Array([7, 8, 9]), 256));
    const body = blockBody(opened);
    opened.fill(0);
    expect([...body]).toEqual([7, 8, 9]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          const body = blockBody(bytes);
          // Only exact paddings pass.
          expect(Buffer.from(padBlock(body, bytes.length)).equals(bytes)).toBe(true);
        } catch (e) {
          expect((e as Error).message).toMatch(/^a stored block does not unpad/);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
