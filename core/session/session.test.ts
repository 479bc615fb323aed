/**
 * Sessions over memoryLinkPair(): the version exchange, the XXhfs / XX handshake with signed
 * identities, the transport (chunking, rekey, close), and every way establishment fails — each
 * by its code, with the link closed and no Session. A relaying attacker who swaps identities or
 * static keys is refused.
 */
import { describe, expect, it } from "vitest";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { concatBytes, equalBytes, toHex, utf8 } from "../bytes.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../codec/version.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import { createUserIdentity, type UserIdentity } from "../identity/identity.ts";
import type { Link, LinkState } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import { XX_HFS } from "../noise/patterns.ts";
import { generateKeyPair, type KeyPair } from "../noise/primitives.ts";
import { MAX_DATA_PAYLOAD } from "./frames.ts";
import { encodeHandshakePayload } from "./payload.ts";
import { type LinkKind, sessionPrologue } from "./prologue.ts";
import { establishSession, SEAL_BATCH, type Session, type SessionOptions } from "./session.ts";
import { alice, bob, codeOf } from "./testing.ts";

const seed = (n: number) => new Uint8Array(32).fill(n);
const mallory = createUserIdentity({ username: "mallory", now: 1_700_000_000_000, seed: seed(3) });

type Extra = Partial<Omit<SessionOptions, "link" | "role" | "self">>;

function connect(a: Extra = {}, b: Extra = {}, ids: [UserIdentity, UserIdentity] = [alice, bob]) {
  const [la, lb] = memoryLinkPair();
  const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: ids[0], ...a });
  const responder = establishSession({ link: lb, role: "responder", kind: "direct", self: ids[1], ...b });
  return { la, lb, initiator, responder };
}

/**
 * Alice's and Bob's open sessions over a memory link whose reads on Bob's side can be held: after
 * `hold()`, Bob's link answers the read already waiting and no other until `release()`, so his
 * session's reader falls behind while its sender goes on — the window in which the peer's close
 * arrives before its last messages are read (web/src/net/webrtc-link.ts closes a data channel
 * right behind them). `onState` sees each read of the held link's state, as the session reads it.
 */
async function heldReads(onState: (state: LinkState) => void = () => {}) {
  const [la, lb] = memoryLinkPair();
  let gate: Promise<void> | undefined;
  let open = () => {};
  const held: Link = {
    get state() {
      onState(lb.state);
      return lb.state;
    },
    get closed() {
      return lb.closed;
    },
    send: (m) => lb.send(m),
    close: (reason, detail, options) => lb.close(reason, detail, options),
    receive: async () => {
      await gate;
      return lb.receive();
    },
  };
  const [a, b] = await Promise.all([
    establishSession({ link: la, role: "initiator", kind: "direct", self: alice }),
    establishSession({ link: held, role: "responder", kind: "direct", self: bob }),
  ]);
  const hold = () => {
    gate = new Promise((resolve) => {
      open = resolve;
    });
  };
  return { a, b, lb, hold, release: () => open() };
}

