/**
 * What the engine sends on a session whose link closed under it, while the session's reader still
 * reads what arrived before the close (core/session `writable`; docs/protocol/session.md §5): in
 * that window the session drops what it is given, so nothing may count on it silently. Two
 * engines, real signaling, real Noise sessions and ratchets over the harness's in-memory links;
 * the link closes under Bob's session as a data channel's does (its last frames still to read).
 *
 * - proxy: a request is ended at once with LOFT_ERR_LINK_CLOSED, not left waiting on a frame that
 *   never left; no new client is handed out on such a session (proxy-link.ts);
 * - files: the sender's pump stops instead of sealing chunks into the void, says so, and the
 *   receiver's resume brings the file whole on the next session (files/transfers.ts, files.md §5);
 *   the frames the session dropped are counted in the log (link/controller.ts);
 * - file.* messages: one the session dropped is held for the next session, not counted as told
 *   (files/transfers.ts `tell`);
 * - calls: a call placed in the window waits for a session its offer can leave on, not the old
 *   one (calls/calls.ts `#sessionUp`); a room call's signal is not counted as sent (rooms/mesh.ts
 *   `sendFrame`).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { isLoftError } from "../../../core/errors.ts";
import { ProxyResetError } from "../../../core/proxy/client.ts";
import {
  type EngineHarness,
  type EngineNode,
  engineHarnessPerSuite,
  FAST_ENGINE,
  holdReader,
  refuseWhenArmed,
  type TestLink,
  until,
} from "../../../test/support/engine.ts";
import { fileTransfers, seededBytes } from "../../../test/support/files.ts";
import { FILE_CHUNK_BYTES } from "./files/wire.ts";

const get = (path: string) => ({ method: "GET" as const, path, headers: [] as [string, string][] });
const hashOf = async (b: Blob) => toHex(sha256(new Uint8Array(await b.arrayBuffer())));
const stateOf = (n: EngineNode, key: string) => fileTransfers(n).get(key)?.state;

/** `n`'s end of its open link to the other engine (the harness's in-memory stand-in for a data channel). */
function linkOf(h: EngineHarness, n: EngineNode): TestLink {
  const link = h.hub.links.findLast((l) => l.owner === n.id && l.state === "open");
  if (!link) throw new Error("no open link");
  return link;
}

