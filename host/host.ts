/**
 * The HTTP host: one Node `http.Server` that serves the built PWA, a public `GET /health`, and
 * hands WebSocket upgrades to mounted services by path (`/signal`, `/relay`); Prometheus
 * `/metrics` and the detailed `/health` go to a separate metrics listener (host/metrics.ts), for
 * the combined server and for each service running alone alike. `npm start` runs everything in one process
 * through this; each service can also run alone with its own host (docs/design.md, "Operators").
 *
 * Every response either listener writes — files, health, metrics, 404, 426, errors, refused
 * upgrades — carries the browser security headers (host/security-headers.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { NO_TRUSTED_PROXIES, sourceOf, type TrustedProxies } from "./client-source.ts";
import { appPolicy, isContentOrigin, serveContentOrigin } from "./content-origin.ts";
import { cspReports } from "./csp-reports.ts";
import type { Logger } from "./log.ts";
import { bearerAllowed, cachedRender, type MetricsListenerOptions } from "./metrics.ts";
import {
  DEFAULT_CONNECT_SOURCES,
  rawResponse,
  secureUpgradeRefusals,
  securityHeaders,
} from "./security-headers.ts";
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
  /**
   * Undefined while the service can serve; otherwise why not (its shared store is unreachable):
   * both /health answers turn 503 with the reason (docs/operations.md, "Redis unreachable").
   */
  unavailable?(): string | undefined;
  /** Stop accepting, close sockets with a going-away code, flush stores. */
  close(): Promise<void>;
  /**
   * While `close()` runs: what it still waits for (its step and counts, no identities), for the
   * line logged when the stop bound ends the process (`closeOnSignals`; docs/operations.md,
   * "Stopping"). Undefined when there is nothing to say.
   */
  stillPending?(): Record<string, unknown> | undefined;
}

export interface HostOptions {
  port: number;
  host: string;
  /** Folder of the built PWA, or undefined to serve no static files. */
  staticDir: string | undefined;
  registry: Registry;
  log: Logger;
  /**
   * Where `/metrics` and the detailed `/health` are served: a separate listener (the public
   * `/health` then says `{"status":"ok"}` only), `"off"` (nowhere; the default), or `"public"` on
   * the main port — for in-process tests only, which ask for it by name: every entry point
   * (`server/main.ts`, `signaling/main.ts`, `relay-ws/main.ts`) uses a separate listener.
   */
  metrics?: MetricsListenerOptions | "off" | "public";
  /** CSP `connect-src` sources besides `'self'` (default `wss: ws:`). */
  connectSources?: readonly string[];
  /** Serve `*.map` files from the build (default false). */
  serveSourceMaps?: boolean;
  /** Proxies whose X-Forwarded-For is believed, for the per-source figures. */
  trustedProxies?: TrustedProxies;
  /**
   * Which implementation serves each crypto primitive in this process (`CryptoProvider.backends`,
   * core/crypto/provider.ts: "node", "webcrypto" or "noble"), shown by the detailed /health.
   */
  cryptoBackends?: Readonly<Record<string, string>>;
  /**
   * How long a mounted service gets to answer an upgrade (101 or a refusal) before the host
   * refuses it with 503 and drops the socket (default 5 s, `UPGRADE_ANSWER_MS`; the operator's
   * `--upgrade-answer-ms`, host/standalone.ts `upgradeOptions`).
   */
  upgradeAnswerMs?: number;
}

export interface Host {
  readonly server: Server;
  readonly registry: Registry;
  mount(service: HostedService): void;
  /** Start the main listener (and the metrics listener, if any); resolves with the main port. */
  listen(): Promise<number>;
  /** The metrics listener's bound port, once listening; undefined when there is none. */
  metricsPort(): number | undefined;
  close(): Promise<void>;
  /**
   * While `close()` runs, what it still waits for: its step (`services`, then `listeners`: the
   * HTTP connections) and each mounted service's own account, by path (`HostedService.stillPending`).
   */
  stillPending(): Record<string, unknown>;
}

/** The per-source key of an upgraded socket, until it closes (loft_host_websocket_sources). */
const SOURCE = Symbol("loft.source");
type SourcedSocket = Duplex & { [SOURCE]?: string | undefined };

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * An upgrade no service answered in this long is refused (503) and its socket destroyed. A
 * browser keeps one WebSocket per host in CONNECTING and queues the rest (RFC 6455 §4.1): an
 * unanswered upgrade to /relay would hold up the page's /signal on the same host:port, and so
 * every connection of that person, for as long as the socket lives. The services answer at once
 * today; this bounds any await or queue that may come between an upgrade and its answer.
 */