describe("establishSession: success", () => {
  it.each(["XXhfs", "XX"] as const)(
    "%s: both sides verify each other and agree on everything",
    async (protocol) => {
      const ratchetKey = (await generateKeyPair()).publicKey;
      const { initiator, responder } = connect(
        { protocol, expectedIdentityKey: bob.identity.verified.identity_key },
        { protocol, extensions: { ratchet_key: ratchetKey } },
      );
      const [a, b] = await Promise.all([initiator, responder]);
      expect(a.remoteIdentity.verified.identity_key).toEqual(bob.identity.verified.identity_key);
      expect(b.remoteIdentity.verified.identity_key).toEqual(alice.identity.verified.identity_key);
      expect(a.remoteIdentity.verified.username).toBe("bob");
      expect(a.remoteExtensions).toEqual({ ratchet_key: ratchetKey });
      expect(b.remoteExtensions).toEqual({});
      expect(a.handshakeHash).toEqual(b.handshakeHash);
      expect(a.protocolName).toBe(
        protocol === "XX"
          ? "Noise_XX_25519_ChaChaPoly_BLAKE2s"
          : "Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s",
      );
      expect(a.exportSecret("loft/ratchet/v1")).toEqual(b.exportSecret("loft/ratchet/v1"));
      expect(a.state).toBe("open");

      a.send(utf8("hello bob"));
      b.send(utf8("hello alice"));
      a.send(new Uint8Array(0));
      expect(await b.receive()).toEqual(utf8("hello bob"));
      expect(await b.receive()).toEqual(new Uint8Array(0));
      expect(await a.receive()).toEqual(utf8("hello alice"));
      a.close();
      b.close();
    },
  );

  it("carries messages of every size class: one frame, the one-frame limit, and chunked", async () => {
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const sizes = [
      1,
      MAX_DATA_PAYLOAD,
      MAX_DATA_PAYLOAD + 1,
      MAX_DATA_PAYLOAD * 3,
      MAX_DATA_PAYLOAD * 3 + 17,
      1_000_000,
    ];
    const messages = sizes.map((n) => {
      const m = new Uint8Array(n);
      for (let i = 0; i < n; i++) m[i] = (i * 7 + n) & 0xff;
      return m;
    });
    for (const m of messages) a.send(m);
    // equalBytes, not toEqual: vitest's deep equality walks a megabyte element by element.
    for (const m of messages) expect(equalBytes(await b.receive(), m)).toBe(true);
    b.send(messages[4]!);
    expect(equalBytes(await a.receive(), messages[4]!)).toBe(true);
    a.close();
  });

  it("a message over one frame is copied at send, as one frame is: changed by its caller right after, it arrives as sent", async () => {
    // Since a chunked message is cut only when the send chain reaches it (its id is the next one
    // sealed: session.md §5, "Bulk frames"), the session keeps it until then — its own copy: a
    // caller may reuse or wipe its buffer once `send` returned (before, the bytes sealed were the
    // zeros written over it).
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    for (const n of [MAX_DATA_PAYLOAD, MAX_DATA_PAYLOAD + 1, 200_000]) {
      const m = new Uint8Array(n);
      for (let i = 0; i < n; i++) m[i] = (i * 13 + 1) & 0xff;
      const sent = m.slice();
      a.send(m);
      m.fill(0);
      expect(equalBytes(await b.receive(), sent)).toBe(true);
    }
    a.close();
  });

  it("sendParts carries the parts' concatenation, in order with send, up to one frame and past it", async () => {
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const body = Uint8Array.from({ length: MAX_DATA_PAYLOAD - 3 }, (_, i) => (i * 13) & 0xff);
    a.sendParts([Uint8Array.of(0x20), Uint8Array.of(1, 2), body]); // exactly one DATA frame
    a.send(utf8("between"));
    a.sendParts([Uint8Array.of(0x20), body, body]); // over one frame: chunked, as send does
    a.sendParts([]);
    // The parts are copied when sendParts returns: changing them afterwards changes nothing sent.
    const later = Uint8Array.of(9, 9);
    a.sendParts([later]);
    later.fill(0);
    expect(equalBytes(await b.receive(), concatBytes(Uint8Array.of(0x20, 1, 2), body))).toBe(true);
    expect(await b.receive()).toEqual(utf8("between"));
    expect(equalBytes(await b.receive(), concatBytes(Uint8Array.of(0x20), body, body))).toBe(true);
    expect(await b.receive()).toEqual(new Uint8Array(0));
    expect(await b.receive()).toEqual(Uint8Array.of(9, 9));
    a.close();
    expect(() => a.sendParts([Uint8Array.of(1)])).toThrow(/LOFT_ERR_LINK_CLOSED/);
  });

  it("sendParts copies at the call in every branch — bulk or not, one frame or over: the parts' buffers may go at once", async () => {
    // A sender gives its parts' buffers away as soon as the call returns (files/transfers.ts: a
    // contact's read buffers back to its store's worker, transferred — detached here).
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const cases = [
      { length: 1_000, bulk: false },
      { length: 1_000, bulk: true },
      { length: MAX_DATA_PAYLOAD + 1_000, bulk: false },
      { length: MAX_DATA_PAYLOAD + 1_000, bulk: true },
    ];
    const sent = cases.map(({ length, bulk }, n) => {
      const whole = Uint8Array.from({ length }, (_, i) => (i * 7 + n) & 0xff);
      const buffer = new Uint8Array(whole).buffer;
      const head = new Uint8Array(buffer, 0, 5);
      const rest = new Uint8Array(buffer, 5);
      a.sendParts([head, rest], { bulk });
      structuredClone(buffer, { transfer: [buffer] });
      expect(rest.length).toBe(0); // gone from here
      return whole;
    });
    // Every message, whole (a bulk one after the others queued before it: session.md §5), before
    // a last bulk one: one that never came is missed there, not waited for.
    a.sendParts([utf8("end")], { bulk: true });
    const got: Uint8Array[] = [];
    for (let m = await b.receive(); !equalBytes(m, utf8("end")); m = await b.receive()) got.push(m);
    const key = (m: Uint8Array) => toHex(m.subarray(0, 16));
    expect(got.map(key).sort()).toEqual(sent.map(key).sort());
    for (const m of got) expect(equalBytes(m, sent.find((s) => key(s) === key(m))!)).toBe(true);
    a.close();
  });

  it("refuses to send a message over maxMessageBytes (LOFT_ERR_FRAME_TOO_LARGE)", async () => {
    const { initiator, responder } = connect({ maxMessageBytes: 100_000 });
    const [a] = await Promise.all([initiator, responder]);
    expect(() => a.send(new Uint8Array(100_001))).toThrow(/LOFT_ERR_FRAME_TOO_LARGE/);
    expect(() => a.sendParts([new Uint8Array(50_000), new Uint8Array(50_001)])).toThrow(
      /LOFT_ERR_FRAME_TOO_LARGE/,
    );
    a.close();
  });

  it("closes the receiver when a peer's reassembled message would exceed its limit (LOFT_ERR_CHUNK_LIMIT)", async () => {
    const { initiator, responder } = connect({}, { maxMessageBytes: 100_000 });
    const [a, b] = await Promise.all([initiator, responder]);
    a.send(new Uint8Array(200_000));
    expect((await b.closed).reason).toBe("LOFT_ERR_CHUNK_LIMIT");
    expect((await a.closed).reason).toBe("remote-closed");
  });

  it("rekeys each direction every N messages (Noise §11.3): peers that disagree on N fail to decrypt", async () => {
    const same = connect({ rekeyInterval: 3 }, { rekeyInterval: 3 });
    const [a, b] = await Promise.all([same.initiator, same.responder]);
    for (let i = 0; i < 20; i++) {
      a.send(utf8(`a${i}`));
      b.send(utf8(`b${i}`));
      expect(await b.receive()).toEqual(utf8(`a${i}`));
      expect(await a.receive()).toEqual(utf8(`b${i}`));
    }
    a.close();

    const differ = connect({ rekeyInterval: 3 }, { rekeyInterval: 4 });
    const [c, d] = await Promise.all([differ.initiator, differ.responder]);
    for (let i = 0; i < 3; i++) c.send(utf8(`c${i}`));
    for (let i = 0; i < 3; i++) expect(await d.receive()).toEqual(utf8(`c${i}`));
    c.send(utf8("after the initiator rekeyed"));
    expect((await d.closed).reason).toBe("LOFT_ERR_DECRYPT");
  });

  it("bursts are sealed and opened in runs (SEAL_BATCH), across rekeys, complete and in order; WebCrypto AES-GCM against noble", async () => {
    const crypto = await createWebCryptoProvider();
    const suites = ["AESGCM_SHA256" as const];
    // Batches end at each rekey (every 7 frames here) and at SEAL_BATCH; chunked messages in between.
    const big = Uint8Array.from({ length: 3 * MAX_DATA_PAYLOAD + 5 }, (_, i) => (i * 7) & 0xff);
    for (const [x, y] of [
      [{ crypto }, { crypto }],
      [{ crypto }, {}],
    ] as const) {
      const { initiator, responder } = connect(
        { rekeyInterval: 7, suites, ...x },
        { rekeyInterval: 7, suites, ...y },
      );
      const [a, b] = await Promise.all([initiator, responder]);
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 3 * SEAL_BATCH; i++) sent.push(i % 25 === 24 ? big : utf8(`burst ${i}`));
      for (const m of sent) a.send(m);
      for (const m of sent) expect(equalBytes(await b.receive(), m)).toBe(true);
      b.sendParts([utf8("and "), utf8("back")]);
      expect(await a.receive()).toEqual(utf8("and back"));
      a.close();
    }
  });

  it("a forged frame inside a run: the frames before it are delivered, none after it; closed LOFT_ERR_DECRYPT", async () => {
    const { la, initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const send = la.send.bind(la);
    let n = 0;
    la.send = (m: Uint8Array) => {
      const copy = m.slice();
      if (n++ === 2) copy[copy.length - 1]! ^= 1; // the third frame's tag
      send(copy);
    };
    for (let i = 0; i < 6; i++) a.send(utf8(`run ${i}`));
    expect(await b.receive()).toEqual(utf8("run 0"));
    expect(await b.receive()).toEqual(utf8("run 1"));
    await expect(b.receive()).rejects.toThrow(/LOFT_ERR_DECRYPT/);
    expect((await b.closed).reason).toBe("LOFT_ERR_DECRYPT");
    // The code is the reason; the detail is the failure's words alone (LoftError `detail`), so
    // one who re-wraps the close (core/device/exchange.ts) does not show the code twice.
    expect((await b.closed).detail).toMatch(/^(?!LOFT_ERR_)\S/);
  });

  it("close(reason) reaches the peer in an encrypted CLOSE frame; both ends are then closed", async () => {
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    a.close("user-left");
    expect(await b.closed).toEqual({ reason: "remote-closed", detail: "user-left" });
    await expect(b.receive()).rejects.toThrow(/LOFT_ERR_LINK_CLOSED/);
    expect(() => a.send(utf8("late"))).toThrow(/LOFT_ERR_LINK_CLOSED/);
    expect(() => a.exportSecret("x")).toThrow(/LOFT_ERR_LINK_CLOSED/);
  });

  it("an orderly close is orderly on the link only once the CLOSE went out (core/link/link.ts LinkCloseInfo.orderly)", async () => {
    // Orderly: the CLOSE is sealed and sent, then the link closes orderly (a data channel may
    // wait, bounded, until the peer has it).
    const first = connect();
    const [a, b] = await Promise.all([first.initiator, first.responder]);
    a.close("stopped", undefined, { orderly: true });
    expect(await first.la.closed).toEqual({ reason: "stopped", orderly: true });
    expect(await b.closed).toEqual({ reason: "remote-closed", detail: "stopped" });
    // Not asked for (a failure, a silent peer): the link closes at once, CLOSE or not.
    const second = connect();
    const [c] = await Promise.all([second.initiator, second.responder]);
    c.close("heartbeat-timeout", "no frame");
    expect(await second.la.closed).toEqual({ reason: "heartbeat-timeout", detail: "no frame" });
    // Asked for, but the CLOSE could not be sent (the transport refused it): at once too.
    const third = connect();
    const [e] = await Promise.all([third.initiator, third.responder]);
    third.la.send = () => {
      throw new Error("the transport failed");
    };
    e.close("stopped", undefined, { orderly: true });
    expect(await third.la.closed).toEqual({ reason: "stopped" });
  });

  it("a long close reason reaches the peer cut to 256 bytes on a character boundary", async () => {
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    a.close("é".repeat(200)); // 400 bytes of UTF-8; byte 256 is the start of a character
    expect((await b.closed).detail).toBe("é".repeat(128));
    const second = connect();
    const [c, d] = await Promise.all([second.initiator, second.responder]);
    c.close(`x${"é".repeat(200)}`); // byte 256 falls inside a character: cut before it
    expect((await d.closed).detail).toBe(`x${"é".repeat(127)}`);
  });

  it("a send that finds the link closed by the peer still lets the session read what arrived before the close", async () => {
    // A data channel closes as the peer's orderly close completes — right behind its last
    // messages and CLOSE (web/src/net/webrtc-link.ts). A reply sealed then (a receipt for an
    // earlier message) must not end the session before it has read them: they were sent.
    let sawClosed!: () => void;
    const sendFoundClosed = new Promise<void>((resolve) => {
      sawClosed = resolve;
    });
    // b's reads held: the session's reader falls behind its sender.
    const { a, b, lb, hold, release } = await heldReads((state) => {
      if (state === "closed") sawClosed();
    });
    hold();
    a.send(utf8("first")); // taken by the read already waiting; the next ones wait at the gate
    a.send(utf8("last words"));
    a.close("stopped", undefined, { orderly: true });
    expect(await lb.closed).toEqual({ reason: "remote-closed", detail: "stopped" });
    b.send(utf8("receipt"));
    await sendFoundClosed; // the reply's seal found the link closed
    await new Promise((resolve) => setTimeout(resolve, 0)); // and its failure has run its course
    release();
    expect(await b.receive()).toEqual(utf8("first"));
    expect(await b.receive()).toEqual(utf8("last words"));
    expect(await b.closed).toEqual({ reason: "remote-closed", detail: "stopped" });
  });

  it("a session whose link closed under it while its reader drains is not writable, and flushed() says what did not leave", async () => {
    // The window of the test above: the link is closed, the reader still has the peer's last
    // messages to read, so the session stays `open`. What is sent in that window never leaves —
    // a sender that must not lose it (the chat outbox, web/src/engine/messages.ts) is told.
    const { a, b, lb, hold, release } = await heldReads();
    expect(b.writable).toBe(true);
    b.send(utf8("before"));
    await b.flushed(); // handed to the link while it was open
    expect(await a.receive()).toEqual(utf8("before"));
    hold();
    a.send(utf8("first")); // taken by the read already waiting; the next one waits at the gate
    a.send(utf8("last words"));
    a.close("stopped", undefined, { orderly: true });
    expect(await lb.closed).toEqual({ reason: "remote-closed", detail: "stopped" });
    expect(b.state).toBe("open"); // its reader has not drained yet
    expect(b.writable).toBe(false);
    b.send(utf8("sent in the window"));
    await expect(b.flushed()).rejects.toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
    release();
    expect(await b.receive()).toEqual(utf8("first"));
    expect(await b.receive()).toEqual(utf8("last words"));
    expect(await b.closed).toEqual({ reason: "remote-closed", detail: "stopped" });
    expect(b.writable).toBe(false);
  });

  it("flushed() resolves for frames sealed in runs and chunked messages, and rejects for one the link closed before", async () => {
    const { la, initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    for (let i = 0; i < SEAL_BATCH + 3; i++) a.send(utf8(`m${i}`)); // more than one run
    a.send(new Uint8Array(MAX_DATA_PAYLOAD * 2 + 5)); // CHUNK frames
    await a.flushed();
    for (let i = 0; i < SEAL_BATCH + 3; i++) expect(await b.receive()).toEqual(utf8(`m${i}`));
    expect((await b.receive()).length).toBe(MAX_DATA_PAYLOAD * 2 + 5);
    a.send(utf8("queued as the link closes")); // sealed on the send chain, after the close below
    const late = a.flushed();
    la.close("gone"); // the link closes under the session (a transport failure)
    await expect(late).rejects.toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
    expect(a.writable).toBe(false);
    expect(await a.closed).toMatchObject({ reason: "LOFT_ERR_LINK_CLOSED" });
    expect(await b.closed).toMatchObject({ reason: "LOFT_ERR_LINK_CLOSED" });
  });

  it("flushed() waits for no bulk frame and nothing sent after it: a chat message is sealed after at most one bulk run", async () => {
    // docs/protocol/session.md §5, "Bulk frames": a file window of in-session chunks queued
    // before a chat message no longer holds the message (nor its `sent`) behind it.
    const { la, initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    let handed = 0;
    const send = la.send.bind(la);
    la.send = (m: Uint8Array) => {
      handed++;
      send(m);
    };
    const WINDOW = 64; // files' WINDOW_CHUNKS: one window of chunks waits to be sealed
    const chunk = new Uint8Array(MAX_DATA_PAYLOAD - 1);
    for (let i = 0; i < WINDOW; i++) a.sendParts([Uint8Array.of(1), chunk.fill(i)], { bulk: true });
    a.send(utf8("chat"));
    const handedBefore = handed; // nothing yet: the send chain seals asynchronously
    await a.flushed();
    const atFlushed = handed;
    // Sent after the call: not waited for (the old flushed() waited for the whole chain).
    for (let i = 0; i < WINDOW; i++) a.sendParts([Uint8Array.of(2), chunk], { bulk: true });
    expect(handedBefore).toBe(0);
    expect(atFlushed).toBeLessThan(WINDOW + 1);
    const order: string[] = [];
    for (let i = 0; i < 2 * WINDOW + 1; i++) {
      const m = await b.receive();
      order.push(m.length === 4 ? "chat" : `${m[0]}`);
    }
    const at = order.indexOf("chat");
    // After the run already being sealed when it came (the first frame is sealed alone: the chain
    // starts on the first send) — never behind the rest of the window.
    expect(at).toBeGreaterThan(-1);
    expect(at).toBeLessThanOrEqual(1 + SEAL_BATCH);
    // Bulk frames keep their order among themselves.
    expect(order.filter((o) => o !== "chat")).toEqual([
      ...Array<string>(WINDOW).fill("1"),
      ...Array<string>(WINDOW).fill("2"),
    ]);
  });

  it("a chat message sent while a window of 255 KiB chunks waits goes first, a long one too: at most one run behind, every chunk whole", async () => {
    // docs/protocol/files.md §2: a transfer in 255 KiB chunks that resumes on a session without the
    // bulk lane (the relay) sends each chunk as one bulk message of 261 149 bytes — four CHUNK
    // frames, sealed to their end once begun (FrameAssembler). session.md §5, "Bulk frames": a
    // chat message still leaves before the window, whether sent with it or in the middle of a run.
    const { la, initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const WINDOW = 16; // windowChunks(255 KiB): 4 MiB of them
    const wide = (i: number) => new Uint8Array(261_149).fill(i);
    const send = la.send.bind(la);
    let handed = 0;
    let midRun: (() => void) | undefined;
    la.send = (m: Uint8Array) => {
      send(m);
      if (++handed === 6) midRun?.(); // inside the first run, in the middle of its second chunk
    };
    for (let i = 0; i < WINDOW; i++) a.sendParts([wide(i)], { bulk: true });
    a.send(utf8("with the window"));
    midRun = () => {
      a.send(utf8("mid-run"));
      // A chat message padded to 64 KiB (docs/protocol/wire.md, "Padding"): two CHUNK frames.
      a.send(new Uint8Array(70_000).fill(0xee));
      a.send(utf8("after the long one"));
    };
    await a.flushed();
    const order: string[] = [];
    for (let i = 0; i < WINDOW + 4; i++) {
      const m = await b.receive();
      if (m.length < 100) order.push(new TextDecoder().decode(m));
      else if (m.length === 70_000) order.push("long");
      else {
        expect(m.length).toBe(261_149); // whole: its four CHUNK frames together
        expect(m.every((x) => x === m[0])).toBe(true);
        order.push(`${m[0]}`);
      }
    }
    // Queued with the window: before all of it (a run starts with what is not bulk).
    expect(order.indexOf("with the window")).toBe(0);
    // Queued while the first run of bulk frames (SEAL_BATCH frames: 8 chunks) was handed: after
    // that run, not behind the other half of the window.
    expect(order.indexOf("mid-run")).toBeGreaterThan(0);
    expect(order.indexOf("mid-run")).toBeLessThanOrEqual(1 + SEAL_BATCH / 4);
    // A message over one frame too (its id is the next sealed, not the next queued), and what
    // follows it: before, they waited behind every chunk of the window.
    expect(order.slice(order.indexOf("mid-run"), order.indexOf("mid-run") + 3)).toEqual([
      "mid-run",
      "long",
      "after the long one",
    ]);
    expect(order.filter((o) => o.length <= 2)).toEqual(Array.from({ length: WINDOW }, (_, i) => `${i}`));
  });

  it("bulk frames: a chunked message does not wait behind chunked bulk ones, each stays whole, ids in the order sealed", async () => {
    // CHUNK frames carry their message id, which the receiver expects in order (FrameAssembler):
    // the id is given when a message's first frame is sealed, not when it is queued, so a chunked
    // message sent while a chunked bulk message waits (a 255 KiB file chunk inside the session:
    // files.md §2) goes before it, and the messages after it keep their order. Before, it
    // queued behind every chunked bulk frame, and so did everything sent after it.
    const { initiator, responder } = connect();
    const [a, b] = await Promise.all([initiator, responder]);
    const big = (n: number) => new Uint8Array(MAX_DATA_PAYLOAD * 2 + 7).fill(n);
    a.sendParts([Uint8Array.of(1)], { bulk: true });
    a.sendParts([big(2)], { bulk: true }); // chunked bulk: waits
    a.send(big(3)); // chunked, not bulk: goes first, message id 0
    a.send(utf8("after")); // after it
    a.sendParts([Uint8Array.of(4)], { bulk: true });
    a.send(utf8("later")); // after "after", before the bulk frames
    await a.flushed();
    const got: string[] = [];
    for (let i = 0; i < 6; i++) {
      const m = await b.receive();
      got.push(m.length > 100 ? `big${m[0]}` : m.length === 1 ? `b${m[0]}` : new TextDecoder().decode(m));
    }
    expect(got).toEqual(["big3", "after", "later", "b1", "big2", "b4"]);
    // Without anything chunked waiting, a message goes before the bulk frames queued before it.
    for (let i = 0; i < 3 * SEAL_BATCH; i++) a.sendParts([Uint8Array.of(5)], { bulk: true });
    a.send(big(6));
    await a.flushed();
    const order: string[] = [];
    for (let i = 0; i < 3 * SEAL_BATCH + 1; i++) {
      const m = await b.receive();
      order.push(m.length > 100 ? `big${m[0]}` : `b${m[0]}`);
    }
    expect(order.indexOf("big6")).toBeLessThanOrEqual(1 + SEAL_BATCH);
    expect(b.state).toBe("open");
  });

  it("dropped counts what a closed link did not take, bulk frames too; flushed() rejects only for frames it covers", async () => {
    const { a, b, lb, hold, release } = await heldReads();
    b.sendParts([Uint8Array.of(1)], { bulk: true });
    b.send(utf8("before"));
    await b.flushed();
    expect(b.dropped).toBe(0);
    hold();
    a.send(utf8("last")); // taken by the read already waiting; Bob's reader holds after it
    a.close("stopped");
    await lb.closed;
    expect(b.state).toBe("open");
    expect(b.writable).toBe(false);
    for (let i = 0; i < 3; i++) b.sendParts([Uint8Array.of(2)], { bulk: true }); // a file window's tail
    await b.flushed(); // covers no bulk frame: nothing it waits on was dropped
    await expect.poll(() => b.dropped).toBe(3);
    b.send(utf8("in the window"));
    await expect(b.flushed()).rejects.toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
    expect(b.dropped).toBe(4);
    // A message over one frame never cut (its id comes when sealed): counted as the frames it
    // is — 200 000 bytes are four CHUNK frames (session.md §5), bulk or not.
    b.sendParts([new Uint8Array(200_000)], { bulk: true });
    b.send(new Uint8Array(200_000));
    await expect.poll(() => b.dropped).toBe(12);
    release();
    expect(await b.closed).toMatchObject({ reason: "remote-closed" });
  });

  it("a link that drops without a CLOSE frame closes the session with LOFT_ERR_LINK_CLOSED", async () => {
    const { la, initiator, responder } = connect();
    const [, b] = await Promise.all([initiator, responder]);
    la.close("cable cut");
    expect((await b.closed).reason).toBe("LOFT_ERR_LINK_CLOSED");
  });
});

describe("establishSession: every failure has its code, closes the link, yields no session", () => {
  it("a peer announcing another version: LOFT_ERR_UNSUPPORTED_VERSION", async () => {
    const v2 = encodeVersionHeader({ protocol_name: "SREMP", version_major: 2, version_minor: 0 });
    const { la, initiator, responder } = connect(
      {},
      { versionCodec: { encode: () => v2, decode: () => ({ ok: true, value: null }) } },
    );
    expect(await codeOf(initiator)).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect((await la.closed).reason).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(await codeOf(responder)).toBe("LOFT_ERR_LINK_CLOSED");
  });

  it("garbage instead of a version header: LOFT_ERR_MALFORMED", async () => {
    const [la, lb] = memoryLinkPair();
    const session = establishSession({ link: la, role: "responder", kind: "relay", self: bob });
    lb.send(utf8("GET / HTTP/1.1"));
    expect(await codeOf(session)).toBe("LOFT_ERR_MALFORMED");
    expect((await lb.closed).detail).toBe("LOFT_ERR_MALFORMED");
  });

  it("a downgraded version header (rewritten in transit) breaks the handshake via the prologue", async () => {
    // Both ends here would accept "1.0" and "1.1"; a relay rewrites the initiator's "1.1" into
    // "1.0". Each side then hashes different headers into its prologue, and message 2 fails.
    const v11 = encodeVersionHeader({ protocol_name: "SREMP", version_major: 1, version_minor: 1 });
    const v10 = encodeVersionHeader();
    const lenient = { decode: (b: Uint8Array) => ({ ok: true as const, value: b }) };
    const [la, relayA] = memoryLinkPair();
    const [relayB, lb] = memoryLinkPair();
    relay(
      relayA,
      relayB,
      (m, i) => (i === 0 ? v10 : m),
      (m) => m,
    );
    const initiator = establishSession({
      link: la,
      role: "initiator",
      kind: "direct",
      self: alice,
      versionCodec: { encode: () => v11, ...lenient },
    });
    const responder = establishSession({
      link: lb,
      role: "responder",
      kind: "direct",
      self: bob,
      versionCodec: { encode: () => v11, ...lenient },
    });
    expect(await codeOf(initiator)).toBe("LOFT_ERR_DECRYPT");
    expect(await codeOf(responder)).toBe("LOFT_ERR_LINK_CLOSED");
    expect(decodeVersionHeader(v11).ok).toBe(false); // the real decoder refuses 1.1 outright
  });

  it("different link kinds (a cross-kind replay): the prologues differ, LOFT_ERR_DECRYPT", async () => {
    const { initiator, responder } = connect({ kind: "relay" }, { kind: "direct" });
    expect(await codeOf(initiator)).toBe("LOFT_ERR_DECRYPT");
    expect(await codeOf(responder)).toBe("LOFT_ERR_LINK_CLOSED");
  });

  it("XXhfs against XX: refused (LOFT_ERR_MALFORMED: message 1 is not what XX expects)", async () => {
    const { initiator, responder } = connect({ protocol: "XXhfs" }, { protocol: "XX" });
    expect(await codeOf(responder)).toBe("LOFT_ERR_MALFORMED");
    expect(await codeOf(initiator)).toBe("LOFT_ERR_LINK_CLOSED");
  });

  it("an identity whose signature does not verify: LOFT_ERR_BAD_SIGNATURE", async () => {
    const forged: UserIdentity = {
      ...bob,
      identity: { ...bob.identity, signature: bob.identity.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) },
    };
    const { lb, initiator, responder } = connect({}, {}, [alice, forged]);
    expect(await codeOf(initiator)).toBe("LOFT_ERR_BAD_SIGNATURE");
    expect(await codeOf(responder)).toBe("LOFT_ERR_LINK_CLOSED");
    expect((await lb.closed).detail).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("the wrong contact answers: LOFT_ERR_HANDSHAKE_IDENTITY, and the initiator never sends its identity", async () => {
    const [la, lb] = memoryLinkPair();
    const initiator = establishSession({
      link: la,
      role: "initiator",
      kind: "direct",
      self: alice,
      expectedIdentityKey: bob.identity.verified.identity_key,
    });
    const seen = observeResponder(lb, mallory);
    expect(await codeOf(initiator)).toBe("LOFT_ERR_HANDSHAKE_IDENTITY");
    expect(await seen).toBe("closed before message 3");
  });

  it("the responder can require an initiator too (LOFT_ERR_HANDSHAKE_IDENTITY)", async () => {
    const { initiator, responder } = connect(
      {},
      { expectedIdentityKey: mallory.identity.verified.identity_key },
    );
    expect(await codeOf(responder)).toBe("LOFT_ERR_HANDSHAKE_IDENTITY");
    await initiator; // the initiator completed message 3; its session then closes
  });

  it("no answer before the deadline: LOFT_ERR_TIMEOUT, link closed with that reason", async () => {
    const [la, lb] = memoryLinkPair();
    const session = establishSession({
      link: la,
      role: "initiator",
      kind: "direct",
      self: alice,
      handshakeTimeoutMs: 20,
    });
    expect(await codeOf(session)).toBe("LOFT_ERR_TIMEOUT");
    expect(la.state).toBe("closed");
    expect((await lb.closed).detail).toBe("LOFT_ERR_TIMEOUT");
  });

  it("a handshake message tampered in transit: its reader fails, and no usable session remains", async () => {
    // Message 1 travels in the clear but is hashed into h, so a change to it shows when the
    // initiator reads message 2; a change to message 2 shows there too. Message 3 is the
    // initiator's last word (Noise XX): it already holds a session when the responder refuses,
    // and that session closes at once.
    for (const target of [1, 2, 3]) {
      const [la, relayA] = memoryLinkPair();
      const [relayB, lb] = memoryLinkPair();
      const flip = (m: Uint8Array) => {
        const c = m.slice();
        c[c.length - 1]! ^= 1;
        return c;
      };
      relay(
        relayA,
        relayB,
        (m, i) => ((target === 1 && i === 1) || (target === 3 && i === 2) ? flip(m) : m),
        (m, i) => (i === 1 && target === 2 ? flip(m) : m),
      );
      const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: alice });
      const responder = establishSession({ link: lb, role: "responder", kind: "direct", self: bob });
      const reader = target === 3 ? responder : initiator;
      const writer = target === 3 ? initiator : responder;
      expect(["LOFT_ERR_DECRYPT", "LOFT_ERR_MALFORMED"], `message ${target}`).toContain(await codeOf(reader));
      if (target === 3) {
        const session = await writer;
        expect((await session.closed).reason).toBe("LOFT_ERR_LINK_CLOSED");
        await expect(session.receive()).rejects.toThrow(/LOFT_ERR_LINK_CLOSED/);
      } else {
        expect(await codeOf(writer)).toBe("LOFT_ERR_LINK_CLOSED");
      }
    }
  });
});

describe("a relaying attacker", () => {
  it("that only forwards bytes is harmless: the session works end to end", async () => {
    const [la, relayA] = memoryLinkPair();
    const [relayB, lb] = memoryLinkPair();
    relay(
      relayA,
      relayB,
      (m) => m,
      (m) => m,
    );
    const [a, b] = await Promise.all([
      establishSession({ link: la, role: "initiator", kind: "relay", self: alice }),
      establishSession({ link: lb, role: "responder", kind: "relay", self: bob }),
    ]);
    a.send(utf8("through the relay"));
    expect(await b.receive()).toEqual(utf8("through the relay"));
    a.close();
  });

  it("that answers with Bob's real identity but its own static key: LOFT_ERR_NOISE_KEY_MISMATCH", async () => {
    const [la, lm] = memoryLinkPair();
    const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: alice });
    void impostor(lm, "responder", await generateKeyPair(), encodeHandshakePayload(bob.identity)).catch(
      () => {},
    );
    expect(await codeOf(initiator)).toBe("LOFT_ERR_NOISE_KEY_MISMATCH");
  });

  it("that dials Bob with Alice's real identity but its own static key: LOFT_ERR_NOISE_KEY_MISMATCH", async () => {
    const [lm, lb] = memoryLinkPair();
    const responder = establishSession({ link: lb, role: "responder", kind: "direct", self: bob });
    void impostor(lm, "initiator", await generateKeyPair(), encodeHandshakePayload(alice.identity)).catch(
      () => {},
    );
    expect(await codeOf(responder)).toBe("LOFT_ERR_NOISE_KEY_MISMATCH");
  });

  it("that swaps in its own noise key under Bob's identity key (unsigned): LOFT_ERR_BAD_SIGNATURE", async () => {
    const key = await generateKeyPair();
    const swapped = { ...bob.identity, verified: { ...bob.identity.verified, noise_key: key.publicKey } };
    const [la, lm] = memoryLinkPair();
    const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: alice });
    void impostor(lm, "responder", key, encodeHandshakePayload(swapped)).catch(() => {});
    expect(await codeOf(initiator)).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("that presents its own valid identity to a caller expecting Bob: LOFT_ERR_HANDSHAKE_IDENTITY", async () => {
    const [la, lm] = memoryLinkPair();
    const initiator = establishSession({
      link: la,
      role: "initiator",
      kind: "direct",
      self: alice,
      expectedIdentityKey: bob.identity.verified.identity_key,
    });
    const key: KeyPair = {
      privateKey: mallory.privateNoiseKey,
      publicKey: mallory.identity.verified.noise_key,
    };
    void impostor(lm, "responder", key, encodeHandshakePayload(mallory.identity)).catch(() => {});
    expect(await codeOf(initiator)).toBe("LOFT_ERR_HANDSHAKE_IDENTITY");
  });
});

