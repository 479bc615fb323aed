/**
 * The HTTP host: one Node `http.Server` that serves the built PWA, `GET /health`, Prometheus
 * `GET /metrics`, and hands WebSocket upgrades to mounted services by path (`/signal`, `/relay`).
 * `npm start` runs everything in one process through this; each service can also run alone with
 * its own host (DESIGN.md, Operators).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Logger } from "./log.ts";
import { serveStatic } from "./static.ts";

export interface HostedService {
  /** Short name used in /health and logs, e.g. "signaling". */
  readonly name: string;
  /** WebSocket path this service owns, e.g. "/signal". */
  readonly path: string;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Extra HTTP routes under the service's path (optional), e.g. GET /relay/info. */
  handleHttp?(req: IncomingMessage, res: ServerResponse): boolean;
  /** Figures for /health; must not contain identities, IPs or content. */
  health(): Record<string, unknown>;
  /** Stop accepting, close sockets with a going-away code, flush stores. */
  close(): Promise<void>;
}

export interface HostOptions {
  port: number;
  host: string;
  /** Folder of the built PWA, or undefined to serve no static files. */
  staticDir: string | undefined;
  registry: Registry;
  log: Logger;
}

export interface Host {
  readonly server: Server;
  readonly registry: Registry;
  mount(service: HostedService): void;
  listen(): Promise<number>;
  close(): Promise<void>;
}

/** On shutdown, how long in-flight HTTP responses get before their connections are cut. */
const HTTP_SHUTDOWN_GRACE_MS = 2_000;

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "loft_" });
  return registry;
}

export function createHost(options: HostOptions): Host {
  const services: HostedService[] = [];
  const started = Date.now();

  const server = createServer((req, res) => {
    handleRequest(req, res).catch((e: unknown) => {
      // A bug or an I/O failure answers 500 (or cuts the response); it never takes the process down.
      options.log.error({ err: e }, "http handler failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
      else res.destroy();
    });
  });

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseTarget(req.url);
    if (!url) {
      res.writeHead(400, { "content-type": "text/plain" }).end("bad request\n");
      return;
    }
    if (url.pathname === "/health" && req.method === "GET") {
      const body = {
        status: "ok",
        uptime_s: Math.round((Date.now() - started) / 1000),
        services: Object.fromEntries(services.map((s) => [s.name, s.health()])),
      };
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
      return;
    }
    if (url.pathname === "/metrics" && req.method === "GET") {
      res.writeHead(200, { "content-type": options.registry.contentType });
      res.end(await options.registry.metrics());
      return;
    }
    for (const s of services) if (url.pathname.startsWith(s.path) && s.handleHttp?.(req, res)) return;
    if (options.staticDir && (req.method === "GET" || req.method === "HEAD")) {
      await serveStatic(options.staticDir, url.pathname, req, res);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  }

  server.on("upgrade", (req, socket: Duplex, head) => {
    // Node removes its own error listener from an upgraded socket: without this one, a client that
    // resets the connection while we answer would raise an uncaught 'error' event.
    socket.on("error", () => socket.destroy());
    try {
      const path = parseTarget(req.url)?.pathname;
      const service = path === undefined ? undefined : services.find((s) => path === s.path);
      if (!service) {
        socket.end(
          `HTTP/1.1 ${path === undefined ? "400 Bad Request" : "404 Not Found"}\r\nConnection: close\r\n\r\n`,
        );
        return;
      }
      service.handleUpgrade(req, socket, head);
    } catch (e) {
      options.log.error({ err: e }, "upgrade handler failed");
      socket.destroy();
    }
  });
  // Keep the defaults of a hardened server: no slowloris headers, bounded request sizes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 64;

  return {
    server,
    registry: options.registry,
    mount(service) {
      services.push(service);
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port, options.host, () => {
          const addr = server.address();
          resolve(typeof addr === "object" && addr ? addr.port : options.port);
        });
      });
    },
    async close() {
      await Promise.all(services.map((s) => s.close()));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // server.close() waits for every HTTP connection to end: idle keep-alive ones go now, and a
      // slow download to a client that doesn't read is cut after a short grace.
      server.closeIdleConnections();
      const cut = setTimeout(() => server.closeAllConnections(), HTTP_SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(cut);
    },
  };
}

/** The request target as a URL, or undefined when it is not one (`//`, `http://[`, …). */
function parseTarget(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? "/", "http://host.invalid");
  } catch {
    return undefined;
  }
}

/** SIGTERM/SIGINT → graceful close, then exit; a second signal exits at once. */
export function closeOnSignals(close: () => Promise<void>, log: Logger): void {
  let closing = false;
  const onSignal = (signal: string) => {
    if (closing) process.exit(1);
    closing = true;
    log.info({ signal }, "shutting down");
    close().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: e }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}
