/**
 * What the chat screen does with files (docs/user-guide.md, "Files"; docs/protocol/files.md), as
 * app functions over the running engine: send (from the attach button, a drop or a paste),
 * accept, decline, cancel, list, and the bytes of a received file for download or preview. The
 * engine may restart underneath, so it is looked up on every call.
 */
import { EngineRefusal, type FileTransfer } from "../engine/api.ts";
import type { AppModel } from "./model.ts";
import { ActionFailed, problemText } from "./problems.ts";

function engineOf(app: AppModel) {
  const engine = app.engine;
  if (!engine) throw new ActionFailed("Loft is still starting. Try again in a moment.", undefined);
  return engine;
}

/** Offer each file to the contact; resolves with the first refusal in words, if any. */
export async function sendFiles(
  app: AppModel,
  contactId: string,
  files: readonly File[],
): Promise<string | undefined> {
  for (const f of files) {
    try {
      await engineOf(app).sendFile(contactId, f, f.name || pastedName(f));
    } catch (x) {
      return fileProblem(x);
    }
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

/** The bytes of a received file whose hash matched (or of one being sent). */
export async function fileBlob(app: AppModel, key: string): Promise<Blob | undefined> {
  return app.engine?.fileBlob(key);
}

export function fileProblem(x: unknown): string {
  return x instanceof EngineRefusal ? x.reason.message : problemText(x, "send");
}

/** Whether the browser may show this type inline as an image (never SVG: it can carry script). */
export function previewable(t: FileTransfer): boolean {
  return /^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(t.type);
}