/** Forward messages between two links, rewriting each direction's i-th message as told. */
function relay(
  fromInitiator: Link,
  toResponder: Link,
  forward: (m: Uint8Array, i: number) => Uint8Array,
  backward: (m: Uint8Array, i: number) => Uint8Array,
): void {
  const pipe = async (from: Link, to: Link, rewrite: (m: Uint8Array, i: number) => Uint8Array) => {
    for (let i = 0; ; i++) {
      let m: Uint8Array;
      try {
        m = await from.receive();
      } catch {
        const info = await from.closed;
        to.close(info.detail ?? info.reason);
        return;
      }
      if (to.state === "closed") return;
      to.send(rewrite(m, i));
    }
  };
  void pipe(fromInitiator, toResponder, forward);
  void pipe(toResponder, fromInitiator, backward);
}

/**
 * A peer built from raw Noise parts: it speaks the session protocol (version header, prologue,
 * XXhfs) with any static key and any payload, which the real API refuses to do.
 */
async function impostor(
  link: Link,
  role: "initiator" | "responder",
  staticKeyPair: KeyPair,
  payload: Uint8Array,
  kind: LinkKind = "direct",
): Promise<void> {
  const header = encodeVersionHeader();
  link.send(header);
  await link.receive();
  const hs = await HandshakeState.create({
    pattern: XX_HFS,
    role,
    prologue: sessionPrologue(kind, header, header),
    staticKeyPair,
  });
  const write = async (p: Uint8Array) => {
    const m = await hs.writeMessage(p);
    if (!m.ok) throw m.error;
    link.send(m.value);
  };
  const read = async () => {
    const r = await hs.readMessage(await link.receive());
    if (!r.ok) throw r.error;
  };
  if (role === "initiator") {
    await write(new Uint8Array(0));
    await read();
    await write(payload);
  } else {
    await read();
    await write(payload);
    await read();
  }
}

