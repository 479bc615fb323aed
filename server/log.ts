/**
 * Structured logs (pino) with neither IP addresses nor payloads (DESIGN.md, Operators). The
 * serializers drop request/socket objects outright, so a careless `log.info({ req })` cannot leak
 * a remote address; callers log counts, codes and opaque ids only.
 */
import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    name,
    level,
    base: undefined,
    serializers: {
      req: () => undefined,
      res: () => undefined,
      socket: () => undefined,
      err: pino.stdSerializers.err,
    },
    redact: { paths: ["ip", "remoteAddress", "address", "*.ip", "*.remoteAddress"], remove: true },
  });
}
