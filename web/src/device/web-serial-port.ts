/**
 * A Web Serial port as the `BytePort` of the device protocol (docs/device.md §1, §12): what the
 * "Pair a device" screen hands to `OwnerEndpoint` (core/device/endpoint.ts). No DOM types are
 * needed beyond the WHATWG streams a `SerialPort` exposes, so it is tested in Node with a port
 * whose streams are bridged to the emulator.
 *
 * Web Serial reports line errors (break, framing, parity, buffer overrun) by erroring the current
 * `readable` and giving the port a new one; those are not fatal here — the deframer resynchronises
 * and the link retransmits — so reading resumes on the new stream. Anything else (the device was
 * unplugged: a NetworkError, or the stream ending) is the end of the port.
 */
import type { BytePort, BytePortSink } from "../../../core/device/serial-link.ts";

/** The part of the Web Serial `SerialPort` this adapter uses (the port must already be open). */
export interface WebSerialPortLike {
  readonly readable: ReadableStream<Uint8Array> | null;
  readonly writable: WritableStream<Uint8Array> | null;
  close(): Promise<void>;
}

/** Line errors after which a Web Serial port carries on with a fresh `readable`. */
const RECOVERABLE = new Set(["BreakError", "FramingError", "ParityError", "BufferOverrunError"]);

export interface WebSerialBytePort extends BytePort {
  /** Start reading into `sink` (once). Resolves when the port has ended. */
  attach(sink: BytePortSink): Promise<void>;
  /** Line errors survived so far (diagnostics). */
  readonly lineErrors: number;
}

export function webSerialBytePort(port: WebSerialPortLike): WebSerialBytePort {
  const writable = port.writable;
  if (writable === null) throw new Error("the serial port is not open");
  const writer = writable.getWriter();
  let sink: BytePortSink | undefined;
  let ended = false;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let lineErrors = 0;
  const end = (detail: string) => {
    if (ended) return;
    ended = true;
    sink?.portClosed(detail);
  };
  const readLoop = async (): Promise<void> => {
    while (!ended) {
      const readable = port.readable;
      if (readable === null) return end("the serial port closed");
      reader = readable.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return end("the serial port closed");
          if (value !== undefined && value.length > 0) sink?.receiveBytes(value);
        }
      } catch (e) {
        const name = (e as { name?: unknown }).name;
        if (typeof name === "string" && RECOVERABLE.has(name)) {
          lineErrors++;
          continue;
        }
        return end(`the device went away (${typeof name === "string" ? name : "read error"})`);
      } finally {
        reader.releaseLock();
        reader = undefined;
      }
    }
  };
  return {
    attach(s) {
      sink = s;
      return readLoop();
    },
    write(bytes) {
      if (ended) return;
      // Writes queue in the stream in order; a failure means the port is gone.
      writer.write(bytes).catch(() => end("the serial port refused a write"));
    },
    close() {
      if (!ended) end("closed");
      void (async () => {
        await reader?.cancel().catch(() => {});
        await writer.close().catch(() => {});
        writer.releaseLock();
        await port.close().catch(() => {});
      })();
    },
    get lineErrors() {
      return lineErrors;
    },
  };
}