export const UPGRADE_ANSWER_MS = 5_000;

/** Whether anything was written on the upgrade's socket (a 101 or a refusal), or it is gone. */
function upgradeAnswered(socket: Duplex): boolean {
  const written = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0;
  return socket.destroyed || socket.writableEnded || socket.writableLength > 0 || written > 0;
}

/** On shutdown, how long in-flight HTTP responses get before their connections are cut. */
const HTTP_SHUTDOWN_GRACE_MS = 2_000;

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "loft_" });
  return registry;
}

const STATUS_TEXT: Record<number, string> = { 400: "Bad Request", 404: "Not Found" };

export function createHost(options: HostOptions): Host {
  const services: HostedService[] = [];
  const started = Date.now();
  const metrics = options.metrics ?? "off";
  const separate = typeof metrics === "object" ? metrics : undefined;
  const trusted = options.trustedProxies ?? NO_TRUSTED_PROXIES;
  const baseHeaders = securityHeaders(options.connectSources ?? DEFAULT_CONNECT_SOURCES);
  const renderMetrics = cachedRender(() => options.registry.metrics());

  // Distinct client sources (per-source keys, host/client-source.ts) holding an open WebSocket:
  // behind a proxy this stays at 1 for any number of users when --trust-proxy is missing.
  const openPerSource = new Map<string, number>();
  new Gauge({
    name: "loft_host_websocket_sources",
    help: "distinct client sources (IPv4 address or IPv6 /64, after --trust-proxy) with an open WebSocket",
    registers: [options.registry],
    collect() {
      this.set(openPerSource.size);
    },
  });

  const responses = new Counter({
    name: "loft_host_http_responses_total",
    help: "HTTP responses by listener (public, metrics) and status class",
    labelNames: ["listener", "class"],
    registers: [options.registry],
  });
  const reports = cspReports(options.registry);

  function withHeaders(
    listener: "public" | "metrics",
    handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  ) {
    return (req: IncomingMessage, res: ServerResponse) => {
      for (const [name, value] of Object.entries(baseHeaders)) res.setHeader(name, value);
      res.once("finish", () => responses.inc({ listener, class: `${Math.floor(res.statusCode / 100)}xx` }));
      handler(req, res).catch((e: unknown) => {
        // A bug or an I/O failure answers 500 (or cuts the response); it never takes the process down.
        options.log.error({ err: e }, "http handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
        else res.destroy();
      });
    };
  }

  const server = createServer(withHeaders("public", handleRequest));
  const metricsServer = separate ? createServer(withHeaders("metrics", handleMetricsRequest)) : undefined;

  /** The reasons services give for not serving now (empty: healthy). */
  const upgradeAnswerMs = options.upgradeAnswerMs ?? UPGRADE_ANSWER_MS;

  function unavailableReasons(): string[] {
    return services.map((s) => s.unavailable?.()).filter((r): r is string => r !== undefined);
  }

  function detailedHealth() {
    const down = unavailableReasons();
    return {
      status: down.length === 0 ? "ok" : "unavailable",
      ...(down.length === 0 ? {} : { reasons: down }),
      uptime_s: Math.round((Date.now() - started) / 1000),
      // The bound in force, so an operator (and the entry points' tests) can see the flag took.
      upgrade_answer_ms: upgradeAnswerMs,
      ...(options.cryptoBackends ? { crypto: { ...options.cryptoBackends } } : {}),
      services: Object.fromEntries(services.map((s) => [s.name, s.health()])),
    };
  }

  function sendJson(req: IncomingMessage, res: ServerResponse, body: unknown, status = 200): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : text);
  }

  async function sendMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await renderMetrics();
    res.writeHead(200, {
      "content-type": options.registry.contentType,
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : text);
  }

  const isRead = (req: IncomingMessage) => req.method === "GET" || req.method === "HEAD";

  function notFound(res: ServerResponse): void {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseTarget(req.url);
    if (!url) {
      res.writeHead(400, { "content-type": "text/plain" }).end("bad request\n");
      return;
    }
    // Contacts' content has an origin of its own (host/content-origin.ts); the app may frame it.
    if (isContentOrigin(req)) {
      await serveContentOrigin(req, res, url.pathname, options.staticDir, {
        sourceMaps: options.serveSourceMaps ?? false,
      });
      return;
    }
    res.setHeader("content-security-policy", appPolicy(req, baseHeaders["content-security-policy"]!));
    if (url.pathname === "/health" && isRead(req)) {
      const down = unavailableReasons();
      sendJson(
        req,
        res,
        metrics === "public"
          ? detailedHealth()
          : down.length === 0
            ? { status: "ok" }
            : { status: "unavailable", reasons: down },
        down.length === 0 ? 200 : 503,
      );
      return;
    }
    if (url.pathname === "/metrics" && isRead(req) && metrics === "public") {
      await sendMetrics(req, res);
      return;
    }
    if (reports.handle(req, res, url.pathname)) return;
    for (const s of services) if (url.pathname.startsWith(s.path) && s.handleHttp?.(req, res)) return;
    if (options.staticDir && isRead(req) && url.pathname !== "/metrics") {
      await serveStatic(options.staticDir, url.pathname, req, res, {
        sourceMaps: options.serveSourceMaps ?? false,
      });
      return;
    }
    notFound(res);
  }

  async function handleMetricsRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = parseTarget(req.url)?.pathname;
    if (!bearerAllowed(req, separate?.token)) {
      res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="loft-metrics"' });
      res.end("unauthorized\n");
      return;
    }
    if (path === "/metrics" && isRead(req)) await sendMetrics(req, res);
    else if (path === "/health" && isRead(req))
      sendJson(req, res, detailedHealth(), unavailableReasons().length === 0 ? 200 : 503);
    else notFound(res);
  }

  /**
   * Per upgraded socket the host keeps one property (its source key) and adds two listeners, both
   * shared functions: no closure per connection (idle WebSockets are counted in bytes,
   * bench/README.md "bench:scale").
   */
  function onUpgradedSocketClose(this: SourcedSocket): void {
    const source = this[SOURCE];
    if (source === undefined) return;
    this[SOURCE] = undefined;
    const left = (openPerSource.get(source) ?? 1) - 1;
    if (left <= 0) openPerSource.delete(source);
    else openPerSource.set(source, left);
  }

  function trackSource(req: IncomingMessage, socket: SourcedSocket): void {
    const source = sourceOf(req, trusted);
    openPerSource.set(source, (openPerSource.get(source) ?? 0) + 1);
    socket[SOURCE] = source;
    socket.on("close", onUpgradedSocketClose);
  }

  const unanswered = new Counter({
    name: "loft_host_upgrades_unanswered_total",
    help: "WebSocket upgrades no service answered within --upgrade-answer-ms: refused with 503, by service",
    labelNames: ["service"],
    registers: [options.registry],
  });

  /** Refuse `socket`'s upgrade with 503 unless its service answers it in time (`upgradeAnswerMs`). */
  function boundUpgrade(socket: Duplex, service: string): void {
    const timer = setTimeout(() => {
      if (upgradeAnswered(socket)) return;
      unanswered.inc({ service });
      options.log.warn({ service, upgradeAnswerMs }, "upgrade not answered in time: refused with 503");
      socket.end(rawResponse(503, "Service Unavailable", baseHeaders), () => socket.destroy());
    }, upgradeAnswerMs);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  }

  server.on("upgrade", (req, socket: SourcedSocket, head) => {
    // Node removes its own error listener from an upgraded socket: without this one, a client that
    // resets the connection while we answer would raise an uncaught 'error' event.
    socket.on("error", destroyOnError);
    try {
      const path = parseTarget(req.url)?.pathname;
      // No service on the content origin: contacts' pages run there (host/content-origin.ts).
      const service =
        path === undefined || isContentOrigin(req) ? undefined : services.find((s) => path === s.path);
      if (!service) {
        const status = path === undefined ? 400 : 404;
        socket.end(rawResponse(status, STATUS_TEXT[status]!, baseHeaders));
        return;
      }
      trackSource(req, socket);
      secureUpgradeRefusals(socket, baseHeaders);
      service.handleUpgrade(req, socket, head);
      if (!upgradeAnswered(socket)) boundUpgrade(socket, service.name);
    } catch (e) {
      options.log.error({ err: e }, "upgrade handler failed");
      socket.destroy();
    }
  });
  // Keep the defaults of a hardened server: no slowloris headers, bounded request sizes.
  for (const s of [server, metricsServer]) {
    if (!s) continue;
    s.headersTimeout = 10_000;
    s.requestTimeout = 30_000;
    s.maxHeadersCount = 64;
  }

  let boundMetricsPort: number | undefined;
  let closeStep: "open" | "services" | "listeners" | "closed" = "open";

  return {
    server,
    registry: options.registry,
    mount(service) {
      services.push(service);
    },
    async listen() {
      const port = await listenOn(server, options.port, options.host).catch((e: unknown) => {
        throw new ListenError("main", options.host, options.port, e);
      });
      if (metricsServer && separate) {
        try {
          boundMetricsPort = await listenOn(metricsServer, separate.port, separate.host);
        } catch (e) {
          server.close();
          throw new ListenError("metrics", separate.host, separate.port, e);
        }
      }
      return port;
    },
    metricsPort: () => boundMetricsPort,
    async close() {
      closeStep = "services";
      await Promise.all(services.map((s) => s.close()));
      closeStep = "listeners";
      await Promise.all([server, metricsServer].map((s) => (s ? closeServer(s) : undefined)));
      closeStep = "closed";
    },
    stillPending() {
      const byService: Record<string, unknown> = {};
      for (const s of services) {
        const left = s.stillPending?.();
        if (left !== undefined) byService[s.path] = left;
      }
      return { step: closeStep, services: byService };
    },
  };
}

