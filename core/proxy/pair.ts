/**
 * A requesting side and a serving side joined by an in-order async channel standing in for a
 * session's transport — the real frames, encoded and decoded, pass through. Used by the tests
 * and by the PWA's own-share preview, where both sides are the same page.
 */
import { concatBytes } from "../bytes.ts";
import type { Result } from "../errors.ts";
import { ProxyClient, type ProxyClientOptions } from "./client.ts";
import { MAX_CHUNK } from "./frames.ts";
import { ProxyServer, type ProxyServerOptions } from "./server.ts";

export interface ProxyPair {
  client: ProxyClient;
  server: ProxyServer;
  /** Frames each way so far (client→server, server→client). */
  sent: { up: Uint8Array[]; down: Uint8Array[] };
  /** The first protocol error either side reported. */
  error: () => Result<void> | undefined;
}

export function connectProxy(
  server: Omit<ProxyServerOptions, "send">,
  client: ProxyClientOptions = {},
  keep = false,
): ProxyPair {
  let failure: Result<void> | undefined;
  const sent = { up: [] as Uint8Array[], down: [] as Uint8Array[] };
  const check = (r: Result<void>) => {
    if (!r.ok && !failure) {
      failure = r;
      c.close(r.error);
      s.close(r.error);
    }
  };
  // Each frame is joined into its own bytes here: it is read a microtask later, and a DATA body
  // part is the sender's buffer. Both sides are this code: a body-less request is one REQUEST
  // frame (NO_BODY, docs/protocol/proxy.md §Body-less requests).
  const c: ProxyClient = new ProxyClient(
    (parts) => {
      const frame = concatBytes(...parts);
      if (keep) sent.up.push(frame);
      queueMicrotask(() => check(s.receive(frame)));
    },
    { maxChunk: MAX_CHUNK, noBody: true, ...client },
  );
  // Both sides are this code, so DATA may fill a session frame's worth (frames.ts MAX_CHUNK).
  const s: ProxyServer = new ProxyServer({
    maxChunk: MAX_CHUNK,
    ...server,
    send: (parts) => {
      const frame = concatBytes(...parts);
      if (keep) sent.down.push(frame);
      queueMicrotask(() => check(c.receive(frame)));
    },
  });
  return { client: c, server: s, sent, error: () => failure };
}
