/**
 * QueueLink `receiveMany` (the ratchet's batch reader takes runs of queued messages with it):
 * in order, never more than asked, waits like `receive` when nothing is queued, and rejects once
 * the link is closed. Memory links deliver in microtasks, so a macrotask turn lets all arrive.
 */
import { describe, expect, it } from "vitest";
import { memoryLinkPair } from "./memory-link.ts";

const turn = () => new Promise((r) => setTimeout(r, 0));

describe("QueueLink.receiveMany", () => {
  it("the next message and what is queued behind it, in order, at most max; then the close", async () => {
    const [a, b] = memoryLinkPair();
    for (let i = 0; i < 6; i++) a.send(Uint8Array.of(i));
    await turn();
    expect(await b.receiveMany(1)).toEqual([Uint8Array.of(0)]);
    expect(await b.receiveMany(3)).toEqual([Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)]);
    expect(await b.receiveMany(10)).toEqual([Uint8Array.of(4), Uint8Array.of(5)]);
    // Nothing queued: it waits for the next message, and returns what has come by then.
    const waiting = b.receiveMany(10);
    a.send(Uint8Array.of(6));
    expect(await waiting).toEqual([Uint8Array.of(6)]);
    // Mixed with receive: each message goes to one reader, in order.
    a.send(Uint8Array.of(7));
    a.send(Uint8Array.of(8));
    await turn();
    expect(await b.receive()).toEqual(Uint8Array.of(7));
    expect(await b.receiveMany(5)).toEqual([Uint8Array.of(8)]);
    await expect(b.receiveMany(0)).rejects.toThrow(RangeError);
    a.close("bye");
    await turn();
    await expect(b.receiveMany(2)).rejects.toThrow(/remote-closed/);
  });
});

describe("a delivered message belongs to the receiver (link.ts `receive`)", () => {
  it("memory pair: the sender changing its buffer after send, or the receiver writing over what it got, touches nothing else", async () => {
    const [a, b] = memoryLinkPair();
    const sent = Uint8Array.of(1, 2, 3, 4);
    a.send(sent);
    a.send(sent);
    sent.fill(9); // after send: not what is delivered
    const [first, second] = await b.receiveMany(2);
    expect(first).toEqual(Uint8Array.of(1, 2, 3, 4));
    first!.fill(0); // the receiver may write over it (the session's detached frames do)
    expect(second).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(first!.buffer).not.toBe(second!.buffer);
    expect(sent).toEqual(new Uint8Array(4).fill(9));
    a.close();
  });
});
