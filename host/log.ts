/**
 * Structured logs (pino) with neither IP addresses nor payloads (docs/design.md, "Operators"). The
 * serializers drop request/socket objects outright, so a careless `log.info({ req })` cannot leak
 * a remote address; callers log counts, codes and opaque ids only.
 */
import pino from "pino";

export type Logger = pino.Logger;

// IPv4, and IPv6 (loosely: over-redacting a clock time in an error message is harmless).
const ADDRESS = /\b(?:\d{1,3}\.){3}\d{1,3}\b|(?:\b[0-9a-f]{1,4})?(?::[0-9a-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}/gi;

/** pino's error serializer, with addresses cut from the message and stack (Node's network errors name them). */
function scrubbedErr(e: Error): unknown {
  const out = pino.stdSerializers.err(e) as { message?: unknown; stack?: unknown };
  if (typeof out?.message === "string") out.message = out.message.replace(ADDRESS, "<addr>");
  if (typeof out?.stack === "string") out.stack = out.stack.replace(ADDRESS, "<addr>");
  return out;
}

export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL ?? "info",
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      name,
      level,
      base: undefined,
      serializers: {
        req: () => undefined,
        res: () => undefined,
        socket: () => undefined,
        err: scrubbedErr,
      },
      // Node's network errors carry `address` / `port` (ECONNREFUSED, EADDRINUSE…): one level down
      // too, so `{ err }` cannot leak a peer's address.
      redact: {
        paths: [
          "ip",
          "remoteAddress",
          "localAddress",
          "address",
          "*.ip",
          "*.remoteAddress",
          "*.localAddress",
          "*.address",
        ],
        remove: true,
      },
    },
    destination,
  );
}
