/**
 * The relay's epoch keyring (docs/protocol/relay.md §At rest, docs/operations-relay.md §Keys):
 * the small file `keyring.2` in the data dir holding the epoch keys K_N that wrap every blob's data
 * key, itself sealed under a key derived from the master key, which never touches the data dir
 * when the operator gives it (--relay-master-key-file / LOFT_RELAY_MASTER_KEY).
 *
 * Why a separate file: LMDB never overwrites a live page, so a key "deleted" from the LMDB file can
 * stay in a freed page (docs/decisions.md (Relay)). This file is rewritten in place, whole, at fixed
 * offsets, and fsync'd, so destroying K_N really overwrites its bytes (on a filesystem that writes
 * in place: ext4, xfs; not on copy-on-write ones, see docs/operations-relay.md §Keys).
 *
 * Layout: two 4096-byte slots, each a complete copy (LMDB's two meta pages, the same idea): a
 * write goes to slot A then slot B, each fsync'd; a reader takes the valid slot with the highest
 * generation, so a crash in the middle of a write leaves the previous or the new state, never none.
 *
 *   slot = "LOFTKR1\n" ‖ u64 generation ‖ u16 count ‖ iv(12) ‖ AES-256-GCM(kek, entries) ‖ tag(16) ‖ 0…
 *   entry = u32 epoch ‖ u64 start ms ‖ key(32)           (44 bytes; at most 64 entries)
 *   kek = HKDF-SHA256(ikm = master key, salt = "loft-relay/1 keyring", info = "kek"), AAD = the first 18 bytes
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { StoreError } from "./errors.ts";

/**
 * The keyring's file name since message record format 2 (docs/operations-relay.md §Upgrades): a
 * relay from before format 2 reads `keyring`, finds none beside wrapped key records, and stops with
 * LOFT_ERR_RELAY_KEYRING instead of misreading format-2 records. Renamed from LEGACY_KEYRING_FILE
 * by the first format-2 open (lmdb.ts).
 */
export const KEYRING_FILE = "keyring.2";
/** The keyring's file name before format 2. */
export const LEGACY_KEYRING_FILE = "keyring";

function masterKeyError(path: string): StoreError {
  return new StoreError(
    "LOFT_ERR_RELAY_MASTER_KEY",
    `the master key does not open ${path} (wrong key, or the file is damaged)`,
  );
}

/**
 * Throws LOFT_ERR_RELAY_MASTER_KEY unless `master` (or `previous`, during a master-key rotation)
 * opens the keyring file at `path`, changing nothing: the relay checks the key of a dir from before
 * format 2 before it renames that dir's keyring (docs/operations-relay.md §Upgrades), so a start
 * with a wrong key leaves the dir as the earlier relay wrote it.
 */
export function checkMasterKey(path: string, master: Uint8Array, previous?: Uint8Array): void {
  const slots = readSlots(path);
  const opens = (key: Uint8Array) => newest(slots.map((s) => decodeSlot(key, s))) !== undefined;
  if (!opens(master) && !(previous && opens(previous))) throw masterKeyError(path);
}
export const MASTER_KEY_LENGTH = 32;
export const EPOCH_KEY_LENGTH = 32;
export const SLOT_SIZE = 4096;
export const MAX_EPOCHS = 64;

const MAGIC = Buffer.from("LOFTKR1\n", "latin1");
const HEADER = 8 + 8 + 2;
const IV = 12;
const TAG = 16;
const ENTRY = 4 + 8 + EPOCH_KEY_LENGTH;
const KEK_SALT = new TextEncoder().encode("loft-relay/1 keyring");
const KEK_INFO = new TextEncoder().encode("kek");

export interface Epoch {
  id: number;
  /** Milliseconds since the epoch when it became current. */
  startMs: number;
  key: Buffer;
}

export interface KeyringState {
  generation: number;
  epochs: Epoch[];
}

/** The key that seals the keyring slots (docs/protocol/relay.md §At rest). */
export function keyringKek(master: Uint8Array): Buffer {
  return Buffer.from(hkdf(sha256, master, KEK_SALT, KEK_INFO, 32));
}

/**
 * One slot's bytes for `state` (SLOT_SIZE long, zero-filled after the tag). `iv` is a parameter
 * only for docs/vectors/relay-at-rest-v1.json; callers draw a fresh one.
 */
