/**
 * A session bound to a shared secret (prologue.ts fifth field; docs/protocol/rooms.md §4): the
 * same binding on both sides gives a session; another binding, or none against one, fails the
 * handshake with LOFT_ERR_DECRYPT on the side that reads the first encrypted field, and the
 * initiator never reveals its identity (message 3 is never sent).
 */
import { describe, expect, it } from "vitest";
import { memoryLinkPair } from "../link/memory-link.ts";
import { sessionPrologue } from "./prologue.ts";
import { establishSession } from "./session.ts";
import { alice, bob, codeOf } from "./testing.ts";

function pair(a: Uint8Array | undefined, b: Uint8Array | undefined) {
  const [la, lb] = memoryLinkPair();
  const sent: Uint8Array[] = [];
  const send = la.send.bind(la);
  la.send = (bytes: Uint8Array) => {
    sent.push(bytes.slice());
    send(bytes);
  };
  const opt = (binding: Uint8Array | undefined) => (binding ? { binding } : {});
  const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: alice, ...opt(a) });
  const responder = establishSession({ link: lb, role: "responder", kind: "direct", self: bob, ...opt(b) });
  return { initiator, responder, sent };
}

describe("a session binding in the prologue", () => {
  it("the same binding on both sides: a session, and the data flows", async () => {
    const k = new Uint8Array(32).fill(7);
    const { initiator, responder } = pair(k, k.slice());
    const [a, b] = await Promise.all([initiator, responder]);
    await a.send(new TextEncoder().encode("hi"));
    expect(new TextDecoder().decode(await b.receive())).toBe("hi");
    a.close("done");
  });

  it.each([
    ["another binding", new Uint8Array(32).fill(7), new Uint8Array(32).fill(8)],
    ["a binding against none", new Uint8Array(32).fill(7), undefined],
    ["none against a binding", undefined, new Uint8Array(32).fill(7)],
  ])("%s: LOFT_ERR_DECRYPT for the initiator, no message 3 with its identity", async (_, a, b) => {
    const { initiator, responder, sent } = pair(a, b);
    const [ci, cr] = await Promise.all([codeOf(initiator), codeOf(responder)]);
    expect(ci).toBe("LOFT_ERR_DECRYPT");
    expect(cr).not.toBe("resolved");
    // version header and message 1 only: the initiator's identity never left.
    expect(sent.length).toBe(2);
  });

  it("the prologue layout: four fields without a binding, a fifth with it; an empty one is refused", () => {
    const h = new Uint8Array([1, 2]);
    const plain = sessionPrologue("direct", h, h);
    const bound = sessionPrologue("direct", h, h, new Uint8Array([9, 9, 9]));
    expect([...bound.subarray(0, plain.length)]).toEqual([...plain]);
    expect([...bound.subarray(plain.length)]).toEqual([0, 3, 9, 9, 9]);
    expect(() => sessionPrologue("direct", h, h, new Uint8Array(0))).toThrow(RangeError);
  });
});
