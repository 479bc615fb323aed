/**
 * A child process of bench/scale.ts that opens and holds idle relay WebSockets (docs/protocol/relay.md
 * §Opening: the version headers, then HELLO) from loopback source addresses, speaking RFC 6455 on
 * raw TCP sockets: a bench client costs a few hundred bytes per connection this way, where a `ws`
 * client costs kilobytes, so one machine can hold 50 000 of them without the client side being
 * what is measured. It answers the relay's heartbeat pings (RFC 6455 §5.5.2) so that nothing is
 * cut while the figures are read.
 *
 * Its file descriptors are its own: the parent splits the connections over several holders so
 * that none passes `ulimit -n` (the bench never raises a limit).
 *
 * argv: JSON `{ targets: [{ host, port, path }], count, firstSource, perSource, concurrency }`.
 * stdout: one JSON line per progress step (`{ held, failed }`) and `{ done: true, held, failed }`.
 * It holds until its stdin closes (the parent's end), then exits.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { RELAY_VERSION_AUTHENTICATOR } from "../core/relay/protocol.ts";

export interface Plan {
  targets: { host: string; port: number; path: string }[];
  count: number;
  /** Index of the first source address (see `sourceAddress`). */
  firstSource: number;
  perSource: number;
  concurrency: number;
  /** Whose opening: the relay's (default; its header, then HELLO) or signaling's (its header, then CHALLENGE). */
  service?: "relay" | "signaling";
  /**
   * Churn: of every `churn` connections opened, one is held and the others closed (TCP closed)
   * as soon as their opening completes — `count × churn` openings, interleaved, so the held ones
   * are spread among connections that came and went (bench/idle-census.ts `--churn`). 1 (default): none.
   */
  churn?: number;
}

const plan = JSON.parse(process.argv[2] ?? "{}") as Plan;
const OPEN_TIMEOUT_MS = 60_000;

/** Source address number s: 127.0.0.2 … 127.0.0.251, then 127.0.1.2 …, all on loopback. */
export function sourceAddress(s: number): string {
  return `127.0.${Math.floor(s / 250)}.${2 + (s % 250)}`;
}

/** A client frame (RFC 6455 §5.2): FIN, opcode, masked with a zero key (the payload unchanged). */
function clientFrame(opcode: number, payload: Uint8Array): Buffer {
  if (payload.length > 125) throw new Error("bench frames are short");
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}

const HEADER = clientFrame(
  0x2,
  encodeVersionHeader(plan.service === "signaling" ? SIGNALING_VERSION : RELAY_VERSION_AUTHENTICATOR),
);

/**
 * Opens one connection; resolves once the second server frame after the 101 arrived (the relay's
 * HELLO, or signaling's CHALLENGE).
 * After that the socket only answers pings.
 */
function open(target: Plan["targets"][number], localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port, localAddress });
    let buf: Buffer = Buffer.alloc(0);
    let upgraded = false;
    let frames = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("open timed out"));
    }, OPEN_TIMEOUT_MS);
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("connect", () => {
      socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      );
    });
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!buf.subarray(0, 12).toString().startsWith("HTTP/1.1 101")) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(buf.subarray(0, buf.indexOf("\r\n")).toString()));
          return;
        }
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      // Server frames are unmasked; lengths 0–125 or 126 + u16 (HELLO is under 200 bytes).
      while (buf.length >= 2) {
        const opcode = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          socket.destroy(new Error("unexpected large frame"));
          return;
        }
        if (buf.length < at + len) return;
        const payload = buf.subarray(at, at + len);
        buf = buf.subarray(at + len);
        if (opcode === 0x9) socket.write(clientFrame(0xa, payload));
        else if (opcode === 0x8) socket.destroy();
        else if (opcode === 0x2 && ++frames === 1) socket.write(HEADER);
        else if (frames === 2) {
          clearTimeout(timer);
          resolve(socket);
        }
      }
      if (buf.length === 0) buf = Buffer.alloc(0);
    });
  });
}

async function main() {
  const held: Socket[] = [];
  let failed = 0;
  let next = 0;
  let lastReport = 0;
  const report = (extra: Record<string, unknown> = {}) =>
    process.stdout.write(`${JSON.stringify({ held: held.length, failed, ...extra })}\n`);
  const churn = Math.max(1, Math.floor(plan.churn ?? 1));
  const openings = plan.count * churn;
  const worker = async () => {
    while (next < openings) {
      const i = next++;
      const target = plan.targets[Math.floor(i / churn) % plan.targets.length]!;
      try {
        const socket = await open(target, sourceAddress(plan.firstSource + Math.floor(i / plan.perSource)));
        if (i % churn === churn - 1) held.push(socket);
        else socket.destroy();
      } catch {
        failed++;
      }
      if (held.length - lastReport >= 1000) {
        lastReport = held.length;
        report();
      }
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  report({ done: true });
  process.stdin.resume();
  process.stdin.on("end", () => {
    for (const s of held) s.destroy();
    process.exit(0);
  });
}

void main();
