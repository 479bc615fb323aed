/**
 * The two ends of a serial cable (docs/device.md §3): deframing, the HELLO exchange that opens a
 * connection, and routing frames to that connection's `SerialLink`. The owner (PWA or Node)
 * `connect()`s; the device answers every owner HELLO and hands each new connection to its agent.
 *
 * The transport is any `BytePort`: Web Serial in the PWA, a serialport or pty in Node, a TCP
 * socket in tests. The port's owner feeds received bytes to `receiveBytes` and reports the end
 * of the stream with `portClosed`.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { LoftError, type Result } from "../errors.ts";
import { type DeframeError, Deframer, encodeFrame, FRAME_HELLO } from "./frame.ts";
import {
  CAP_XXHFS,
  DEVICE_PROTOCOL_VERSION,
  decodeHello,
  encodeHello,
  type Hello,
  ROLE_DEVICE,
  ROLE_OWNER,
  STATE_UNPAIRED,
} from "./hello.ts";
import {
  type BytePort,
  type BytePortSink,
  type LinkTuning,
  resolveTuning,
  SerialLink,
} from "./serial-link.ts";

export interface EndpointOptions extends LinkTuning {
  /** Capabilities we announce (CAP_*). Default: CAP_XXHFS. */
  caps?: number;
  /**
   * Device only: paired or not, announced in HELLO. A function is read each time a HELLO is built,
   * so a device that just paired says so at once (not when its last connection has wound down).
   */
  state?: Hello["state"] | (() => Hello["state"]);
  /** Shown to the other side, ≤ 32 UTF-8 bytes. */
  name?: string;
}

/** A connection after the HELLO exchange: the link, and both HELLOs exactly as sent. */
export interface SerialConnection {
  link: SerialLink;
  ownerHello: Uint8Array;
  deviceHello: Uint8Array;
  owner: Hello;
  device: Hello;
}

/** Shared by both roles: deframing, fault counting, routing frames to the live link. */
abstract class Endpoint implements BytePortSink {
  protected readonly port: BytePort;
  protected readonly tuning: Required<LinkTuning>;
  protected readonly options: EndpointOptions;
  readonly #deframer: Deframer;
  protected link: SerialLink | undefined;
  /** Framing faults seen on the line (garbage, CRC, oversized), by kind. */
  readonly faults: Record<string, number> = {};
  #portOpen = true;

  constructor(port: BytePort, options: EndpointOptions) {
    this.port = port;
    this.options = options;
    this.tuning = resolveTuning(options);
    this.#deframer = new Deframer(this.tuning.maxPayload);
  }

  protected helloFor(role: Hello["role"], linkId: number): Uint8Array {
    return encodeHello({
      version: DEVICE_PROTOCOL_VERSION,
      role,
      linkId,
      caps: this.options.caps ?? CAP_XXHFS,
      maxPayload: this.tuning.maxPayload,
      window: this.tuning.window,
      state:
        (typeof this.options.state === "function" ? this.options.state() : this.options.state) ??
        STATE_UNPAIRED,
      maxMessage: this.tuning.maxMessage,
      name: this.options.name ?? "",
    });
  }

  protected sendHello(payload: Uint8Array): void {
    this.port.write(encodeFrame({ type: FRAME_HELLO, seq: 0, payload }));
  }