describe("a session whose link closed under it (Node engines, real signaling and Noise)", () => {
  const { h } = engineHarnessPerSuite(FAST_ENGINE);

  it("proxy: a request in the window ends at once with LOFT_ERR_LINK_CLOSED, no client is handed out; the next session serves", async () => {
    // A far heartbeat timeout: the held reader must not end the window by a timeout of its own
    // (docs/contributing.md, "Tests").
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 60_000 });
    const client = b.engine.proxyClient(a.id); // held by its caller across awaits (proxy/host.ts)
    if (!client) throw new Error("no live session");
    const bobLink = linkOf(h, b);
    const reader = holdReader(bobLink);
    await until(reader.held, "Bob's session reader holds at the gate"); // after a PING, say
    // No new link opens meanwhile: a new session would replace the held one and end its
    // requests by its close — the window lasts as long as the reader holds.
    h.hub.blockDirect = true;
    bobLink.close("ERR_CONNECTION_FAILURE", "the connection failed"); // under Bob's session
    expect(b.engine.proxyClient(a.id)).toBeUndefined(); // its requests could not leave
    let ended: unknown;
    client.request(get("/index.html")).then(
      () => {
        ended = "answered";
      },
      (e: unknown) => {
        ended = e;
      },
    );
    // Before: the REQUEST was dropped unseen and the request waited for the session's end.
    await until(() => ended !== undefined, "the request ended while the reader still holds");
    expect(isLoftError(ended) && ended.code).toBe("LOFT_ERR_LINK_CLOSED");
    expect(b.logs.some((l) => l.includes("requests ended, the link closed under the session"))).toBe(true);
    h.hub.blockDirect = false;
    reader.release();
    // The next session carries requests again (Alice shares nothing: her refusal is the answer).
    await until(() => h.online(b, a) && b.engine.proxyClient(a.id) !== undefined, "a new session");
    const next = b.engine.proxyClient(a.id)!;
    await expect(next.request(get("/index.html"))).rejects.toBeInstanceOf(ProxyResetError);
  });

  it("files inside the session: the pump stops when the link closes under it, the drop is logged, the file arrives whole on the next session", async () => {
    // No bulk lane (the relay, an older peer): the chunks go inside the session (files.md §2).
    const [a, b] = await h.pair(false, true);
    const blob = new Blob([seededBytes(120 * FILE_CHUNK_BYTES + 9, 7)]);
    const sent = await b.engine.sendFile(a.id, blob, "window.bin");
    await until(() => [...fileTransfers(a).values()].some((t) => t.state === "offered"), "offer arrives");
    const offered = [...fileTransfers(a).values()].find((t) => t.key.endsWith(`/in/${sent.id}`));
    if (!offered) throw new Error("no offer");
    // Once a part arrived, Bob's link refuses a frame as it closes under his session, in the
    // middle of the pump (a data channel found closing: web/src/net/webrtc-link.ts `transmit`).
    let closedAt = -1;
    const refusing = refuseWhenArmed(linkOf(h, b), () => {
      closedAt = b.logs.length;
    });
    const off = a.engine.subscribe((e) => {
      if (e.type === "file" && e.transfer.key === offered.key && e.transfer.next > 10) refusing.arm();
    });
    await a.engine.acceptFile(offered.key);
    await until(() => closedAt >= 0, "the link closed under Bob's session mid-transfer");
    off();
    await until(
      () => stateOf(b, sent.key) === "done" && stateOf(a, offered.key) === "done",
      "done on the next session",
    );
    const got = await a.engine.fileBlob(offered.key);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
    const after = b.logs.slice(closedAt);
    // Said, not silent: the pump stopped on the session that could no longer send, and the
    // session's dropped frames (the run being handed over at least) are counted.
    expect(
      after.some((l) => /^files: sending paused at chunk \d+: the session can no longer send$/.test(l)),
    ).toBe(true);
    expect(
      after.some((l) =>
        /^session [0-9a-f]{8}: [1-9]\d* frames dropped, its link had closed under it$/.test(l),
      ),
    ).toBe(true);
  });

  it("files: a file.done the link refuses as it closes under the receiver's session goes again on the next one — the sender ends done, not waiting", async () => {
    // A `file.*` message handed to a session that was still `writable`, dropped when its link
    // refused the frame: `tell` must not count it as told (core/session `flushed`), or the sender
    // of a finished file waits for good (a `waiting` sender is offered nothing again: files.md §5).
    // Far heartbeats: no PING may take the refused frame's place.
    const [a, b] = await h.pair(false, true, { heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 60_000 });
    const blob = new Blob([seededBytes(3 * FILE_CHUNK_BYTES + 5, 11)]);
    const sent = await b.engine.sendFile(a.id, blob, "done.bin");
    await until(() => [...fileTransfers(a).values()].some((t) => t.state === "offered"), "offer arrives");
    const offered = [...fileTransfers(a).values()].find((t) => t.key.endsWith(`/in/${sent.id}`));
    if (!offered) throw new Error("no offer");
    // Alice's link refuses the first frame after her copy is done — her file.done — as it closes
    // under her session (a data channel found closing: web/src/net/webrtc-link.ts `transmit`).
    const refusing = refuseWhenArmed(linkOf(h, a));
    const off = a.engine.subscribe((e) => {
      if (e.type === "file" && e.transfer.key === offered.key && e.transfer.state === "done") refusing.arm();
    });
    await a.engine.acceptFile(offered.key);
    await until(refusing.refused, "the link refused Alice's file.done");
    off();
    expect(stateOf(a, offered.key)).toBe("done");
    // Before: `tell` counted the dropped file.done as told, and Bob's copy stayed `waiting`.
    await until(() => stateOf(b, sent.key) === "done", "Bob's copy done on the next session");
    const got = await a.engine.fileBlob(offered.key);
    expect(got && (await hashOf(got))).toBe(await hashOf(blob));
  });

  it("calls: a call placed in the window waits for a session its signals can leave on, and goes on once the next one is up", async () => {
    // A far heartbeat timeout: the held reader must not end the window by a timeout of its own.
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 60_000 });
    const bobLink = linkOf(h, b);
    const reader = holdReader(bobLink);
    await until(reader.held, "Bob's session reader holds at the gate");
    bobLink.close("ERR_CONNECTION_FAILURE", "the connection failed"); // under Bob's session
    const ends = () =>
      b.events.flatMap((e) => (e.type === "call" && e.call.phase === "ended" ? [e.call.ended?.kind] : []));
    b.engine.calls.start(a.id, { video: false });
    // Before: the session, still `open`, counted as up — the call went on to its media and offer,
    // and the offer was dropped by the session (Node has no microphone: it ended "no-device" here).
    await until(
      () => b.logs.some((l) => l.includes("call: no session a signal can leave on")),
      "the call waits for a session it can send on",
    );
    expect(ends()).toEqual([]);
    expect(b.engine.calls.current()?.phase).toBe("calling");
    reader.release(); // the old session reads the close and ends; the controller dials again
    await until(() => ends().length > 0, "the call goes on once a new session is up");
    // It reached its media on the new session (none in Node), not "offline" after the wait.
    expect(ends()).toEqual(["no-device"]);
  });

  it("rooms: a frame of another feature (a room call's signal) is not counted as sent in the window", async () => {
    const [ann, bea] = [h.node("ann"), h.node("bea")];
    for (const n of [ann, bea]) {
      await n.engine.start();
      await until(() => n.engine.serviceStatus().signaling === "connected", "registered");
    }
    const annRooms = ann.engine.rooms!;
    const room = await annRooms.create();
    await bea.engine.rooms!.join(room.fragment);
    const member = () => annRooms.room(room.id)?.members.find((m) => m.state === "online")?.key;
    await until(() => member() !== undefined, "ann and bea linked");
    const frame = new Uint8Array([0x01]);
    const annLink = linkOf(h, ann);
    const reader = holdReader(annLink);
    bea.engine.rooms!.send(room.id, "hello"); // Ann's reader takes it, then holds at the gate
    await until(reader.held, "Ann's member session reader holds at the gate");
    annLink.close("ERR_CONNECTION_FAILURE", "the connection failed"); // under Ann's member session
    // Before: the session, still `open`, took the frame and dropped it — true, "sent".
    expect(annRooms.sendFrame(room.id, member()!, frame)).toBe(false);
    reader.release();
  });
});
