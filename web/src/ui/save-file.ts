import { SAVING_DIR } from "../lib/device-stores.ts";

/** Save bytes made in the page as a file in the person's downloads (a backup, a received file). */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  // The download has its own copy once started.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Save a received file streamed (docs/protocol/files.md §6): its plaintext is written chunk by
 * chunk into a file of the origin-private file system (`SAVING_DIR`), which the browser keeps on
 * disk, and that file is downloaded; the page never holds the whole file. The copy there is
 * deleted once the download has its own (and any left behind by a closed tab on the next save).
 * Without OPFS, `fallback` gives the file as one Blob.
 */
export async function saveStreamed(
  name: string,
  stream: ReadableStream<Uint8Array>,
  fallback: () => Promise<Blob | undefined>,
): Promise<boolean> {
  const dir = await savingDir();
  if (!dir) {
    await stream.cancel();
    const blob = await fallback();
    if (blob) saveFile(blob, name);
    return blob !== undefined;
  }
  const entry = `${Date.now()}-${crypto.randomUUID()}`;
  const handle = await dir.getFileHandle(entry, { create: true });
  try {
    const writable = await handle.createWritable();
    await stream.pipeThrough(batches(SAVE_BATCH_BYTES)).pipeTo(writable);
  } catch (e) {
    await dir.removeEntry(entry).catch(() => undefined);
    throw e;
  }
  saveFile(await handle.getFile(), name);
  // The download reads the file while it starts; a minute later it has its own copy.
  setTimeout(() => void dir.removeEntry(entry).catch(() => undefined), 60_000);
  return true;
}

/**
 * Bytes written to the saving file at once: the engine's stream gives one 63.5 KiB chunk per pull,
 * and each write to a writable is a round trip to the browser process; 1 MiB writes make 16× fewer.
 */
const SAVE_BATCH_BYTES = 1024 * 1024;

/** Gathers a stream's chunks into writes of `size` bytes (the last one shorter). */
export function batches(size: number): TransformStream<Uint8Array, Uint8Array> {
  let buf = new Uint8Array(size);
  let at = 0;
  return new TransformStream({
    transform(chunk, controller) {
      let from = 0;
      while (from < chunk.length) {
        const n = Math.min(size - at, chunk.length - from);
        buf.set(chunk.subarray(from, from + n), at);
        at += n;
        from += n;
        if (at === size) {
          controller.enqueue(buf);
          buf = new Uint8Array(size);
          at = 0;
        }
      }
    },
    flush(controller) {
      if (at > 0) controller.enqueue(buf.subarray(0, at));
    },
  });
}

/** The saving folder, emptied of what earlier saves left behind (older than a minute). */
async function savingDir(): Promise<FileSystemDirectoryHandle | undefined> {
  if (!navigator.storage?.getDirectory) return undefined;
  try {
    if (!("createWritable" in FileSystemFileHandle.prototype)) return undefined; // no folder made then
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(SAVING_DIR, { create: true });
    for await (const old of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) {
      const at = Number(old.split("-")[0]);
      if (!(at > Date.now() - 60_000)) await dir.removeEntry(old).catch(() => undefined);
    }
    return dir;
  } catch {
    return undefined;
  }
}
