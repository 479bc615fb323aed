import { nobleCrypto } from "../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../core/crypto/provider.ts";
import type { EngineEvent, FileTransfer } from "../../web/src/engine/api.ts";
import type { EngineConfig } from "../../web/src/engine/engine.ts";
import { MemoryFileStore } from "../../web/src/engine/files/store.ts";
import type { FilesContext } from "../../web/src/engine/files/transfers.ts";
import { type EngineNode, MemoryStorage } from "./engine.ts";

/** `n` bytes from xorshift32 seeded with `seed`: the same bytes for the same seed. */
export function seededBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  return data;
}

/** Each transfer's latest state, by key, from the `file` events `n` has seen. */
export function fileTransfers(n: EngineNode): Map<string, FileTransfer> {
  const out = new Map<string, FileTransfer>();
  for (const e of n.events) if (e.type === "file") out.set(e.transfer.key, e.transfer);
  return out;
}

/**
 * The context a `FileTransfers` runs on outside an engine (no peers, no relay pool): the tests of
 * the transfer machinery alone (parts, held, room-files) share it.
 */
export function filesContext(
  o: {
    store?: MemoryFileStore;
    crypto?: CryptoProvider;
    storage?: MemoryStorage;
    log?: (m: string) => void;
    onEvent?: (e: EngineEvent) => void;
  } = {},
): FilesContext {
  return {
    cfg: {
      fileStore: o.store ?? new MemoryFileStore(),
      crypto: o.crypto ?? nobleCrypto,
      log: o.log ?? (() => {}),
    } as unknown as EngineConfig,
    storage: o.storage ?? new MemoryStorage(""),
    listeners: new Set(o.onEvent ? [o.onEvent] : []),
    peers: new Map(),
    stopped: false,
    pool: undefined,
  } as unknown as FilesContext;
}
