/**
 * Property tests of the SMP codecs (docs/protocol/smp.md): every decoder takes any bytes and
 * returns a value or undefined, never throws; encoders round-trip through their decoders.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { encodeCommand, encodeResponse, parseCommand, parseResponse, type SmpCommand } from "./commands.ts";
import { boxKeyFromShared } from "./crypto.ts";
import { base64url, fromBase64url, pad, unpad } from "./encoding.ts";
import { decodeSpki, encodeSpki } from "./keys.ts";
import {
  decodeBatch,
  decodeClientHello,
  decodeServerHello,
  decodeTransmission,
  encodeBatches,
  encodeClientHello,
  encodeServerHello,
  SMP_BLOCK_SIZE,
} from "./transport.ts";

const sid = new Uint8Array(32).fill(5);
const bytesArb = (max = 300) => fc.uint8Array({ maxLength: max });

/** A block: mostly a plausible length header and batch count, then anything. */
const blockArb = fc
  .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }), bytesArb(600))
  .map(([len, count, rest]) => {
    const b = new Uint8Array(SMP_BLOCK_SIZE);
    b[0] = len >> 8;
    b[1] = len & 255;
    b[2] = count;
    b.set(rest.subarray(0, SMP_BLOCK_SIZE - 3), 3);
    return b;
  });

describe("SMP codecs never throw on bad input", () => {
  it("blocks and batches", () => {
    fc.assert(
      fc.property(blockArb, (b) => {
        const r = decodeBatch(b);
        if (r) for (const t of r) expect(t.length).toBeLessThanOrEqual(SMP_BLOCK_SIZE);
      }),
      { numRuns: FUZZ_RUNS },
    );
    // Wrong sizes, truncated and oversized blocks.
    fc.assert(
      fc.property(bytesArb(20000), (b) => {
        if (b.length !== SMP_BLOCK_SIZE) expect(decodeBatch(b)).toBeUndefined();
      }),
      { numRuns: Math.max(1000, FUZZ_RUNS / 10) },
    );
  });

  it("transmissions, commands, responses and hellos", () => {
    fc.assert(
      fc.property(bytesArb(), fc.constantFrom(6, 7), (b, v) => {
        decodeTransmission(b, v, sid);
        parseCommand(b, v);
        parseResponse(b);
        decodeClientHello(b);
        decodeServerHello(b);
        decodeSpki(b);
        unpad(b);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("mutated valid commands parse or fail with a command error", () => {
    const valid = [
      "PING",
      "SUB",
      "SEND F hello",
      "SEND T ",
      `ACK ${String.fromCharCode(24)}${"x".repeat(24)}`,
      `KEY ${String.fromCharCode(44)}${"\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00"}${"k".repeat(32)}`,
    ].map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0)));
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 255 }),
        (base, at, byte) => {
          const b = base.slice();
          if (at < b.length) b[at] = byte;
          const r = parseCommand(at < b.length ? b : b.subarray(0, at % (b.length + 1)), 7);
          if (!r.ok) expect(["UNKNOWN", "SYNTAX"]).toContain(r.error);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("SMP codecs round-trip", () => {
  const key = (alg: "ed25519" | "x25519") => ({
    alg,
    raw: new Uint8Array(32).fill(alg === "ed25519" ? 1 : 2),
  });

  it("commands", () => {
    const commands: SmpCommand[] = [
      { tag: "PING" },
      { tag: "NEW", rcvAuthKey: key("ed25519"), rcvDhKey: key("x25519"), subscribe: true },
      {
        tag: "NEW",
        rcvAuthKey: key("x25519"),
        rcvDhKey: key("x25519"),
        subscribe: false,
        basicAuth: new Uint8Array(3),
      },
      { tag: "KEY", senderKey: key("ed25519") },
      { tag: "ACK", msgId: new Uint8Array(24).fill(9) },
      { tag: "SEND", notification: true, body: new Uint8Array([0x20, 1, 2]) },
      { tag: "SEND", notification: false, body: new Uint8Array(0) },
    ];
    for (const c of commands) {
      const parsed = parseCommand(encodeCommand(c), 7);
      expect(parsed).toEqual({ ok: true, command: c });
    }
  });

  it("responses", () => {
    for (const m of [
      { tag: "OK" },
      { tag: "PONG" },
      { tag: "END" },
      { tag: "ERR", error: { type: "AUTH" } },
      { tag: "ERR", error: { type: "CMD", cmd: "SYNTAX" } },
      {
        tag: "IDS",
        rcvId: new Uint8Array(24),
        sndId: new Uint8Array(24).fill(1),
        srvDhKey: encodeSpki(key("x25519")),
      },
      { tag: "MSG", msgId: new Uint8Array(24), body: new Uint8Array(100).fill(3) },
    ] as const)
      expect(parseResponse(encodeResponse(m))).toEqual(m);
  });

  it("batches of any transmissions", () => {
    fc.assert(
      fc.property(fc.array(bytesArb(2000), { minLength: 1, maxLength: 40 }), (ts) => {
        const { blocks, tooLarge } = encodeBatches(ts);
        expect(tooLarge).toEqual([]);
        const back = blocks.flatMap((b) => decodeBatch(b) ?? []);
        expect(back.map((t) => Buffer.from(t).toString("hex"))).toEqual(
          ts.map((t) => Buffer.from(t).toString("hex")),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("hellos, padding, base64url", () => {
    const hello = {
      versions: { min: 6, max: 7 },
      sessionId: sid,
      auth: { certChain: [new Uint8Array(5), new Uint8Array(7)], signedKey: new Uint8Array(9) },
    };
    expect(decodeServerHello(encodeServerHello(hello))).toEqual(hello);
    const client = { version: 7, keyHash: new Uint8Array(32).fill(4), authKey: key("x25519") };
    expect(decodeClientHello(encodeClientHello(client))).toEqual(client);
    fc.assert(
      fc.property(bytesArb(100), (b) => {
        expect(unpad(pad(b, 120)!)).toEqual(b);
        expect(fromBase64url(base64url(b))).toEqual(b);
      }),
      { numRuns: 1000 },
    );
  });

  it("crypto_box_beforenm matches NaCl's vector", async () => {
    const { x25519 } = await import("@noble/curves/ed25519.js");
    const alice = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const bob = Buffer.from("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "hex");
    expect(Buffer.from(boxKeyFromShared(x25519.getSharedSecret(alice, bob))).toString("hex")).toBe(
      "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
    );
  });
});
