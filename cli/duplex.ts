/**
 * `loft send` while `loft listen` (or `loft expose`) runs with the same identity (docs/user-guide.md
 * "The command line"): one process holds an identity's state (state-file.ts, the lock), so the
 * running peer takes sends from others over a local socket, `<identity file>.state.sock`, and
 * sends them with its own engine — same session, same ratchet, same outbox.
 *
 * Who may hand a message over: the socket is created with mode 0600 (only this user can connect),
 * and each request carries an HMAC-SHA-256, under a key derived from the state key, of a nonce the
 * listener chose for this connection and of the request — so only a process that opened the
 * identity file (it has the passphrase) can send as this identity, and a request seen once cannot
 * be replayed on another connection.
 *
 * Exchange, one request per connection, newline-delimited JSON (each line ≤ 64 KiB):
 *
 *   listener → {"type":"hello","v":1,"id":<this peer's id>,"nonce":<32 hex>}
 *   sender   → {"type":"send","to":<contact>,"text":<text>,"wait":"left"|"delivered",
 *               "timeout":<seconds>,"mac":<64 hex>}
 *   listener → {"type":"sent","id","to","state","reason"?}  or  {"type":"error","message"}
 *
 * mac = HMAC-SHA-256(HKDF-SHA-256(state key, salt "loft-cli-send", info "v1"),
 *                    "loft-cli-send v1\n" ‖ nonce ‖ "\n" ‖ to ‖ "\n" ‖ wait ‖ "\n" ‖ timeout ‖ "\n" ‖ text)
 *
 * A connection that sends nothing for 10 s, a line over 64 KiB, a malformed or unauthentic
 * request gets an error line and is closed; more than 16 connections at once are refused.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, unlink } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { MAX_TEXT_CHARS } from "../web/src/engine/outgoing.ts";
import type { HeadlessPeer } from "./peer.ts";

export const MAX_LINE_BYTES = 64 * 1024;
const IDLE_MS = 10_000;
const MAX_CONNECTIONS = 16;
const MAC_LABEL = "loft-cli-send v1\n";

export interface SendRequest {
  to: string;
  text: string;
  wait: "left" | "delivered";
  /** Seconds, 1…86 400. */
  timeout: number;
}

export type SendReply =
  | { type: "sent"; id: string; to: string; state: string; reason?: string }
  | { type: "error"; message: string };

/** The socket next to a state file. */
export const socketPathOf = (statePath: string) => `${statePath}.sock`;

/** The key the requests' MACs are made with, from the state key (never the state key itself). */
export function sendKeyOf(stateKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", stateKey, "loft-cli-send", "v1", 32));
}

/** The request's MAC for the connection's `nonce` (exported for tests). */
export function macOf(key: Uint8Array, nonce: string, r: SendRequest): string {
  return createHmac("sha256", key)
    .update(`${MAC_LABEL}${nonce}\n${r.to}\n${r.wait}\n${r.timeout}\n${r.text}`)
    .digest("hex");
}

/**
 * One request line, checked field by field; the reason when it is not one. The MAC is checked
 * by the caller (it needs the connection's nonce).
 */
export function parseSendRequest(
  line: string,
): { ok: true; request: SendRequest; mac: string } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return { ok: false, error: "not a request" };
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(",");
  if (keys !== "mac,text,timeout,to,type,wait") return { ok: false, error: "unexpected or missing fields" };
  if (o.type !== "send") return { ok: false, error: "unknown request type" };
  if (typeof o.to !== "string" || o.to.length === 0 || o.to.length > 256 || /[\n\r]/.test(o.to))
    return { ok: false, error: "bad contact" };
  if (typeof o.text !== "string" || o.text.length === 0 || o.text.length > MAX_TEXT_CHARS)
    return { ok: false, error: `text must be 1 to ${MAX_TEXT_CHARS} characters` };
  if (o.wait !== "left" && o.wait !== "delivered") return { ok: false, error: "bad wait" };
  if (typeof o.timeout !== "number" || !Number.isInteger(o.timeout) || o.timeout < 1 || o.timeout > 86_400)
    return { ok: false, error: "bad timeout" };
  if (typeof o.mac !== "string" || !/^[0-9a-f]{64}$/.test(o.mac)) return { ok: false, error: "bad mac" };
  return { ok: true, request: { to: o.to, text: o.text, wait: o.wait, timeout: o.timeout }, mac: o.mac };
}

/**
 * Read newline-terminated lines of at most MAX_LINE_BYTES from a socket. After a longer one,
 * `onTooLong` once and nothing more is kept or read out (the buffer would otherwise grow).
 */
