/**
 * The baselines of bench:scale's idle-connection figure (bench/README.md, "bench:scale"): what
 * Node itself costs per held connection, with none of Loft's code — a child process that accepts
 * the bench's idle clients (bench/idle-holder.ts) and holds them:
 *
 * - `net`: bare `node:net` sockets; the 101 answer and the two frames the holder waits for are
 *   written by hand (RFC 6455 §4.2.2, §5.2). The floor of a TCP connection in Node.
 * - `ws`: an `http` server handing its upgrades to a `ws` WebSocketServer (`noServer`, no
 *   compression, no client tracking: the relay's options), which sends the two frames. The floor of
 *   a WebSocket as the relay and signaling accepted them with `--ws-impl ws`.
 * - `lean`: the same `http` server handing its upgrades to our RFC 6455 layer (host/websocket.ts),
 *   as the relay and signaling accept them by default (`--ws-impl lean`).
 *
 * argv: the variant. stdout: `{ port }` once listening. Exits when its stdin closes.
 */
import { createHash } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { acceptUpgrade, type LeanWebSocket } from "../host/websocket.ts";

const variant = process.argv[2];
const held: (Socket | WebSocket | LeanWebSocket)[] = [];
/** A one-byte binary frame from a server (unmasked). */
const FRAME = Buffer.from([0x82, 1, 0]);
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

function netServer(): Server {
  return createNetServer((socket) => {
    socket.on("error", () => socket.destroy());
    let request = "";
    const onData = (d: Buffer) => {
      request += d.toString("latin1");
      if (!request.includes("\r\n\r\n")) return;
      socket.removeListener("data", onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1] ?? "";
      const accept = createHash("sha1")
        .update(key + GUID)
        .digest("base64");
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      socket.write(FRAME);
      socket.once("data", () => socket.write(FRAME));
    };
    socket.on("data", onData);
    held.push(socket);
  });
}

function wsServer(): Server {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
  const server = createHttpServer();
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("error", () => {});
      ws.send(FRAME.subarray(2));
      ws.once("message", () => ws.send(FRAME.subarray(2)));
      held.push(ws);
    });
  });
  return server as unknown as Server;
}

/** Our layer (host/websocket.ts) on an `http` server's upgrades, the relay's limit. */
function leanServer(): Server {
  const server = createHttpServer();
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    const ws = acceptUpgrade(req, socket, head, { maxPayload: 2 * 16 * 1024 });
    if (!ws) return;
    ws.send(FRAME.subarray(2));
    ws.once("message", function (this: LeanWebSocket) {
      this.send(FRAME.subarray(2));
    });
    held.push(ws);
  });
  return server as unknown as Server;
}

const server = variant === "net" ? netServer() : variant === "lean" ? leanServer() : wsServer();
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === "object" && addr ? addr.port : 0 })}\n`);
});
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
