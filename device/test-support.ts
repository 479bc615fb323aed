/**
 * Test helpers for the device tests: start the emulator as a child process (the real CLI), read its
 * JSON event lines, make a socat pty pair, and connect a Node-side owner over TCP or a pty.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SerialPort } from "serialport";
import { OwnerEndpoint } from "../core/device/endpoint.ts";
import { Deframer, encodeFrame, type Frame } from "../core/device/frame.ts";
import type { LinkTuning } from "../core/device/serial-link.ts";
import { createUserIdentity, type UserIdentity } from "../core/identity/identity.ts";
import { type NodePort, nodeStreamPort } from "./node-port.ts";

const EMULATOR = fileURLToPath(new URL("./emulator.ts", import.meta.url));

export interface EmulatorEvent {
  event: string;
  [k: string]: unknown;
}

export class Emulator {
  readonly events: EmulatorEvent[] = [];
  readonly #waiters: { match: (e: EmulatorEvent) => boolean; resolve: (e: EmulatorEvent) => void }[] = [];
  readonly process: ChildProcess;
  stderr = "";
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.process = spawn(process.execPath, ["--import", "tsx", EMULATOR, "--json", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffered = "";
    this.process.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
        if (line.trim() === "") continue;
        const e = JSON.parse(line) as EmulatorEvent;
        this.events.push(e);
        for (const w of this.#waiters.splice(0)) {
          if (w.match(e)) w.resolve(e);
          else this.#waiters.push(w);
        }
      }
    });
    this.process.stderr!.on("data", (c: Buffer) => {
      this.stderr += c.toString("utf8");
    });
    this.exited = new Promise((r) => this.process.on("exit", (code) => r(code)));
  }

  /** The next event (or one already seen after index `from`) named `name`; bounded by `ms`. */
  next(name: string, from = 0, ms = 30_000): Promise<EmulatorEvent> {
    const seen = this.events.slice(from).find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "${name}" event from the emulator; stderr: ${this.stderr}`)),
        ms,
      );
      this.#waiters.push({
        match: (e) => e.event === name,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGTERM");
      await this.exited;
    }
  }
}

/**
 * An emulator on a loopback TCP port (`--tcp 0`) with a state file of its own; `cleanups` gets
 * its stop and the directory's removal (run them in reverse order). Resolves once it listens.
 */
export async function emulatorOnTcp(
  cleanups: (() => unknown)[],
  args: string[] = [],
): Promise<{ emu: Emulator; port: number; dir: string }> {
  const t = tempDir();
  const emu = new Emulator(["--tcp", "0", "--state", `${t.dir}/device.json`, ...args]);
  cleanups.push(t.cleanup, () => emu.stop());
  const listening = await emu.next("listening");
  return { emu, port: listening.tcp as number, dir: t.dir };
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "loft-device-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const C_SOURCES = fileURLToPath(new URL("./c/", import.meta.url));

/**
 * Compile files of the C reference (device/c) with the system compiler as a firmware build would:
 * C99, pedantic, every warning an error. Returns the path of the binary, written under `dir`.
 */
export function compileC(dir: string, name: string, sources: string[], libs: string[] = []): string {
  const binary = join(dir, name);
  execFileSync("cc", [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-O2",
    "-o",
    binary,
    ...sources.map((s) => join(C_SOURCES, s)),
    ...libs,
  ]);
  return binary;
}

/** Awaited: core identity calls may become async (the crypto seam). */
export async function ownerIdentity(seed = 7, username = "owner"): Promise<UserIdentity> {
  return await createUserIdentity({ username, now: 1_700_000_000_000, seed: new Uint8Array(32).fill(seed) });
}

export interface OwnerSide {
  endpoint: OwnerEndpoint;
  port: NodePort;
}

export async function ownerOverTcp(tcpPort: number, tuning: LinkTuning = {}): Promise<OwnerSide> {
  const socket = connect({ host: "127.0.0.1", port: tcpPort });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  const port = nodeStreamPort(socket);
  const endpoint = new OwnerEndpoint(port, { name: "node owner", ...tuning });
  port.attach(endpoint);
  return { endpoint, port };
}

export async function ownerOverSerial(path: string, tuning: LinkTuning = {}): Promise<OwnerSide> {
  const serial = new SerialPort({ path, baudRate: 115_200, autoOpen: false });
  await new Promise<void>((resolve, reject) => serial.open((e) => (e ? reject(e) : resolve())));
  const port = nodeStreamPort(serial);
  const endpoint = new OwnerEndpoint(port, { name: "node owner", ...tuning });
  port.attach(endpoint);
  return { endpoint, port };
}

/** A socat pty pair: two linked pseudo-terminals, raw, as a null-modem cable. */
export class PtyPair {
  readonly a: string;
  readonly b: string;
  readonly #socat: ChildProcess;
  readonly exited: Promise<void>;

  private constructor(a: string, b: string, socat: ChildProcess, exited: Promise<void>) {
    this.a = a;
    this.b = b;
    this.#socat = socat;
    this.exited = exited;
  }

  static async open(dir: string): Promise<PtyPair> {
    const a = join(dir, "pty-device");
    const b = join(dir, "pty-owner");
    const socat = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const exited = new Promise<void>((r) => socat.on("exit", () => r()));
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`socat did not start: ${log}`)), 10_000);
      socat.stderr!.on("data", (c: Buffer) => {
        log += c.toString();
        if (log.includes("starting data transfer loop")) {
          clearTimeout(timer);
          resolve();
        }
      });
      socat.once("exit", () => reject(new Error(`socat exited: ${log}`)));
    });
    return new PtyPair(a, b, socat, exited);
  }

  /** Pull the cable: both ends see the stream end. */
  async close(): Promise<void> {
    this.#socat.kill("SIGTERM");
    await this.exited;
  }
}

/** What a tampering cable does with one frame: the wire bytes to forward instead (none drops it). */
export type FrameTap = (dir: "toDevice" | "toOwner", frame: Frame, wire: Uint8Array) => Uint8Array[];

/**
 * A TCP man in the middle between an owner and the emulator that works frame by frame: it deframes
 * each direction, hands every frame to `tap`, and forwards what the tap returns. Untouched frames
 * are forwarded byte for byte (the encoding is canonical).
 */
export async function tamperProxy(
  target: number,
  tap: FrameTap,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect({ host: "127.0.0.1", port: target });
    sockets.add(inbound);
    sockets.add(outbound);
    const pipe = (from: Socket, to: Socket, dir: "toDevice" | "toOwner") => {
      const deframer = new Deframer();
      from.on("data", (chunk: Buffer) => {
        for (const e of deframer.push(new Uint8Array(chunk))) {
          if (!e.ok) continue;
          for (const w of tap(dir, e.frame, encodeFrame(e.frame))) to.write(w);
        }
      });
      from.on("close", () => to.destroy());
      from.on("error", () => to.destroy());
    };
    pipe(inbound, outbound, "toDevice");
    pipe(outbound, inbound, "toOwner");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
