/**
 * Interop: our `Noise_XX_25519_ChaChaPoly_BLAKE2s` (core/noise, via scripts/noise-peer.ts and in
 * process) against an independent implementation, Debian's python3-dissononce
 * (test/interop/dissononce-peer.py), over real TCP with 2-byte big-endian framing
 * (host/tcp-link.ts). In both roles, both sides must print the same handshake hash, each must
 * learn the other's static key, and transport messages must go through both ways.
 *
 * Nothing is skipped: without dissononce the test fails and says how to install it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../core/bytes.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { XX } from "../../core/noise/patterns.ts";
import { keyPairFromPrivate } from "../../core/noise/primitives.ts";
import { TcpLink } from "../../host/tcp-link.ts";
import { findDissononcePython } from "./python.ts";

const PY_PEER = fileURLToPath(new URL("./dissononce-peer.py", import.meta.url));
const TS_PEER = fileURLToPath(new URL("../../scripts/noise-peer.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

// Fixed static keys (cacophony's), so a failure is reproducible by hand with the same commands.
const INIT_STATIC = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
const RESP_STATIC = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
const publicOf = async (hex: string) =>
  toHex((await keyPairFromPrivate(Uint8Array.from(Buffer.from(hex, "hex")))).publicKey);

let python = "";
const children: ChildProcess[] = [];

interface Peer {
  lines: string[];
  /** Resolves with the first line starting with `prefix` (value after the `=`). */
  line(prefix: string): Promise<string>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

function start(command: string, args: string[]): Peer {
  const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (v: string) => void }[] = [];
  let stderr = "";
  let partial = "";
  child.stdout!.on("data", (d: Buffer) => {
    partial += d.toString("utf8");
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of waiters.filter((w) => l.startsWith(`${w.prefix}=`)))
        w.resolve(l.slice(w.prefix.length + 1));
    }
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, stderr })),
  );
  return {
    lines,
    exit,
    line: (prefix) =>
      new Promise((resolve, reject) => {
        const found = lines.find((l) => l.startsWith(`${prefix}=`));
        if (found !== undefined) return resolve(found.slice(prefix.length + 1));
        waiters.push({ prefix, resolve });
        void exit.then(({ code }) => reject(new Error(`peer exited (${code}) before ${prefix}=: ${stderr}`)));
      }),
  };
}

const pyPeer = (args: string[]) => start(python, [PY_PEER, ...args]);
const tsPeer = (args: string[]) => start(process.execPath, ["--import", "tsx", TS_PEER, ...args]);

beforeAll(() => {
  python = findDissononcePython();
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill();
});

describe("Noise XX interop with python3-dissononce over TCP", () => {
  it("dissononce initiator → our responder (scripts/noise-peer.ts)", async () => {
    const responder = tsPeer([
      "--role",
      "responder",
      "--port",
      "0",
      "--static-hex",
      RESP_STATIC,
      "--prologue",
      "loft",
    ]);
    const port = await responder.line("listening");
    const initiator = pyPeer([
      "--role",
      "initiator",
      "--port",
      port,
      "--static-hex",
      INIT_STATIC,
      "--prologue",
      "loft",
      "--message",
      "grüße from python",
      "--repeat",
      "3",
    ]);
    const [ours, theirs] = await Promise.all([
      responder.line("handshake_hash"),
      initiator.line("handshake_hash"),
    ]);
    expect(ours).toMatch(/^[0-9a-f]{64}$/);
    expect(ours).toBe(theirs);
    expect(await responder.line("remote_static")).toBe(await publicOf(INIT_STATIC));
    expect(await initiator.line("remote_static")).toBe(await publicOf(RESP_STATIC));
    expect((await initiator.exit).code).toBe(0);
    expect(initiator.lines.filter((l) => l.startsWith("echo="))).toEqual(
      Array(3).fill("echo=grüße from python"),
    );
    expect((await responder.exit).code).toBe(0);
  });

  it("our initiator (scripts/noise-peer.ts) → dissononce responder", async () => {
    const responder = pyPeer([
      "--role",
      "responder",
      "--port",
      "0",
      "--static-hex",
      RESP_STATIC,
      "--prologue",
      "p",
    ]);
    const port = await responder.line("listening");
    const initiator = tsPeer([
      "--role",
      "initiator",
      "--port",
      port,
      "--static-hex",
      INIT_STATIC,
      "--prologue",
      "p",
      "--message",
      "hello from loft",
      "--repeat",
      "2",
    ]);
    const [ours, theirs] = await Promise.all([
      initiator.line("handshake_hash"),
      responder.line("handshake_hash"),
    ]);
    expect(ours).toBe(theirs);
    expect(await initiator.line("remote_static")).toBe(await publicOf(RESP_STATIC));
    expect(await responder.line("remote_static")).toBe(await publicOf(INIT_STATIC));
    expect((await initiator.exit).code).toBe(0);
    expect(initiator.lines.filter((l) => l.startsWith("echo="))).toEqual(
      Array(2).fill("echo=hello from loft"),
    );
    expect((await responder.exit).code).toBe(0);
  });

  it("in process: handshake payloads, then frames from 0 bytes to the 65535-byte limit both ways", async () => {
    const responder = pyPeer(["--role", "responder", "--port", "0", "--static-hex", RESP_STATIC]);
    const port = Number(await responder.line("listening"));
    const link = await TcpLink.connect("127.0.0.1", port);
    const hs = await HandshakeState.create({
      pattern: XX,
      role: "initiator",
      prologue: new Uint8Array(0),
      staticKeyPair: await keyPairFromPrivate(Uint8Array.from(Buffer.from(INIT_STATIC, "hex"))),
    });
    const send = (r: { ok: boolean; value?: Uint8Array }) => link.send(r.value!);
    send(await hs.writeMessage());
    const payload2 = await hs.readMessage(await link.receive());
    expect(payload2.ok).toBe(true);
    send(await hs.writeMessage());
    const done = await hs.finish();
    if (!done.ok) throw done.error;
    const transport = done.value;
    expect(toHex(transport.handshakeHash)).toBe(await responder.line("handshake_hash"));
    expect(toHex(transport.remoteStaticKey)).toBe(await publicOf(RESP_STATIC));
    expect(await responder.line("remote_static")).toBe(await publicOf(INIT_STATIC));

    const empty = new Uint8Array(0);
    for (const size of [0, 1, 1000, 16 * 1024, 65535 - 16]) {
      const message = Uint8Array.from({ length: size }, (_, i) => (i * 31 + size) & 0xff);
      const sealed = await transport.send.encryptWithAd(empty, message);
      if (!sealed.ok) throw sealed.error;
      expect(sealed.value.length).toBe(size + 16);
      link.send(sealed.value);
      const echoed = await transport.receive.decryptWithAd(empty, await link.receive());
      if (!echoed.ok) throw echoed.error;
      expect(echoed.value).toEqual(message);
    }
    // A tampered frame is refused by dissononce: it exits with an error instead of echoing.
    const sealed = await transport.send.encryptWithAd(empty, utf8("tampered"));
    if (!sealed.ok) throw sealed.error;
    sealed.value[0]! ^= 1;
    link.send(sealed.value);
    const exit = await responder.exit;
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(/error=/);
    link.close();
  });
});
