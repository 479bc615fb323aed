/**
 * A Node duplex stream (a serialport `SerialPort`, a TCP socket) as the `BytePort` of a serial
 * endpoint (core/device/serial-link.ts): bytes in go to `receiveBytes`, the end of the stream to
 * `portClosed`. Used by the emulator and by the Node-side owner in tests and tools.
 */
import type { Duplex } from "node:stream";
import type { BytePort, BytePortSink } from "../core/device/serial-link.ts";

export interface NodePort extends BytePort {
  /** Attach the endpoint that reads this port (once). */
  attach(sink: BytePortSink): void;
  readonly closed: Promise<void>;
}

export function nodeStreamPort(stream: Duplex): NodePort {
  let sink: BytePortSink | undefined;
  let ended = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const end = (detail: string) => {
    if (ended) return;
    ended = true;
    sink?.portClosed(detail);
    resolveClosed();
  };
  stream.on("data", (chunk: Buffer) =>
    sink?.receiveBytes(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
  );
  stream.on("error", (e: NodeJS.ErrnoException) => end(`the port failed (${e.code ?? "error"})`));
  stream.on("close", () => end("the port closed"));
  stream.on("end", () => end("the port closed"));
  return {
    attach(s) {
      sink = s;
      if (ended) s.portClosed("the port closed");
    },
    write(bytes) {
      if (ended || stream.destroyed) return;
      stream.write(bytes);
    },
    close() {
      stream.destroy();
    },
    closed,
  };
}
