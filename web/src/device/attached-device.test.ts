/**
 * The PWA's device controller (attached-device.ts) against the real emulator process over TCP,
 * through a `SerialPort`-shaped object: every stepper step in order, provisioning only after the
 * code, telemetry, reattaching without a code and refusing another device's identity, a silent
 * port timing out, a port that does not open. And each failure in plain words (problems.ts).
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LoftError } from "../../../core/errors.ts";
import { emulatorOnTcp, ownerIdentity } from "../../../device/test-support.ts";
import { tcpSerialPort as tcpSerialPortOf } from "../../../test/support/tcp-serial-port.ts";
import { attachOverSerial, type PairStep, pairOverSerial } from "./attached-device.ts";
import { DeviceProblemError, describeDeviceError } from "./problems.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A SerialPort over TCP to the emulator, closed after the test. */
function tcpSerialPort(tcpPort: number, opens = true) {
  const port = tcpSerialPortOf(tcpPort, opens);
  cleanups.push(() => port.destroy());
  return port;
}

const emulator = () => emulatorOnTcp(cleanups, ["--telemetry-ms", "50"]);

describe("pairOverSerial / attachOverSerial", () => {
  it("different codes provision nothing; then every step, provisioning after the code, telemetry, console, reattaching without a code", async () => {
    const { emu, port } = await emulator();
    const self = await ownerIdentity();
    const mismatch = await pairOverSerial({
      port: tcpSerialPort(port),
      baudRate: 115200,
      self,
      confirmCode: async () => {
        await emu.next("code"); // the device showed its code (so the next one is the next pairing's)
        return false;
      },
    }).catch((e: unknown) => describeDeviceError(e));
    expect(mismatch).toMatchObject({ kind: "code-mismatch", resumable: true });
    expect(emu.events.some((e) => e.event === "paired")).toBe(false);

    const steps: PairStep[] = [];
    const from = emu.events.length;
    const serial = tcpSerialPort(port);
    const { device, info: paired } = await pairOverSerial({
      port: serial,
      baudRate: 115200,
      self,
      onStep: (s) => steps.push(s),
      confirmCode: async (i) => (await emu.next("code", from)).code === i.code,
      provision: { wifi: { ssid: "lab", psk: "secret words" } },
    });
    expect(steps).toEqual(["connect", "hello", "handshake", "code", "provision", "done"]);
    expect(serial.opened).toEqual([115200]);
    await emu.next("paired");
    const reading = await new Promise((r) => device.onTelemetry(r));
    expect(reading).toMatchObject({ r: expect.any(Object) });
    // The console runs on the device, inside the session: provisioning arrived, no secret comes back.
    const info = await device.command("info");
    expect(info.ok).toBe(true);
    expect(info.m).toMatch(/wifi\s+lab/);
    expect(info.m).not.toContain("secret words");
    expect(await device.command("led on")).toEqual({ ok: true, m: "led on" });
    expect(await device.command("led")).toEqual({ ok: true, m: "led on" });
    expect((await device.command("selfdestruct")).ok).toBe(false);
    expect(await device.command("x".repeat(129))).toMatchObject({ ok: false });
    device.close();
    expect(await device.ended).toBeUndefined();

    const again = await attachOverSerial({
      port: tcpSerialPort(port),
      baudRate: 115200,
      self,
      deviceIdentityKey: paired.device.verified.identity_key,
      pinnedProtocol: paired.protocol,
    });
    expect(emu.events.filter((e) => e.event === "code")).toHaveLength(2); // the refused one and the paired one
    await new Promise((r) => again.onTelemetry(r));
    again.close();

    // Another owner is refused by the device: "paired to another owner".
    await expect(
      pairOverSerial({
        port: tcpSerialPort(port),
        baudRate: 115200,
        self: await ownerIdentity(9, "intruder"),
        confirmCode: async () => true,
      }).catch((e: unknown) => Promise.reject(describeDeviceError(e))),
    ).rejects.toMatchObject({ kind: "other-owner" });
  });

  it("attaching a device that is not ours any more says why in words: paired to another owner, reset, already paired", async () => {
    const { emu, port } = await emulator();
    const owner = await ownerIdentity(3, "owner");
    const { device, info } = await pairOverSerial({
      port: tcpSerialPort(port),
      baudRate: 115200,
      self: owner,
      confirmCode: async (i) => (await emu.next("code")).code === i.code,
    });
    device.close();
    await device.ended;
    const deviceKey = info.device.verified.identity_key;
    const attachAs = (self: typeof owner) =>
      attachOverSerial({
        port: tcpSerialPort(port),
        baudRate: 115200,
        self,
        deviceIdentityKey: deviceKey,
        pinnedProtocol: info.protocol,
      }).then(
        (d) => {
          d.close();
          return undefined;
        },
        (e: unknown) => describeDeviceError(e, "attached"),
      );

    // Someone else who knows the device's key attaches: the device refuses them at message 3.
    const stranger = await attachAs(await ownerIdentity(9, "stranger"));
    expect(stranger).toMatchObject({ kind: "other-owner", resumable: false });
    expect(stranger!.message).toMatch(/paired to another owner/);
    expect(stranger!.message).toMatch(/factory.reset/i);

    // Pairing it again as its own owner: it is already paired with us.
    const again = await pairOverSerial({
      port: tcpSerialPort(port),
      baudRate: 115200,
      self: owner,
      confirmCode: async () => true,
    }).catch((e: unknown) => describeDeviceError(e));
    expect(again).toMatchObject({ kind: "already-paired", resumable: false });

    // Factory-reset: a new identity, unpaired. The owner's attach names that, not a stranger.
    const attached = await attachOverSerial({
      port: tcpSerialPort(port),
      baudRate: 115200,
      self: owner,
      deviceIdentityKey: deviceKey,
      pinnedProtocol: info.protocol,
    });
    await attached.factoryReset();
    await emu.next("reset");
    const reset = await attachAs(owner);
    expect(reset).toMatchObject({ kind: "device-reset", resumable: false });
    expect(reset!.message).toMatch(/factory.reset/);
    expect(reset!.message).toMatch(/Pair a device/);
  });

  it("a silent port times out; a busy port says so", async () => {
    const self = await ownerIdentity();

    const held: Socket[] = [];
    const silent: Server = createServer((s) => void held.push(s));
    cleanups.push(() => {
      for (const s of held) s.destroy();
      return new Promise((r) => silent.close(r));
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const timeout = await pairOverSerial({
      port: tcpSerialPort((silent.address() as { port: number }).port),
      baudRate: 9600,
      self,
      helloRetryMs: 20,
      helloAttempts: 3,
      confirmCode: async () => true,
    }).catch((e: unknown) => describeDeviceError(e));
    expect(timeout).toMatchObject({ kind: "timeout", resumable: true });
    expect((timeout as { detail?: string }).detail?.match(/LOFT_ERR_/g)).toEqual(["LOFT_ERR_"]); // the code once

    const busy = await pairOverSerial({
      port: tcpSerialPort(1, false),
      baudRate: 115200,
      self,
      confirmCode: async () => true,
    }).catch((e: unknown) => describeDeviceError(e));
    expect(busy).toMatchObject({ kind: "port-busy" });
  });
});

describe("describeDeviceError", () => {
  it("names each failure in plain words, without the raw code in the message", () => {
    const cases: [unknown, string][] = [
      [new LoftError("LOFT_ERR_UNSUPPORTED_VERSION", "device protocol 2"), "wrong-version"],
      [new LoftError("LOFT_ERR_LINK_CLOSED", "cable"), "cable-pulled"],
      [new LoftError("LOFT_ERR_TIMEOUT", "no device answered"), "timeout"],
      [new LoftError("LOFT_ERR_BAD_IDENTITY", "not a device"), "not-a-device"],
      [
        new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "the device is paired to another owner: reset"),
        "other-owner",
      ],
      [
        new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "pairing codes differ: not provisioned"),
        "code-mismatch",
      ],
      [new LoftError("LOFT_ERR_DECRYPT", "tampered"), "tampered"],
      [new LoftError("LOFT_ERR_HANDSHAKE_STATE", "out of turn"), "failed"],
      [
        new LoftError("LOFT_ERR_HANDSHAKE_STATE", "already paired to this identity: reconnect"),
        "already-paired",
      ],
      [
        new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "not paired: the device was factory-reset"),
        "device-reset",
      ],
      [new DeviceProblemError("no-port"), "no-port"],
      [new Error("weird"), "failed"],
    ];
    for (const [e, kind] of cases) {
      const p = describeDeviceError(e);
      expect(p.kind).toBe(kind);
      expect(p.message).not.toMatch(/LOFT_ERR/);
      // The details line (PairDevice "Details") names the code once, then what failed.
      if (e instanceof LoftError) expect(p.detail).toBe(`${e.code}: ${e.detail}`);
    }
  });

  it("on the device screen, a pulled cable says to attach again, not that pairing failed", () => {
    const p = describeDeviceError(new LoftError("LOFT_ERR_LINK_CLOSED", "cable"), "attached");
    expect(p).toMatchObject({ kind: "cable-pulled", resumable: true });
    expect(p.message).toContain("Attach over USB");
    expect(p.message).not.toMatch(/pair|provision/i);
    expect(describeDeviceError(new DeviceProblemError("no-port"), "attached").kind).toBe("no-port");
  });
});
