/**
 * The bench client's side of the relay's hot frames, written and read at the byte level: SEND and
 * ACK client frames out, OK and MSG server frames in (docs/protocol/relay.md §Encoding). The bench
 * client shares the machine's two cores with the relay, and the generic codec (MessagePack,
 * valibot, canonical re-encode) cost it ~150 µs per message — CPU taken from the server it
 * measures. Everything else goes through core/relay/protocol.ts. `selfCheck` compares both ways
 * at start-up; the relay itself refuses any frame that is not canonical.
 */
import {
  type Command,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  isDeliveryLength,
  RCV_CIPHERTEXT_LENGTH,
  type ServerFrame,
} from "../core/relay/protocol.ts";

const uint = (n: number): number[] =>
  n < 0x80
    ? [n]
    : n < 0x100
      ? [0xcc, n]
      : n < 0x10000
        ? [0xcd, n >>> 8, n & 0xff]
        : [0xce, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

const bin = (b: Uint8Array): number[] =>
  b.length < 0x100 ? [0xc4, b.length] : [0xc5, b.length >>> 8, b.length & 0xff];

function join(parts: (number[] | Uint8Array)[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const arrayHeader = (n: number): number[] => (n < 16 ? [0x90 | n] : [0xdc, n >>> 8, n & 0xff]);

/**
 * The canonical encoding of a SEND or ACK command (`{b,i,k,n,q}` / `{i,k,m,q}`), or of a 1.3
 * SENDS or ACKS (`{i,k,ms,q}`).
 */
export function encodeHot(cmd: Command): Uint8Array {
  if (cmd.k === "SENDS")
    return join([
      [0x84, 0xa1, 0x69, ...uint(cmd.i), 0xa1, 0x6b, 0xa5, 0x53, 0x45, 0x4e, 0x44, 0x53, 0xa2, 0x6d, 0x73],
      arrayHeader(cmd.ms.length),
      ...cmd.ms.flatMap(([n, b]) => [[0x92, 0xc4, 16], n, bin(b), b]),
      [0xa1, 0x71, 0xc4, 24],
      cmd.q,
    ]);
  if (cmd.k === "ACKS")
    return join([
      [0x84, 0xa1, 0x69, ...uint(cmd.i), 0xa1, 0x6b, 0xa4, 0x41, 0x43, 0x4b, 0x53, 0xa2, 0x6d, 0x73],
      arrayHeader(cmd.ms.length),
      ...cmd.ms.flatMap((m) => [[0xc4, 24], m]),
      [0xa1, 0x71, 0xc4, 24],
      cmd.q,
    ]);
  if (cmd.k === "SEND")
    return join([
      [0x85, 0xa1, 0x62],
      bin(cmd.b),
      cmd.b,
      [0xa1, 0x69, ...uint(cmd.i), 0xa1, 0x6b, 0xa4, 0x53, 0x45, 0x4e, 0x44, 0xa1, 0x6e, 0xc4, 16],
      cmd.n,
      [0xa1, 0x71, 0xc4, 24],
      cmd.q,
    ]);
  if (cmd.k === "ACK")
    return join([
      [0x84, 0xa1, 0x69, ...uint(cmd.i), 0xa1, 0x6b, 0xa3, 0x41, 0x43, 0x4b, 0xa1, 0x6d, 0xc4, 24],
      cmd.m,
      [0xa1, 0x71, 0xc4, 24],
      cmd.q,
    ]);
  return encodeCommand(cmd);
}

/** `{a?, t}`: `a` a 64-byte signature (1.0) or a 32-byte authenticator (1.1). */
export function encodeFrame(t: Uint8Array, a?: Uint8Array): Uint8Array {
  return a
    ? join([[0x82, 0xa1, 0x61, 0xc4, a.length], a, [0xa1, 0x74], bin(t), t])
    : join([[0x81, 0xa1, 0x74], bin(t), t]);
}

function readUint(b: Uint8Array, at: number): [number, number] {
  const t = b[at]!;
  if (t < 0x80) return [t, at + 1];
  if (t === 0xcc) return [b[at + 1]!, at + 2];
  if (t === 0xcd) return [(b[at + 1]! << 8) | b[at + 2]!, at + 3];
  if (t === 0xce)
    return [((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0, at + 5];
  return [-1, at];
}

/** 1.3 `RES` and `MSGS` read directly; undefined for anything else. */
function decodeBatch(b: Uint8Array): ServerFrame | undefined {
  if (b[0] !== 0x83 || b[1] !== 0xa1) return undefined;
  const count = (at: number): [number, number] =>
    (b[at]! & 0xf0) === 0x90
      ? [b[at]! & 0x0f, at + 1]
      : b[at] === 0xdc
        ? [(b[at + 1]! << 8) | b[at + 2]!, at + 3]
        : [-1, at];
  if (b[2] === 0x69) {
    const [i, after] = readUint(b, 3);
    if (i < 0 || b[after + 2] !== 0xa3 || b[after + 3] !== 0x52 || b[after + 7] !== 0x72) return undefined;
    let [n, at] = count(after + 8);
    if (n < 1) return undefined;
    const r: string[] = [];
    while (n-- > 0) {
      const len = b[at]! & 0x1f;
      if ((b[at]! & 0xe0) !== 0xa0 || at + 1 + len > b.length) return undefined;
      r.push(Buffer.from(b.subarray(at + 1, at + 1 + len)).toString("latin1"));
      at += 1 + len;
    }
    return at === b.length ? ({ k: "RES", i, r } as ServerFrame) : undefined;
  }
  if (b[2] === 0x6b && b[3] === 0xa4 && b[7] === 0x53 && b[8] === 0xa2) {
    let [n, at] = count(11);
    if (n < 1) return undefined;
    const ms: [Uint8Array, Uint8Array][] = [];
    while (n-- > 0) {
      if (b[at] !== 0x92 || b[at + 1] !== 0xc4 || b[at + 2] !== 24 || b[at + 27] !== 0xc5) return undefined;
      const m = b.subarray(at + 3, at + 27);
      const length = (b[at + 28]! << 8) | b[at + 29]!;
      if (!isDeliveryLength(length) || at + 30 + length > b.length) return undefined;
      ms.push([m, b.subarray(at + 30, at + 30 + length)]);
      at += 30 + length;
    }
    if (at + 28 !== b.length || b[at] !== 0xa1 || b[at + 1] !== 0x71) return undefined;
    return { k: "MSGS", q: b.subarray(at + 4, at + 28), ms };
  }
  return undefined;
}

/** OK, MSG, RES and MSGS read directly; any other frame (or any surprise) through the generic decoder. */
export function decodeHot(b: Uint8Array): ServerFrame {
  const batch = decodeBatch(b);
  if (batch) return batch;
  if (b[0] === 0x82 && b[1] === 0xa1 && b[2] === 0x69) {
    const [i, at] = readUint(b, 3);
    if (i >= 0 && at + 5 === b.length && b[at + 1] === 0x6b && b[at + 2] === 0xa2 && b[at + 3] === 0x4f)
      return { k: "OK", i };
  }
  // MSG: `b` is the 16 KiB block (1.0, 1.1) or a bucket (1.2), a bin16 either way.
  const length = (b[4]! << 8) | b[5]!;
  if (
    (b[0] === 0x84 || b[0] === 0x85) &&
    b[3] === 0xc5 &&
    isDeliveryLength(length) &&
    b.length > 6 + length + 30
  ) {
    const body = b.subarray(6, 6 + length);
    let at = 6 + length;
    let i: number | undefined;
    if (b[0] === 0x85) [i, at] = readUint(b, at + 2);
    const m = b.subarray(at + 10, at + 34);
    const q = b.subarray(at + 38, at + 62);
    if (at + 62 === b.length && b[at + 2] === 0xa3 && b[at + 3] === 0x4d)
      return i === undefined ? { k: "MSG", q, m, b: body } : { k: "MSG", i, q, m, b: body };
  }
  const d = decodeServerFrame(b);
  if (!d.ok) throw d.error;
  return d.value;
}

/** Throws unless the byte-level paths agree with the generic codec on sample frames. */
export function selfCheck(): void {
  const q = new Uint8Array(24).fill(3);
  const m = new Uint8Array(24).fill(4);
  for (const i of [0, 127, 128, 300, 70_000]) {
    for (const cmd of [
      { k: "SEND", i, q, n: new Uint8Array(16).fill(5), b: new Uint8Array(i % 2000).fill(6) },
      { k: "ACK", i, q, m },
      {
        k: "SENDS",
        i,
        q,
        ms: Array.from({ length: 1 + (i % 20) }, (_, j) => [
          new Uint8Array(16).fill(j),
          new Uint8Array(j * 100),
        ]),
      },
      { k: "ACKS", i, q, ms: Array.from({ length: 1 + (i % 20) }, (_, j) => new Uint8Array(24).fill(j)) },
    ] as Command[]) {
      for (const a of [new Uint8Array(64).fill(7), new Uint8Array(32).fill(9)]) {
        const generic = encodeClientFrame(encodeCommand(cmd), a);
        if (!Buffer.from(encodeFrame(encodeHot(cmd), a)).equals(generic))
          throw new Error(`bench wire: ${cmd.k} encoding differs`);
      }
    }
    for (const f of [
      { k: "OK", i },
      { k: "MSG", q, m, b: new Uint8Array(RCV_CIPHERTEXT_LENGTH).fill(8) },
      { k: "MSG", i, q, m, b: new Uint8Array(RCV_CIPHERTEXT_LENGTH).fill(8) },
      { k: "MSG", q, m, b: new Uint8Array(24 + 2048).fill(8) },
      { k: "MSG", i, q, m, b: new Uint8Array(24 + 256).fill(8) },
      { k: "RES", i, r: Array.from({ length: 1 + (i % 20) }, (_, j) => (j % 3 ? "OK" : "DUPLICATE")) },
      {
        k: "MSGS",
        q,
        ms: Array.from({ length: 2 + (i % 20) }, (_, j) => [
          new Uint8Array(24).fill(j),
          new Uint8Array(24 + 256 * (1 + (j % 2))).fill(8),
        ]),
      },
    ] as ServerFrame[]) {
      const bytes = encodeServerFrame(f);
      const back = encodeServerFrame(decodeHot(bytes));
      if (!Buffer.from(back).equals(Buffer.from(bytes)))
        throw new Error(`bench wire: ${f.k} decoding differs`);
    }
  }
}
