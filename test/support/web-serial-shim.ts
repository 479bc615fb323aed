/**
 * A `navigator.serial` for real Chromium whose port is a TCP connection to the real device
 * emulator (device/emulator.ts --tcp), for the browser tests of "Pair a device". The page side
 * (an init script) is a WHATWG-streams `SerialPort`; its bytes cross to Node through exposed
 * bindings (reads are long polls, so order is kept and nothing is pushed into the page). The
 * test decides what the chooser returns (a port, or the technician closing it), whether opening
 * fails (port busy), and pulls the cable (the socket ends; the page's read errors with
 * NetworkError, as Chromium reports an unplugged device).
 */
import { connect, type Socket } from "node:net";
import type { BrowserContext, Page } from "playwright-core";
import { Deframer, encodeFrame, type Frame } from "../../core/device/frame.ts";

type Choice = "port" | "cancel";

interface Cable {
  page: Page;
  socket: Socket;
  chunks: Buffer[];
  waiting: ((r: string | { end: string }) => void) | undefined;
  ended: string | undefined;
}

/** The Node side of the shim: one emulator TCP port, the test's choices, the cables opened. */
export class SerialBridge {
  emulatorPort = 0;
  choice: Choice = "port";
  /** Opening fails as if another program held the port. */
  busy = false;
  /** Baud rates the page opened ports at (the screen's selection reaches `open`). */
  readonly baudRates: number[] = [];
  /**
   * A man in the middle on the device → page wire: each whole frame goes through it and is
   * re-encoded (a correct CRC: not line noise). Undefined: bytes pass untouched.
   */
  tapFromDevice: ((frame: Frame) => Frame) | undefined;
  readonly #cables = new Map<number, Cable>();
  #next = 1;

  /** Install the bindings and the init script in `context` (before its pages load). */
  async install(context: BrowserContext): Promise<void> {
    // A page that loads a new document or closes lets go of its ports, as Chromium does.
    context.on("page", (page) => {
      const release = () => {
        for (const c of this.#cables.values()) if (c.page === page) c.socket.destroy();
      };
      // (Not framenavigated: it also fires for the app's own history.pushState route changes.)
      page.on("domcontentloaded", release);
      page.on("close", release);
    });
    await context.exposeBinding("__loftSerialChoose", () => this.choice);
    await context.exposeBinding("__loftSerialOpen", (source, baudRate: number) =>
      this.#open(source.page, baudRate),
    );
    await context.exposeBinding("__loftSerialWrite", (_s, id: number, b64: string) => {
      const cable = this.#cables.get(id);
      if (!cable || cable.ended) return false;
      cable.socket.write(Buffer.from(b64, "base64"));
      return true;
    });
    await context.exposeBinding("__loftSerialRead", (_s, id: number) => this.#read(id));
    await context.exposeBinding("__loftSerialClose", (_s, id: number) => {
      this.#cables.get(id)?.socket.destroy();
    });
    await context.addInitScript({ content: PAGE_SHIM });
  }

  async #open(page: Page, baudRate: number): Promise<number | { error: string }> {
    if (this.busy) return { error: "NetworkError" };
    const socket = connect({ host: "127.0.0.1", port: this.emulatorPort });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    this.baudRates.push(baudRate);
    const id = this.#next++;
    const cable: Cable = { page, socket, chunks: [], waiting: undefined, ended: undefined };
    const deframer = this.tapFromDevice ? new Deframer() : undefined;
    const tap = this.tapFromDevice;
    socket.on("data", (raw: Buffer) => {
      let b = raw;
      if (deframer && tap) {
        const frames = deframer
          .push(new Uint8Array(raw))
          .flatMap((e) => (e.ok ? [encodeFrame(tap(e.frame))] : []));
        if (frames.length === 0) return;
        b = Buffer.concat(frames);
      }
      if (cable.waiting) {
        const w = cable.waiting;
        cable.waiting = undefined;
        w(b.toString("base64"));
      } else cable.chunks.push(b);
    });
    const end = (why: string) => {
      if (cable.ended) return;
      cable.ended = why;
      cable.waiting?.({ end: why });
      cable.waiting = undefined;
    };
    socket.on("close", () => end("NetworkError"));
    socket.on("error", () => end("NetworkError"));
    this.#cables.set(id, cable);
    return id;
  }

  #read(id: number): Promise<string | { end: string }> | string | { end: string } {
    const cable = this.#cables.get(id);
    if (!cable) return { end: "NetworkError" };
    if (cable.chunks.length > 0) return Buffer.concat(cable.chunks.splice(0)).toString("base64");
    if (cable.ended) return { end: cable.ended };
    return new Promise((resolve) => {
      cable.waiting = resolve;
    });
  }

  /** Pull the cable of every open port (the device is unplugged). */
  pullCable(): void {
    for (const c of this.#cables.values()) c.socket.destroy();
  }

  /** Ports currently open. */
  get openCables(): number {
    return [...this.#cables.values()].filter((c) => !c.ended).length;
  }

  close(): void {
    this.pullCable();
    this.#cables.clear();
  }
}

/** Runs in the page before the app: `navigator.serial` backed by the bindings above. */
const PAGE_SHIM = `(() => {
  const b64 = (bytes) => { let s = ""; for (const x of bytes) s += String.fromCharCode(x); return btoa(s); };
  const unb64 = (t) => { const s = atob(t); const out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; };
  class ShimPort {
    #id = 0;
    readable = null;
    writable = null;
    async open(options) {
      if (this.#id) throw new DOMException("The port is already open.", "InvalidStateError");
      const r = await window.__loftSerialOpen(options.baudRate);
      if (typeof r !== "number") throw new DOMException("Failed to open serial port.", r.error);
      this.#id = r;
      const id = r;
      const port = this;
      this.readable = new ReadableStream({
        async pull(controller) {
          const got = await window.__loftSerialRead(id);
          if (typeof got === "string") controller.enqueue(unb64(got));
          else {
            port.readable = null;
            controller.error(new DOMException("The device has been lost.", got.end));
          }
        },
      });
      this.writable = new WritableStream({
        async write(chunk) {
          if (!(await window.__loftSerialWrite(id, b64(chunk))))
            throw new DOMException("The device has been lost.", "NetworkError");
        },
      });
    }
    async close() {
      if (this.#id) await window.__loftSerialClose(this.#id);
      this.readable = null;
      this.writable = null;
    }
    getInfo() { return {}; }
  }
  const serial = {
    async requestPort() {
      const choice = await window.__loftSerialChoose();
      if (choice !== "port") throw new DOMException("No port selected by the user.", "NotFoundError");
      return new ShimPort();
    },
    async getPorts() { return []; },
  };
  Object.defineProperty(Navigator.prototype, "serial", { configurable: true, get: () => serial });
})();`;
