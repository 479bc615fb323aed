/**
 * An upgrade no mounted service answers is refused by the host (503) and its socket destroyed,
 * after `upgradeAnswerMs` (host/host.ts `UPGRADE_ANSWER_MS`). A browser keeps one WebSocket per
 * host in CONNECTING and queues the rest (RFC 6455 §4.1): one unanswered upgrade to /relay held
 * up the page's /signal on the same host:port. The service that never answers is a fault
 * stand-in, the host is the real one; an upgrade a service does answer is left alone.
 */
import type { Duplex } from "node:stream";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { createHost, type Host, type HostedService } from "./host.ts";
import { rawExchange } from "./http-testing.ts";
import { createLogger } from "./log.ts";

let host: Host | undefined;
afterEach(() => host?.close());

const upgrade = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

function service(path: string, handleUpgrade: HostedService["handleUpgrade"]): HostedService {
  return { name: path.slice(1), path, handleUpgrade, health: () => ({}), close: async () => {} };
}

describe("host: an unanswered upgrade is bounded", () => {
  it("a service that never answers: the host refuses with 503 and closes the socket; an answered one is left alone", async () => {
    host = createHost({
      port: 0,
      host: "127.0.0.1",
      staticDir: undefined,
      registry: new Registry(),
      log: createLogger("host-test", "silent"),
      upgradeAnswerMs: 200,
    });
    const held: Duplex[] = [];
    host.mount(service("/stuck", (_req, socket) => void held.push(socket)));
    const wss = new WebSocketServer({ noServer: true });
    const open: Duplex[] = [];
    host.mount(
      service("/open", (req, socket, head) =>
        wss.handleUpgrade(req, socket, head, () => void open.push(socket)),
      ),
    );
    const port = await host.listen();
    const answer = await rawExchange(port, upgrade("/stuck"));
    expect(answer).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(held).toHaveLength(1);
    expect(held[0]?.destroyed).toBe(true);
    const answered = await rawExchange(port, upgrade("/open"));
    expect(answered).toMatch(/^HTTP\/1\.1 101 /);
    expect(answered).not.toMatch(/503/);
    expect(open).toHaveLength(1);
    wss.close();
  });
});
