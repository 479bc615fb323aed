/**
 * The portable C reference (device/c) compiled with the system compiler and run against the
 * TypeScript: byte-identical on every published vector (docs/vectors/device-v1.json) and on
 * random inputs, including random streams through both deframers.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { blake2s } from "@noble/hashes/blake2.js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../core/bytes.ts";
import { cobsDecode, cobsEncode } from "../core/device/cobs.ts";
import { crc32 } from "../core/device/crc32.ts";
import { Deframer, encodeFrame, type FrameType } from "../core/device/frame.ts";
import { pairingCode, pairingCodeDigest, pairingCommit } from "../core/device/pairing-code.ts";
import { type buildDeviceVectors, DEVICE_VECTORS_FILE } from "../scripts/gen-device-vectors.ts";
import { compileC, tempDir } from "./test-support.ts";

const hex = (b: Uint8Array) => (b.length === 0 ? "-" : toHex(b));
let binary = "";
let cleanup = () => {};

beforeAll(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  binary = compileC(t.dir, "loft-device-cli", ["loft_device.c", "loft_device_cli.c"]);
});
afterAll(() => cleanup());

/** Run commands through the C driver in one process; one answer line per command. */
function c(commands: string[]): string[] {
  const r = spawnSync(binary, { input: `${commands.join("\n")}\n`, maxBuffer: 64 * 1024 * 1024 });
  expect(r.status).toBe(0);
  const lines = r.stdout.toString("utf8").split("\n");
  lines.pop();
  expect(lines.length).toBe(commands.length);
  return lines;
}

function tsDeframe(maxPayload: number, bytes: Uint8Array): string {
  const ev = new Deframer(maxPayload)
    .push(bytes)
    .map((e) => (e.ok ? `f:${e.frame.type}:${e.frame.seq}:${hex(e.frame.payload)}` : e.error.fault));
  return ev.length === 0 ? "-" : ev.join(" ");
}

describe("C reference (device/c) vs TypeScript", () => {
  const v = JSON.parse(readFileSync(DEVICE_VECTORS_FILE, "utf8")) as ReturnType<typeof buildDeviceVectors>;

  it("matches every published vector", () => {
    expect(c(v.crc32.map((x) => `crc ${x.input || "-"}`))).toEqual(v.crc32.map((x) => x.crc));
    expect(c(v.cobs.map((x) => `cobs ${x.input || "-"}`))).toEqual(v.cobs.map((x) => x.encoded));
    expect(c(v.cobs.map((x) => `uncobs ${x.encoded}`))).toEqual(v.cobs.map((x) => x.input || "-"));
    expect(c(v.frames.map((f) => `frame ${f.type} ${f.seq} ${f.payload || "-"}`))).toEqual(
      v.frames.map((f) => f.wire),
    );
    const [stream] = c([`deframe ${v.stream.max_payload} ${v.stream.bytes}`]);
    expect(stream).toBe(
      v.stream.events
        .map((e) =>
          "frame" in e ? `f:${e.frame!.type}:${e.frame!.seq}:${e.frame!.payload || "-"}` : e.fault,
        )
        .join(" "),
    );
    expect(c(v.pairing.map((p) => `commit ${p.handshake_hash} ${p.device_nonce}`))).toEqual(
      v.pairing.map((p) => p.commit),
    );
    expect(
      c(
        v.pairing.map(
          (p) =>
            `code ${p.handshake_hash} ${p.owner_nonce} ${p.device_nonce} ${p.owner_hello} ${p.device_hello}`,
        ),
      ),
    ).toEqual(v.pairing.map((p) => `${p.digest} ${p.code}`));
  });

  it("matches on random inputs: CRC, COBS both ways, frames, BLAKE2s, pairing code", () => {
    const cases = fc.sample(
      fc.record({
        bytes: fc.uint8Array({ maxLength: 700 }),
        type: fc.integer({ min: 1, max: 5 }),
        seq: fc.integer({ min: 0, max: 0xffff }),
        h: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        no: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        nd: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        oh: fc.uint8Array({ minLength: 18, maxLength: 50 }),
        dh: fc.uint8Array({ minLength: 18, maxLength: 50 }),
      }),
      { numRuns: 300, seed: 12 },
    );
    const commands: string[] = [];
    const expected: string[] = [];
    for (const x of cases) {
      const payload = x.bytes.subarray(0, 1024);
      commands.push(`crc ${hex(x.bytes)}`, `cobs ${hex(x.bytes)}`, `uncobs ${hex(x.bytes)}`);
      expected.push(crc32(x.bytes).toString(16).padStart(8, "0"), hex(cobsEncode(x.bytes)));
      const d = cobsDecode(x.bytes);
      expected.push(d.ok ? hex(d.value) : "err");
      commands.push(`frame ${x.type} ${x.seq} ${hex(payload)}`, `blake2s ${hex(x.bytes)}`);
      expected.push(
        toHex(encodeFrame({ type: x.type as FrameType, seq: x.seq, payload })),
        toHex(blake2s(x.bytes)),
      );
      const input = {
        handshakeHash: x.h,
        ownerNonce: x.no,
        deviceNonce: x.nd,
        ownerHello: x.oh,
        deviceHello: x.dh,
      };
      commands.push(
        `commit ${toHex(x.h)} ${toHex(x.nd)}`,
        `code ${toHex(x.h)} ${toHex(x.no)} ${toHex(x.nd)} ${toHex(x.oh)} ${toHex(x.dh)}`,
      );
      expected.push(
        toHex(pairingCommit(x.h, x.nd)),
        `${toHex(pairingCodeDigest(input))} ${pairingCode(input)}`,
      );
    }
    expect(c(commands)).toEqual(expected);
  });

  it("the two deframers agree on random streams of frames, garbage, cut frames and oversized runs", () => {
    const streams = fc.sample(
      fc.record({
        max: fc.constantFrom(64, 240, 1024),
        parts: fc.array(
          fc.oneof(
            fc
              .record({
                type: fc.integer({ min: 1, max: 5 }),
                seq: fc.nat(0xffff),
                payload: fc.uint8Array({ maxLength: 300 }),
              })
              .map((f) => encodeFrame({ ...f, type: f.type as FrameType })),
            fc.uint8Array({ maxLength: 40 }),
            fc.uint8Array({ minLength: 1100, maxLength: 1500 }),
            fc.constant(new Uint8Array([0])),
          ),
          { maxLength: 10 },
        ),
      }),
      { numRuns: 400, seed: 34 },
    );
    const commands = streams.map(
      (s) => `deframe ${s.max} ${hex(Uint8Array.from(s.parts.flatMap((p) => [...p])))}`,
    );
    const expected = streams.map((s) => tsDeframe(s.max, Uint8Array.from(s.parts.flatMap((p) => [...p]))));
    expect(c(commands)).toEqual(expected);
  });
});
