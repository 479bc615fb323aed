/**
 * The relay half of the one error vocabulary (core/relay/errors.ts): every ERR code maps to one
 * LoftErrorCode, and an ERR code this client does not know (a newer relay) settles the command it
 * answers as LOFT_ERR_RELAY_UNRECOGNIZED with the relay's code kept in `wire` — never a decode
 * failure that leaves the command waiting, never a crash.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { encodeVersionHeader } from "../codec/version.ts";
import { LoftError } from "../errors.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { RelayClient } from "./client.ts";
import { codeForWire, WIRE_CODE_SHAPE, WIRE_ERROR_CODES } from "./errors.ts";
import {
  decodeClientFrame,
  decodeCommand,
  decodeServerFrame,
  encodeServerFrame,
  unknownServerError,
} from "./protocol.ts";

describe("relay ERR codes", () => {
  it("maps every known code to its own LoftErrorCode and an unknown one to UNRECOGNIZED", () => {
    const known = WIRE_ERROR_CODES.map(codeForWire);
    expect(new Set(known).size).toBe(WIRE_ERROR_CODES.length);
    expect(known).not.toContain("LOFT_ERR_RELAY_UNRECOGNIZED");
    for (const odd of ["FUTURE_CODE", "constructor", "__proto__", "toString", ""])
      expect(codeForWire(odd)).toBe("LOFT_ERR_RELAY_UNRECOGNIZED");
    fc.assert(
      fc.property(fc.string(), (wire) => {
        const code = codeForWire(wire);
        if ((WIRE_ERROR_CODES as readonly string[]).includes(wire))
          expect(code).not.toBe("LOFT_ERR_RELAY_UNRECOGNIZED");
        else expect(code).toBe("LOFT_ERR_RELAY_UNRECOGNIZED");
      }),
      { numRuns: 2_000 },
    );
  });

  it("reads an ERR frame whose only fault is an unknown code of the wire shape, and nothing else", () => {
    fc.assert(
      fc.property(fc.stringMatching(WIRE_CODE_SHAPE), fc.option(fc.nat()), (e, i) => {
        const bytes = encodeCanonical(i === null ? { k: "ERR", e } : { k: "ERR", i, e });
        const known = (WIRE_ERROR_CODES as readonly string[]).includes(e);
        // The codec stays strict: a code of another version is not a frame of this one.
        expect(decodeServerFrame(bytes).ok).toBe(known);
        expect(unknownServerError(bytes)).toEqual(known ? undefined : i === null ? { e } : { i, e });
      }),
      { numRuns: 1_000 },
    );
    for (const frame of [
      { k: "ERR", e: "" },
      { k: "ERR", e: "lower" },
      { k: "ERR", e: "A".repeat(17) },
      { k: "ERR", e: 7 },
      { k: "ERR", i: -1, e: "NEW" },
      { k: "ERR", e: "NEW", x: 1 },
      { k: "OK", e: "NEW" },
      [1, 2],
    ])
      expect(unknownServerError(encodeCanonical(frame))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(() => unknownServerError(bytes)).not.toThrow();
      }),
      { numRuns: 1_000 },
    );
  });

  it("an ERR in bytes that are not its canonical encoding is refused, whether its code is known or not", () => {
    // docs/protocol/relay.md §Errors, "Reading one": bytes that are not the canonical encoding are
    // refused; the unrecognized reading is for an ERR whose only fault is its code.
    const forms = (e: string) => {
      const ee = `a${e.length.toString(16)}${toHex(utf8(e))}`;
      return {
        canonical: `83a165${ee}a16907a16ba3455252`,
        "i as a uint 16": `83a165${ee}a169cd0007a16ba3455252`,
        "i as a float 64": `83a165${ee}a169cb401c000000000000a16ba3455252`,
        "keys out of order": `83a16ba3455252a16907a165${ee}`,
        "a map 16 head": `de0003a165${ee}a16907a16ba3455252`,
      };
    };
    const known = forms("AUTH");
    const unknown = forms("NEW_CODE");
    expect(decodeServerFrame(fromHex(known.canonical))).toEqual({
      ok: true,
      value: { k: "ERR", i: 7, e: "AUTH" },
    });
    expect(unknownServerError(fromHex(unknown.canonical))).toEqual({ i: 7, e: "NEW_CODE" });
    for (const form of Object.keys(known).filter((f) => f !== "canonical") as (keyof typeof known)[]) {
      expect([form, decodeServerFrame(fromHex(known[form]))]).toMatchObject([
        form,
        { ok: false, error: { code: "LOFT_ERR_MALFORMED" } },
      ]);
      expect([form, unknownServerError(fromHex(unknown[form]))]).toEqual([form, undefined]);
    }
  });

  it("a newer relay's unknown code refuses the connection as UNRECOGNIZED", async () => {
    const [client, relay] = memoryLinkPair();
    const connecting = RelayClient.connect(client, { timeoutMs: 10_000 });
    await relay.receive(); // the client's version header
    relay.send(encodeVersionHeader());
    relay.send(encodeCanonical({ k: "ERR", e: "FUTURE_CODE" }));
    const e = await connecting.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LoftError);
    expect(e).toMatchObject({ code: "LOFT_ERR_RELAY_UNRECOGNIZED", wire: "FUTURE_CODE" });
  });

  it("a newer relay's unknown code settles the command it answers, and the connection goes on", async () => {
    const [client, relay] = memoryLinkPair();
    // A 1.0 opening (HELLO without a connection key): PING needs no authorization either way.
    const connecting = RelayClient.connect(client, { timeoutMs: 10_000, auth: "signature" });
    await relay.receive();
    relay.send(encodeVersionHeader());
    relay.send(encodeServerFrame({ k: "HELLO", s: new Uint8Array(32), fl: 65_535, qq: 128, mi: 16 }));
    const c = await connecting;
    try {
      /** Answer the next command with `reply(i)` (its correlation id). */
      const answer = async (reply: (i: number) => Uint8Array) => {
        const frame = decodeClientFrame(await relay.receive(), 65_535);
        if (!frame.ok) throw frame.error;
        const command = decodeCommand(frame.value.t, 65_535);
        if (!command.ok) throw command.error;
        relay.send(reply(command.value.i));
      };
      const refused = c.ping().catch((x: unknown) => x);
      await answer((i) => encodeCanonical({ k: "ERR", i, e: "FUTURE_CODE" }));
      expect(await refused).toMatchObject({ code: "LOFT_ERR_RELAY_UNRECOGNIZED", wire: "FUTURE_CODE" });
      const known = c.ping().catch((x: unknown) => x);
      await answer((i) => encodeServerFrame({ k: "ERR", i, e: "RATE" }));
      expect(await known).toMatchObject({ code: "LOFT_ERR_RELAY_RATE", wire: "RATE" });
      const fine = c.ping();
      await answer((i) => encodeServerFrame({ k: "OK", i }));
      await expect(fine).resolves.toBeUndefined();
    } finally {
      c.close();
    }
  });
});
