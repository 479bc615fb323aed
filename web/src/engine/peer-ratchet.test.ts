/**
 * peer-ratchet.ts `sendApps`: a burst shares one sealed ratchet write, and no ciphertext of it
 * leaves before that write is stored (Signal DR §3.5; docs/protocol/chat.md §5). Real ratchets
 * (core/ratchet, noble), a storage wrapper that holds the write, a session stand-in that records
 * the frames handed to it (through `send` or, joined as Session does, `sendParts`); the version
 * tests below run real Noise sessions.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../../core/bytes.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import {
  generateRatchetKeyPair,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromSecret,
} from "../../../core/ratchet/index.ts";
import { establishSession } from "../../../core/session/index.ts";
import { alice as aliceUser, bob as bobUser } from "../../../core/session/testing.ts";
import { until } from "../../../test/support/engine.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import type { Live, Peer } from "./context.ts";
import {
  liveMessageVersion,
  RATCHET_VERSIONS_EXTENSION,
  type RatchetContext,
  ratchetVersionsExtension,
  saveRatchet,
  seal,
  sendApp,
  sendApps,
} from "./peer-ratchet.ts";
import { decodeChatRatchet, encodeChatRatchet } from "./ratchet-store.ts";
import { type AppMessage, decodeAppMessage, decodeSessionFrame } from "./wire.ts";

/** saveSession calls park until released; `stored` is what storage holds durably. */
class HeldWrites {
  stored: Uint8Array | undefined;
  parked: { blob: Uint8Array; release: () => void }[] = [];
  saveSession(_id: string, blob: Uint8Array): Promise<void> {
    const copy = blob.slice(); // the caller wipes its blob once the write settles
    return new Promise((resolve) => {
      this.parked.push({
        blob: copy,
        release: () => {
          this.stored = copy;
          resolve();
        },
      });
    });
  }
}

async function setup() {
  const secret = new Uint8Array(32).fill(7);
  const ad = new Uint8Array(64).fill(1);
  const bobKeys = await generateRatchetKeyPair();
  const alice = await ratchetFromSecret({ role: "alice", secret, bobRatchetPublic: bobKeys.publicKey, ad });
  const bob = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: bobKeys, ad });
  if (!alice.ok || !bob.ok) throw new Error("ratchet setup");
  const storage = new HeldWrites();
  const ctx = { cfg: { log: () => {} }, storage } as unknown as RatchetContext;
  const peer = { id: "bob", ratchet: { id: new Uint8Array(16), state: alice.value } } as unknown as Peer;
  const frames: Uint8Array[] = [];
  // Session.sendParts's contract: the same message as `send(concatBytes(...parts))`.
  const live = {
    session: {
      state: "open",
      writable: true,
      flushed: () => Promise.resolve(),
      remoteExtensions: {},
      send: (f: Uint8Array) => frames.push(f.slice()),
      sendParts: (parts: readonly Uint8Array[]) => frames.push(concatBytes(...parts)),
      sendDetached: (head: readonly Uint8Array[], body: Uint8Array) =>
        frames.push(concatBytes(...head, body)),
    },
  } as unknown as Live;
  let bobState = bob.value;
  let opened = 0;
  /** Bob opens the frames not opened yet, in order: the application messages they carry. */
  const open = async () => {
    const out: AppMessage[] = [];
    for (const f of frames.slice(opened)) {
      opened++;
      const frame = decodeSessionFrame(f);
      if (!frame.ok || frame.value.type !== "ratchet") throw new Error("not a ratchet frame");
      const r = await ratchetDecrypt(bobState, frame.value.message, Date.now());
      if (!r.ok) throw r.error;
      bobState = r.value.state;
      const app = decodeAppMessage(r.value.plaintext);
      if (!app.ok) throw app.error;
      out.push(app.value);
    }
    return out;
  };
  return { storage, ctx, peer, frames, live, open };
}

