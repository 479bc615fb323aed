/**
 * host/websocket.ts: our RFC 6455 server side. The frame parser is fuzzed on an in-process duplex
 * (random bytes, valid frames split at random points, oversized and 64-bit lengths, unmasked
 * frames); the handshake and every close path run on a real `node:http` server on loopback, with
 * `ws` as the client (a second implementation) and raw TCP clients for what `ws` would not send.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { Duplex, PassThrough } from "node:stream";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import {
  acceptUpgrade,
  closingHeld,
  compactListeners,
  type LeanWebSocket,
  parseSubprotocols,
  unmask,
  validCloseCode,
} from "./websocket.ts";
import { createUpgrader, type ServerSocket, type WsImpl } from "./websocket-server.ts";

/** ws's own parser of `Sec-WebSocket-Protocol` (lib/subprotocol.js), the reference ours must match. */
const requireHere = createRequire(import.meta.url);
// Not in ws's "exports": reached by its path next to the package's main file.
const wsSubprotocol = requireHere(join(dirname(requireHere.resolve("ws")), "lib", "subprotocol.js")) as {
  parse(header: string): Set<string>;
};

const MAX = 1024;

/** A client frame (RFC 6455 §5.2), masked unless told otherwise. */
function clientFrame(
  opcode: number,
  payload: Uint8Array,
  o: { fin?: boolean; mask?: boolean; rsv?: number; key?: Uint8Array } = {},
): Buffer {
  const n = payload.length;
  const masked = o.mask ?? true;
  const head: number[] = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  const m = masked ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 0xff);
  else head.push(m | 127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  const key = o.key ?? Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
  const body = Buffer.from(payload);
  if (masked) for (let i = 0; i < n; i++) body[i] = body[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), masked ? Buffer.from(key) : Buffer.alloc(0), body]);
}

/** Server frames (unmasked) parsed from what the server wrote. */
function serverFrames(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  const out: { opcode: number; payload: Buffer }[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let n = bytes[at + 1]! & 0x7f;
    let h = 2;
    if (n === 126) {
      n = bytes.readUInt16BE(at + 2);
      h = 4;
    } else if (n === 127) {
      n = bytes.readUInt32BE(at + 6);
      h = 10;
    }
    out.push({ opcode, payload: bytes.subarray(at + h, at + h + n) });
    at += h + n;
  }
  return out;
}

/** An in-process duplex standing for the upgraded socket: records what the server writes. */
class Pipe extends Duplex {
  written: Buffer[] = [];
  ended = false;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.ended = true;
    cb();
  }
  frames() {
    return serverFrames(Buffer.concat(this.written));
  }
}

interface Seen {
  messages: { data: Buffer; binary: boolean }[];
  pings: Buffer[];
  errors: { code: string; closeCode: number }[];
}

function onPipe(): { ws: LeanWebSocket; pipe: Pipe; seen: Seen } {
  const pipe = new Pipe();
  const ws = acceptUpgrade(fakeRequest(), pipe, Buffer.alloc(0), {
    maxPayload: MAX,
    closeTimeoutMs: 50,
  }) as LeanWebSocket;
  pipe.written = []; // the 101
  const seen: Seen = { messages: [], pings: [], errors: [] };
  ws.on("message", (data: Buffer, binary: boolean) =>
    seen.messages.push({ data: Buffer.from(data), binary }),
  );
  ws.on("ping", (d: Buffer) => seen.pings.push(Buffer.from(d)));
  ws.on("error", (e: { code: string; closeCode: number }) =>
    seen.errors.push({ code: e.code, closeCode: e.closeCode }),
  );
  return { ws, pipe, seen };
}

function fakeRequest() {
  return {
    method: "GET",
    headers: {
      upgrade: "websocket",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  } as unknown as import("node:http").IncomingMessage;
}

/** Feed `bytes` in pieces cut at `cuts` (offsets, any order). */
function feed(ws: LeanWebSocket, bytes: Buffer, cuts: number[] = []): void {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const c of [...at, bytes.length]) {
    if (c > from) ws.received(Buffer.from(bytes.subarray(from, c)));
    from = Math.max(from, c);
  }
}

function closeCodeSent(pipe: Pipe): number | undefined {
  const close = pipe.frames().find((f) => f.opcode === 0x8);
  return close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined;
}

