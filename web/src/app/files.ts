/**
 * What the chat screen does with files (docs/user-guide.md, "Files"; docs/protocol/files.md), as
 * app functions over the running engine: send (from the attach button, a drop or a paste),
 * accept, decline, cancel, list, and the bytes of a received file for download or preview. The
 * engine may restart underneath, so it is looked up on every call.
 */
import { EngineRefusal, type FileTransfer, FileUnavailable } from "../engine/api.ts";
import type { AppModel } from "./model.ts";
import { ActionFailed, problemText } from "./problems.ts";

function engineOf(app: AppModel) {
  const engine = app.engine;
  if (!engine) throw new ActionFailed("Loft is still starting. Try again in a moment.", undefined);
  return engine;
}

/** Image types given a thumbnail when sent and shown inline once received (never SVG: it can carry script). */
const PREVIEWABLE = /^image\/(png|jpeg|gif|webp|avif|bmp)$/;

/** Longest side of the preview sent ahead of an image (CSS pixels). */
const THUMB_PX = 160;
/** The engine's limit for a preview (web/src/engine/files/wire.ts `MAX_THUMB_BYTES`). */
const THUMB_MAX_BYTES = 16 * 1024;

/**
 * A small WebP preview of an image, made here on the sender (docs/protocol/files.md §1, `thumb`),
 * so the contact sees what it is before accepting; undefined for anything else or on failure.
 */
async function thumbnailOf(f: Blob): Promise<Uint8Array | undefined> {
  if (!PREVIEWABLE.test(f.type)) return undefined;
  if (typeof createImageBitmap !== "function" || typeof OffscreenCanvas === "undefined") return undefined;
  try {
    const bmp = await createImageBitmap(f);
    const scale = Math.min(1, THUMB_PX / Math.max(bmp.width, bmp.height));
    const w = Math.max(1, Math.round(bmp.width * scale));
    const h = Math.max(1, Math.round(bmp.height * scale));
    const canvas = new OffscreenCanvas(w, h);
    canvas.getContext("2d")?.drawImage(bmp, 0, 0, w, h);
    bmp.close();
    for (const quality of [0.7, 0.4]) {
      const out = await canvas.convertToBlob({ type: "image/webp", quality });
      if (out.size <= THUMB_MAX_BYTES) return new Uint8Array(await out.arrayBuffer());
    }
  } catch {
    // Not decodable here: the offer goes without a preview.
  }
  return undefined;
}

/**
 * Wait (at most `ms`) until the contact is online, asking the engine to connect: files go only
 * over a live session, and a chat just opened is often still connecting. Resolves whether it is.
 */
export async function whenOnline(app: AppModel, contactId: string, ms: number): Promise<boolean> {
  if (app.presenceOf(contactId).status === "online") return true;
  app.engine?.connect(contactId);
  const end = Date.now() + ms;
  while (app.presenceOf(contactId).status !== "online") {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
  return true;
}

/** How long sending waits for a contact that is connecting. */
const CONNECTING_WAIT_MS = 10_000;

/**
 * Told of each file once it is offered, before the next is tried: after a refusal, the caller
 * knows which went (app/share.ts forgets those, so trying again offers only the rest).
 */
export type OnOffered = (file: File) => Promise<void>;

/** Offer each file to the contact; resolves with the first refusal in words, if any. */
export async function sendFiles(
  app: AppModel,
  contactId: string,
  files: readonly File[],
  offered?: OnOffered,
): Promise<string | undefined> {
  if (app.presenceOf(contactId).status === "connecting") await whenOnline(app, contactId, CONNECTING_WAIT_MS);
  return eachFile(files, offered, async (f, name, thumb) => {
    await engineOf(app).sendFile(contactId, f, name, thumb);
  });
}

/**
 * Send each file to everyone in the room (docs/protocol/files.md §8); resolves with the first
 * refusal in words, if any.
 */
export async function sendFilesToRoom(
  app: AppModel,
  roomId: string,
  files: readonly File[],
  offered?: OnOffered,
): Promise<string | undefined> {
  return eachFile(files, offered, async (f, name, thumb) => {
    await engineOf(app).sendFileToRoom(roomId, f, name, thumb);
  });
}

/** `send` each file in turn (named, with its preview), `offered` told after each; the first refusal in words. */
async function eachFile(
  files: readonly File[],
  offered: OnOffered | undefined,
  send: (f: File, name: string, thumb: Uint8Array | undefined) => Promise<void>,
): Promise<string | undefined> {
  for (const f of files) {
    try {
      await send(f, f.name || pastedName(f), await thumbnailOf(f));
    } catch (x) {
      return fileProblem(x);
    }
    await offered?.(f);
  }
  return undefined;
}

/** A pasted image has no name of its own. */
function pastedName(f: File): string {
  const ext = f.type.startsWith("image/") ? `.${f.type.slice(6).replace(/[^a-z0-9]/g, "") || "img"}` : "";
  return `pasted-${new Date().toISOString().replace(/[:.]/g, "-")}${ext}`;
}

export const acceptFile = (app: AppModel, key: string) => engineOf(app).acceptFile(key);
export const declineFile = (app: AppModel, key: string) => engineOf(app).declineFile(key);
export const cancelFile = (app: AppModel, key: string) => engineOf(app).cancelFile(key);

export async function listFiles(app: AppModel, contactId: string): Promise<FileTransfer[]> {
  return app.engine ? app.engine.listFiles(contactId) : [];
}

export async function listRoomFiles(app: AppModel, roomId: string): Promise<FileTransfer[]> {
  return app.engine ? app.engine.listRoomFiles(roomId) : [];
}

/** The bytes of a received file whose hash matched (or of one being sent). */
export async function fileStream(
  app: AppModel,
  key: string,
): Promise<ReadableStream<Uint8Array> | undefined> {
  return app.engine?.fileStream(key);
}

export async function fileBlob(app: AppModel, key: string): Promise<Blob | undefined> {
  return app.engine?.fileBlob(key);
}

/**
 * What to say when saving a received file failed: the engine's own words when the file itself is
 * gone (`FileUnavailable`, engine/files/words.ts), else the save failed on this device (the disk
 * is full, the browser refused) — said around the browser's text. Told apart by the error's type:
 * a browser message may well begin with the file's name (a file called "The").
 */
export function downloadProblem(name: string, x: unknown): string {
  if (x instanceof FileUnavailable) return x.message;
  const why = x instanceof Error || x instanceof DOMException ? x.message || x.name : String(x);
  return `${name} could not be saved on this device (${why}). Free some space, then press Download again.`;
}

function fileProblem(x: unknown): string {
  return x instanceof EngineRefusal ? x.reason.message : problemText(x, "send");
}

/** Whether the browser may show this type inline as an image. */
export function previewable(t: FileTransfer): boolean {
  return PREVIEWABLE.test(t.type);
}
