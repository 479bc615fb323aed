/**
 * expectDeviceMessage (exchange.ts) over a real Noise session whose own side failed: the error it
 * rejects with carries the session's code once (`code: detail`), as PairDevice's "Details" shows
 * it (web/src/device/problems.ts) — not the code, then the code again from the close's detail.
 */
import { describe, expect, it } from "vitest";
import { utf8 } from "../bytes.ts";
import type { LoftError } from "../errors.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { establishSession } from "../session/session.ts";
import { alice, bob } from "../session/testing.ts";
import { expectDeviceMessage } from "./exchange.ts";

describe("expectDeviceMessage", () => {
  it("a session closed by its own failure (a forged frame): rejects with that code, named once", async () => {
    const [la, lb] = memoryLinkPair();
    const [a, b] = await Promise.all([
      establishSession({ link: la, role: "initiator", kind: "direct", self: alice }),
      establishSession({ link: lb, role: "responder", kind: "direct", self: bob }),
    ]);
    const send = la.send.bind(la);
    la.send = (m: Uint8Array) => {
      const copy = m.slice();
      copy[copy.length - 1]! ^= 1; // the frame's tag
      send(copy);
    };
    a.send(utf8("a nonce, forged"));
    const e = (await expectDeviceMessage(b, ["nonce"], 5_000).catch((x: unknown) => x)) as LoftError;
    expect(e.code).toBe("LOFT_ERR_DECRYPT");
    expect(e.message.match(/LOFT_ERR_/g)).toEqual(["LOFT_ERR_"]);
    expect(e.message).toBe(`LOFT_ERR_DECRYPT: ${(await b.closed).detail}`);
    a.close();
  });
});
