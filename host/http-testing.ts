/**
 * Test helpers for the host's HTTP answers, exactly as they leave the server: node:http requests
 * with the headers we choose (fetch would add Accept-Encoding and decode the body), and raw bytes
 * over a socket for request targets fetch would normalise. Nothing here imitates a server.
 */
import {
  type Agent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from "node:http";
import { request as httpsRequest, type RequestOptions as NodeRequestOptions } from "node:https";
import { createConnection } from "node:net";
import { Registry } from "prom-client";
import { createHost, type Host, type HostOptions } from "./host.ts";
import { createLogger } from "./log.ts";

/**
 * A real host on a free loopback port, with its own registry and a silent log unless `options`
 * say otherwise (call `listen()`; mount services before or after).
 */
export function testHost(options: Partial<HostOptions> = {}): Host {
  return createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir: undefined,
    registry: new Registry(),
    log: createLogger("host-test", "silent"),
    ...options,
  });
}

/** A WebSocket upgrade request for `path`, as raw bytes (`rawExchange`). */
export const upgradeRequest = (path: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body bytes as sent (still compressed when a Content-Encoding was used). */
  body: Buffer;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  localAddress?: string;
  /** A keep-alive agent to reuse sockets with; by default each request has its own connection. */
  agent?: Agent;
  /** The CA to trust: the request goes over TLS (node:https) when this is given. */
  ca?: string | Buffer;
}

/**
 * One request and its whole answer. `target` is a URL, or a loopback port and a request target
 * sent exactly as written (a URL would normalise dot segments and escapes).
 */
export function request(
  target: string | { port: number; path: string },
  options: RequestOptions = {},
): Promise<Answer> {
  const tls = options.ca !== undefined || (typeof target === "string" && target.startsWith("https:"));
  const send = tls ? httpsRequest : httpRequest;
  const settings: NodeRequestOptions = {
    method: options.method ?? "GET",
    headers: options.headers ?? {},
    agent: options.agent ?? false,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  };
  return new Promise((resolve, reject) => {
    const collect = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    };
    const req =
      typeof target === "string"
        ? send(target, settings, collect)
        : send({ ...settings, host: "127.0.0.1", port: target.port, path: target.path }, collect);
    req.on("error", reject);
    req.end();
  });
}

/** Send raw bytes; resolve with everything the server wrote before it closed. */
export function rawExchange(port: number, text: string, reset = false): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection(port, "127.0.0.1");
    let out = "";
    c.on("data", (d) => {
      out += d;
    });
    c.on("error", () => {});
    c.on("close", () => resolve(out));
    c.write(text, () => {
      if (reset) c.resetAndDestroy();
      else c.end();
    });
  });
}

/** The header block of a raw answer, names lowercased. */
export function rawHeaders(answer: string): Map<string, string> {
  const head = answer.split("\r\n\r\n")[0] ?? "";
  const out = new Map<string, string>();
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return out;
}
