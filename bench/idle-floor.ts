/**
 * The baselines of bench:scale's idle-connection figure (bench/README.md, "bench:scale"): what
 * Node itself costs per held connection, with none of Loft's code — a child process that accepts
 * the bench's idle clients (bench/idle-holder.ts) and holds them:
 *
 * - `net`: bare `node:net` sockets; the 101 answer and the two frames the holder waits for are
 *   written by hand (RFC 6455 §4.2.2, §5.2). The floor of a TCP connection in Node.
 * - `ws`: an `http` server handing its upgrades to a `ws` WebSocketServer (`noServer`, no
 *   compression, no client tracking: the relay's options), which sends the two frames. The floor of
 *   a WebSocket as the relay and signaling accept them.
 *
 * argv: the variant. stdout: `{ port }` once listening. Exits when its stdin closes.
 */
import { createHash } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

const variant = process.argv[2];
const held: (Socket | WebSocket)[] = [];
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

/** Prototype: http upgrade, then own framing on the socket; shared listeners, no buffers when idle. */
const CONN = Symbol("conn");
class Lean {
  buf: Buffer | undefined = undefined;
  frames = 0;
  constructor(readonly socket: Socket) {}
}
function leanData(this: Socket & { [CONN]: Lean }, d: Buffer) {
  const c = this[CONN];
  c.buf = c.buf ? Buffer.concat([c.buf, d]) : d;
  // minimal: one masked frame with a short payload
  const b = c.buf;
  if (b.length < 6) return;
  const len = b[1]! & 0x7f;
  if (b.length < 6 + len) return;
  c.buf = b.length > 6 + len ? b.subarray(6 + len) : undefined;
  const op = b[0]! & 0xf;
  if (op === 0x2 && ++c.frames === 1) this.write(FRAME);
  else if (op === 0x9) this.write(Buffer.from([0x8a, 0]));
}
function leanError(this: Socket) {
  this.destroy();
}
function leanServer(): Server {
  const server = createHttpServer();
  server.on("upgrade", (req, socket: Socket & { [CONN]: Lean }, head: Buffer) => {
    const accept = createHash("sha1")
      .update(req.headers["sec-websocket-key"] + GUID)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.write(FRAME);
    socket[CONN] = new Lean(socket);
    socket.on("data", leanData);
    socket.on("error", leanError);
    if (head.length) leanData.call(socket, head);
    held.push(socket);
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