/** A listener could not bind: names which one, where, and why (EADDRINUSE, EACCES, …). */
export class ListenError extends Error {
  override name = "ListenError";
  readonly code: string | undefined;
  constructor(
    readonly listener: "main" | "metrics",
    host: string,
    port: number,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`${listener} listener ${host}:${port}: ${code ?? (cause as Error)?.message ?? String(cause)}`, {
      cause,
    });
    this.code = code;
  }
}

function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // server.close() waits for every HTTP connection to end: idle keep-alive ones go now, and a
  // slow download to a client that doesn't read is cut after a short grace.
  server.closeIdleConnections();
  const cut = setTimeout(() => server.closeAllConnections(), HTTP_SHUTDOWN_GRACE_MS);
  await closed;
  clearTimeout(cut);
}

/** The request target as a URL, or undefined when it is not one (`//`, `http://[`, …). */
function parseTarget(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? "/", "http://host.invalid");
  } catch {
    return undefined;
  }
}

/** The stop bound's default (`--shutdown-timeout-ms`, host/standalone.ts `shutdownOptions`). */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export interface StopBound {
  /** How long the graceful close may take before the process exits with code 1 anyway. */
  timeoutMs: number;
  /** What the close still waits for, logged when the bound ends it (`Host.stillPending`). */
  stillPending?: () => unknown;
}

