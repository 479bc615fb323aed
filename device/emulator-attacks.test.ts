/**
 * The documented outcomes (docs/device.md §8) with the real emulator process behind a frame-level
 * man in the middle on TCP: a forged byte, line noise, a replayed frame, a wrong code, a stripped
 * capability (downgrade), a second owner, a factory reset. "Nothing provisioned" is checked on the
 * device itself: its next HELLO still says unpaired.
 */
import { afterEach, describe, expect, it } from "vitest";
import { encodeFrame, FRAME_DATA, FRAME_DATA_END, FRAME_HELLO, type Frame } from "../core/device/frame.ts";
import { CAP_XXHFS, STATE_PAIRED, STATE_UNPAIRED } from "../core/device/hello.ts";
import { decodeDeviceMessage, encodeDeviceMessage } from "../core/device/messages.ts";
import { pairDevice, reconnectDevice } from "../core/device/owner.ts";
import { type Emulator, emulatorOnTcp, ownerIdentity, ownerOverTcp, tamperProxy } from "./test-support.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function emulator(args: string[] = []): Promise<{ emu: Emulator; port: number }> {
  return emulatorOnTcp(cleanups, ["--telemetry-ms", "100000", ...args]);
}

async function connectTo(port: number) {
  const o = await ownerOverTcp(port, { retransmitMs: 200 });
  cleanups.push(() => o.port.close());
  return o.endpoint.connect();
}

/** Pair through `port`; the technician compares with the emulator's code (events after `from`). */
function pairVia(port: number, emu: Emulator, from: number, seed = 7) {
  return connectTo(port).then(async (connection) =>
    pairDevice({
      connection,
      self: await ownerIdentity(seed, `owner${seed}`),
      confirmCode: async (info) => (await emu.next("code", from)).code === info.code,
      provision: { wifi: { ssid: "lab", psk: "hunter2-hunter2" } },
      stepTimeoutMs: 20_000,
    }),
  );
}

async function deviceState(port: number): Promise<number> {
  const c = await connectTo(port);
  const state = c.device.state;
  c.link.close("probe");
  return state;
}

const isData = (f: Frame) => f.type === FRAME_DATA || f.type === FRAME_DATA_END;