describe("frame parser (fuzzed)", () => {
  it("answers the handshake's sample key as RFC 6455 §1.3 does", () => {
    const pipe = new Pipe();
    acceptUpgrade(fakeRequest(), pipe, Buffer.alloc(0), { maxPayload: MAX });
    expect(Buffer.concat(pipe.written).toString()).toContain(
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    );
  });

  it("random handshake headers: a 101 with the key's accept, or 400 / 426 — never a throw, never a connection otherwise", () => {
    const good = "dGhlIHNhbXBsZSBub25jZQ==";
    fc.assert(
      fc.property(
        fc.constantFrom("GET", "POST", "get"),
        fc.option(fc.constantFrom("websocket", "WebSocket", "h2c", ""), { nil: undefined }),
        fc.option(
          fc.oneof(fc.constant(good), fc.string({ maxLength: 30 }), fc.base64String({ maxLength: 30 })),
          {
            nil: undefined,
          },
        ),
        fc.option(fc.constantFrom("13", "8", "", "13, 8", "14"), { nil: undefined }),
        (method, upgrade, key, version) => {
          const pipe = new Pipe();
          const req = {
            method,
            headers: {
              ...(upgrade === undefined ? {} : { upgrade }),
              ...(key === undefined ? {} : { "sec-websocket-key": key }),
              ...(version === undefined ? {} : { "sec-websocket-version": version }),
            },
          } as unknown as import("node:http").IncomingMessage;
          const ws = acceptUpgrade(req, pipe, Buffer.alloc(0), { maxPayload: MAX });
          const answer = Buffer.concat(pipe.written).toString();
          const valid =
            method === "GET" &&
            upgrade?.toLowerCase() === "websocket" &&
            version === "13" &&
            key !== undefined &&
            /^[+/0-9A-Za-z]{22}==$/.test(key);
          if (valid) {
            expect(ws).toBeDefined();
            expect(answer.startsWith("HTTP/1.1 101 Switching Protocols\r\n")).toBe(true);
            if (key === good)
              expect(answer).toContain("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
          } else {
            expect(ws).toBeUndefined();
            expect(answer).toMatch(version === "13" ? /^HTTP\/1\.1 400 / : /^HTTP\/1\.1 426 /);
            expect(pipe.ended).toBe(true);
          }
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("Sec-WebSocket-Protocol: parsed as ws parses it (differential, random headers), the first name echoed", () => {
    const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,8}$/);
    const header = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc
        .array(fc.oneof(token, fc.constantFrom("", " ", "\t", "a b", "é", "x")), { maxLength: 5 })
        .chain((names) =>
          fc
            .array(fc.constantFrom(",", ", ", " ,", ",\t", " , ", ",,"), {
              minLength: Math.max(0, names.length - 1),
              maxLength: Math.max(0, names.length - 1),
            })
            .map((seps) => names.map((n, i) => n + (seps[i] ?? "")).join("")),
        ),
    );
    fc.assert(
      fc.property(header, (h) => {
        let theirs: string[] | undefined;
        try {
          theirs = [...wsSubprotocol.parse(h)];
        } catch {
          theirs = undefined;
        }
        expect(parseSubprotocols(h)).toEqual(theirs);
        const pipe = new Pipe();
        const req = fakeRequest();
        req.headers["sec-websocket-protocol"] = h;
        const ws = acceptUpgrade(req, pipe, Buffer.alloc(0), { maxPayload: MAX });
        const answer = Buffer.concat(pipe.written).toString();
        if (theirs) {
          expect(ws?.protocol).toBe(theirs[0]);
          expect(answer).toContain(`\r\nSec-WebSocket-Protocol: ${theirs[0]}\r\n\r\n`);
        } else {
          expect(ws).toBeUndefined();
          expect(answer).toMatch(/^HTTP\/1\.1 400 /);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
    // None offered: none named, `protocol` empty (as ws's).
    const pipe = new Pipe();
    expect(acceptUpgrade(fakeRequest(), pipe, Buffer.alloc(0), { maxPayload: MAX })?.protocol).toBe("");
    expect(Buffer.concat(pipe.written).toString()).not.toContain("Sec-WebSocket-Protocol");
  });

  it("random bytes: never throws, never hands over more than the limit, closes only with 1002/1007/1009", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const { ws, pipe, seen } = onPipe();
        feed(ws, Buffer.from(bytes), cuts);
        for (const m of seen.messages) expect(m.data.length).toBeLessThanOrEqual(MAX);
        const code = closeCodeSent(pipe);
        // A violation closes with its own code; a well-formed close frame among the bytes is echoed.
        if (seen.errors.length > 0) {
          expect(seen.errors).toHaveLength(1);
          expect([1002, 1007, 1009]).toContain(code);
          expect(code).toBe(seen.errors[0]!.closeCode);
          expect(pipe.ended).toBe(true);
        } else if (code !== undefined) expect(validCloseCode(code)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("unmask: byte i XOR key byte i mod 4 at any length and alignment, nothing outside the payload touched", () => {
    fc.assert(
      fc.property(
        // Lengths drawn outright: fast-check's default size keeps arrays shorter than the word path.
        fc.integer({ min: 0, max: 300 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 7 }),
        (bytes, key, offset) => {
          const whole = new Uint8Array(offset + bytes.length + 8).fill(0xa5);
          whole.set(bytes, offset);
          const payload = whole.subarray(offset, offset + bytes.length);
          unmask(payload, key);
          expect(Buffer.from(payload).equals(Buffer.from(bytes.map((b, i) => b ^ key[i & 3]!)))).toBe(true);
          for (let i = 0; i < offset; i++) expect(whole[i]).toBe(0xa5);
          for (let i = offset + bytes.length; i < whole.length; i++) expect(whole[i]).toBe(0xa5);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("sendParts writes exactly the frame send writes of the pieces joined, large pieces uncopied, its callback once", async () => {
    // Sizes around the header forms (§5.2: 125, 65 535) and the copy threshold (4 096).
    const size = fc.oneof(
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 4090, max: 4100 }),
      fc.integer({ min: 15_000, max: 17_000 }),
      fc.integer({ min: 65_530, max: 65_540 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(size, { maxLength: 6 }),
        fc.integer({ min: 0, max: 255 }),
        async (sizes, fill) => {
          const parts = sizes.map((n, k) => new Uint8Array(n).fill((fill + k) & 0xff));
          const a = onPipe();
          let calls = 0;
          const written = new Promise<void>((resolve) =>
            a.ws.sendParts(parts, (e) => {
              expect(e).toBeFalsy();
              calls++;
              resolve();
            }),
          );
          const b = onPipe();
          b.ws.send(Buffer.concat(parts), { binary: true });
          expect(Buffer.concat(a.pipe.written).equals(Buffer.concat(b.pipe.written))).toBe(true);
          const frames = a.pipe.frames();
          expect(frames).toHaveLength(1);
          expect(frames[0]!.opcode).toBe(0x2);
          // A piece over the threshold reaches the socket as it is (its own memory), not copied.
          for (const p of parts)
            if (p.length > 4096) expect(a.pipe.written.some((w) => w.buffer === p.buffer)).toBe(true);
          await written;
          await new Promise((resolve) => setImmediate(resolve));
          expect(calls).toBe(1);
        },
      ),
      // Up to ~400 KB of pieces per case, written twice: 2 000 cases cover the few header forms
      // and thresholds drawn from (FUZZ_RUNS of them would allocate gigabytes for no new case).
      { numRuns: Math.min(FUZZ_RUNS, 2000) },
    );
  });

  it("sendParts on a connection that is closing or gone: nothing written, the callback gets an error", async () => {
    const { ws, pipe } = onPipe();
    ws.close(1000);
    pipe.written = [];
    const err = await new Promise<Error | null | undefined>((resolve) =>
      ws.sendParts([Buffer.from("x")], resolve),
    );
    expect(err).toBeInstanceOf(Error);
    expect(pipe.written).toEqual([]);
  });

  const message = fc.record({
    binary: fc.boolean(),
    payload: fc.uint8Array({ maxLength: MAX }),
    pieces: fc.array(fc.nat(), { maxLength: 4 }),
    pingBetween: fc.boolean(),
  });

  it("valid messages, fragmented and split across reads at random: each handed over whole, in order", () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (msgs, cuts) => {
          const { ws, pipe, seen } = onPipe();
          const frames: Buffer[] = [];
          const sent: { data: Buffer; binary: boolean }[] = [];
          for (const m of msgs) {
            const data = m.binary
              ? Buffer.from(m.payload)
              : Buffer.from(Buffer.from(m.payload).toString("hex"));
            const content = data.subarray(0, MAX);
            sent.push({ data: content, binary: m.binary });
            const bounds = [...new Set(m.pieces.map((p) => p % (content.length + 1)))].sort((a, b) => a - b);
            const parts: Buffer[] = [];
            let from = 0;
            for (const b of [...bounds, content.length]) {
              if (b >= from) parts.push(content.subarray(from, b));
              from = b;
            }
            parts.forEach((p, i) => {
              frames.push(clientFrame(i === 0 ? (m.binary ? 2 : 1) : 0, p, { fin: i === parts.length - 1 }));
              if (m.pingBetween && i < parts.length - 1) frames.push(clientFrame(0x9, Buffer.from("hi")));
            });
          }
          feed(ws, Buffer.concat(frames), cuts);
          expect(seen.errors).toEqual([]);
          expect(seen.messages.map((m) => [m.binary, m.data.toString("hex")])).toEqual(
            sent.map((m) => [m.binary, m.data.toString("hex")]),
          );
          expect(pipe.frames().filter((f) => f.opcode === 0xa)).toHaveLength(seen.pings.length);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a header declaring more than the limit closes with 1009 before any payload arrives", () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX + 1, max: 2 ** 31 }), fc.boolean(), (n, fragmented) => {
        const { ws, pipe, seen } = onPipe();
        const b0 = (fragmented ? 0 : 0x80) | 0x2;
        const head = n < 65536 ? Buffer.from([b0, 0xfe, n >> 8, n & 0xff, 1, 2, 3, 4]) : Buffer.alloc(14);
        if (n >= 65536) {
          head.set([b0, 0xff]);
          head.writeUInt32BE(n, 6);
        }
        feed(ws, head);
        expect(seen.errors).toEqual([{ code: "LOFT_WS_TOO_BIG", closeCode: 1009 }]);
        expect(closeCodeSent(pipe)).toBe(1009);
        expect(pipe.ended).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("fragments adding up to more than the limit close with 1009", () => {
    const { ws, pipe, seen } = onPipe();
    feed(ws, clientFrame(2, Buffer.alloc(MAX - 10), { fin: false }));
    feed(ws, clientFrame(0, Buffer.alloc(20), { fin: true }).subarray(0, 6));
    expect(seen.messages).toEqual([]);
    expect(closeCodeSent(pipe)).toBe(1009);
  });

  it("empty continuation frames: a message in more than 1 024 frames closes with 1008, and empty ones are not held", () => {
    // Zero-length fragments add no bytes, so maxPayload never sees them (a review found 12 MB of
    // them held 420 MB).
    const whole = onPipe();
    feed(whole.ws, clientFrame(2, Buffer.from("a"), { fin: false }));
    for (let i = 0; i < 1_000; i++) feed(whole.ws, clientFrame(0, Buffer.alloc(0), { fin: false }));
    feed(whole.ws, clientFrame(0, Buffer.from("b"), { fin: true }));
    expect(whole.seen.messages.map((m) => m.data.toString())).toEqual(["ab"]);
    const flood = onPipe();
    feed(flood.ws, clientFrame(2, Buffer.alloc(0), { fin: false }));
    for (let i = 0; i < 1_100; i++) feed(flood.ws, clientFrame(0, Buffer.alloc(0), { fin: false }));
    expect(flood.seen.messages).toEqual([]);
    expect(flood.seen.errors).toEqual([{ code: "LOFT_WS_FRAGMENTS", closeCode: 1008 }]);
    expect(closeCodeSent(flood.pipe)).toBe(1008);
  });

  it("pings from a peer that does not read: cut with 1008 past 60 pongs not yet written", () => {
    const pipe = new Pipe();
    // Nothing the server writes ever completes: the peer reads nothing.
    pipe._write = (chunk: Buffer, _enc: BufferEncoding, _cb: () => void) => {
      pipe.written.push(chunk);
    };
    const ws = acceptUpgrade(fakeRequest(), pipe, Buffer.alloc(0), { maxPayload: MAX }) as LeanWebSocket;
    const opening = pipe.writableLength; // the 101, written and never completed
    const errors: string[] = [];
    ws.on("error", (e: { code: string }) => errors.push(e.code));
    for (let i = 0; i < 200; i++) feed(ws, clientFrame(9, Buffer.from("p")));
    expect(errors).toEqual(["LOFT_WS_PING_FLOOD"]);
    // At most 60 pongs (3 bytes each) and the close frame (4 bytes) wait to be written; the
    // socket is ended (the close frame 1008 is queued behind them, never read by this peer).
    expect(pipe.writableLength - opening).toBeLessThanOrEqual(60 * 3 + 4);
    expect(pipe.writableEnded).toBe(true);
  });

  it("a connection the frame gate holds reads nothing more until its turn", () => {
    const { ws, pipe, seen } = onPipe();
    let deferred = 0;
    ws.gate = { admit: () => false, defer: () => deferred++ };
    feed(ws, Buffer.concat([clientFrame(2, Buffer.from("1")), clientFrame(2, Buffer.from("2"))]));
    expect(seen.messages.map((m) => m.data.toString())).toEqual(["1"]);
    expect(deferred).toBe(1);
    expect(pipe.isPaused()).toBe(true); // the socket is not read while held (as ws does)
    ws.gate = undefined;
    ws.proceed();
    expect(pipe.isPaused()).toBe(false);
    expect(seen.messages.map((m) => m.data.toString())).toEqual(["1", "2"]);
  });

  it("frames held back by the gate when the connection goes are still handed over, before close", () => {
    const { ws, pipe, seen } = onPipe();
    ws.gate = { admit: () => false, defer: () => {} };
    const order: string[] = [];
    ws.on("close", () => order.push(`close after ${seen.messages.length}`));
    feed(ws, Buffer.concat([clientFrame(2, Buffer.from("1")), clientFrame(2, Buffer.from("2"))]));
    expect(seen.messages).toHaveLength(1);
    pipe.destroy(); // the TCP connection goes while "2" waits for the gate's turn
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(seen.messages.map((m) => m.data.toString())).toEqual(["1", "2"]);
        expect(order).toEqual(["close after 2"]);
        resolve();
      }),
    );
  });

  it("a 64-bit length with its top bit set closes with 1002", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0x80, max: 0xff }),
        fc.uint8Array({ minLength: 7, maxLength: 7 }),
        (top, rest) => {
          const { ws, pipe, seen } = onPipe();
          feed(ws, Buffer.from([0x82, 0xff, top, ...rest, 1, 2, 3, 4]));
          expect(seen.errors[0]?.code).toBe("LOFT_WS_LENGTH");
          expect(closeCodeSent(pipe)).toBe(1002);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("unmasked client frames close with 1002, whatever the opcode and payload", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 8, 9, 10), fc.uint8Array({ maxLength: 100 }), (op, p) => {
        const { ws, pipe, seen } = onPipe();
        feed(ws, clientFrame(op, p, { mask: false }));
        expect(seen.messages).toEqual([]);
        expect(seen.errors[0]?.code).toBe("LOFT_WS_UNMASKED");
        expect(closeCodeSent(pipe)).toBe(1002);
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ["RSV bits", clientFrame(2, Buffer.from("x"), { rsv: 4 }), "LOFT_WS_RSV", 1002],
    ["unknown data opcode", clientFrame(3, Buffer.from("x")), "LOFT_WS_OPCODE", 1002],
    ["unknown control opcode", clientFrame(0xb, Buffer.from("x")), "LOFT_WS_OPCODE", 1002],
    ["fragmented ping", clientFrame(9, Buffer.from("x"), { fin: false }), "LOFT_WS_FRAGMENTED_CONTROL", 1002],
    ["ping of 126 bytes", clientFrame(9, Buffer.alloc(126)), "LOFT_WS_CONTROL_LENGTH", 1002],
    ["continuation first", clientFrame(0, Buffer.from("x")), "LOFT_WS_CONTINUATION", 1002],
    [
      "data frame inside a fragmented message",
      Buffer.concat([clientFrame(2, Buffer.from("a"), { fin: false }), clientFrame(2, Buffer.from("b"))]),
      "LOFT_WS_CONTINUATION",
      1002,
    ],
    ["text not UTF-8", clientFrame(1, Buffer.from([0xc3, 0x28])), "LOFT_WS_UTF8", 1007],
    [
      "text not UTF-8 across fragments",
      Buffer.concat([
        clientFrame(1, Buffer.from([0xe2, 0x82]), { fin: false }),
        clientFrame(0, Buffer.from([0x28])),
      ]),
      "LOFT_WS_UTF8",
      1007,
    ],
    ["close of one byte", clientFrame(8, Buffer.from([3])), "LOFT_WS_CLOSE_PAYLOAD", 1002],
    ["close code 1005", clientFrame(8, Buffer.from([0x03, 0xed])), "LOFT_WS_CLOSE_CODE", 1002],
    ["close code 999", clientFrame(8, Buffer.from([0x03, 0xe7])), "LOFT_WS_CLOSE_CODE", 1002],
    ["close reason not UTF-8", clientFrame(8, Buffer.from([0x03, 0xe8, 0xff])), "LOFT_WS_UTF8", 1007],
  ])(
    "%s: error, close with the right code, nothing handed over, nothing read after",
    (_, bytes, code, closeCode) => {
      const { ws, pipe, seen } = onPipe();
      feed(ws, Buffer.concat([bytes, clientFrame(2, Buffer.from("after"))]));
      expect(seen.messages).toEqual([]);
      expect(seen.errors).toEqual([{ code, closeCode }]);
      expect(closeCodeSent(pipe)).toBe(closeCode);
      expect(pipe.ended).toBe(true);
    },
  );

  it("a text message split inside a UTF-8 sequence is accepted once whole", () => {
    const { ws, seen } = onPipe();
    const euro = Buffer.from("€");
    feed(
      ws,
      Buffer.concat([clientFrame(1, euro.subarray(0, 1), { fin: false }), clientFrame(0, euro.subarray(1))]),
    );
    expect(seen.messages).toEqual([{ data: euro, binary: false }]);
  });

  it("replayed and out-of-order frames: a second close is ignored, frames after a close are not read", () => {
    const { ws, pipe, seen } = onPipe();
    const close = clientFrame(8, Buffer.from([0x03, 0xe8]));
    feed(
      ws,
      Buffer.concat([clientFrame(2, Buffer.from("a")), close, close, clientFrame(2, Buffer.from("b"))]),
    );
    expect(seen.messages.map((m) => m.data.toString())).toEqual(["a"]);
    expect(pipe.frames().filter((f) => f.opcode === 8)).toHaveLength(1);
    expect(seen.errors).toEqual([]);
  });

  it("accepts every close code an endpoint may send, and only those (RFC 6455 §7.4)", () => {
    for (const c of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
      expect(validCloseCode(c)).toBe(true);
    for (const c of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) expect(validCloseCode(c)).toBe(false);
  });

  it("holds what a frame or message not yet complete needs, and nothing once it completes", () => {
    const { ws, seen } = onPipe();
    const f = clientFrame(2, Buffer.alloc(300, 1));
    feed(ws, f.subarray(0, 100));
    expect(ws.heldBytes).toBe(100);
    feed(ws, f.subarray(100));
    expect(seen.messages).toHaveLength(1);
    expect(ws.heldBytes).toBe(0);
    feed(ws, clientFrame(2, Buffer.alloc(50), { fin: false }));
    expect(ws.heldBytes).toBe(50);
    feed(ws, clientFrame(0, Buffer.alloc(5)));
    expect(ws.heldBytes).toBe(0);
    expect(seen.messages.map((m) => m.data.length)).toEqual([300, 55]);
  });
});

// ---- on a real server ---------------------------------------------------------------------------

let server: Server | undefined;
const clients: (WebSocket | Socket)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) "terminate" in c ? c.terminate() : c.destroy();
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server!.close(r));
    server = undefined;
  }
});

/** A loopback http server whose upgrades become LeanWebSockets, handed to `onWs`. */
async function listen(onWs: (ws: LeanWebSocket) => void, closeTimeoutMs = 200): Promise<string> {
  server = createServer();
  server.on("upgrade", (req, socket, head) => {
    const ws = acceptUpgrade(req, socket, head, { maxPayload: 64 * 1024, closeTimeoutMs });
    if (ws) onWs(ws);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const a = server.address() as { port: number };
  return `ws://127.0.0.1:${a.port}/`;
}

function client(url: string): WebSocket {
  const c = new WebSocket(url, { perMessageDeflate: true });
  clients.push(c);
  return c;
}

function closed(ws: LeanWebSocket): Promise<[number, string]> {
  return new Promise((resolve) =>
    ws.once("close", (code: number, reason: Buffer) => resolve([code, reason.toString()])),
  );
}

describe("with a ws client on a real server", () => {
  it("echoes binary and text, large and small, and refuses permessage-deflate by naming no extension", async () => {
    const url = await listen((ws) =>
      ws.on("message", function (this: LeanWebSocket, data: Buffer, binary: boolean) {
        this.send(binary ? data : data.toString(), { binary });
      }),
    );
    const c = client(url);
    await once(c, "open");
    expect(c.extensions).toBe("");
    const got: [string, boolean][] = [];
    const all = new Promise<void>((resolve) =>
      c.on("message", (d: Buffer, binary: boolean) => {
        got.push([binary ? `${d.length}:${d[d.length - 1]}` : d.toString(), binary]);
        if (got.length === 3) resolve();
      }),
    );
    c.send(Buffer.alloc(60_000, 7));
    c.send("héllo");
    c.send(Buffer.from([1, 2, 3]));
    await all;
    expect(got).toEqual([
      ["60000:7", true],
      ["héllo", false],
      ["3:3", true],
    ]);
  });

  it("ping and pong both ways; send's callback runs once written", async () => {
    let server!: LeanWebSocket;
    const url = await listen((ws) => {
      server = ws;
    });
    const c = client(url);
    await once(c, "open");
    const serverPing = once(server as unknown as import("node:events").EventEmitter, "ping");
    const pong = once(c, "pong");
    c.ping(Buffer.from("p1"));
    expect((await pong)[0].toString()).toBe("p1");
    expect(String((await serverPing)[0])).toBe("p1");
    const serverPong = once(server as unknown as import("node:events").EventEmitter, "pong");
    server.ping(Buffer.from("p2"));
    expect(String((await serverPong)[0])).toBe("p2");
    await new Promise<void>((resolve, reject) =>
      server.send(Buffer.from("x"), { binary: true }, (e) => (e ? reject(e) : resolve())),
    );
    expect(server.bufferedAmount).toBe(0);
  });

  it("sendParts held back by a client that does not read: every message whole and in order, sends between included, each callback once and in order", async () => {
    // The kernel takes a few hundred KiB while the client is paused: the rest waits in the
    // socket's queue, written later in pieces (partial writev), as a slow recipient makes it.
    let server!: LeanWebSocket;
    const url = await listen((ws) => {
      server = ws;
    });
    const c = client(url);
    await once(c, "open");
    c.pause();
    const expected: string[] = [];
    const called: number[] = [];
    const order: number[] = [];
    const digest = (b: Buffer) => `${b.length}:${createHash("sha256").update(b).digest("hex")}`;
    for (let k = 0; k < 300; k++) {
      // Small pieces (copied with the header) around large ones (written by reference, §5.2's
      // 16- and 64-bit lengths), each byte told apart by where it is.
      const sizes = [6, 16_400 + k, 44, 5_000, k % 7 === 0 ? 70_000 : 3];
      const parts = sizes.map((n, j) =>
        Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + j * 31 + k) & 0xff)),
      );
      expected.push(digest(Buffer.concat(parts)));
      order.push(k);
      server.sendParts(parts, (e) => {
        expect(e).toBeFalsy();
        called.push(k);
      });
      if (k % 5 === 0) {
        const plain = Buffer.from(`between ${k}`);
        expected.push(digest(plain));
        order.push(-k - 1);
        server.send(plain, { binary: true }, () => called.push(-k - 1));
      }
    }
    expect(server.bufferedAmount).toBeGreaterThan(0);
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      c.on("message", (d: Buffer) => {
        got.push(digest(d));
        if (got.length === expected.length) resolve();
      }),
    );
    c.resume();
    await all;
    expect(got).toEqual(expected);
    await expect.poll(() => called.length).toBe(order.length);
    expect(called).toEqual(order);
    expect(server.bufferedAmount).toBe(0);
  });

  it("the client closes: the code is echoed, both sides see it", async () => {
    let serverClosed!: Promise<[number, string]>;
    const url = await listen((ws) => {
      serverClosed = closed(ws);
    });
    const c = client(url);
    await once(c, "open");
    const clientClosed = once(c, "close");
    c.close(4001, "bye");
    expect(await serverClosed).toEqual([4001, "bye"]);
    const [code] = await clientClosed;
    expect(code).toBe(4001);
  });

  it("the server closes: the client sees code and reason, the server the client's answer", async () => {
    const url = await listen((ws) => {
      void closed(ws).then((r) => ws.send(Buffer.from(String(r))));
      ws.close(1008, "LOFT_ERR_X");
    });
    const c = client(url);
    const [code, reason] = await once(c, "close");
    expect([code, String(reason)]).toEqual([1008, "LOFT_ERR_X"]);
  });

  it("the server closes and the client never answers: cut after the close timeout (1006)", async () => {
    let serverClosed!: Promise<[number, string]>;
    const url = await listen((ws) => {
      serverClosed = closed(ws);
      ws.close(1001, "going away");
    }, 100);
    const raw = await rawUpgrade(url);
    raw.pause(); // reads nothing, answers nothing
    expect((await serverClosed)[0]).toBe(1006);
  });

  it("the client closes but keeps its TCP side open: the echo, then cut after the close timeout", async () => {
    let serverClosed!: Promise<[number, string]>;
    const url = await listen((ws) => {
      serverClosed = closed(ws);
    }, 100);
    const raw = await rawUpgrade(url, true);
    const echo = once(raw, "data");
    raw.write(clientFrame(8, Buffer.from([0x0f, 0xa1, 0x78])));
    const [d] = await echo;
    expect(serverFrames(d as Buffer)[0]?.payload.readUInt16BE(0)).toBe(4001);
    // raw never ends its side (half-open allowed): the server does not wait for it forever.
    expect(await serverClosed).toEqual([4001, "x"]);
  });

  it("a close waiting for its deadline lets go of the connection as soon as the TCP connection is gone", async () => {
    // Long close timeout: what is released must be released when the socket goes, not when the
    // deadline (which cannot be cancelled, host/deadlines.ts) comes due.
    let server!: LeanWebSocket;
    const url = await listen((ws) => {
      server = ws;
    }, 60_000);
    const held = closingHeld();
    const raw = await rawUpgrade(url);
    raw.pause(); // never answers the close frame
    const sc = closed(server);
    server.close(1001, "going away");
    expect(closingHeld()).toBe(held + 1);
    raw.destroy();
    expect((await sc)[0]).toBe(1006);
    expect(closingHeld()).toBe(held);
    // The client's close, echoed, then its TCP connection gone: nothing held either.
    let second!: Promise<[number, string]>;
    server = undefined as unknown as LeanWebSocket;
    const url2 = await listen((ws) => {
      second = closed(ws);
    }, 60_000);
    const c = client(url2);
    await once(c, "open");
    c.close(4002, "done");
    expect(await second).toEqual([4002, "done"]);
    expect(closingHeld()).toBe(held);
  });

  it("the socket's own listeners stay: an error listener already there is enough, and three close listeners all run, in order", async () => {
    const order: string[] = [];
    let upgraded!: Socket;
    let serverClosed!: Promise<[number, string]>;
    const url = await listen(() => {});
    server!.removeAllListeners("upgrade");
    server!.on("upgrade", (req, socket: Socket, head) => {
      upgraded = socket;
      socket.on("error", () => socket.destroy());
      socket.on("close", () => order.push("host"));
      socket.on("close", () => order.push("service"));
      const ws = acceptUpgrade(req, socket, head, { maxPayload: 1024 })!;
      ws.on("close", () => order.push("ws"));
      serverClosed = closed(ws);
    });
    const raw = await rawUpgrade(url);
    expect(upgraded.listenerCount("error")).toBe(1);
    expect(upgraded.listenerCount("close")).toBe(3);
    // A reset: Node destroys the socket, the one error listener keeps it from throwing.
    raw.resetAndDestroy();
    expect((await serverClosed)[0]).toBe(1006);
    expect(order).toEqual(["host", "service", "ws"]);
  });

  it("terminate: the client sees 1006, the server's close event comes with 1006", async () => {
    let server!: LeanWebSocket;
    const url = await listen((ws) => {
      server = ws;
    });
    const c = client(url);
    await once(c, "open");
    const sc = closed(server);
    server.terminate();
    expect((await once(c, "close"))[0]).toBe(1006);
    expect((await sc)[0]).toBe(1006);
    expect(server.readyState).toBe(server.CLOSED);
  });

  it("the client's TCP connection goes without a close frame: close event with 1006", async () => {
    let serverClosed!: Promise<[number, string]>;
    const url = await listen((ws) => {
      serverClosed = closed(ws);
    });
    const raw = await rawUpgrade(url);
    raw.end();
    expect((await serverClosed)[0]).toBe(1006);
  });

  it("a protocol violation on the wire: error event, close 1002 to the client, then TCP closed", async () => {
    let errorCode: string | undefined;
    let serverClosed!: Promise<[number, string]>;
    const url = await listen((ws) => {
      serverClosed = closed(ws);
      ws.on("error", (e: { code: string }) => {
        errorCode = e.code;
      });
    });
    const raw = await rawUpgrade(url);
    const got: Buffer[] = [];
    raw.on("data", (d: Buffer) => got.push(d));
    raw.write(clientFrame(2, Buffer.from("x"), { mask: false }));
    await once(raw, "end");
    raw.end();
    expect(errorCode).toBe("LOFT_WS_UNMASKED");
    expect(serverFrames(Buffer.concat(got))[0]?.payload.readUInt16BE(0)).toBe(1002);
    expect((await serverClosed)[0]).toBe(1002);
  });

  it("pause stops the messages, resume delivers them in order; frames in the upgrade's head count", async () => {
    let server!: LeanWebSocket;
    const got: string[] = [];
    const url = await listen((ws) => {
      server = ws;
      ws.pause();
      ws.on("message", (d: Buffer) => got.push(d.toString()));
    });
    const u = new URL(url);
    const raw = connect(Number(u.port), "127.0.0.1");
    clients.push(raw);
    await once(raw, "connect");
    raw.write(
      Buffer.concat([
        Buffer.from(
          `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        ),
        clientFrame(2, Buffer.from("1")),
        clientFrame(2, Buffer.from("2")),
      ]),
    );
    await once(raw, "data");
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([]);
    raw.write(clientFrame(2, Buffer.from("3")));
    server.resume();
    await expect.poll(() => got, { timeout: 5000 }).toEqual(["1", "2", "3"]);
  });

  it.each([
    ["no key", "400", "Sec-WebSocket-Version: 13\r\n"],
    ["a malformed key", "400", "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n"],
    ["version 8", "426", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"],
  ])("a handshake with %s is refused (%s), no connection made", async (_, status, headers) => {
    let made = 0;
    const url = await listen(() => made++);
    const u = new URL(url);
    const raw = connect(Number(u.port), "127.0.0.1");
    clients.push(raw);
    await once(raw, "connect");
    raw.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`);
    const [d] = await once(raw, "data");
    expect(String(d).split("\r\n")[0]).toBe(
      `HTTP/1.1 ${status} ${status === "400" ? "Bad Request" : "Upgrade Required"}`,
    );
    expect(made).toBe(0);
  });
});

describe.each(["lean", "ws"] as WsImpl[])("subprotocols on a real server (--ws-impl %s)", (impl) => {
  async function listenImpl(onWs: (ws: ServerSocket) => void): Promise<string> {
    const up = createUpgrader(impl, { maxPayload: 1024 });
    server = createServer();
    server.on("upgrade", (req, socket, head) => up.handleUpgrade(req, socket, head, onWs));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return `ws://127.0.0.1:${(server.address() as { port: number }).port}/`;
  }

  it("the first subprotocol offered is echoed; the client accepts the answer", async () => {
    let selected: string | undefined;
    const url = await listenImpl((ws) => {
      selected = (ws as unknown as { protocol: string }).protocol;
    });
    const c = new WebSocket(url, ["loft.relay.v1", "loft.relay.v0"]);
    clients.push(c);
    await once(c, "open");
    expect(c.protocol).toBe("loft.relay.v1");
    expect(selected).toBe("loft.relay.v1");
  });

  it("a malformed Sec-WebSocket-Protocol is refused with 400, no connection made", async () => {
    let made = 0;
    const url = await listenImpl(() => made++);
    const raw = connect(Number(new URL(url).port), "127.0.0.1");
    clients.push(raw);
    await once(raw, "connect");
    raw.write(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, a\r\n\r\n",
    );
    const [d] = await once(raw, "data");
    expect(String(d).split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
    expect(made).toBe(0);
  });
});

describe("compactListeners (Node's private `_events`, guarded)", () => {
  /** A stream with three 'close' listeners that record their calls, in order. */
  function withThree() {
    const socket = new PassThrough();
    const calls: number[] = [];
    const fns = [0, 1, 2].map((i) => () => calls.push(i));
    for (const f of fns) socket.on("close", f);
    const table = (socket as unknown as { _events: Record<string, unknown> })._events;
    return { socket, calls, fns, table, list: table.close };
  }
  const closes = (socket: Duplex, calls: number[]) => {
    socket.emit("close");
    expect(calls).toEqual([0, 1, 2]);
  };

  it("this Node: the listener array is replaced by an exact copy, every listener still called in order", () => {
    const { socket, calls, fns, table, list } = withThree();
    expect(compactListeners(socket, "close")).toBe(true);
    expect(table.close).not.toBe(list);
    expect(socket.rawListeners("close")).toEqual(fns);
    // Two or fewer, or another event: nothing to do.
    expect(compactListeners(socket, "end")).toBe(false);
    closes(socket, calls);
  });

  it("no `_events` (a Node that keeps listeners elsewhere): not compacted, no throw, listeners intact", () => {
    const { socket, calls, table, list } = withThree();
    Object.defineProperty(socket, "_events", { configurable: true, get: () => undefined });
    expect(compactListeners(socket, "close")).toBe(false);
    Object.defineProperty(socket, "_events", { configurable: true, writable: true, value: table });
    expect(table.close).toBe(list);
    closes(socket, calls);
  });

  it("a `_events` getter that throws, a frozen table, a non-array entry: not compacted, no throw", () => {
    const a = withThree();
    Object.defineProperty(a.socket, "_events", {
      configurable: true,
      get: () => {
        throw new Error("private");
      },
    });
    expect(compactListeners(a.socket, "close")).toBe(false);
    Object.defineProperty(a.socket, "_events", { configurable: true, writable: true, value: a.table });
    closes(a.socket, a.calls);

    const b = withThree();
    Object.freeze(b.table);
    expect(compactListeners(b.socket, "close")).toBe(false);
    expect(b.table.close).toBe(b.list);
    closes(b.socket, b.calls);

    const c = new PassThrough();
    const seen: string[] = [];
    c.on("close", () => seen.push("one"));
    // One listener is kept as the function itself, not an array.
    expect(compactListeners(c, "close")).toBe(false);
    c.emit("close");
    expect(seen).toEqual(["one"]);
  });

  it("a table whose writes do not reach the emitter's listeners: the original array is put back", () => {
    const { socket, calls, fns, table, list } = withThree();
    // A view that takes writes while the emitter reports its listeners from elsewhere (a copy
    // made before): the check after the write sees a different list and restores the original.
    const view = new Proxy(table, {
      set(target, key, value) {
        if (key === "close" && value !== list) Reflect.set(target, key, [...(value as unknown[]), () => {}]);
        else Reflect.set(target, key, value);
        return true;
      },
    });
    Object.defineProperty(socket, "_events", { configurable: true, writable: true, value: view });
    expect(compactListeners(socket, "close")).toBe(false);
    expect(table.close).toBe(list);
    expect(socket.rawListeners("close")).toEqual(fns);
    closes(socket, calls);
  });
});

/** A raw TCP client past the handshake (for what `ws` would never send). */
async function rawUpgrade(url: string, allowHalfOpen = false): Promise<Socket> {
  const u = new URL(url);
  const raw = connect({ port: Number(u.port), host: "127.0.0.1", allowHalfOpen });
  clients.push(raw);
  await once(raw, "connect");
  raw.write(
    `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const [d] = await once(raw, "data");
  expect(String(d).startsWith("HTTP/1.1 101 ")).toBe(true);
  return raw;
}
