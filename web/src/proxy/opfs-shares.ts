/**
 * Shared folders kept in the Origin Private File System (docs/user-guide.md "Shared folders"):
 * each share's files are copied under `loft-shares/<root>/…` (so they stay available, and stay
 * what the person shared, whatever happens to the originals), and `loft-shares/shares.json`
 * lists the shares: root, name, mount path, and the contacts allowed. `OpfsFileSource` serves
 * them to the proxy's share handler (core/proxy/share.ts), reading each file in 256 KiB slices as
 * the requester's credit allows.
 */
import type { BodyReader } from "../../../core/proxy/body.ts";
import { MAX_CHUNK } from "../../../core/proxy/frames.ts";
import type { FileInfo, FileSource, Share } from "../../../core/proxy/share.ts";
import { SHARES_DIR } from "../lib/device-stores.ts";

const TOP = SHARES_DIR;
const INDEX = "shares.json";
/**
 * One OPFS read per four DATA frames: each read is a round trip to the browser's file process, and
 * reading one DATA's worth at a time held every frame up by it (bench:proxy-browser). A multiple
 * of the largest DATA body (docs/protocol/proxy.md §DATA size), so the slices cut into full DATA
 * frames; the rest of a slice is handed out from memory (`available`), so OutboundBody joins a
 * slice's tail to the next piece without waiting. At most one slice (≈ 256 KiB) is held beyond
 * what the requester's credit lets out.
 */
const SLICE = 4 * MAX_CHUNK;

export interface StoredShare {
  root: string;
  /** The folder's name as the person picked it. */
  name: string;
  mount: string[];
  contacts: string[];
  files: number;
  bytes: number;
}

/**
 * The origin's OPFS root, asked for once: every lookup below starts from it, and each call to
 * `getDirectory` is a round trip to the browser's storage process (the root itself never goes).
 */
let opfsRoot: Promise<FileSystemDirectoryHandle> | undefined;
function storageRoot(): Promise<FileSystemDirectoryHandle> {
  opfsRoot ??= navigator.storage.getDirectory().catch((e: unknown) => {
    opfsRoot = undefined;
    throw e;
  });
  return opfsRoot;
}

/** The shares' folder; made only by a write, so reading never brings it back after Delete identity. */
async function top(create = false): Promise<FileSystemDirectoryHandle> {
  return (await storageRoot()).getDirectoryHandle(TOP, { create });
}

/**
 * The handle cache's key for a file: root and path segments joined by NUL, which no segment can
 * hold (core/proxy/paths.ts refuses control characters; OPFS names cannot hold it either), as
 * `MemoryFileSource` keys its files (core/proxy/share.ts). Looked up before any walk checks the
 * names, so a separator a segment could contain ("/") would let `["a/b"]` find `["a", "b"]`'s
 * handle should either rule ever loosen.
 */
export const fileKey = (root: string, path: readonly string[]): string => [root, ...path].join("\0");

/** File handles found before, by root and path: at most this many, the oldest dropped. */
const KNOWN_HANDLES = 256;
/**
 * A share's files never change once copied (sharing again makes a new root; stopping removes the
 * root), so a handle found once stays right: the walk — the shares' folder, the share, each
 * folder on the path, the file, a round trip to the storage process per step — is taken once per
 * file, not once per request. A handle whose file went (its share stopped) fails its `getFile`:
 * dropped, and the walk taken again.
 */
const knownHandles = new Map<string, FileSystemFileHandle>();

async function fileAt(root: string, path: string[]): Promise<File | null> {
  const key = fileKey(root, path);
  const known = knownHandles.get(key);
  if (known) {
    try {
      return await known.getFile();
    } catch {
      knownHandles.delete(key);
    }
  }
  try {
    let dir = await (await top()).getDirectoryHandle(root);
    for (const seg of path.slice(0, -1)) dir = await dir.getDirectoryHandle(seg);
    const handle = await dir.getFileHandle(path[path.length - 1]!);
    const file = await handle.getFile();
    knownHandles.set(key, handle);
    if (knownHandles.size > KNOWN_HANDLES) knownHandles.delete(knownHandles.keys().next().value!);
    return file;
  } catch {
    return null; // NotFoundError, TypeMismatchError, or a name OPFS refuses: nothing there
  }
}

/** Files kept from `stat` for the `read` that follows it: at most this many, the oldest dropped. */
const RECENT_FILES = 32;

export class OpfsFileSource implements FileSource {
  /**
   * What `stat` just found, by root and path: the share handler stats a file and then reads it,
   * and each OPFS walk (the shares' folder, the share, every folder on the path, the file) is a
   * round trip per step — taken once per request instead of twice. The read also gets the very
   * snapshot whose size and date the response head announced.
   */
  readonly #recent = new Map<string, File>();

