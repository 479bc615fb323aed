/**
 * One device on a cable, from the PWA's side (docs/device.md §5–§7): open the Web Serial port,
 * exchange HELLOs, then either pair (`pairOverSerial`: handshake, compare code, provision) or
 * reconnect to a device this owner paired (`attachOverSerial`: no code). The result is an
 * `AttachedDevice`: the open session, live telemetry and the end of the connection. No DOM; the
 * screens (ui/PairDevice.tsx, ui/DeviceScreen.tsx) drive it, and Node tests run it against the
 * emulator.
 */

import { utf8 } from "../../../core/bytes.ts";
import { OwnerEndpoint, type SerialConnection } from "../../../core/device/endpoint.ts";
import { expectDeviceMessage, sendDeviceMessage } from "../../../core/device/exchange.ts";
import { CAP_WIFI } from "../../../core/device/hello.ts";
import { type DeviceLink, MAX_COMMAND_BYTES, type Provision } from "../../../core/device/messages.ts";
import { type PairingInfo, pairDevice, reconnectDevice } from "../../../core/device/owner.ts";
import type { UserIdentity } from "../../../core/identity/identity.ts";
import type { Session } from "../../../core/session/session.ts";
import { type DeviceProblem, DeviceProblemError, describeDeviceError } from "./problems.ts";
import { openPort, type SerialPortLike } from "./web-serial.ts";
import { type WebSerialBytePort, webSerialBytePort } from "./web-serial-port.ts";

/** The stepper of "Pair a device", in order (docs/device.md §12). */
export const PAIR_STEPS = ["connect", "hello", "handshake", "code", "provision", "done"] as const;
export type PairStep = (typeof PAIR_STEPS)[number];

/** One telemetry reading as the device sent it (docs/device.md §7). */
export interface TelemetryReading {
  n: number;
  at: number;
  r: Record<string, number>;
}

export interface SerialOptions {
  port: SerialPortLike;
  baudRate: number;
  self: UserIdentity;
  /** Name in our HELLO. */
  name?: string;
  /** Tests: HELLO retry period and count (defaults: 500 ms, 10 — docs/device.md §3). */
  helloRetryMs?: number;
  helloAttempts?: number;
}

/** An open, authenticated session with a device on this browser's cable. */
export class AttachedDevice {
  readonly session: Session;
  readonly connection: SerialConnection;
  readonly #port: WebSerialBytePort;
  readonly #listeners = new Set<(r: TelemetryReading) => void>();
  /** The last readings (newest last, at most 50), for a screen opened after they arrived. */
  readonly recent: TelemetryReading[] = [];
  /** Resolves when the connection ends, with what ended it (undefined: closed by us). */
  readonly ended: Promise<DeviceProblem | undefined>;
  #closedByUs = false;
  /** Console commands waiting for the device's `out`, by id. */
  readonly #commands = new Map<number, (a: { ok: boolean; m: string }) => void>();
  #nextCommand = 1;
  /** The bridge (bridge.ts): where `relay-out` goes; held here until it is set (at most 32). */
  #relayOut: ((message: Uint8Array) => void) | undefined;
  readonly #heldRelayOut: Uint8Array[] = [];
  #linked: ((key: Uint8Array) => void) | undefined;
  /** `relay-in`s the device has not answered yet, oldest first. */
  readonly #took: ((took: boolean) => void)[] = [];

  constructor(session: Session, connection: SerialConnection, port: WebSerialBytePort) {
    this.session = session;
    this.connection = connection;
    this.#port = port;
    this.ended = this.#read();
  }

