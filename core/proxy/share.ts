/**
 * Serving shared folders (docs/protocol/proxy.md §Serving a share). A share is a folder of files
 * (`root`, in whatever a `FileSource` stores: OPFS in the PWA, memory in tests) mounted at a path,
 * open to the contacts the owner chose. The handler refuses strangers (`not_a_contact`), paths no
 * share open to that contact covers (`not_shared` — the same answer whether the share exists or
 * not, so a contact learns nothing about shares not open to them), bad paths (`not_shared`, see
 * ./paths.ts), methods other than GET and HEAD (405), and answers Range requests (206/416).
 */
import type { BodyReader } from "./body.ts";
import { contentType, normalizePath, parseRange } from "./paths.ts";
import type { HandlerResult, ProxyHandler, ServedRequest } from "./server.ts";

export interface Share {
  /** Where the share appears, as path segments under `/peer/<owner>/` ([] for the top). */
  mount: string[];
  /** The folder in the FileSource. */
  root: string;
  /** Contact ids allowed to read it. */
  contacts: ReadonlySet<string>;
}

export interface FileInfo {
  size: number;
  lastModified?: number;
}

/** Where shared files live. Implementations must never step outside `root`. */
export interface FileSource {
  stat(root: string, path: string[]): Promise<FileInfo | null>;
  /** Bytes [start, end) of the file, in chunks of at most 64 KiB, read as they are pulled. */
  read(root: string, path: string[], start: number, end: number): BodyReader;
}

export interface ShareRules {
  shares: () => readonly Share[];
  isContact: (peer: string) => boolean;
}

const empty: BodyReader = { read: async () => null, cancel: () => undefined };

/** The share (longest mount first) open to `peer` that covers `path`, and the path inside it. */
export function findShare(
  shares: readonly Share[],
  peer: string,
  path: string[],
): { share: Share; rest: string[] } | null {
  let best: { share: Share; rest: string[] } | null = null;
  for (const share of shares) {
    if (!share.contacts.has(peer) || share.mount.length >= path.length) continue;
    if (!share.mount.every((seg, i) => path[i] === seg)) continue;
    if (!best || share.mount.length > best.share.mount.length)
      best = { share, rest: path.slice(share.mount.length) };
  }
  return best;
}

export function shareHandler(rules: ShareRules, source: FileSource): ProxyHandler {
  return async (request: ServedRequest): Promise<HandlerResult> => {
    request.body.cancel("shares take no request body");
    if (!rules.isContact(request.peer)) return { refuse: "not_a_contact", reason: "not a contact" };
    const path = normalizePath(request.path);
    if (!path.ok) return { refuse: "not_shared", reason: "nothing is shared at that path" };
    const found = findShare(rules.shares(), request.peer, path.value);
    if (!found) return { refuse: "not_shared", reason: "nothing is shared at that path" };
    if (request.method !== "GET" && request.method !== "HEAD")
      return { status: 405, headers: [["content-type", "text/plain; charset=utf-8"]], body: empty };
    const info = await source.stat(found.share.root, found.rest);
    if (!info) {
      // A folder named without its trailing slash: redirect, as static servers do, so the
      // folder's index.html resolves its relative links against the folder.
      const folder = await source.stat(found.share.root, [...found.rest, "index.html"]);
      const bare = request.path.split(/[?#]/)[0]!;
      if (folder && !bare.endsWith("/"))
        return {
          status: 301,
          headers: [["location", `${bare.slice(bare.lastIndexOf("/") + 1)}/`]],
          body: empty,
        };
      return { refuse: "not_shared", reason: "nothing is shared at that path" };
    }
    const header = (name: string) => request.headers.find(([n]) => n === name)?.[1];
    const etag = `"${info.size.toString(36)}-${(info.lastModified ?? 0).toString(36)}"`;
    const type = contentType(found.rest[found.rest.length - 1]!);
    const common: [string, string][] = [
      ["content-type", type],
      ["accept-ranges", "bytes"],
      ["etag", etag],
      ["cache-control", "no-cache"],
    ];
    if (header("if-none-match") === etag) return { status: 304, headers: common, body: empty };
    const ifRange = header("if-range");
    const range = ifRange !== undefined && ifRange !== etag ? "none" : parseRange(header("range"), info.size);
    if (range === "unsatisfiable")
      return { status: 416, headers: [...common, ["content-range", `bytes */${info.size}`]], body: empty };
    const { start, end } = range === "none" ? { start: 0, end: info.size } : range;
    const headers: [string, string][] = [...common, ["content-length", String(end - start)]];
    if (range !== "none") headers.push(["content-range", `bytes ${start}-${end - 1}/${info.size}`]);
    return {
      status: range === "none" ? 200 : 206,
      headers,
      body: request.method === "HEAD" ? empty : source.read(found.share.root, found.rest, start, end),
    };
  };
}

/** A FileSource over files in memory (tests, and the docs' examples). */
export class MemoryFileSource implements FileSource {
  readonly #files = new Map<string, Uint8Array>();
  /** Reads served, for tests that check a cancelled body stops reading. */
  reads = 0;

  put(root: string, path: string[], bytes: Uint8Array): void {
    this.#files.set(`${root}\0${path.join("/")}`, bytes);
  }

  async stat(root: string, path: string[]): Promise<FileInfo | null> {
    const f = this.#files.get(`${root}\0${path.join("/")}`);
    return f ? { size: f.length } : null;
  }

  read(root: string, path: string[], start: number, end: number): BodyReader {
    const f = this.#files.get(`${root}\0${path.join("/")}`) ?? new Uint8Array(0);
    let at = start;
    let cancelled = false;
    return {
      read: async () => {
        if (cancelled || at >= end) return null;
        const out = f.subarray(at, Math.min(end, at + 64 * 1024));
        at += out.length;
        this.reads++;
        return out;
      },
      available: () => (cancelled ? 0 : end - at),
      cancel: () => {
        cancelled = true;
      },
    };
  }
}