describe("sendApps: one sealed ratchet write per burst, before any ciphertext leaves", () => {
  it("holds every frame of the batch until the state after the last message is stored", async () => {
    const { storage, ctx, peer, frames, live, open } = await setup();
    const messages: AppMessage[] = [1, 2, 3, 4, 5].map((i) => ({
      t: "msg",
      id: `m${i}`.padEnd(22, "A"),
      at: 1_700_000_000_000 + i,
      text: `burst ${i}`,
    }));
    const sent = sendApps(ctx, peer, live, messages);
    await until(() => storage.parked.length === 1, "the batch's state write");
    // The write is held: nothing has left, whatever the event loop does meanwhile.
    await new Promise((r) => setTimeout(r, 20));
    expect(frames).toHaveLength(0);
    expect(storage.parked).toHaveLength(1);
    const held = decodeChatRatchet(storage.parked[0]!.blob);
    expect(held.ok && held.value.state.sendCount).toBe(messages.length);
    storage.parked[0]!.release();
    await sent;
    expect(storage.parked).toHaveLength(1); // one write for five messages
    expect(frames).toHaveLength(messages.length);
    expect(await open()).toEqual(messages);
    // The next send continues from the stored state, and waits for its own write in turn.
    const next = sendApp(ctx, peer, live, { t: "sync" });
    await until(() => storage.parked.length === 2, "the next send's state write");
    expect(frames).toHaveLength(messages.length);
    storage.parked[1]!.release();
    await next;
    const stored = decodeChatRatchet(storage.stored!);
    expect(stored.ok && stored.value.state.sendCount).toBe(messages.length + 1);
    expect(await open()).toEqual([{ t: "sync" }]);
  });

  it("a message that does not encode refuses the whole batch before the ratchet moves", async () => {
    const { storage, ctx, peer, frames, live } = await setup();
    const before = peer.ratchet!.state;
    const bad = { t: "sync", extra: () => {} } as unknown as AppMessage; // MessagePack refuses a function
    await expect(sendApps(ctx, peer, live, [{ t: "sync" }, bad])).rejects.toThrow();
    expect(peer.ratchet!.state).toBe(before);
    expect(storage.parked).toHaveLength(0);
    expect(frames).toHaveLength(0);
  });
});

/**
 * The message version a live send picks (docs/protocol/ratchet.md, "Version 0x02", "Version 0x03"):
 * the newest the peer's `ratchet.v2` handshake extension lists, on a real Noise session (memory
 * links) — 0x03 from this engine, 0x02 from a peer of session 11–15 that lists `01 02`, 0x01
 * without it (a peer from before it); the mailbox always 0x01. The receiving end opens every frame.
 */
describe("sendApps: ratchet message version from the peer's ratchet.v2 extension", () => {
  async function sessions(bobAnnounces: boolean | Uint8Array) {
    const [la, lb] = memoryLinkPair();
    const [a, b] = await Promise.all([
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: aliceUser,
        extensions: ratchetVersionsExtension(),
      }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: bobUser,
        extensions:
          bobAnnounces instanceof Uint8Array
            ? { [RATCHET_VERSIONS_EXTENSION]: bobAnnounces }
            : bobAnnounces
              ? ratchetVersionsExtension()
              : {},
      }),
    ]);
    return { a, b };
  }

  async function burstOver(bobAnnounces: boolean | Uint8Array) {
    const { ctx, peer, frames, open } = await setup();
    (ctx as unknown as { storage: unknown }).storage = { saveSession: async () => {} };
    const { a, b } = await sessions(bobAnnounces);
    try {
      const messages: AppMessage[] = [1, 2, 3].map((i) => ({
        t: "msg",
        id: `v${i}`.padEnd(22, "A"),
        at: 1_700_000_000_000 + i,
        text: `version ${i}`,
      }));
      await sendApps(ctx, peer, { session: a } as unknown as Live, messages);
      const versions: number[] = [];
      for (let i = 0; i < messages.length; i++) {
        const frame = await b.receive();
        const f = decodeSessionFrame(frame);
        if (!f.ok || f.value.type !== "ratchet") throw new Error("not a ratchet frame");
        versions.push(f.value.message[0]!);
        frames.push(frame);
      }
      // Bob's ratchet opens what came over the session, whatever the version.
      expect(await open()).toEqual(messages);
      // The mailbox path seals 0x01 whatever the live peer announced.
      const mailbox = await seal(ctx, peer, { t: "sync" });
      return { versions, mailboxVersion: mailbox![0] };
    } finally {
      a.close();
      b.close();
    }
  }

  it("a peer that announced ratchet.v2 with 0x03 gets 0x03 on the live session; the mailbox stays 0x01", async () => {
    expect(ratchetVersionsExtension()[RATCHET_VERSIONS_EXTENSION]).toEqual(new Uint8Array([1, 2, 3]));
    const r = await burstOver(true);
    expect(r.versions).toEqual([3, 3, 3]);
    expect(r.mailboxVersion).toBe(1);
  });

  it("a peer that lists 01 02 (before 0x03) gets 0x02", async () => {
    const r = await burstOver(new Uint8Array([1, 2]));
    expect(r.versions).toEqual([2, 2, 2]);
    expect(r.mailboxVersion).toBe(1);
  });

  it("an old peer (no ratchet.v2 in its handshake) gets 0x01", async () => {
    const r = await burstOver(false);
    expect(r.versions).toEqual([1, 1, 1]);
    expect(r.mailboxVersion).toBe(1);
  });

  it("fuzz: any ratchet.v2 value a peer lists (garbage, repeats, any order, empty) picks the newest version this side writes that it lists, else 0x01", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.dictionary(fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 8 }), { maxKeys: 4 }),
        (listed, others) => {
          const expected = [3, 2].find((v) => listed.includes(v)) ?? 1;
          expect(liveMessageVersion({ ...others, [RATCHET_VERSIONS_EXTENSION]: listed })).toBe(expected);
          // Without the extension (only other names, even ones shadowing Object.prototype): 0x01.
          const without = Object.fromEntries(
            Object.entries(others).filter(([name]) => name !== RATCHET_VERSIONS_EXTENSION),
          );
          expect(liveMessageVersion(without)).toBe(1);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    expect(liveMessageVersion(JSON.parse('{"__proto__": {"ratchet.v2": [3]}}'))).toBe(1);
  });
});