  async #read(): Promise<DeviceProblem | undefined> {
    try {
      for (;;) {
        const m = await expectDeviceMessage(
          this.session,
          ["telemetry", "reset-done", "out", "linked", "relay-out", "relay-took"],
          2 ** 31 - 1,
        );
        if (m.t === "reset-done") return undefined;
        if (m.t === "linked") {
          this.#linked?.(m.k);
          continue;
        }
        if (m.t === "relay-took") {
          this.#took[0]?.(true);
          continue;
        }
        if (m.t === "relay-out") {
          if (this.#relayOut) this.#relayOut(m.b);
          else if (this.#heldRelayOut.length < 32) this.#heldRelayOut.push(m.b);
          continue;
        }
        if (m.t === "out") {
          this.#commands.get(m.id)?.({ ok: m.ok, m: m.m });
          continue;
        }
        const reading = { n: m.n, at: m.at, r: m.r };
        this.recent.push(reading);
        if (this.recent.length > 50) this.recent.shift();
        for (const l of this.#listeners) l(reading);
      }
    } catch (e) {
      if (this.#closedByUs) return undefined;
      return describeDeviceError(e, "attached");
    } finally {
      for (const answer of this.#commands.values()) answer({ ok: false, m: "the device went away" });
      this.#port.close();
    }
  }

  /**
   * Run a console command on the device (`cmd` → `out`, docs/device.md §7). Resolves with its
   * answer; `ok: false` with a reason when the device does not answer within `timeoutMs`.
   */
  command(line: string, timeoutMs = 10_000): Promise<{ ok: boolean; m: string }> {
    const c = line.trim();
    if (c === "" || utf8(c).length > MAX_COMMAND_BYTES)
      return Promise.resolve({ ok: false, m: `a command is 1 to ${MAX_COMMAND_BYTES} bytes` });
    if (this.session.state === "closed")
      return Promise.resolve({ ok: false, m: "the device is not attached" });
    const id = this.#nextCommand;
    this.#nextCommand = (this.#nextCommand + 1) >>> 0;
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer({ ok: false, m: "the device did not answer" }), timeoutMs);
      const answer = (a: { ok: boolean; m: string }) => {
        clearTimeout(timer);
        this.#commands.delete(id);
        resolve(a);
      };
      this.#commands.set(id, answer);
      sendDeviceMessage(this.session, { t: "cmd", id, c });
    });
  }

  /** Where the device's `relay-out` messages go (the bridge, bridge.ts); held ones go at once. */
  onRelayOut(handler: (message: Uint8Array) => void): void {
    this.#relayOut = handler;
    for (const m of this.#heldRelayOut.splice(0)) handler(m);
  }

  /**
   * Send `link` (docs/device.md §13) and resolve with the device's ratchet key from `linked`;
   * rejects when the device does not answer within `timeoutMs` or the connection ends.
   */
  link(settings: DeviceLink, timeoutMs = 10_000): Promise<Uint8Array> {
    if (this.session.state === "closed")
      return Promise.reject(new DeviceProblemError("cable-pulled", "the device is not attached"));
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#linked = undefined;
        reject(new DeviceProblemError("timeout", "the device did not answer the relay settings"));
      }, timeoutMs);
      this.#linked = (key) => {
        clearTimeout(timer);
        this.#linked = undefined;
        resolve(key);
      };
      void this.ended.then(() => {
        clearTimeout(timer);
        reject(new DeviceProblemError("cable-pulled", "the device went away"));
      });
      sendDeviceMessage(this.session, settings);
    });
  }

  /**
   * Hand the device a ratchet message from its queue at the relay (`relay-in`, the bridge).
   * Resolves true once the device said it read it (`relay-took`: its ratchet state is stored),
   * false when the connection ends or `timeoutMs` passes first.
   */
  relayIn(message: Uint8Array, timeoutMs = 10_000): Promise<boolean> {
    if (this.session.state === "closed") return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => settle(false), timeoutMs);
      const settle = (took: boolean) => {
        clearTimeout(timer);
        const i = this.#took.indexOf(settle);
        if (i >= 0) this.#took.splice(i, 1);
        resolve(took);
      };
      this.#took.push(settle);
      void this.ended.then(() => settle(false));
      sendDeviceMessage(this.session, { t: "relay-in", b: new Uint8Array(message) });
    });
  }

  onTelemetry(listener: (r: TelemetryReading) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Factory reset (docs/device.md §7): the device forgets us and makes a new identity. */
  async factoryReset(): Promise<void> {
    sendDeviceMessage(this.session, { t: "reset" });
    await this.ended;
  }

  /** Let go of the device (the port closes; the device keeps its pairing). */
  close(): void {
    this.#closedByUs = true;
    if (this.session.state !== "closed") this.session.close("detached");
    this.#port.close();
  }
}

/** Open the port and exchange HELLOs; `onStep` sees "connect" then "hello". */
async function connectSerial(
  o: SerialOptions,
  onStep?: (s: PairStep) => void,
): Promise<{ port: WebSerialBytePort; connection: SerialConnection }> {
  onStep?.("connect");
  await openPort(o.port, o.baudRate);
  let port: WebSerialBytePort;
  try {
    port = webSerialBytePort(o.port);
  } catch (e) {
    await o.port.close().catch(() => {});
    throw new DeviceProblemError("port-busy", e instanceof Error ? e.message : undefined);
  }
  const endpoint = new OwnerEndpoint(port, { name: o.name ?? "Loft PWA" });
  void port.attach(endpoint);
  onStep?.("hello");
  try {
    const connection = await endpoint.connect({
      ...(o.helloRetryMs === undefined ? {} : { helloRetryMs: o.helloRetryMs }),
      ...(o.helloAttempts === undefined ? {} : { helloAttempts: o.helloAttempts }),
    });
    return { port, connection };
  } catch (e) {
    port.close();
    throw e;
  }
}

export interface PairOverSerialOptions extends SerialOptions {
  onStep?: (s: PairStep) => void;
  /** Show the code; resolve true once the technician says the device shows the same. */
  confirmCode: (info: PairingInfo) => Promise<boolean>;
  /** Wi-Fi and relay settings for the device (sent only after the code was confirmed). */
  provision?: Omit<Provision, "t" | "owner">;
}

export interface PairResult {
  device: AttachedDevice;
  info: PairingInfo;
}

/** Pair an unpaired device over Web Serial; rejects with a LoftError or DeviceProblemError. */
export async function pairOverSerial(o: PairOverSerialOptions): Promise<PairResult> {
  const { port, connection } = await connectSerial(o, o.onStep);
  try {
    const caps = connection.device.caps;
    const provision = { ...(o.provision ?? {}) };
    // Wi-Fi only to a device that takes it (HELLO capability WIFI, docs/device.md §3).
    if (!(caps & CAP_WIFI)) delete provision.wifi;
    const paired = await pairDevice({
      connection,
      self: o.self,
      confirmCode: o.confirmCode,
      provision,
      onStep: (s) => o.onStep?.(s),
    });
    return { device: new AttachedDevice(paired.session, connection, port), info: paired.info };
  } catch (e) {
    port.close();
    throw e;
  }
}

export interface AttachOptions extends SerialOptions {
  deviceIdentityKey: Uint8Array;
  pinnedProtocol: "XXhfs" | "XX";
}

/** Reconnect to a device this owner paired (no code). */
export async function attachOverSerial(o: AttachOptions): Promise<AttachedDevice> {
  const { port, connection } = await connectSerial(o);
  try {
    const session = await reconnectDevice({
      connection,
      self: o.self,
      deviceIdentityKey: o.deviceIdentityKey,
      pinnedProtocol: o.pinnedProtocol,
    });
    return new AttachedDevice(session, connection, port);
  } catch (e) {
    port.close();
    throw e;
  }
}
