/**
 * Files shared to Loft from the operating system (Web Share Target; sw/share-target.ts keeps them
 * in the `loft-share` cache): read them for the /share screen, send them to the contact the
 * person picks once it is connected, and forget them. The cache name and paths are the Service
 * Worker's (not imported: sw/ and web/ are separate builds).
 */
import { refusalFor } from "../engine/outgoing.ts";
import { SHARE_CACHE } from "../lib/device-stores.ts";
import { sendFiles, sendFilesToRoom, whenOnline } from "./files.ts";
import type { AppModel, ContactView } from "./model.ts";

/** How long the screen waits for the picked contact to come online. */
const CONNECT_WAIT_MS = 20_000;

/** Each file read from the share cache, and its entry there (`forgetSharedFile`). */
const entries = new WeakMap<File, Request>();

/** The files waiting in the share cache, in the order they were shared. */
export async function sharedFiles(): Promise<File[]> {
  if (!("caches" in globalThis)) return [];
  const cache = await caches.open(SHARE_CACHE);
  const files: File[] = [];
  const keys = [...(await cache.keys())].sort((a, b) => index(a) - index(b));
  for (const req of keys) {
    const res = await cache.match(req);
    if (!res) continue;
    const name = decodeURIComponent(res.headers.get("x-loft-name") ?? "") || "shared file";
    const file = new File([await res.blob()], name, { type: res.headers.get("content-type") ?? "" });
    entries.set(file, req);
    files.push(file);
  }
  return files;
}

/** One shared file offered: out of the share cache, so that trying again after a refusal offers the rest only. */
async function forgetSharedFile(file: File): Promise<void> {
  const req = entries.get(file);
  if (req && "caches" in globalThis) await (await caches.open(SHARE_CACHE)).delete(req);
}

/** The names of the files waiting in the share cache, without reading them (Home's offer). */
export async function sharedNames(): Promise<string[]> {
  if (!("caches" in globalThis) || !(await caches.has(SHARE_CACHE))) return [];
  const cache = await caches.open(SHARE_CACHE);
  const names: string[] = [];
  for (const req of [...(await cache.keys())].sort((a, b) => index(a) - index(b))) {
    const res = await cache.match(req);
    if (res) names.push(safeName(res.headers.get("x-loft-name")));
  }
  return names;
}

/** The name the Service Worker stored (percent-encoded); one it could not have written reads as a default. */
function safeName(header: string | null): string {
  try {
    return decodeURIComponent(header ?? "") || "shared file";
  } catch {
    return "shared file";
  }
}

const index = (r: Request) => Number(new URL(r.url).pathname.split("/").pop() ?? 0);

export async function forgetShared(): Promise<void> {
  if ("caches" in globalThis) await caches.delete(SHARE_CACHE);
}

/**
 * Contacts a file can go to: people (a device paired over USB takes no files) not blocked, with
 * no pending change and no open request.
 */
export function shareTargets(app: AppModel): ContactView[] {
  return app.contacts().filter((c) => !c.record.device && !refusalFor(c.record));
}

/**
 * Connect to the contact, wait (bounded) until it is online, send the files (each is hashed
 * first: a large one takes a while); `say` hears each step in words. Resolves with a problem in
 * words, or undefined once they are offered (then the shared files are forgotten).
 */
export async function sendShared(
  app: AppModel,
  contactId: string,
  files: File[],
  say: (step: string) => void = () => {},
): Promise<string | undefined> {
  const name = app.contact(contactId)?.record.username ?? "The contact";
  say(`Connecting to ${name}…`);
  if (!(await whenOnline(app, contactId, CONNECT_WAIT_MS)))
    return `${name} is not online. Files go directly between your devices; the shared files stay here until you try again.`;
  return offer(files, name, say, () => sendFiles(app, contactId, files, forgetSharedFile));
}

/**
 * Send the files to everyone in a room (docs/protocol/files.md §8): each member present is offered
 * them, one away when back; nothing to wait for here. Resolves with a problem in words, or
 * undefined once they are offered (then the shared files are forgotten).
 */
export async function sendSharedToRoom(
  app: AppModel,
  roomId: string,
  files: File[],
  say: (step: string) => void = () => {},
): Promise<string | undefined> {
  return offer(files, "the room", say, () => sendFilesToRoom(app, roomId, files, forgetSharedFile));
}

/**
 * Say that `files` are offered `to` someone, offer them (`send`, which forgets each shared file
 * once it is offered), and forget the share once all are; resolves with `send`'s problem in words,
 * if any. After a refusal the files offered before it are no longer in the share: before, trying
 * again offered the first files a second time.
 */
async function offer(
  files: File[],
  to: string,
  say: (step: string) => void,
  send: () => Promise<string | undefined>,
): Promise<string | undefined> {
  say(
    files.length === 1 ? `Offering ${files[0]!.name} to ${to}…` : `Offering ${files.length} files to ${to}…`,
  );
  const problem = await send();
  if (!problem) await forgetShared();
  return problem;
}
