import { afterEach, describe, expect, it } from "vitest";
import { STATE_PAIRED } from "../core/device/hello.ts";
import { decodeDeviceMessage } from "../core/device/messages.ts";
import { pairDevice, reconnectDevice } from "../core/device/owner.ts";
import { emulatorOnTcp, ownerIdentity, ownerOverTcp } from "./test-support.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("device emulator over TCP", () => {
  it("pairs: the codes match, provisioning arrives, telemetry flows, reconnect needs no code", async () => {
    const { emu, port } = await emulatorOnTcp(cleanups, ["--telemetry-ms", "50"]);
    const owner = ownerOverTcp(port);
    const { endpoint, port: p } = await owner;
    cleanups.push(() => p.close());
    const connection = await endpoint.connect();
    expect(connection.device.name).toBe("loft-emulator 0.1");
    let shown = "";
    const paired = await pairDevice({
      connection,
      self: await ownerIdentity(),
      confirmCode: async (info) => {
        shown = info.code;
        const deviceCode = await emu.next("code");
        return deviceCode.code === info.code;
      },
      provision: {
        wifi: { ssid: "workshop", psk: "correct horse battery" },
        queue: {
          u: "wss://relay.example/relay",
          rid: new Uint8Array(24).fill(1),
          rk: new Uint8Array(32).fill(2),
          sid: new Uint8Array(24).fill(3),
          sk: new Uint8Array(32).fill(4),
        },
      },
    });
    expect(shown).toMatch(/^\d{6}$/);
    expect(paired.info.protocol).toBe("XXhfs");
    expect(paired.info.device.verified.flags.is_machine_account).toBe(true);
    await emu.next("paired");
    const telemetry = decodeDeviceMessage(await paired.session.receive());
    expect(telemetry.ok && telemetry.value.t).toBe("telemetry");
    paired.session.close("bye");
    await emu.next("ended");

    // Reconnect: the device announces it is paired and completes a handshake with its owner only.
    const again = await ownerOverTcp(port);
    cleanups.push(() => again.port.close());
    const c2 = await again.endpoint.connect();
    expect(c2.device.state).toBe(STATE_PAIRED);
    const session = await reconnectDevice({
      connection: c2,
      self: await ownerIdentity(),
      deviceIdentityKey: paired.info.device.verified.identity_key,
      pinnedProtocol: "XXhfs",
    });
    const m = decodeDeviceMessage(await session.receive());
    expect(m.ok && m.value.t).toBe("telemetry");
    session.close("bye");
  });
});

describe("device emulator HELLO state", () => {
  it("a new connection right after pairing (the old one still open) is answered with state = paired", async () => {
    const { emu, port } = await emulatorOnTcp(cleanups);
    const { endpoint, port: p } = await ownerOverTcp(port);
    cleanups.push(() => p.close());
    const first = await endpoint.connect();
    const paired = await pairDevice({
      connection: first,
      self: await ownerIdentity(),
      confirmCode: async (info) => (await emu.next("code")).code === info.code,
    });
    expect(paired.session.state).toBe("open");
    // Same cable, new HELLO (the page reloaded): the device must already say it is paired.
    const second = await endpoint.connect();
    expect(second.device.state).toBe(STATE_PAIRED);
  });
});
