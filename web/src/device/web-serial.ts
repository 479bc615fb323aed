/**
 * The Web Serial API as the "Pair a device" screen uses it (docs/device.md §12): whether the
 * browser has it, asking the technician for a port, and opening it at a baud rate. Only the
 * members used here are typed (TypeScript's DOM library has no Web Serial types), so a test can
 * hand in a `navigator.serial` of its own (test/e2e/device.e2e.ts bridges one to the emulator).
 */
import { DeviceProblemError } from "./problems.ts";
import type { WebSerialPortLike } from "./web-serial-port.ts";

/** A `SerialPort`, closed or open. */
export interface SerialPortLike extends WebSerialPortLike {
  open(options: { baudRate: number; bufferSize?: number }): Promise<void>;
}

/** `navigator.serial`. */
export interface SerialLike {
  requestPort(options?: {
    filters?: { usbVendorId?: number; usbProductId?: number }[];
  }): Promise<SerialPortLike>;
}

/** Baud rates offered on the screen; 115 200 is what ESP32 boards and the emulator use. */
export const BAUD_RATES = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600] as const;
export const DEFAULT_BAUD_RATE = 115200;

/** `navigator.serial`, or undefined in a browser without Web Serial (Firefox, Safari, mobile). */
export function webSerial(): SerialLike | undefined {
  if (typeof navigator === "undefined") return undefined;
  const serial = (navigator as Navigator & { serial?: SerialLike }).serial;
  return serial && typeof serial.requestPort === "function" ? serial : undefined;
}

const errorName = (e: unknown): string =>
  typeof (e as { name?: unknown })?.name === "string" ? (e as { name: string }).name : "";

/** Ask for a port (the browser's chooser; needs a click). A closed chooser is "no-port". */
export async function choosePort(serial: SerialLike): Promise<SerialPortLike> {
  try {
    return await serial.requestPort();
  } catch (e) {
    const name = errorName(e);
    if (name === "NotFoundError" || name === "AbortError") throw new DeviceProblemError("no-port");
    if (name === "SecurityError") throw new DeviceProblemError("blocked");
    throw new DeviceProblemError("port-busy", e instanceof Error ? e.message : undefined);
  }
}

/**
 * Open the port at `baudRate`. Chromium rejects with InvalidStateError when this page already has
 * it open and with NetworkError when the operating system refused it (another program — a serial
 * monitor, a flasher — holds it): both are "port busy".
 */
export async function openPort(port: SerialPortLike, baudRate: number): Promise<void> {
  try {
    await port.open({ baudRate, bufferSize: 4096 });
  } catch (e) {
    throw new DeviceProblemError("port-busy", e instanceof Error ? e.message : undefined);
  }
}
