/**
 * Graceful shutdown must not hang on clients that stop talking: a WebSocket client that never
 * answers the close frame (ws would otherwise wait 30 s for it) and an HTTP client that never reads
 * its response are cut after the grace period, and the host's close() resolves.
 */

import { mkdtempSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createHost } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { defaultRelayConfig } from "./config.ts";
import { createRelayService } from "./service.ts";

/** Completes a WebSocket upgrade by hand and then ignores everything (never answers a close). */
function silentWebSocket(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, "127.0.0.1");
    socket.on("error", () => {});
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    let head = "";
    socket.on("data", (d) => {
      head += d.toString("latin1");
      if (head.startsWith("HTTP/1.1 101")) resolve({ socket, closed });
      else if (head.includes("\r\n\r\n")) reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
    });
    socket.write(
      "GET /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
  });
}

describe("relay shutdown", () => {
  it("cuts a client that never answers the close frame, and close() resolves", {
    timeout: 20_000,
  }, async () => {
    const registry = new Registry();
    const log = createLogger("shutdown-test", "silent");
    const host = createHost({ port: 0, host: "127.0.0.1", staticDir: undefined, registry, log });
    const dataDir = mkdtempSync(join(tmpdir(), "loft-relay-shutdown-"));
    host.mount(createRelayService({ ...defaultRelayConfig(), dataDir }, { registry, log }));
    const port = await host.listen();
    const client = await silentWebSocket(port);
    await host.close();
    await client.closed;
    expect(client.socket.destroyed).toBe(true);
  });
});
