import { createServer } from "node:net";

/**
 * A TCP port that was free a moment ago on `host` (another process may take it before the caller
 * binds: callers that start an external server retry on a bind failure). Servers that listen on
 * UDP too (coturn) use the same number there.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}
