/**
 * A C Noise XX responder (device/c/noise_xx_responder.c: libsodium for X25519 and
 * ChaCha20-Poly1305, the C reference's BLAKE2s) against the TypeScript initiator (core/noise),
 * with the prologue of a serial session (link kind "serial", both SREMP version headers): the
 * handshake completes, both sides hold the same handshake hash and each other's static keys, and
 * transport messages pass both ways; a flipped byte in message 2 is refused by the TypeScript.
 * This is the crypto a firmware runs for a device that announces no XXHFS (docs/device.md §10).
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, toHex, utf8 } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { HandshakeState } from "../core/noise/handshake-state.ts";
import { XX } from "../core/noise/patterns.ts";
import { keyPairFromPrivate } from "../core/noise/primitives.ts";
import { sessionPrologue } from "../core/session/prologue.ts";
import { compileC, tempDir } from "./test-support.ts";

let binary = "";
let cleanup = () => {};

beforeAll(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  binary = compileC(t.dir, "noise-xx-responder", ["noise_xx_responder.c", "loft_device.c"], ["-lsodium"]);
});
afterAll(() => cleanup());

/** The C responder as a line-oriented child process. */
class CPeer {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  readonly #waiters: ((l: string) => void)[] = [];
  #buffer = "";

  constructor(args: string[]) {
    this.#child = spawn(binary, args);
    this.#child.stdout.on("data", (c: Buffer) => {
      this.#buffer += c.toString("utf8");
      let nl = this.#buffer.indexOf("\n");
      while (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        const w = this.#waiters.shift();
        if (w) w(line);
        else this.#lines.push(line);
        nl = this.#buffer.indexOf("\n");
      }
    });
    this.#child.on("exit", () => {
      for (const w of this.#waiters.splice(0)) w("exit");
    });
  }

  send(hex: string): void {
    this.#child.stdin.write(`${hex || "-"}\n`);
  }

  next(): Promise<string> {
    const l = this.#lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.#child.exitCode !== null) return Promise.resolve("exit");
    return new Promise((r) => this.#waiters.push(r));
  }

  kill(): void {
    this.#child.kill();
  }
}

const header = encodeVersionHeader();
const prologue = sessionPrologue("serial", header, header);
const ownerStatic = await keyPairFromPrivate(new Uint8Array(32).fill(0x41));
const deviceStaticPriv = new Uint8Array(32).fill(0x42);
const deviceEphemeralPriv = new Uint8Array(32).fill(0x43);

/** The TypeScript initiator with the serial prologue, message 1 already sent to the C responder. */
async function startHandshake(c: CPeer): Promise<HandshakeState> {
  const hs = await HandshakeState.create({
    pattern: XX,
    role: "initiator",
    prologue,
    staticKeyPair: ownerStatic,
  });
  const m1 = await hs.writeMessage(new Uint8Array(0));
  expect(m1.ok).toBe(true);
  c.send(toHex(m1.ok ? m1.value : new Uint8Array(0)));
  return hs;
}

describe("C Noise XX responder (libsodium) vs the TypeScript initiator", () => {
  it("is built against libsodium", () => {
    expect(existsSync("/usr/include/sodium.h")).toBe(true);
  });

  it("completes the handshake with the serial prologue; same h, static keys, transport both ways", async () => {
    const devicePayload = utf8("device identity would go here");
    const c = new CPeer([
      toHex(deviceStaticPriv),
      toHex(deviceEphemeralPriv),
      toHex(prologue),
      toHex(devicePayload),
    ]);
    try {
      const hs = await startHandshake(c);
      const m2 = await c.next();
      expect(m2).not.toBe("err");
      const p2 = await hs.readMessage(fromHex(m2));
      expect(p2.ok && toHex(p2.value)).toBe(toHex(devicePayload));
      expect(toHex(hs.remoteStaticKey!)).toBe(toHex((await keyPairFromPrivate(deviceStaticPriv)).publicKey));
      const ownerPayload = utf8("owner identity");
      const m3 = await hs.writeMessage(ownerPayload);
      c.send(toHex(m3.ok ? m3.value : new Uint8Array(0)));
      const [h, rs, p3] = (await c.next()).split(" ");
      expect(rs).toBe(toHex(ownerStatic.publicKey));
      expect(p3).toBe(toHex(ownerPayload));
      const transport = await hs.finish();
      expect(transport.ok).toBe(true);
      if (!transport.ok) return;
      expect(h).toBe(toHex(transport.value.handshakeHash));
      const sealed = await transport.value.send.encryptWithAd(new Uint8Array(0), utf8("provision"));
      c.send(toHex(sealed.ok ? sealed.value : new Uint8Array(0)));
      expect(await c.next()).toBe(toHex(utf8("provision")));
      c.send(toHex(utf8("provisioned")));
      const reply = await transport.value.receive.decryptWithAd(new Uint8Array(0), fromHex(await c.next()));
      expect(reply.ok && toHex(reply.value)).toBe(toHex(utf8("provisioned")));
    } finally {
      c.kill();
    }
  });

  it("a flipped byte in message 2 is refused by the TypeScript (LOFT_ERR_DECRYPT)", async () => {
    const c = new CPeer([toHex(deviceStaticPriv), toHex(deviceEphemeralPriv), toHex(prologue), "-"]);
    try {
      const hs = await startHandshake(c);
      const m2 = fromHex(await c.next());
      m2[40]! ^= 1;
      const r = await hs.readMessage(m2);
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    } finally {
      c.kill();
    }
  });

  it("a different prologue (another link kind): message 2 fails to authenticate at the TypeScript", async () => {
    const c = new CPeer([
      toHex(deviceStaticPriv),
      toHex(deviceEphemeralPriv),
      toHex(sessionPrologue("direct", header, header)),
      "-",
    ]);
    try {
      const hs = await startHandshake(c);
      const r = await hs.readMessage(fromHex(await c.next()));
      // The prologues differ, so message 2's encrypted static key already fails here.
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    } finally {
      c.kill();
    }
  });
});
