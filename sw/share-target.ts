/**
 * The Web Share Target (public/manifest.webmanifest `share_target`; docs/user-guide.md, "Files"):
 * "Share → Loft" from the operating system POSTs the shared files to /share as multipart form
 * data. The Service Worker keeps them in the `loft-share` cache (on this device only; a new share
 * replaces one not yet sent) and answers with a redirect to the /share screen, where the person
 * picks the contact (web/src/ui/Share.tsx, web/src/app/share.ts).
 */
export const SHARE_PATH = "/share";
export const SHARE_CACHE = "loft-share";
/** At most this many files per share (the rest are dropped). */
const MAX_SHARED_FILES = 32;

export async function receiveShare(request: Request): Promise<Response> {
  let form: FormData;
  try {
    form = await request.formData();
  } catch {
    return Response.redirect(`${SHARE_PATH}?error=unreadable`, 303);
  }
  const cache = await caches.open(SHARE_CACHE);
  for (const old of await cache.keys()) await cache.delete(old);
  let n = 0;
  for (const f of form.getAll("files")) {
    if (!(f instanceof File) || n >= MAX_SHARED_FILES) continue;
    await cache.put(
      `${SHARE_PATH}/file/${n++}`,
      new Response(f, {
        headers: {
          "content-type": f.type || "application/octet-stream",
          "x-loft-name": encodeURIComponent(f.name),
        },
      }),
    );
  }
  return Response.redirect(SHARE_PATH, 303);
}
