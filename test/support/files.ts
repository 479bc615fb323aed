import type { FileTransfer } from "../../web/src/engine/api.ts";
import type { EngineNode } from "./engine.ts";

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
