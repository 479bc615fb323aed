/**
 * `npm run bench:serial` — the device protocol on a 115 200-baud line (docs/device.md §4):
 *   - pairing time, HELLO to `provisioned`, with the real emulator process over a socat pty pair,
 *     XXhfs and plain XX, next to the time the same bytes take on the line alone
 *     (`pairing_vs_line_time`: 1 would be a line that is never idle);
 *   - session payload throughput device → owner (telemetry-sized 64-byte messages and 4 KiB
 *     messages) as a fraction of the line rate (`serial_vs_line_rate`), over an in-process cable.
 * A pty moves bytes as fast as the kernel copies them, so the bench paces both directions itself
 * at the UART's byte rate (8N1: 10 bits per byte): a frame reaches the other side when its last
 * byte would have. `--json`: the last line is one JSON object; `--quick`: fewer, shorter runs.
 */

import { SerialPort } from "serialport";
import { DeviceEndpoint, OwnerEndpoint, type SerialConnection } from "../core/device/endpoint.ts";
import { CAP_XXHFS } from "../core/device/hello.ts";
import { decodeDeviceMessage, encodeDeviceMessage } from "../core/device/messages.ts";
import { pairDevice } from "../core/device/owner.ts";
import type { BytePort } from "../core/device/serial-link.ts";
import { createUserIdentity } from "../core/identity/identity.ts";
import { establishSession } from "../core/session/session.ts";
import { nodeStreamPort } from "../device/node-port.ts";
import { Emulator, ownerIdentity, PtyPair, tempDir } from "../device/test-support.ts";
import { log, median, QUICK, report } from "./harness.ts";

const BAUD = 115_200;
const BYTES_PER_SECOND = BAUD / 10;