/**
 * SIGTERM/SIGINT → graceful close, then exit 0; a second signal exits at once (1). The close is
 * bounded (docs/operations.md, "Stopping"): an operation that never settles (a store write that
 * hangs, a worker that never answers) must not keep `systemctl stop` or Ctrl-C waiting until the
 * supervisor's SIGKILL, which would say nothing. After `timeoutMs` the process logs what was still
 * pending and exits with code 1: stopped, but not cleanly.
 */
export function closeOnSignals(
  close: () => Promise<void>,
  log: Logger,
  bound: StopBound = { timeoutMs: DEFAULT_SHUTDOWN_TIMEOUT_MS },
): void {
  let closing = false;
  const onSignal = (signal: string) => {
    if (closing) process.exit(1);
    closing = true;
    log.info({ signal, timeoutMs: bound.timeoutMs }, "shutting down");
    // Not unref'd: with only a promise that never settles left, Node would otherwise end the
    // process quietly with code 0, as if the stop had been clean.
    setTimeout(() => {
      let pending: unknown;
      try {
        pending = bound.stillPending?.();
      } catch (e) {
        pending = { unknown: (e as Error)?.message ?? String(e) };
      }
      log.error(
        { timeoutMs: bound.timeoutMs, pending },
        "shutdown did not finish within the stop bound; exiting with code 1",
      );
      process.exit(1);
    }, bound.timeoutMs);
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
