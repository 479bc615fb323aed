/**
 * A paired device and its owner through the relay (docs/device.md §13), in Node with the real
 * parts: the relay server (relay-ws/testing.ts, real WebSockets and store), the owner's chat engine
 * (engine.ts with its relay pool), the emulator process (device/emulator.ts) over TCP, and the
 * PWA's device code (attached-device.ts, bridge.ts) driving it.
 *
 *  - Wi-Fi: pair and link, pull the cable; the device's telemetry reaches the owner's engine
 *    through its relay mailbox, and a console command queued at the relay is answered that way.
 *  - No Wi-Fi (`--no-relay`): a command queued while the device is away is handed down the cable
 *    on the next attach (`relay-in`), and the device's answer goes up through the browser
 *    (`relay-out`) into the owner's mailbox.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Emulator, emulatorOnTcp } from "../../../device/test-support.ts";
import { startTestRelay, type TestRelay } from "../../../relay-ws/testing.ts";
import { EngineHarness, type EngineNode, FAST_ENGINE, until } from "../../../test/support/engine.ts";
import { tcpSerialPort } from "../../../test/support/tcp-serial-port.ts";
import { deviceContactRecord } from "../app/devices.ts";
import type { DeviceRelayApi, EngineEvent } from "../engine/api.ts";
import type { AttachedDevice } from "./attached-device.ts";
import { attachOverSerial, pairOverSerial } from "./attached-device.ts";
import { bridgeDevice } from "./bridge.ts";

type DeviceEvent = Extract<EngineEvent, { type: "device" }>;

describe("a paired device through the relay (Node: real relay, engine and emulator)", () => {
  let relay: TestRelay;
  const h = new EngineHarness(() => ({ signalingUrl: "", relayUrl: relay.url, config: FAST_ENGINE }));
  const cleanups: (() => unknown)[] = [];

  beforeAll(async () => {
    relay = await startTestRelay();
  });
  afterAll(async () => {
    await relay?.close();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await h.stopAll();
  });

  const emulator = (...extra: string[]) => emulatorOnTcp(cleanups, ["--telemetry-ms", "100", ...extra]);

  function port(tcp: number) {
    const p = tcpSerialPort(tcp);
    cleanups.push(() => p.destroy());
    return p;
  }

  const deviceEvents = (owner: EngineNode, id: string) =>
    owner.events.filter((e): e is DeviceEvent => e.type === "device" && e.contactId === id);

  /** The owner pairs the device, makes it a contact and links it through the cable. */
  async function pairAndLink(owner: EngineNode, emu: Emulator, tcp: number) {
    const { device, info } = await pairOverSerial({
      port: port(tcp),
      baudRate: 115200,
      self: owner.user,
      confirmCode: async (i) => (await emu.next("code")).code === i.code,
    });
    const record = deviceContactRecord(info, device.connection.device.caps, Date.now());
    await owner.engine.changeContact(record.id, { kind: "add", contact: record });
    const report = await bridgeDevice({
      device,
      relay: owner.engine.devices,
      contactId: record.id,
      selfIdentityKey: owner.user.identity.verified.identity_key,
    });
    expect(report).toEqual({ linked: true, delivered: 0 });
    expect(owner.engine.devices.isLinked(record.id)).toBe(true);
    await emu.next("linked");
    return { device, info, id: record.id };
  }

  it("Wi-Fi: after the cable is pulled the device's telemetry and console answers come through the relay", async () => {
    const owner = h.node("owner", undefined, undefined, "");
    await owner.engine.start();
    const { emu, port: tcp } = await emulator();
    const { device, id } = await pairAndLink(owner, emu, tcp);
    await until(() => emu.events.some((e) => e.event === "relay" && e.state === "relay connected"), "uplink");
    device.close(); // the page closes: no cable any more
    await emu.next("ended");

    await until(
      () => deviceEvents(owner, id).some((e) => e.message.t === "dev.telemetry"),
      "telemetry",
      30_000,
    );
    const t = deviceEvents(owner, id).find((e) => e.message.t === "dev.telemetry")!.message;
    expect(t).toMatchObject({ t: "dev.telemetry", r: expect.any(Object) });
    // The emulator's own account of it (its stdout may trail the relay).
    await until(
      () => emu.events.some((e) => e.event === "to-owner" && e.t === "dev.telemetry" && e.via === "uplink"),
      "the device says it sent telemetry through its uplink",
    );

    await owner.engine.devices.command(id, 7, "led on");
    await until(
      () => deviceEvents(owner, id).some((e) => e.message.t === "dev.out" && e.message.id === 7),
      "answer through the relay",
      30_000,
    );
    const out = deviceEvents(owner, id).find((e) => e.message.t === "dev.out")!.message;
    expect(out).toEqual({ t: "dev.out", id: 7, ok: true, m: "led on" });
    await until(
      () => emu.events.some((e) => e.event === "from-owner" && e.t === "dev.cmd" && e.via === "uplink"),
      "the device read the command from its uplink",
    );
    // Nothing a device sends is taken for a chat message, and the device is never dialled; chat
    // text to a device is refused (it reads none), nothing stored.
    expect(owner.storage.texts(id, "in")).toEqual([]);
    await expect(owner.engine.send(id, "hello device")).rejects.toThrow(/is a device/);
    expect(owner.storage.texts(id, "out")).toEqual([]);
    expect(owner.engine.presence(id).status).toBe("offline");
  });

  it("no Wi-Fi: a command queued while away goes down the cable on the next attach, its answer up through the browser", async () => {
    const owner = h.node("owner", undefined, undefined, "");
    await owner.engine.start();
    const { emu, port: tcp } = await emulator("--no-relay");
    const { device, info, id } = await pairAndLink(owner, emu, tcp);
    device.close();
    await emu.next("ended");

    // Queued at the relay: the device has no way to read it yet.
    await owner.engine.devices.command(id, 42, "info");
    // Read (not taken) now, to replay it on the cable below.
    const queued = (await owner.engine.devices.nextForDevice(id))!.message;
    const from = emu.events.length;
    const again = await attachOverSerial({
      port: port(tcp),
      baudRate: 115200,
      self: owner.user,
      deviceIdentityKey: info.device.verified.identity_key,
      pinnedProtocol: info.protocol,
    });
    const report = await bridgeDevice({
      device: again,
      relay: owner.engine.devices,
      contactId: id,
      selfIdentityKey: owner.user.identity.verified.identity_key,
    });
    expect(report).toEqual({ linked: false, delivered: 1 });
    await until(
      () => deviceEvents(owner, id).some((e) => e.message.t === "dev.out" && e.message.id === 42),
      "answer through the bridge",
      30_000,
    );
    const out = deviceEvents(owner, id).find((e) => e.message.t === "dev.out")!.message;
    expect(out).toMatchObject({ t: "dev.out", id: 42, ok: true, m: expect.stringMatching(/relay\s+ws:/) });
    const seen = (event: string, t: string) =>
      emu.events.slice(from).some((e) => e.event === event && e.t === t && e.via === "cable");
    await until(() => seen("from-owner", "dev.cmd") && seen("to-owner", "dev.out"), "both ways on the cable");
    // Taken from the device's queue: the next attach hands nothing down again.
    expect(await owner.engine.devices.nextForDevice(id)).toBeUndefined();
    // A replayed message and one that is not a ratchet message are read and dropped: the device
    // answers relay-took (so a bridge never stalls on them) and runs nothing.
    const commands = () => emu.events.filter((e) => e.event === "from-owner").length;
    const before = commands();
    expect(await again.relayIn(queued)).toBe(true);
    expect(await again.relayIn(new Uint8Array(200).fill(0x5a))).toBe(true);
    expect(await again.command("led")).toEqual({ ok: true, m: "led off" }); // still serving
    expect(commands()).toBe(before);
    again.close();
  });
});

describe("bridgeDevice, upward (fakes)", () => {
  it("a relay-out the relay refused is logged and the ones after it are still deposited, in order", async () => {
    let relayOut: (message: Uint8Array) => void = () => {};
    const device = {
      session: { state: "closed" },
      onRelayOut: (h: (message: Uint8Array) => void) => {
        relayOut = h;
      },
    } as unknown as AttachedDevice;
    const deposited: number[] = [];
    const relay = {
      isLinked: () => true,
      deposit: async (_id: string, m: Uint8Array) => {
        if (m[0] === 1) throw new Error("relay down");
        deposited.push(m[0]!);
      },
    } as unknown as DeviceRelayApi;
    const log: string[] = [];
    const report = await bridgeDevice({
      device,
      relay,
      contactId: "d",
      selfIdentityKey: new Uint8Array(32),
      log: (l) => log.push(l),
    });
    expect(report).toEqual({ linked: false, delivered: 0 });
    for (const n of [1, 2, 3]) relayOut(Uint8Array.of(n));
    await until(() => deposited.length === 2, "deposits");
    expect(deposited).toEqual([2, 3]);
    expect(log).toEqual(["a device message did not reach the relay: relay down"]);
  });
});