/** One direction of a UART: bytes leave in order, each chunk arriving when its last byte would. */
class Line {
  bytes = 0;
  #freeAt = 0;
  constructor(readonly deliver: (b: Uint8Array) => void) {}
  send(b: Uint8Array): void {
    this.bytes += b.length;
    const now = performance.now();
    this.#freeAt = Math.max(now, this.#freeAt) + (b.length / BYTES_PER_SECOND) * 1000;
    const copy = b.slice();
    setTimeout(() => this.deliver(copy), Math.max(0, this.#freeAt - now));
  }
}

async function pairingRuns(noPq: boolean, runs: number): Promise<{ ms: number[]; lineMs: number[] }> {
  const t = tempDir();
  const pty = await PtyPair.open(t.dir);
  const emu = new Emulator([
    "--serial",
    pty.a,
    "--state",
    `${t.dir}/d.json`,
    "--telemetry-ms",
    "100000",
    ...(noPq ? ["--no-pq"] : []),
  ]);
  await emu.next("listening");
  const serial = new SerialPort({ path: pty.b, baudRate: BAUD, autoOpen: false });
  await new Promise<void>((r, j) => serial.open((e) => (e ? j(e) : r())));
  const raw = nodeStreamPort(serial);
  let endpoint!: OwnerEndpoint;
  const toDevice = new Line((b) => raw.write(b));
  const toOwner = new Line((b) => endpoint.receiveBytes(b));
  const paced: BytePort = { write: (b) => toDevice.send(b), close: () => raw.close() };
  endpoint = new OwnerEndpoint(paced, { name: "bench owner" });
  raw.attach({ receiveBytes: (b) => toOwner.send(b), portClosed: (d) => endpoint.portClosed(d) });
  const self = await ownerIdentity(9, "bench");
  const ms: number[] = [];
  const lineMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const from = emu.events.length;
    toDevice.bytes = 0;
    toOwner.bytes = 0;
    const start = performance.now();
    const connection = await endpoint.connect();
    const paired = await pairDevice({
      connection,
      self,
      confirmCode: async () => true,
      provision: { wifi: { ssid: "bench", psk: "bench-passphrase" } },
    });
    ms.push(performance.now() - start);
    lineMs.push(((toDevice.bytes + toOwner.bytes) / BYTES_PER_SECOND) * 1000);
    paired.session.send(encodeDeviceMessage({ t: "reset" }));
    for (let k = 0; k < 100; k++) {
      const m = decodeDeviceMessage(await paired.session.receive());
      if (m.ok && m.value.t === "reset-done") break;
    }
    await emu.next("reset", from);
    log(
      `${noPq ? "XX" : "XXhfs"} pairing ${i + 1}/${runs}: ${ms.at(-1)!.toFixed(0)} ms (line alone ${lineMs.at(-1)!.toFixed(0)} ms)`,
    );
  }
  raw.close();
  await emu.stop();
  await pty.close();
  t.cleanup();
  return { ms, lineMs };
}

/** Payload bytes/s device → owner through an established session on a paced in-process cable. */
async function throughput(messageBytes: number, totalBytes: number): Promise<number> {
  let owner!: OwnerEndpoint;
  let device!: DeviceEndpoint;
  const toDevice = new Line((b) => device.receiveBytes(b));
  const toOwner = new Line((b) => owner.receiveBytes(b));
  owner = new OwnerEndpoint({ write: (b) => toDevice.send(b), close: () => {} }, { caps: CAP_XXHFS });
  const devConn = new Promise<SerialConnection>((resolve) => {
    device = new DeviceEndpoint({ write: (b) => toOwner.send(b), close: () => {} }, { window: 4 }, resolve);
  });
  const oc = await owner.connect();
  const dc = await devConn;
  const a = await createUserIdentity({ username: "o", now: 1, seed: new Uint8Array(32).fill(1) });
  const d = await createUserIdentity({
    username: "d",
    now: 1,
    seed: new Uint8Array(32).fill(2),
    flags: { is_machine_account: true },
  });
  const [os, ds] = await Promise.all([
    establishSession({
      link: oc.link,
      role: "initiator",
      kind: "serial",
      self: a,
      protocol: "XX",
      exportLabels: [],
    }),
    establishSession({
      link: dc.link,
      role: "responder",
      kind: "serial",
      self: d,
      protocol: "XX",
      exportLabels: [],
    }),
  ]);
  const count = Math.ceil(totalBytes / messageBytes);
  const body = new Uint8Array(messageBytes).fill(7);
  const start = performance.now();
  for (let i = 0; i < count; i++) ds.send(body);
  let got = 0;
  for (let i = 0; i < count; i++) got += (await os.receive()).length;
  const seconds = (performance.now() - start) / 1000;
  os.close("done");
  return got / seconds;
}

const runs = QUICK ? 1 : 3;
const hfs = await pairingRuns(false, runs);
const xx = await pairingRuns(true, runs);
const total = QUICK ? 8 * 1024 : 48 * 1024;
log("throughput, 64-byte messages");
const small = await throughput(64, total / 4);
log("throughput, 4 KiB messages");
const large = await throughput(4096, total);

const hfsMs = median(hfs.ms);
const hfsLine = median(hfs.lineMs);
const xxMs = median(xx.ms);
const xxLine = median(xx.lineMs);
report(
  `bench:serial — ${BAUD} baud 8N1 (${BYTES_PER_SECOND} bytes/s), paced pty to the emulator`,
  [
    {
      name: "pairing XXhfs, HELLO → provisioned",
      value: hfsMs,
      unit: "ms",
      baseline: { name: "its bytes on the line alone", value: hfsLine },
    },
    {
      name: "pairing XX, HELLO → provisioned",
      value: xxMs,
      unit: "ms",
      baseline: { name: "its bytes on the line alone", value: xxLine },
    },
    {
      name: "session payload, 64-byte messages",
      value: small,
      unit: "B/s",
      baseline: { name: "line rate", value: BYTES_PER_SECOND },
    },
    {
      name: "session payload, 4 KiB messages",
      value: large,
      unit: "B/s",
      baseline: { name: "line rate", value: BYTES_PER_SECOND },
    },
  ],
  {
    bench: "serial",
    baud: BAUD,
    pairing_ms: { xxhfs: hfsMs, xx: xxMs },
    line_ms: { xxhfs: hfsLine, xx: xxLine },
    pairing_vs_line_time: { xxhfs: hfsMs / hfsLine, xx: xxMs / xxLine },
    payload_bytes_per_second: { msg64: small, msg4096: large },
    serial_vs_line_rate: { msg64: small / BYTES_PER_SECOND, msg4096: large / BYTES_PER_SECOND },
  },
);
process.exit(0);
