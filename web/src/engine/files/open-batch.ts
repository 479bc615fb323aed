/**
 * The receiver's check of a batch of chunks before it is stored (docs/protocol/files.md §3, §4,
 * §1): each chunk opened under the per-transfer key (AES-256-GCM), its plaintext digested
 * (SHA-256; the file hash is over these digests, §1) and wiped at once. Run on the page
 * (transfers.ts, and `MemoryFileStore` for tests) or in the OPFS store's worker
 * (opfs-worker.ts), which then writes the batch only when every chunk opened — one loop for
 * both, with no import of the engine, so the worker's bundle stays small.
 */
import { wipe } from "../../../../core/bytes.ts";

/** How one batch's chunks are opened and digested where this runs. */
export interface BatchCrypto {
  /** Chunk `n` of the batch opened: its plaintext (this module's to wipe), or undefined when it fails its AEAD. */
  open(n: number): Promise<Uint8Array | undefined>;
  sha256(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * The plaintext digests of the batch's `count` chunks in order, or the position of the first
 * that did not open (§4: the transfer ends as `damaged`, and nothing of the batch is stored).
 * All at once: the chunks of a batch are with the crypto threads together.
 */
export async function openAndDigest(count: number, c: BatchCrypto): Promise<Uint8Array[] | number> {
  const digests = await Promise.all(
    Array.from({ length: count }, async (_, n) => {
      const plain = await c.open(n);
      if (!plain) return undefined;
      try {
        return await c.sha256(plain);
      } finally {
        wipe(plain);
      }
    }),
  );
  const bad = digests.findIndex((d) => d === undefined);
  return bad < 0 ? (digests as Uint8Array[]) : bad;
}