describe("device emulator under attack (frame-level man in the middle)", () => {
  it("a byte changed with a correct CRC in handshake message 2: LOFT_ERR_DECRYPT, nothing provisioned", async () => {
    const { emu, port } = await emulator();
    let highest = -1;
    const proxy = await tamperProxy(port, (dir, f, w) => {
      // The third frame toward the owner (part of message 2), counted by seq: a retransmission
      // of an earlier frame under load must not take its place.
      const fresh = dir === "toOwner" && isData(f) && f.seq > highest;
      if (fresh) highest = f.seq;
      if (fresh && f.seq === 2) {
        const payload = f.payload.slice();
        payload[50]! ^= 0x80;
        return [encodeFrame({ ...f, payload })];
      }
      return [w];
    });
    cleanups.push(proxy.close);
    await expect(pairVia(proxy.port, emu, 0)).rejects.toMatchObject({ code: "LOFT_ERR_DECRYPT" });
    await emu.next("ended");
    expect(emu.events.some((e) => e.event === "code")).toBe(false);
    expect(await deviceState(port)).toBe(STATE_UNPAIRED);
  });

  it("line noise (a byte changed, CRC left alone) is dropped and retransmitted: pairing succeeds", async () => {
    const { emu, port } = await emulator();
    let k = 0;
    const sent = new Set<string>();
    const proxy = await tamperProxy(port, (dir, f, w) => {
      const first = !sent.has(`${dir}:${f.seq}`);
      sent.add(`${dir}:${f.seq}`);
      // Noise hits one first transmission in four; the retransmission gets through.
      if (isData(f) && first && ++k % 4 === 0) {
        const noisy = w.slice();
        noisy[3] = noisy[3] === 0xff ? 0xfe : noisy[3]! + 1 || 1;
        return [noisy];
      }
      return [w];
    });
    cleanups.push(proxy.close);
    const paired = await pairVia(proxy.port, emu, 0);
    expect(paired.info.code).toMatch(/^\d{6}$/);
    paired.session.close("bye");
  });

  it("a frame replayed under a fresh sequence number during pairing: LOFT_ERR_DECRYPT, nothing provisioned", async () => {
    const { emu, port } = await emulator();
    const seen: Frame[] = [];
    let highest = -1;
    let replayed = false;
    const proxy = await tamperProxy(port, (dir, f, w) => {
      if (dir !== "toDevice" || !isData(f)) return [w];
      const fresh = f.seq > highest;
      highest = Math.max(highest, f.seq);
      if (fresh) seen.push(f);
      // The owner's 'nonce' message (first transport frame after message 3): replace by message 3's last frame.
      if (fresh && !replayed && seen.length > 9 && f.type === FRAME_DATA_END) {
        replayed = true;
        const old = seen[seen.length - 2]!;
        return [encodeFrame({ ...old, seq: f.seq })];
      }
      return [w];
    });
    cleanups.push(proxy.close);
    const outcome = await pairVia(proxy.port, emu, 0).then(
      () => "paired",
      (e: { code?: string }) => e.code,
    );
    expect(replayed).toBe(true);
    expect(outcome).not.toBe("paired");
    expect((await emu.next("ended")).reason).toBe("LOFT_ERR_DECRYPT");
    expect(await deviceState(port)).toBe(STATE_UNPAIRED);
  });

  it("a wrong code: the owner aborts, the device ends the pairing, nothing provisioned; a later pairing works", async () => {
    const { emu, port } = await emulator();
    const connection = await connectTo(port);
    await expect(
      pairDevice({
        connection,
        self: await ownerIdentity(),
        confirmCode: async () => false,
        provision: { wifi: { ssid: "x", psk: "" } },
      }),
    ).rejects.toMatchObject({ code: "LOFT_ERR_HANDSHAKE_IDENTITY" });
    expect((await emu.next("ended")).reason).toBe("LOFT_ERR_HANDSHAKE_IDENTITY");
    expect(await deviceState(port)).toBe(STATE_UNPAIRED);
    const from = emu.events.length;
    const paired = await pairVia(port, emu, from);
    expect(paired.info.device.verified.flags.is_machine_account).toBe(true);
    paired.session.close("bye");
  });

  it("a stripped CAP_XXHFS in both HELLOs (downgrade to XX) makes the two codes differ: refused", async () => {
    const { emu, port } = await emulator();
    const proxy = await tamperProxy(port, (_dir, f, w) => {
      if (f.type !== FRAME_HELLO) return [w];
      const payload = f.payload.slice();
      payload[11]! &= ~CAP_XXHFS;
      return [encodeFrame({ ...f, payload })];
    });
    cleanups.push(proxy.close);
    let ownerSaw: { code: string; protocol: string } | undefined;
    const connection = await connectTo(proxy.port);
    await expect(
      pairDevice({
        connection,
        self: await ownerIdentity(),
        confirmCode: async (info) => {
          ownerSaw = info;
          return (await emu.next("code")).code === info.code;
        },
      }),
    ).rejects.toMatchObject({ code: "LOFT_ERR_HANDSHAKE_IDENTITY" });
    expect(ownerSaw?.protocol).toBe("XX");
    expect((await emu.next("code")).code).not.toBe(ownerSaw?.code);
    expect(await deviceState(port)).toBe(STATE_UNPAIRED);
  });

  it("a paired device refuses a second owner until a factory reset; then the new owner pairs", async () => {
    const { emu, port } = await emulator();
    const first = await pairVia(port, emu, 0, 7);
    const deviceKey = first.info.device.verified.identity_key;
    first.session.close("bye");
    await emu.next("ended");
    expect(await deviceState(port)).toBe(STATE_PAIRED);

    await expect(pairVia(port, emu, emu.events.length, 8)).rejects.toMatchObject({
      code: "LOFT_ERR_HANDSHAKE_IDENTITY",
      message: expect.stringMatching(/another owner/),
    });

    // The first owner resets it (from the PWA's device screen).
    const c = await connectTo(port);
    const session = await reconnectDevice({
      connection: c,
      self: await ownerIdentity(7, "owner7"),
      deviceIdentityKey: deviceKey,
      pinnedProtocol: "XXhfs",
    });
    session.send(encodeDeviceMessage({ t: "reset" }));
    let m = decodeDeviceMessage(await session.receive());
    while (m.ok && m.value.t === "telemetry") m = decodeDeviceMessage(await session.receive());
    expect(m.ok && m.value.t).toBe("reset-done");
    await emu.next("reset");
    expect(await deviceState(port)).toBe(STATE_UNPAIRED);

    const second = await pairVia(port, emu, emu.events.length, 8);
    // A factory reset makes a new device identity.
    expect(Buffer.from(second.info.device.verified.identity_key).equals(Buffer.from(deviceKey))).toBe(false);
    second.session.close("bye");
  });

  it("a device without ML-KEM (--no-pq) pairs over plain XX and says so on both sides", async () => {
    const { emu, port } = await emulator(["--no-pq"]);
    const paired = await pairVia(port, emu, 0);
    expect(paired.info.protocol).toBe("XX");
    expect(paired.info.protocolName).toBe("Noise_XX_25519_ChaChaPoly_BLAKE2s");
    expect((await emu.next("code")).protocol).toBe("XX");
    paired.session.close("bye");
  });
});
