/**
 * The bridge under a slow browser (docs/protocol/smp.md, "The bridge": backpressure passes
 * through): an SMP server that writes blocks as fast as TCP lets it, and a browser that stops
 * reading after the handshake. The bridge holds a bounded amount for the browser (its WebSocket
 * queue up to WS_HIGH_WATER, then it stops reading the server's TLS connection), so the server's
 * writes stall instead of the relay's memory growing; once the browser reads again, every block
 * arrives, in order, once.
 *
 * The server is a test TLS server with a Loft SMP certificate chain (smp/server/certs.ts) whose
 * hello is bound to the connection as the bridge checks; after the client hello it sends numbered
 * 16 384-byte blocks (the bridge forwards blocks without parsing them).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { formatSmpServerAddress } from "../../core/smp/address.ts";
import { decodeBridgeFrame, encodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import {
  encodeBlock,
  encodeClientHello,
  encodeServerHello,
  SMP_ALPN,
  SMP_BLOCK_SIZE,
} from "../../core/smp/transport.ts";
import { WS_HIGH_WATER } from "../../smp/bridge/tunnel.ts";
import { loadOrCreateCredentials } from "../../smp/server/certs.ts";
import { startTestBridge, type TestBridge } from "./bridge-testing.ts";

/** Blocks the server sends in all: far more than loopback's socket buffers hold (~48 MiB). */
const BLOCKS = 3000;
const dir = mkdtempSync(join(tmpdir(), "loft-smp-backpressure-"));
const creds = loadOrCreateCredentials(dir, "localhost");
let bridge: TestBridge;
let server: Server;
let port: number;
/** What the flooding server did: blocks written so far, and whether it waits for "drain". */
const sent = { blocks: 0, waiting: false };

function numbered(n: number): Uint8Array {
  const block = new Uint8Array(SMP_BLOCK_SIZE);
  new DataView(block.buffer).setUint32(0, n);
  block[SMP_BLOCK_SIZE - 1] = 0x23;
  return block;
}

beforeAll(async () => {
  bridge = await startTestBridge();
  server = createServer(
    { cert: creds.certPem, key: creds.keyPem, minVersion: "TLSv1.2", ALPNProtocols: [SMP_ALPN] },
    (socket: TLSSocket) => {
      const sessionId = new Uint8Array(socket.getPeerFinished()!);
      socket.write(encodeBlock(encodeServerHello({ versions: { min: 6, max: 6 }, sessionId }))!);
      let read = 0;
      const pump = () => {
        sent.waiting = false;
        while (sent.blocks < BLOCKS) {
          if (!socket.write(numbered(sent.blocks++))) {
            sent.waiting = true;
            socket.once("drain", pump);
            return;
          }
        }
      };
      socket.on("data", (d: Buffer) => {
        const before = read;
        read += d.length;
        if (before < SMP_BLOCK_SIZE && read >= SMP_BLOCK_SIZE) pump(); // after the client hello
      });
      socket.on("error", () => {});
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await bridge?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("SMP bridge backpressure", () => {
  it("a browser that stops reading stops the bridge reading the server: bounded memory, then every block in order", async () => {
    const address = formatSmpServerAddress({ fingerprint: creds.fingerprint, host: "localhost", port });
    const ws = new WebSocket(bridge.url);
    const blocks: number[] = [];
    let hello = false;
    ws.on("message", (d: Buffer) => {
      const f = decodeBridgeFrame(new Uint8Array(d));
      if (f?.kind !== "BLOCK") return;
      if (!hello) {
        hello = true;
        const reply = encodeBlock(encodeClientHello({ version: 6, keyHash: creds.fingerprint }))!;
        ws.send(encodeBridgeFrame({ kind: "BLOCK", block: reply }));
        // The browser is busy from now on: its socket is not read.
        ws.pause();
        return;
      }
      blocks.push(new DataView(f.block.buffer, f.block.byteOffset).getUint32(0));
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.send(encodeBridgeFrame({ kind: "OPEN", address }));
    try {
      // Steady state: the server waits for "drain", the bridge has stopped reading it, and two
      // looks in a row see the same number of blocks written.
      let last = -1;
      await expect
        .poll(
          () => {
            const health = bridge.service.health() as { paused: number };
            const stalled = sent.waiting && health.paused === 1 && sent.blocks === last;
            last = sent.blocks;
            return stalled;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toBe(true);
      const held = bridge.service.health() as { heldBytes: number };
      // What the bridge holds: its WebSocket queue up to the high-water mark plus at most one
      // TLS read (64 KiB) and a partial block — not what the server kept sending.
      expect(held.heldBytes).toBeLessThanOrEqual(WS_HIGH_WATER + 64 * 1024 + SMP_BLOCK_SIZE);
      expect(sent.blocks).toBeLessThan(BLOCKS);
      expect(blocks.length).toBe(0);

      // The browser reads again: the bridge resumes the server, and everything arrives, once, in order.
      ws.resume();
      await expect.poll(() => blocks.length, { timeout: 60_000 }).toBe(BLOCKS);
      expect(blocks.every((n, i) => n === i)).toBe(true);
    } finally {
      ws.terminate();
    }
  });
});