  async stat(root: string, path: string[]): Promise<FileInfo | null> {
    const file = await fileAt(root, path);
    if (!file) return null;
    const key = fileKey(root, path);
    this.#recent.delete(key);
    this.#recent.set(key, file);
    if (this.#recent.size > RECENT_FILES) this.#recent.delete(this.#recent.keys().next().value!);
    return { size: file.size, lastModified: file.lastModified };
  }

  read(root: string, path: string[], start: number, end: number): BodyReader {
    let at = start;
    let cancelled = false;
    const key = fileKey(root, path);
    const recent = this.#recent.get(key);
    this.#recent.delete(key);
    let file: Promise<File | null> | undefined = recent ? Promise.resolve(recent) : undefined;
    /** What is left of the last slice read, handed out one DATA body at a time. */
    let held = new Uint8Array(0);
    return {
      async read() {
        if (cancelled) return null;
        if (held.length === 0) {
          if (at >= end) return null;
          file ??= fileAt(root, path);
          const f = await file;
          if (!f) throw new Error("shared file disappeared");
          const next = Math.min(end, at + SLICE);
          held = new Uint8Array(await f.slice(at, next).arrayBuffer());
          at = next;
          if (cancelled) return null;
        }
        const piece = held.subarray(0, MAX_CHUNK);
        held = held.subarray(piece.length);
        return piece;
      },
      available: () => (cancelled ? 0 : held.length),
      cancel() {
        cancelled = true;
        held = new Uint8Array(0);
      },
    };
  }
}

export async function listShares(): Promise<StoredShare[]> {
  try {
    const f = await (await (await top()).getFileHandle(INDEX)).getFile();
    const list = JSON.parse(await f.text()) as StoredShare[];
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

async function saveIndex(list: StoredShare[]): Promise<void> {
  const w = await (await (await top(true)).getFileHandle(INDEX, { create: true })).createWritable();
  await w.write(JSON.stringify(list));
  await w.close();
}

/** Names a share may hold: what core/proxy/paths.ts lets a request reach. Others are skipped. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const SAFE_NAME = /^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*$/;

/**
 * Copy a picked folder (files with `webkitRelativePath`, "folder/sub/file") into OPFS as a new
 * share at the top (`/peer/<me>/…`), replacing the one there. Returns the share and the files skipped.
 */
export async function shareFolder(
  files: readonly File[],
  contacts: string[],
): Promise<{ share: StoredShare; skipped: string[] }> {
  const root = `share-${crypto.randomUUID()}`;
  const dir = await (await top(true)).getDirectoryHandle(root, { create: true });
  const skipped: string[] = [];
  let name = "folder";
  let count = 0;
  let bytes = 0;
  for (const file of files) {
    const parts = (file.webkitRelativePath || file.name).split("/");
    if (parts.length > 1) name = parts[0]!;
    const inside = parts.length > 1 ? parts.slice(1) : parts;
    if (!inside.every((p) => SAFE_NAME.test(p))) {
      skipped.push(inside.join("/"));
      continue;
    }
    let d = dir;
    for (const seg of inside.slice(0, -1)) d = await d.getDirectoryHandle(seg, { create: true });
    const w = await (await d.getFileHandle(inside[inside.length - 1]!, { create: true })).createWritable();
    await w.write(file);
    await w.close();
    count++;
    bytes += file.size;
  }
  const share: StoredShare = { root, name, mount: [], contacts, files: count, bytes };
  const old = await listShares();
  for (const s of old.filter((s) => s.mount.length === 0)) await removeRoot(s.root);
  await saveIndex([...old.filter((s) => s.mount.length !== 0), share]);
  return { share, skipped };
}

export async function setShareContacts(root: string, contacts: string[]): Promise<void> {
  const list = await listShares();
  await saveIndex(list.map((s) => (s.root === root ? { ...s, contacts } : s)));
}

export async function stopSharing(root: string): Promise<void> {
  await saveIndex((await listShares()).filter((s) => s.root !== root));
  await removeRoot(root);
}

async function removeRoot(root: string): Promise<void> {
  await top()
    .then((t) => t.removeEntry(root, { recursive: true }))
    .catch(() => undefined);
}

/** The shares as the proxy's share handler takes them; the owner can always read their own. */
export const asShares = (list: readonly StoredShare[], me: string): Share[] =>
  list.map((s) => ({ mount: s.mount, root: s.root, contacts: new Set([me, ...s.contacts]) }));