export function encodeSlot(
  master: Uint8Array,
  state: KeyringState,
  iv: Uint8Array = randomBytes(IV),
): Buffer {
  if (state.epochs.length > MAX_EPOCHS) throw new RangeError("encodeSlot: too many epochs");
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header.writeBigUInt64BE(BigInt(state.generation), 8);
  header.writeUInt16BE(state.epochs.length, 16);
  const plain = Buffer.alloc(state.epochs.length * ENTRY);
  state.epochs.forEach((e, i) => {
    plain.writeUInt32BE(e.id, i * ENTRY);
    plain.writeBigUInt64BE(BigInt(e.startMs), i * ENTRY + 4);
    e.key.copy(plain, i * ENTRY + 12);
  });
  const kek = keyringKek(master);
  const c = createCipheriv("aes-256-gcm", kek, iv);
  c.setAAD(header);
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  kek.fill(0);
  plain.fill(0);
  const out = Buffer.alloc(SLOT_SIZE);
  Buffer.concat([header, iv, body]).copy(out);
  return out;
}

/** Decode one slot; undefined if it is not a slot this master key sealed (torn, foreign, garbage). */
export function decodeSlot(master: Uint8Array, slot: Uint8Array): KeyringState | undefined {
  if (slot.length !== SLOT_SIZE) return undefined;
  const b = Buffer.from(slot.buffer, slot.byteOffset, slot.byteLength);
  if (!b.subarray(0, 8).equals(MAGIC)) return undefined;
  const generation = Number(b.readBigUInt64BE(8));
  const count = b.readUInt16BE(16);
  if (count > MAX_EPOCHS || !Number.isSafeInteger(generation)) return undefined;
  const end = HEADER + IV + count * ENTRY + TAG;
  const kek = keyringKek(master);
  let plain: Buffer;
  try {
    const d = createDecipheriv("aes-256-gcm", kek, b.subarray(HEADER, HEADER + IV));
    d.setAAD(b.subarray(0, HEADER));
    d.setAuthTag(b.subarray(end - TAG, end));
    plain = Buffer.concat([d.update(b.subarray(HEADER + IV, end - TAG)), d.final()]);
  } catch {
    return undefined;
  } finally {
    kek.fill(0);
  }
  const epochs: Epoch[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * ENTRY;
    epochs.push({
      id: plain.readUInt32BE(at),
      startMs: Number(plain.readBigUInt64BE(at + 4)),
      key: Buffer.from(plain.subarray(at + 12, at + ENTRY)),
    });
  }
  plain.fill(0);
  return { generation, epochs };
}

/**
 * The keyring of one data dir. Every change is written to both slots (fsync'd) before it returns:
 * callers create an epoch before any record uses it, and destroy one only after no committed
 * record needs it (relay-ws/store/lmdb.ts).
 */
export class Keyring {
  readonly #path: string;
  readonly #master: Buffer;
  readonly #keySource: (n: number) => Buffer;
  #state: KeyringState;

  private constructor(path: string, master: Buffer, keySource: (n: number) => Buffer, state: KeyringState) {
    this.#path = path;
    this.#master = master;
    this.#keySource = keySource;
    this.#state = state;
  }

