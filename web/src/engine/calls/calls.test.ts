/**
 * The `call.end` signals a call owes a contact (calls/calls.ts `#owe`; docs/protocol/calls.md §5)
 * when the contact is deleted: they go with it, whether owed before the deletion or by the call
 * the deletion ends, and a contact added again with the same identity gets none of them. They are
 * kept by the contact's Peer (the engine's state of one stored contact), which a deletion drops
 * (link/links.ts `forget`): nothing in the calls is told of the deletion.
 *
 * No media in Node: the call is an incoming one (its offer read, nothing answered), the engine's
 * state handed in as plain data, its storage the tests' in-memory one; no session is live, so each
 * `call.end` is owed.
 */
import { describe, expect, it } from "vitest";
import { MemoryStorage, until } from "../../../../test/support/engine.ts";
import type { Peer } from "../context.ts";
import { Calls, type CallsContext } from "./calls.ts";
import { formatFingerprint } from "./fingerprint.ts";
import type { CallSignal } from "./wire.ts";

const CONTACT = "ab".repeat(32);
const fp = new Uint8Array(32).map((_, i) => i * 7);
const sdp = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  `a=fingerprint:sha-256 ${formatFingerprint(fp)}`,
  "",
].join("\r\n");

function setup() {
  const logs: string[] = [];
  const ctx = {
    cfg: { log: (m: string) => logs.push(m) },
    storage: new MemoryStorage(""),
    listeners: new Set(),
    peers: new Map<string, Peer>(),
    lastStamp: 0,
    stopped: false,
    signaling: undefined,
    serverIce: undefined,
  } as unknown as CallsContext;
  const calls = new Calls(ctx, () => {});
  /** The contact's engine state (engine.ts: one Peer per stored contact), with no live session. */
  const contact = (): Peer => {
    const peer = { id: CONTACT, name: "Ann", online: false, blocked: false } as unknown as Peer;
    ctx.peers.set(CONTACT, peer);
    return peer;
  };
  /** An offer of call `n` arrives from `peer`, and rings here. */
  const offered = async (peer: Peer, n: number) => {
    const c = new Uint8Array(16).fill(n);
    const m: CallSignal = { t: "call.offer", c, v: false, sdp, fp };
    calls.receive(peer, m);
    await until(() => calls.current()?.phase === "incoming", "the call rings");
  };
  const resent = () => logs.filter((l) => l.includes("sent again on a new session"));
  return { ctx, calls, logs, contact, offered, resent };
}

describe("call.end signals owed to a deleted contact", () => {
  it("one owed before the deletion goes with the contact: a contact added again is sent none", async () => {
    const { ctx, calls, logs, contact, offered, resent } = setup();
    const peer = contact();
    await offered(peer, 1);
    calls.decline(calls.current()!.id);
    await until(() => logs.some((l) => l.includes("call.end not sent: it goes on the next session")), "owed");
    // Deleted, as engine.ts `#reread` does it: the call ended, then the peer forgotten.
    calls.endFor(CONTACT);
    ctx.peers.delete(CONTACT);
    // Added again with the same identity, and its first session comes up.
    calls.sessionUp(contact());
    // Before: "1 call end(s) sent again on a new session" — a stale end, kept for good.
    expect(resent()).toEqual([]);
  });

  it("one the deletion's own end owes after the contact is gone is not sent to the contact added again", async () => {
    const { ctx, calls, logs, contact, offered, resent } = setup();
    await offered(contact(), 2);
    // engine.ts `#reread`: the call ends with the contact (a `call.end` that cannot leave: its
    // links are closed), then the peer goes — before that send settles.
    calls.endFor(CONTACT);
    ctx.peers.delete(CONTACT);
    await until(() => logs.some((l) => l.includes("call.end not sent")), "the end's send settled");
    // Owed to the deleted contact's Peer, whose next session never comes: the contact added
    // again is another Peer, sent none of it.
    calls.sessionUp(contact());
    expect(resent()).toEqual([]);
  });

  it("a contact kept is sent what it is owed on its next session", async () => {
    const { calls, logs, contact, offered, resent } = setup();
    const peer = contact();
    await offered(peer, 3);
    calls.decline(calls.current()!.id);
    await until(() => logs.some((l) => l.includes("call.end not sent: it goes on the next session")), "owed");
    calls.sessionUp(peer);
    expect(resent()).toEqual([`call: 1 call end(s) sent again on a new session ${CONTACT.slice(0, 8)}`]);
  });
});

describe("a refused offer in the log", () => {
  it("names why, never what the peer's SDP said", async () => {
    const { calls, logs, contact } = setup();
    const quoted = "PEER-WROTE-THIS";
    const forged = sdp.replace("a=fingerprint:sha-256", `a=fingerprint:${quoted}`);
    calls.receive(contact(), { t: "call.offer", c: new Uint8Array(16).fill(9), v: false, sdp: forged, fp });
    await until(() => logs.some((l) => l.startsWith("call: refused an offer: ")), "refused");
    expect(logs.filter((l) => l.includes(quoted))).toEqual([]);
  });
});