/**
 * saveRatchet (Signal DR §3.5): memory never runs ahead of storage. A failed state write leaves
 * the contact's ratchet as storage holds it — a send is encrypted again from there (nothing of the
 * failed attempt left), and a received message whose state did not stick opens when it comes again.
 */
describe("saveRatchet: a failed write leaves the ratchet in memory where storage is", () => {
  /** A store of one session whose next writes fail while `failing`. */
  class FlakyStore {
    stored: Uint8Array | undefined;
    failing = false;
    writes = 0;
    async saveSession(_id: string, blob: Uint8Array) {
      this.writes++;
      if (this.failing) throw new Error("QuotaExceededError");
      this.stored = blob.slice();
    }
    async loadSession() {
      return this.stored?.slice();
    }
  }

  it("a send whose state write fails sends nothing, and the next send goes from the stored state", async () => {
    const { ctx, peer, frames, live, open } = await setup();
    const storage = new FlakyStore();
    (ctx as unknown as { storage: unknown }).storage = storage;
    await saveRatchet(ctx, peer, peer.ratchet!); // what storage holds to begin with
    storage.failing = true;
    await expect(sendApp(ctx, peer, live, { t: "sync" })).rejects.toThrow(/Quota/);
    expect(frames).toHaveLength(0);
    // In memory: the stored state, read back (the one the failed attempt advanced from is wiped).
    expect(peer.ratchet!.state.sendCount).toBe(0);
    expect(encodeChatRatchet(peer.ratchet!)).toEqual(storage.stored);
    storage.failing = false;
    const m: AppMessage = { t: "msg", id: "after".padEnd(22, "A"), at: 1_700_000_000_000, text: "after" };
    await sendApp(ctx, peer, live, m);
    expect(await open()).toEqual([m]);
    expect(peer.ratchet!.state.sendCount).toBe(1);
    expect(encodeChatRatchet(peer.ratchet!)).toEqual(storage.stored);
  });

  it("a received message whose state write fails opens again when it is delivered again", async () => {
    const secret = new Uint8Array(32).fill(9);
    const ad = new Uint8Array(64).fill(2);
    const bobKeys = await generateRatchetKeyPair();
    const a = await ratchetFromSecret({ role: "alice", secret, bobRatchetPublic: bobKeys.publicKey, ad });
    const b = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: bobKeys, ad });
    if (!a.ok || !b.ok) throw new Error("ratchet setup");
    const sent = await ratchetEncrypt(a.value, new TextEncoder().encode("once"), Date.now());
    const storage = new FlakyStore();
    const ctx = { cfg: { log: () => {} }, storage } as unknown as RatchetContext;
    const bob = { id: "alice" } as unknown as Peer;
    await saveRatchet(ctx, bob, { id: new Uint8Array(16), state: b.value });
    const read = async () => {
      const r = bob.ratchet!;
      const opened = await ratchetDecrypt(r.state, sent.message, Date.now());
      if (!opened.ok) throw opened.error;
      await saveRatchet(ctx, bob, { id: r.id, state: opened.value.state });
      return new TextDecoder().decode(opened.value.plaintext);
    };
    storage.failing = true;
    await expect(read()).rejects.toThrow(/Quota/);
    expect(bob.ratchet!.state.recvCount).toBe(0);
    storage.failing = false;
    expect(await read()).toBe("once"); // the key was not spent: the redelivery opens
    expect(bob.ratchet!.state.recvCount).toBe(1);
  });
});