  /**
   * Open (or create) the keyring in `dir`. With `previous`, a keyring sealed under the previous
   * master key is re-sealed under `master` (master-key rotation).
   */
  static open(
    dir: string,
    master: Uint8Array,
    nowMs: number,
    options: { previous?: Uint8Array | undefined; keySource?: (n: number) => Buffer } = {},
  ): Keyring {
    if (master.length !== MASTER_KEY_LENGTH)
      throw new RangeError("Keyring.open: master key must be 32 bytes");
    const path = join(dir, KEYRING_FILE);
    const keySource = options.keySource ?? randomBytes;
    const masterCopy = Buffer.from(master);
    if (!existsSync(path)) {
      const ring = new Keyring(path, masterCopy, keySource, { generation: 0, epochs: [] });
      ring.#state.epochs.push({ id: 0, startMs: nowMs, key: keySource(EPOCH_KEY_LENGTH) });
      ring.#create(dir);
      return ring;
    }
    const slots = readSlots(path);
    let state = newest(slots.map((s) => decodeSlot(master, s)));
    let rotated = false;
    if (!state && options.previous) {
      state = newest(slots.map((s) => decodeSlot(options.previous!, s)));
      rotated = state !== undefined;
    }
    if (!state) {
      masterCopy.fill(0);
      throw masterKeyError(path);
    }
    const ring = new Keyring(path, masterCopy, keySource, state);
    // Rewrite both slots: after a crash mid-write, or to re-seal under a new master key.
    if (rotated || slots.some((s) => !decodeSlot(master, s)) || ring.#state.epochs.length === 0) {
      if (ring.#state.epochs.length === 0)
        ring.#state.epochs.push({ id: 0, startMs: nowMs, key: keySource(EPOCH_KEY_LENGTH) });
      ring.#write();
    }
    return ring;
  }

  /** The epoch new blobs are wrapped under (the newest). */
  get current(): Epoch {
    return this.#state.epochs[this.#state.epochs.length - 1]!;
  }

  get epochs(): readonly Epoch[] {
    return this.#state.epochs;
  }

  key(id: number): Buffer | undefined {
    return this.#state.epochs.find((e) => e.id === id)?.key;
  }

  /**
   * Start a new epoch and make it current once it is on disk (until then the previous one stays
   * current). False when the keyring is full. Asynchronous I/O: the fsyncs never block the relay.
   */
  async rotate(nowMs: number): Promise<boolean> {
    if (this.#state.epochs.length >= MAX_EPOCHS) return false;
    const epoch = { id: (this.current.id + 1) >>> 0, startMs: nowMs, key: this.#keySource(EPOCH_KEY_LENGTH) };
    const next = { generation: this.#state.generation, epochs: [...this.#state.epochs, epoch] };
    try {
      await this.#writeAsync(next);
    } catch (e) {
      epoch.key.fill(0);
      throw e;
    }
    this.#state = next;
    return true;
  }

  /** Destroy epochs (never the current one): rewritten out of both slots, then wiped in memory. */
  async destroy(ids: readonly number[]): Promise<void> {
    const cur = this.current.id;
    const gone = this.#state.epochs.filter((e) => ids.includes(e.id) && e.id !== cur);
    if (gone.length === 0) return;
    const next = {
      generation: this.#state.generation,
      epochs: this.#state.epochs.filter((e) => !gone.includes(e)),
    };
    await this.#writeAsync(next);
    this.#state = next;
    for (const e of gone) e.key.fill(0);
  }

  close(): void {
    for (const e of this.#state.epochs) e.key.fill(0);
    this.#master.fill(0);
  }

  /** First write: both slots into a temporary file, fsync, rename, fsync the folder (atomic). */
  #create(dir: string): void {
    const tmp = `${this.#path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      for (const offset of [0, SLOT_SIZE]) {
        this.#state.generation++;
        writeSync(fd, encodeSlot(this.#master, this.#state), 0, SLOT_SIZE, offset);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#path);
    const dirFd = openSync(dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  /** #write for a new state, without blocking the event loop; `state.generation` advances. */
  async #writeAsync(state: KeyringState): Promise<void> {
    const file = await open(this.#path, "r+");
    try {
      for (const offset of [0, SLOT_SIZE]) {
        state.generation++;
        await file.write(encodeSlot(this.#master, state), 0, SLOT_SIZE, offset);
        await file.sync();
      }
    } finally {
      await file.close();
    }
  }

  /** Rewrite both slots in place (slot 0, fsync, slot 1, fsync): destroyed keys are overwritten. */
  #write(): void {
    const fd = openSync(this.#path, "r+");
    try {
      for (const offset of [0, SLOT_SIZE]) {
        this.#state.generation++;
        const slot = encodeSlot(this.#master, this.#state);
        writeSync(fd, slot, 0, SLOT_SIZE, offset);
        fsyncSync(fd);
      }
    } finally {
      closeSync(fd);
    }
  }
}

function readSlots(path: string): Buffer[] {
  const fd = openSync(path, "r");
  try {
    return [0, SLOT_SIZE].map((offset) => {
      const b = Buffer.alloc(SLOT_SIZE);
      const n = readSync(fd, b, 0, SLOT_SIZE, offset);
      return n === SLOT_SIZE ? b : Buffer.alloc(0);
    });
  } finally {
    closeSync(fd);
  }
}

function newest(states: (KeyringState | undefined)[]): KeyringState | undefined {
  let best: KeyringState | undefined;
  for (const s of states) if (s && (!best || s.generation > best.generation)) best = s;
  return best;
}

/** The epoch ids each slot of a keyring file holds (for tests and `loft` tooling). */
export function keyringEpochs(dir: string, master: Uint8Array): (number[] | undefined)[] {
  return readSlots(join(dir, KEYRING_FILE)).map((s) => decodeSlot(master, s)?.epochs.map((e) => e.id));
}
