/**
 * The emulator on a serial line: a socat pty pair is the cable, serialport opens both ends. Pairs
 * with the Node owner; then a cable pulled mid-handshake (socat killed) ends both sides with the
 * documented outcome, nothing is provisioned, and pairing resumes from HELLO on a new cable.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Deframer, FRAME_DATA, FRAME_DATA_END } from "../core/device/frame.ts";
import { STATE_UNPAIRED } from "../core/device/hello.ts";
import { decodeDeviceMessage } from "../core/device/messages.ts";
import { pairDevice } from "../core/device/owner.ts";
import { Emulator, ownerIdentity, ownerOverSerial, PtyPair, tempDir } from "./test-support.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cableAndEmulator(dir: string) {
  const pty = await PtyPair.open(dir);
  const emu = new Emulator(["--serial", pty.a, "--state", `${dir}/device.json`, "--telemetry-ms", "100"]);
  cleanups.push(
    () => pty.close(),
    () => emu.stop(),
  );
  await emu.next("listening");
  return { pty, emu };
}

describe("device emulator over a socat pty pair", () => {
  it("pairs: codes match, provisioning arrives, telemetry flows", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { emu, pty } = await cableAndEmulator(t.dir);
    const owner = await ownerOverSerial(pty.b);
    cleanups.push(() => owner.port.close());
    const connection = await owner.endpoint.connect();
    const paired = await pairDevice({
      connection,
      self: await ownerIdentity(),
      confirmCode: async (info) => (await emu.next("code")).code === info.code,
      provision: {
        wifi: { ssid: "workshop", psk: "a long passphrase" },
        owner_mbox: {
          u: "wss://relay.example/relay",
          s: new Uint8Array(24).fill(5),
          k: new Uint8Array(32).fill(6),
        },
      },
    });
    expect(paired.info.protocol).toBe("XXhfs");
    await emu.next("paired");
    const m = decodeDeviceMessage(await paired.session.receive());
    expect(m.ok && m.value.t).toBe("telemetry");
    paired.session.close("bye");
  });

  it("a cable pulled mid-handshake: both sides end with LOFT_ERR_LINK_CLOSED, nothing provisioned, pairing resumes", async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const first = await cableAndEmulator(t.dir);
    const owner = await ownerOverSerial(first.pty.b);
    cleanups.push(() => owner.port.close());
    const connection = await owner.endpoint.connect();
    // Pull the cable once the owner has sent part of Noise message 1 (its 4th DATA frame).
    let dataFrames = 0;
    const watch = new Deframer();
    const write = owner.port.write.bind(owner.port);
    owner.port.write = (bytes) => {
      for (const e of watch.push(bytes))
        if (e.ok && (e.frame.type === FRAME_DATA || e.frame.type === FRAME_DATA_END) && ++dataFrames === 4)
          void first.pty.close();
      write(bytes);
    };
    await expect(
      pairDevice({
        connection,
        self: await ownerIdentity(),
        confirmCode: async () => true,
        handshakeTimeoutMs: 20_000,
      }),
    ).rejects.toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
    await first.emu.next("port-closed");
    expect(await first.emu.exited).toBe(0);
    expect(first.emu.events.some((e) => e.event === "code" || e.event === "paired")).toBe(false);

    // A new cable, the same device (same state file): pairing starts again from HELLO.
    const second = await cableAndEmulator(t.dir);
    const owner2 = await ownerOverSerial(second.pty.b);
    cleanups.push(() => owner2.port.close());
    const c2 = await owner2.endpoint.connect();
    expect(c2.device.state).toBe(STATE_UNPAIRED);
    const paired = await pairDevice({
      connection: c2,
      self: await ownerIdentity(),
      confirmCode: async (info) => (await second.emu.next("code")).code === info.code,
    });
    expect(paired.info.code).toMatch(/^\d{6}$/);
    paired.session.close("bye");
  });
});
