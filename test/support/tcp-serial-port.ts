/**
 * A Web Serial `SerialPort`-shaped object whose `open` connects to a TCP port on loopback (the
 * emulator's `--tcp`), or fails like a busy port: the PWA's device code runs unchanged in Node.
 * A closed socket errors the readable like an unplugged device (NetworkError).
 */
import { connect, type Socket } from "node:net";
import type { SerialPortLike } from "../../web/src/device/web-serial.ts";

export function tcpSerialPort(
  tcpPort: number,
  opens = true,
): SerialPortLike & { opened: number[]; destroy: () => void } {
  let socket: Socket | undefined;
  let readable: ReadableStream<Uint8Array> | null = null;
  let writable: WritableStream<Uint8Array> | null = null;
  const opened: number[] = [];
  return {
    opened,
    destroy: () => socket?.destroy(),
    get readable() {
      return readable;
    },
    get writable() {
      return writable;
    },
    async open({ baudRate }) {
      if (!opens) throw Object.assign(new Error("Failed to open serial port."), { name: "NetworkError" });
      opened.push(baudRate);
      const s = connect({ host: "127.0.0.1", port: tcpPort });
      socket = s;
      await new Promise<void>((r) => s.once("connect", () => r()));
      readable = new ReadableStream({
        start(c) {
          s.on("data", (b: Buffer) => c.enqueue(new Uint8Array(b)));
          s.on("close", () => {
            try {
              c.error(Object.assign(new Error("lost"), { name: "NetworkError" }));
            } catch {}
          });
        },
      });
      writable = new WritableStream({
        write(chunk) {
          s.write(chunk);
        },
      });
    },
    async close() {
      socket?.destroy();
      readable = null;
    },
  };
}
