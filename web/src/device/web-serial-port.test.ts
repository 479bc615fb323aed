/**
 * The Web Serial adapter with a `SerialPort`-shaped object whose WHATWG streams are bridged to the
 * real emulator over TCP: the PWA's pairing path (webSerialBytePort → OwnerEndpoint → pairDevice)
 * end to end in Node. Also: a recoverable line error (FramingError) resumes on a new readable,
 * and an unplugged device (NetworkError) ends the port.
 */
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OwnerEndpoint } from "../../../core/device/endpoint.ts";
import { pairDevice } from "../../../core/device/owner.ts";
import { Emulator, ownerIdentity, tempDir } from "../../../device/test-support.ts";
import { type WebSerialPortLike, webSerialBytePort } from "./web-serial-port.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A SerialPort stand-in over a TCP socket; `fail(name)` errors the current readable like Chromium does. */
function socketSerialPort(socket: Socket): WebSerialPortLike & { fail(name: string): void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const fresh = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
    });
  let readable: ReadableStream<Uint8Array> | null = fresh();
  socket.on("data", (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk)));
  socket.on("close", () => {
    try {
      controller.close();
    } catch {}
  });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      socket.write(chunk);
    },
  });
  return {
    get readable() {
      return readable;
    },
    writable,
    async close() {
      socket.destroy();
      readable = null;
    },
    fail(name: string) {
      const error = Object.assign(new Error(name), { name });
      controller.error(error);
      readable = name === "NetworkError" ? null : fresh();
    },
  };
}

async function emulatorSocket(): Promise<{ emu: Emulator; socket: Socket }> {
  const t = tempDir();
  const emu = new Emulator(["--tcp", "0", "--state", `${t.dir}/device.json`, "--telemetry-ms", "100000"]);
  cleanups.push(t.cleanup, () => emu.stop());
  const port = (await emu.next("listening")).tcp as number;
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((r) => socket.once("connect", () => r()));
  cleanups.push(() => void socket.destroy());
  return { emu, socket };
}

describe("webSerialBytePort", () => {
  it("pairs with the emulator through a Web Serial-shaped port, surviving a framing error", async () => {
    const { emu, socket } = await emulatorSocket();
    const serial = socketSerialPort(socket);
    const port = webSerialBytePort(serial);
    const endpoint = new OwnerEndpoint(port, { name: "Loft PWA" });
    const ended = port.attach(endpoint);
    const connection = await endpoint.connect();
    serial.fail("FramingError");
    const paired = await pairDevice({
      connection,
      self: await ownerIdentity(),
      confirmCode: async (info) => (await emu.next("code")).code === info.code,
      provision: { wifi: { ssid: "lab", psk: "a passphrase" } },
    });
    expect(paired.info.code).toMatch(/^\d{6}$/);
    expect(port.lineErrors).toBe(1);
    paired.session.close("bye");
    port.close();
    await ended;
  });

  it("an unplugged device (NetworkError) ends the port and the connection with LOFT_ERR_LINK_CLOSED", async () => {
    const { socket } = await emulatorSocket();
    const serial = socketSerialPort(socket);
    const port = webSerialBytePort(serial);
    const endpoint = new OwnerEndpoint(port, {});
    const ended = port.attach(endpoint);
    const connection = await endpoint.connect();
    serial.fail("NetworkError");
    await ended;
    expect(await connection.link.closed).toMatchObject({ reason: "LOFT_ERR_LINK_CLOSED" });
  });
});