function lines(socket: Socket, onLine: (line: string) => void, onTooLong: () => void): void {
  let buffered = "";
  let over = false;
  const tooLong = () => {
    over = true;
    buffered = "";
    onTooLong();
  };
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    if (over) return;
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) return tooLong();
      onLine(line);
    }
    if (Buffer.byteLength(buffered) > MAX_LINE_BYTES) tooLong();
  });
}

/**
 * Take sends on `path` for `peer` (the listener's side). Resolves once listening; the returned
 * function stops taking them and removes the socket.
 */
export async function serveSends(
  peer: HeadlessPeer,
  path: string,
  stateKey: Uint8Array,
): Promise<() => Promise<void>> {
  const key = sendKeyOf(stateKey);
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const reply = (r: SendReply) => {
      if (!socket.destroyed) socket.end(`${JSON.stringify(r)}\n`);
    };
    if (open.size >= MAX_CONNECTIONS) return reply({ type: "error", message: "too many sends at once" });
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    socket.setTimeout(IDLE_MS, () => reply({ type: "error", message: "no request in time" }));
    const nonce = randomBytes(16).toString("hex");
    socket.write(`${JSON.stringify({ type: "hello", v: 1, id: peer.id, nonce })}\n`);
    let taken = false;
    lines(
      socket,
      (line) => {
        if (taken) return;
        taken = true;
        const parsed = parseSendRequest(line);
        if (!parsed.ok) return reply({ type: "error", message: `refused: ${parsed.error}` });
        const expected = Buffer.from(macOf(key, nonce, parsed.request), "hex");
        if (!timingSafeEqual(expected, Buffer.from(parsed.mac, "hex")))
          return reply({ type: "error", message: "refused: not sent by this identity (wrong key or nonce)" });
        socket.setTimeout(0); // the send itself may take up to the request's timeout
        const r = parsed.request;
        peer.send(r.to, r.text, r.wait, r.timeout * 1000).then(
          (s) =>
            reply({
              type: "sent",
              id: s.id,
              to: s.contact.id,
              state: s.state,
              ...(s.reason ? { reason: s.reason } : {}),
            }),
          (e: unknown) => reply({ type: "error", message: (e as Error).message }),
        );
      },
      () => {
        taken = true;
        reply({ type: "error", message: `refused: a line over ${MAX_LINE_BYTES} bytes` });
      },
    );
  });
  server.maxConnections = MAX_CONNECTIONS * 2;
  // A socket left by a listener that was killed: we hold the state's lock, so nobody else uses it.
  await unlink(path).catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Made 0600 from the start (umask), not chmod-ed after: no moment where others could connect.
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(umask);
    }
  });
  await chmod(path, 0o600);
  return async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(path).catch(() => {});
  };
}

/** Why handing over failed: nobody listens (`absent`), or the listener refused or broke off. */
export class HandOverError extends Error {
  constructor(
    readonly code: "absent" | "refused",
    message: string,
  ) {
    super(message);
  }
}

/**
 * Hand `request` to the peer listening on `path` (the sender's side), proving the identity with
 * `stateKey`; resolves with its reply. `absent` when no listener answers there.
 */
export function handOver(
  path: string,
  stateKey: Uint8Array,
  request: SendRequest,
): Promise<SendReply & { type: "sent" }> {
  const key = sendKeyOf(stateKey);
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let hello = false;
    let settled = false;
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      f();
    };
    // The listener answers a hello at once; the send then takes at most its own timeout.
    const timer = setTimeout(
      () => done(() => reject(new HandOverError("refused", "the running loft did not answer in time"))),
      (request.timeout + 10) * 1000,
    );
    socket.on("error", (e: NodeJS.ErrnoException) =>
      done(() =>
        reject(
          e.code === "ENOENT" || e.code === "ECONNREFUSED"
            ? new HandOverError("absent", "no running loft takes sends for this identity")
            : new HandOverError("refused", `the running loft's socket: ${e.message}`),
        ),
      ),
    );
    socket.on("close", () =>
      done(() => reject(new HandOverError("refused", "the running loft closed the connection"))),
    );
    lines(
      socket,
      (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return done(() => reject(new HandOverError("refused", "the running loft answered garbage")));
        }
        if (!hello) {
          hello = true;
          if (m.type !== "hello" || typeof m.nonce !== "string")
            return done(() => reject(new HandOverError("refused", "the running loft answered garbage")));
          const mac = macOf(key, m.nonce, request);
          socket.write(`${JSON.stringify({ type: "send", ...request, mac })}\n`);
          return;
        }
        if (m.type === "sent") return done(() => resolve(m as SendReply & { type: "sent" }));
        done(() =>
          reject(
            new HandOverError("refused", `the running loft refused: ${String(m.message ?? "no reason")}`),
          ),
        );
      },
      () => done(() => reject(new HandOverError("refused", "the running loft answered garbage"))),
    );
  });
}
