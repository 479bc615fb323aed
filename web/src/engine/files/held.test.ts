/**
 * Control messages held for an end's next session (files/transfers.ts `#unsent`, `#tell`) when
 * the end is forgotten (docs/protocol/files.md §5): a contact deleted, or a room left. What was
 * held goes with it — whether held before, or by a send that settles only after the forgetting —
 * and a contact added again (a room joined again) is sent none of it. An end kept is sent what was
 * held on its next session.
 *
 * The transfers on a context of their own (no engine), their real store; the end a stand-in whose
 * `tell` the test settles (no session is live: each message is held).
 */
import { describe, expect, it } from "vitest";
import { until } from "../../../../test/support/engine.ts";
import { filesContext } from "../../../../test/support/files.ts";
import { type FileLive, type FilePeer, FileTransfers, roomPeerId } from "./transfers.ts";
import type { FileAppMessage } from "./wire.ts";

const CONTACT = "cd".repeat(32);
const ROOM = "ee".repeat(16);
const MEMBER = "ab".repeat(32);

/** Every promise continuation queued so far has run (a macrotask runs after the microtasks). */
const drained = () => new Promise((r) => setTimeout(r, 0));

function setup() {
  const logs: string[] = [];
  const ctx = filesContext({ log: (m) => logs.push(m) });
  const files = new FileTransfers(ctx);
  /** Every message an end's `tell` was asked to send, and the sends not settled yet. */
  const told: FileAppMessage[] = [];
  const pending: ((sent: boolean) => void)[] = [];
  /** An end (a contact, or `MEMBER` of `ROOM`) whose sends wait for `settle`. */
  const end = (room?: boolean): FilePeer => ({
    id: room ? roomPeerId(ROOM, MEMBER) : CONTACT,
    name: "Ann",
    ...(room ? { room: { room: ROOM, member: MEMBER } } : {}),
    live: () => undefined,
    ready: () => false,
    tell: (m) => {
      told.push(m);
      return new Promise<boolean>((resolve) => pending.push(resolve));
    },
  });
  /** The end's sends so far fail (no session), as `peer.tell` says when none is live. */
  const fail = () => {
    for (const resolve of pending.splice(0)) resolve(false);
  };
  /** A session that stays up (its `closed` never settles). */
  const live = { session: { closed: new Promise(() => {}) } } as unknown as FileLive;
  /** A stray `file.accept` (no transfer of ours): the answer is a `file.cancel` (files.md §5). */
  const stray = async (peer: FilePeer, id: number) => {
    await files.message(peer, { t: "file.accept", id, from: 0 });
    await until(() => told.some((m) => m.t === "file.cancel" && m.id === id), "the cancel is tried");
  };
  /** A session comes up: what was held is tried on it; the cancels it was asked to send. */
  const sessionUp = async (peer: FilePeer) => {
    const before = told.length;
    files.up(peer, live);
    // `up` sends what was held once its load settles: after that, nothing more is sent.
    await drained();
    return told.slice(before).filter((m) => m.t === "file.cancel");
  };
  return { files, logs, told, end, fail, stray, sessionUp };
}

describe("control messages held for an end that is forgotten", () => {
  it("a contact kept is sent the held cancel on its next session", async () => {
    const { end, fail, stray, sessionUp } = setup();
    const ann = end();
    await stray(ann, 7);
    fail();
    await drained();
    expect(await sessionUp(ann)).toEqual([{ t: "file.cancel", id: 7, own: true }]);
  });

  it("a send that fails after the contact was deleted holds nothing: the contact added again gets no stale cancel", async () => {
    const { files, logs, end, fail, stray, sessionUp } = setup();
    await stray(end(), 7);
    // Deleted while the cancel's send is in flight (engine.ts, "delete": files.forget), then the
    // send fails: before, it was held again after the forgetting — kept for good.
    await files.forget(CONTACT);
    fail();
    await drained(); // the send settled
    expect(await sessionUp(end())).toEqual([]);
    expect(logs).toContain("files: file.cancel not sent: the contact is gone");
  });

  it("held before the contact was deleted: it goes with the contact", async () => {
    const { files, end, fail, stray, sessionUp } = setup();
    await stray(end(), 7);
    fail();
    await drained(); // held
    await files.forget(CONTACT);
    expect(await sessionUp(end())).toEqual([]);
  });

  it("held for a room member with no transfer record left: it goes when the room is left", async () => {
    const { files, end, fail, stray, sessionUp } = setup();
    await stray(end(true), 9);
    fail();
    await drained(); // held
    // Before, only the held messages of ends with a transfer record were dropped.
    await files.forgetRoom(ROOM);
    expect(await sessionUp(end(true))).toEqual([]);
  });

  it("a member's send that fails after the room was left holds nothing", async () => {
    const { files, logs, end, fail, stray, sessionUp } = setup();
    await stray(end(true), 9);
    await files.forgetRoom(ROOM);
    fail();
    await drained(); // the send settled
    expect(await sessionUp(end(true))).toEqual([]);
    expect(logs).toContain("files: file.cancel not sent: the room was left");
  });
});