  /** Bytes from the cable, in any chunking. Never throws. */
  receiveBytes(chunk: Uint8Array): void {
    if (!this.#portOpen) return;
    const events = this.#deframer.push(chunk);
    for (const e of events) {
      if (!e.ok) {
        this.onFault(e.error);
        continue;
      }
      if (e.frame.type === FRAME_HELLO) this.onHello(e.frame.payload, decodeHello(e.frame.payload));
      else this.link?.onFrame(e.frame);
    }
    this.link?.flushAck();
  }

  protected onFault(error: DeframeError): void {
    this.faults[error.fault] = (this.faults[error.fault] ?? 0) + 1;
    this.link?.noteFault();
  }

  protected abstract onHello(bytes: Uint8Array, hello: Result<Hello>): void;

  /** The stream ended (cable pulled, port closed). */
  portClosed(detail = "the serial port closed"): void {
    if (!this.#portOpen) return;
    this.#portOpen = false;
    const partial = this.#deframer.partial ? " inside a frame" : "";
    this.link?.lost(`${detail}${partial}`);
    this.onPortClosed(detail);
  }

  protected onPortClosed(_detail: string): void {}

  get isPortOpen(): boolean {
    return this.#portOpen;
  }
}

export interface OwnerConnectOptions extends EndpointOptions {
  /** Resend our HELLO this often until the device answers. Default 500 ms. */
  helloRetryMs?: number;
  /** Give up (LOFT_ERR_TIMEOUT) after this many HELLOs. Default 10. */
  helloAttempts?: number;
  /** Link id (tests); random otherwise. */
  linkId?: number;
}

/** The owner's side (PWA or Node): opens connections to one device on one port. */
export class OwnerEndpoint extends Endpoint {
  #waiting:
    | {
        linkId: number;
        hello: Uint8Array;
        resolve: (c: SerialConnection) => void;
        reject: (e: LoftError) => void;
      }
    | undefined;

  /** Send HELLO until the device answers with its own for our link id; resolves with the open link. */
  connect(
    options: Pick<OwnerConnectOptions, "helloRetryMs" | "helloAttempts" | "linkId"> = {},
  ): Promise<SerialConnection> {
    if (!this.isPortOpen)
      return Promise.reject(new LoftError("LOFT_ERR_LINK_CLOSED", "the serial port is closed"));
    this.link?.close("replaced", "a new connection");
    const r = randomBytes(4);
    const linkId = options.linkId ?? (((r[0]! << 24) | (r[1]! << 16) | (r[2]! << 8) | r[3]!) >>> 0 || 1);
    const hello = this.helloFor(ROLE_OWNER, linkId);
    const attempts = options.helloAttempts ?? 10;
    const retryMs = options.helloRetryMs ?? 500;
    return new Promise<SerialConnection>((resolve, reject) => {
      let sent = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#waiting = undefined;
      };
      this.#waiting = {
        linkId,
        hello,
        resolve: (c) => {
          done();
          resolve(c);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const tick = () => {
        if (sent >= attempts) {
          this.#waiting?.reject(new LoftError("LOFT_ERR_TIMEOUT", `no device answered ${attempts} HELLOs`));
          return;
        }
        sent++;
        // A leading 0x00 ends whatever half frame the device may be holding.
        this.port.write(new Uint8Array([0]));
        this.sendHello(hello);
        timer = setTimeout(tick, retryMs);
      };
      tick();
    });
  }

  protected onHello(bytes: Uint8Array, decoded: Result<Hello>): void {
    const waiting = this.#waiting;
    if (!decoded.ok) {
      // Another protocol version is the one HELLO fault worth stopping for: wrong firmware.
      if (waiting && decoded.error.code === "LOFT_ERR_UNSUPPORTED_VERSION") waiting.reject(decoded.error);
      return;
    }
    const hello = decoded.value;
    if (hello.role !== ROLE_DEVICE) return;
    if (waiting && hello.linkId === waiting.linkId) {
      const link = new SerialLink(this.port, hello, this.tuning, (l) => {
        if (this.link === l) this.link = undefined;
      });
      this.link = link;
      const owner = decodeHello(waiting.hello);
      waiting.resolve({
        link,
        ownerHello: waiting.hello,
        deviceHello: bytes,
        owner: (owner as { value: Hello }).value,
        device: hello,
      });
      return;
    }
    if (waiting && hello.linkId === 0) {
      // The device just booted: answer right away instead of waiting for the next retry.
      this.sendHello(waiting.hello);
      return;
    }
    // A HELLO for another link id while ours is open: the device restarted or serves someone else.
    if (this.link && hello.linkId !== 0 && hello.linkId !== this.link.peer.linkId) return;
    if (this.link && hello.linkId === 0) this.link.lost("the device restarted");
  }

  protected override onPortClosed(detail: string): void {
    this.#waiting?.reject(new LoftError("LOFT_ERR_LINK_CLOSED", detail));
  }
}

/** The device's side: answers each owner HELLO with its own and hands the new link to `onConnection`. */
export class DeviceEndpoint extends Endpoint {
  readonly #onConnection: (c: SerialConnection) => void;

  constructor(port: BytePort, options: EndpointOptions, onConnection: (c: SerialConnection) => void) {
    super(port, options);
    this.#onConnection = onConnection;
  }

  /** Announce ourselves at boot (link id 0) so a waiting owner answers at once. */
  boot(): void {
    this.port.write(new Uint8Array([0]));
    this.sendHello(this.helloFor(ROLE_DEVICE, 0));
  }

  protected onHello(bytes: Uint8Array, decoded: Result<Hello>): void {
    if (!decoded.ok) {
      if (decoded.error.code === "LOFT_ERR_UNSUPPORTED_VERSION")
        this.sendHello(this.helloFor(ROLE_DEVICE, 0));
      return;
    }
    const owner = decoded.value;
    if (owner.role !== ROLE_OWNER || owner.linkId === 0) return;
    const current = this.link;
    if (current && current.state !== "closed" && current.peer.linkId === owner.linkId) {
      // The owner missed our answer and asked again: same link, same answer.
      this.sendHello(this.helloFor(ROLE_DEVICE, owner.linkId));
      return;
    }
    current?.lost("a new connection from the owner");
    const deviceHello = this.helloFor(ROLE_DEVICE, owner.linkId);
    const link = new SerialLink(this.port, owner, this.tuning, (l) => {
      if (this.link === l) this.link = undefined;
    });
    this.link = link;
    this.sendHello(deviceHello);
    this.#onConnection({
      link,
      ownerHello: bytes,
      deviceHello,
      owner,
      device: (decodeHello(deviceHello) as { value: Hello }).value,
    });
  }
}