/** A responder (real identity) that reports whether message 3 ever arrived. */
async function observeResponder(link: Link, self: UserIdentity): Promise<string> {
  try {
    const s: Session = await establishSession({ link, role: "responder", kind: "direct", self });
    s.close();
    return "message 3 arrived";
  } catch {
    return "closed before message 3";
  }
}

describe("establishSession with native crypto providers", () => {
  it.each(["webcrypto", "node"] as const)(
    "%s on both sides: the session opens, carries messages, and a mixed pair interoperates with noble",
    async (which) => {
      const crypto = which === "node" ? await createNodeCryptoProvider() : await createWebCryptoProvider();
      const { initiator, responder } = connect({ crypto }, { crypto });
      const [a, b] = await Promise.all([initiator, responder]);
      a.send(utf8("over native primitives"));
      expect(await b.receive()).toEqual(utf8("over native primitives"));
      a.close();
      // One side native, the other noble: the same bytes on the wire.
      const mixed = connect({ crypto }, {});
      const [c, d] = await Promise.all([mixed.initiator, mixed.responder]);
      d.send(utf8("back"));
      expect(await c.receive()).toEqual(utf8("back"));
      c.close();
    },
  );

  it("a peer whose identity signature does not verify is refused on the native path too", async () => {
    const crypto = await createNodeCryptoProvider();
    const forged = {
      ...bob,
      identity: { ...bob.identity, signature: bob.identity.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) },
    };
    const { initiator, responder } = connect({ crypto }, { crypto }, [alice, forged]);
    responder.catch(() => {});
    expect(await codeOf(initiator)).toBe("LOFT_ERR_BAD_SIGNATURE");
  });
});
