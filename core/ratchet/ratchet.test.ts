import { createCipheriv } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { jitteredProvider } from "../../test/support/jittered-crypto.ts";
import { equalBytes, toHex, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import { LoftError, type Result } from "../errors.ts";
import {
  BODY_FAILED,
  BodyFailureError,
  canSend,
  DEFAULT_RATCHET_LIMITS,
  deserializeRatchet,
  expireSkippedKeys,
  generateRatchetKeyPair,
  isBodyFailure,
  kdfChain,
  MAX_MESSAGE_LEN,
  MAX_SKIPPED_CHAINS,
  MIN_MESSAGE_LEN,
  type RatchetLimits,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetDecryptBatch,
  ratchetEncrypt,
  ratchetEncryptBatch,
  ratchetEncryptParts,
  ratchetFromHandshake,
  serializeRatchet,
  wipeRatchetState,
} from "./index.ts";
import {
  GCM_NONCE_LEN,
  HEADER_LEN,
  type Header,
  MAX_COUNTER,
  MESSAGE_PREFIX_LEN,
  type MessageVersion,
  openBody,
  openHeader,
  sealMessage,
  splitMessage,
} from "./message.ts";

const NOW = 1_700_000_000_000;
const AD = ratchetAssociatedData(new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb2));

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

async function pair(limits?: RatchetLimits, exported = new Uint8Array(32).fill(7)) {
  const bobKeys = await generateRatchetKeyPair();
  const alice = unwrap(
    await ratchetFromHandshake({
      role: "initiator",
      exported,
      ad: AD,
      responderRatchetPublic: bobKeys.publicKey,
      ...(limits ? { limits } : {}),
    }),
  );
  const bob = unwrap(
    await ratchetFromHandshake({
      role: "responder",
      exported,
      ad: AD,
      ratchetKeyPair: bobKeys,
      ...(limits ? { limits } : {}),
    }),
  );
  return { alice, bob };
}

/** A mutable holder so tests read like a conversation. */
class Party {
  constructor(public state: RatchetState) {}
  async send(text: string, now = NOW): Promise<Uint8Array> {
    const r = await ratchetEncrypt(this.state, utf8(text), now);
    this.state = r.state;
    return r.message;
  }
  async receive(message: Uint8Array, now = NOW): Promise<Result<string>> {
    const r = await ratchetDecrypt(this.state, message, now);
    if (!r.ok) return r;
    this.state = r.value.state;
    return { ok: true, value: new TextDecoder().decode(r.value.plaintext) };
  }
}

async function parties(limits?: RatchetLimits) {
  const { alice, bob } = await pair(limits);
  return { a: new Party(alice), b: new Party(bob) };
}

/** `count` results of `make(i)`, one after the other (ratchet steps must not overlap). */
async function sequence<T>(count: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(await make(i));
  return out;
}

const codeOf = (r: Result<unknown>) => (r.ok ? "ok" : r.error.code);

/**
 * A WebCrypto provider counting every header open (the 56-byte AEAD input, DR §4.2 HDECRYPT), with
 * or without an imported key.
 */
async function headerOpenCounter() {
  const opens = {
    count: 0,
    reset() {
      this.count = 0;
    },
  };
  const counted = <T extends (...a: never[]) => Promise<unknown>>(f: T, ciphertextAt: number): T =>
    (async (...a: Parameters<T>) => {
      if (((a as unknown[])[ciphertextAt] as Uint8Array).length === HEADER_LEN + 16) opens.count++;
      return f(...a);
    }) as T;
  const web = await createWebCryptoProvider();
  const gcm = web.aes256gcm;
  const crypto = {
    ...web,
    xchacha20poly1305: { ...web.xchacha20poly1305, open: counted(web.xchacha20poly1305.open, 3) },
    aes256gcm: {
      ...gcm,
      seal: gcm.seal.bind(gcm),
      open: counted(gcm.open.bind(gcm), 3),
      withKey: async (key: Uint8Array) => {
        const keyed = await gcm.withKey!(key);
        return keyed && { seal: keyed.seal.bind(keyed), open: counted(keyed.open.bind(keyed), 2) };
      },
    },
  };
  return { crypto, opens };
}

/** noble whose HMAC-SHA-256 records every output (KDF_CK's chain and message keys, DR §5.2). */
function recordingKdfCk(derived: Uint8Array[]) {
  return {
    ...nobleCrypto,
    hmacSha256: async (key: Uint8Array, ...parts: Uint8Array[]) => {
      const out = await nobleCrypto.hmacSha256(key, ...parts);
      derived.push(out);
      return out;
    },
  };
}

describe("Double Ratchet with header encryption (Signal DR §4)", () => {
  it("Alice sends first; Bob can send only after receiving (DR §4.3)", async () => {
    const { a, b } = await parties();
    expect(canSend(a.state)).toBe(true);
    expect(canSend(b.state)).toBe(false);
    await expect(b.send("too early")).rejects.toThrow(/cannot send before/);
    expect(await b.receive(await a.send("hello bob"))).toEqual({ ok: true, value: "hello bob" });
    expect(canSend(b.state)).toBe(true);
    expect(await a.receive(await b.send("hello alice"))).toEqual({ ok: true, value: "hello alice" });
  });

  it("round-trips a ping-pong conversation across many DH ratchet steps", async () => {
    const { a, b } = await parties();
    for (let i = 0; i < 20; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      for (let j = 0; j <= i % 3; j++)
        expect(await to.receive(await from.send(`m${i}.${j}`))).toEqual({ ok: true, value: `m${i}.${j}` });
    }
  });

  it("every message has its own key: equal plaintexts give unrelated ciphertexts", async () => {
    const { a } = await parties();
    const m1 = await a.send("same");
    const m2 = await a.send("same");
    expect(m1.length).toBe(MIN_MESSAGE_LEN + 4);
    expect(equalBytes(m1.subarray(1), m2.subarray(1))).toBe(false);
  });

  it("decrypts out-of-order messages within a chain and across a DH ratchet step", async () => {
    const { a, b } = await parties();
    const first = [await a.send("a0"), await a.send("a1"), await a.send("a2")];
    expect(await b.receive(first[2]!)).toEqual({ ok: true, value: "a2" });
    expect(b.state.skipped.length).toBe(2);
    expect(await a.receive(await b.send("b0"))).toEqual({ ok: true, value: "b0" });
    const second = [await a.send("a3"), await a.send("a4")];
    expect(await b.receive(second[1]!)).toEqual({ ok: true, value: "a4" });
    expect(await b.receive(first[0]!)).toEqual({ ok: true, value: "a0" });
    expect(await b.receive(second[0]!)).toEqual({ ok: true, value: "a3" });
    expect(await b.receive(first[1]!)).toEqual({ ok: true, value: "a1" });
    expect(b.state.skipped.length).toBe(0);
  });

  it("skips the rest of the previous chain using PN when the first message of a new chain arrives first", async () => {
    const { a, b } = await parties();
    expect(await b.receive(await a.send("a0"))).toEqual({ ok: true, value: "a0" });
    const late = [await a.send("a1"), await a.send("a2")];
    expect(await a.receive(await b.send("b0"))).toEqual({ ok: true, value: "b0" });
    const next = await a.send("a3 (new chain, pn = 3)");
    expect(await b.receive(next)).toEqual({ ok: true, value: "a3 (new chain, pn = 3)" });
    expect(b.state.skipped.map((s) => s.n)).toEqual([1, 2]);
    expect(await b.receive(late[1]!)).toEqual({ ok: true, value: "a2" });
    expect(await b.receive(late[0]!)).toEqual({ ok: true, value: "a1" });
  });

  it("rejects replays with LOFT_ERR_REPLAY: in the current chain and from a chain with stored skipped keys", async () => {
    const { a, b } = await parties();
    const m0 = await a.send("m0");
    const m1 = await a.send("m1");
    const m2 = await a.send("m2");
    expect((await b.receive(m1)).ok).toBe(true);
    expect(codeOf(await b.receive(m1))).toBe("LOFT_ERR_REPLAY");
    expect((await a.receive(await b.send("reply"))).ok).toBe(true);
    expect((await b.receive(await a.send("new chain"))).ok).toBe(true);
    expect((await b.receive(m0)).ok).toBe(true);
    expect(codeOf(await b.receive(m0))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(await b.receive(m1))).toBe("LOFT_ERR_REPLAY");
    expect((await b.receive(m2)).ok).toBe(true);
    // Every key of that chain is used: its header key is gone, so the replay no longer opens at all.
    expect(codeOf(await b.receive(m2))).toBe("LOFT_ERR_DECRYPT");
  });

  it("a failed decryption leaves the state byte-for-byte unchanged and usable (DR §3.5)", async () => {
    const { a, b } = await parties();
    expect((await b.receive(await a.send("warm-up"))).ok).toBe(true);
    const good = await a.send("the real one");
    const before = serializeRatchet(b.state);
    const tamperedBody = good.slice();
    tamperedBody[tamperedBody.length - 1]! ^= 1;
    const tamperedHeader = good.slice();
    tamperedHeader[30]! ^= 1;
    const tamperedNonce = good.slice();
    tamperedNonce[3]! ^= 1;
    for (const bad of [tamperedBody, tamperedHeader, tamperedNonce])
      expect(codeOf(await b.receive(bad))).toBe("LOFT_ERR_DECRYPT");
    expect(equalBytes(serializeRatchet(b.state), before)).toBe(true);
    expect(await b.receive(good)).toEqual({ ok: true, value: "the real one" });
  });

  it("a body failure (isBodyFailure) on each path leaves the state byte-for-byte unchanged; the genuine message opens after", async () => {
    // What messages.ts relies on when a detached body fails (docs/protocol/ratchet.md, "One AEAD
    // pass per byte"): the ratchet is kept, so nothing derived before the body's AEAD may stick —
    // the keys skipped to reach it, a DH ratchet step (DR §3.5), a stored skipped key.
    const { a, b } = await parties();
    const changed = (m: Uint8Array) => {
      const x = m.slice();
      x[MESSAGE_PREFIX_LEN]! ^= 1; // the body's first ciphertext byte: header and tag intact
      return x;
    };
    /** `m` changed fails as a body failure and commits nothing. */
    const refused = async (party: Party, m: Uint8Array) => {
      const before = serializeRatchet(party.state);
      const r = await ratchetDecrypt(party.state, changed(m), NOW);
      expect(!r.ok && isBodyFailure(r.error)).toBe(true);
      expect(equalBytes(serializeRatchet(party.state), before)).toBe(true);
    };
    expect((await b.receive(await a.send("a0"))).ok).toBe(true);
    const [a1, a2] = [await a.send("a1"), await a.send("a2")];
    await refused(b, a2); // current chain, one key skipped to reach it
    expect(await b.receive(a2)).toEqual({ ok: true, value: "a2" });
    const a3 = await a.send("a3"); // not read before Alice's DH step: PN skips it
    expect((await a.receive(await b.send("b0"))).ok).toBe(true);
    const c0 = await a.send("c0"); // a new chain: Bob's DH ratchet step, skipping a3 first
    await refused(b, c0);
    expect(await b.receive(c0)).toEqual({ ok: true, value: "c0" });
    await refused(b, a1); // a stored skipped key (receiveSkipped)
    await refused(b, a3);
    expect(await b.receive(a3)).toEqual({ ok: true, value: "a3" });
    expect(await b.receive(a1)).toEqual({ ok: true, value: "a1" });
    // Not body failures: a header no key opens, a replay.
    const header = c0.slice();
    header[30]! ^= 1;
    const noKey = await ratchetDecrypt(b.state, header, NOW);
    expect(!noKey.ok && noKey.error.code === "LOFT_ERR_DECRYPT" && !isBodyFailure(noKey.error)).toBe(true);
    const replay = await ratchetDecrypt(b.state, c0, NOW);
    expect(!replay.ok && !isBodyFailure(replay.error)).toBe(true);
  });

  it("isBodyFailure reads the error's type, not its text: the same words on another error are no body failure", () => {
    // A rewording must not turn body failures into desyncs, nor the reverse (messages.ts).
    expect(isBodyFailure(new BodyFailureError())).toBe(true);
    expect(isBodyFailure(new LoftError("LOFT_ERR_DECRYPT", BODY_FAILED))).toBe(false);
    expect(new BodyFailureError().code).toBe("LOFT_ERR_DECRYPT");
  });

  it("a tampered body under a stored skipped key does not delete that key", async () => {
    const { a, b } = await parties();
    const m0 = await a.send("m0");
    expect((await b.receive(await a.send("m1"))).ok).toBe(true);
    const bad = m0.slice();
    bad[bad.length - 5]! ^= 0x80;
    expect(codeOf(await b.receive(bad))).toBe("LOFT_ERR_DECRYPT");
    expect(await b.receive(m0)).toEqual({ ok: true, value: "m0" });
  });

  it("binds the associated data: a session with other identity keys cannot open the message", async () => {
    const exported = new Uint8Array(32).fill(9);
    const bobKeys = await generateRatchetKeyPair();
    const alice = unwrap(
      await ratchetFromHandshake({
        role: "initiator",
        exported,
        ad: AD,
        responderRatchetPublic: bobKeys.publicKey,
      }),
    );
    const otherAd = ratchetAssociatedData(new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb3));
    const bob = unwrap(
      await ratchetFromHandshake({ role: "responder", exported, ad: otherAd, ratchetKeyPair: bobKeys }),
    );
    const { message } = await ratchetEncrypt(alice, utf8("hi"), NOW);
    expect(codeOf(await ratchetDecrypt(bob, message, NOW))).toBe("LOFT_ERR_DECRYPT");
  });

  it("a different exported secret (a different handshake) cannot open the message", async () => {
    const bobKeys = await generateRatchetKeyPair();
    const alice = unwrap(
      await ratchetFromHandshake({
        role: "initiator",
        exported: new Uint8Array(32).fill(1),
        ad: AD,
        responderRatchetPublic: bobKeys.publicKey,
      }),
    );
    const bob = unwrap(
      await ratchetFromHandshake({
        role: "responder",
        exported: new Uint8Array(32).fill(2),
        ad: AD,
        ratchetKeyPair: bobKeys,
      }),
    );
    expect(
      codeOf(await ratchetDecrypt(bob, (await ratchetEncrypt(alice, utf8("hi"), NOW)).message, NOW)),
    ).toBe("LOFT_ERR_DECRYPT");
  });

  it("refuses to skip more than MAX_SKIP keys in one chain (LOFT_ERR_TOO_MANY_SKIPPED)", async () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, maxSkip: 5 };
    const { a, b } = await parties(limits);
    const sent = await sequence(8, (i) => a.send(`m${i}`));
    const before = serializeRatchet(b.state);
    expect(codeOf(await b.receive(sent[6]!))).toBe("LOFT_ERR_TOO_MANY_SKIPPED");
    expect(equalBytes(serializeRatchet(b.state), before)).toBe(true);
    expect(await b.receive(sent[5]!)).toEqual({ ok: true, value: "m5" });
    expect(b.state.skipped.length).toBe(5);
    // in an established chain as well
    const later = await sequence(8, (i) => a.send(`n${i}`));
    expect(codeOf(await b.receive(later[7]!))).toBe("LOFT_ERR_TOO_MANY_SKIPPED");
    expect((await b.receive(later[3]!)).ok).toBe(true); // n = 11 after recvCount 6: exactly MAX_SKIP
  });

  it("caps the total number of stored skipped keys, evicting the oldest", async () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, maxSkip: 10, maxSkippedKeys: 4 };
    const { a, b } = await parties(limits);
    const sent = await sequence(7, (i) => a.send(`m${i}`));
    expect((await b.receive(sent[6]!)).ok).toBe(true);
    expect(b.state.skipped.map((s) => s.n)).toEqual([2, 3, 4, 5]);
    expect(codeOf(await b.receive(sent[0]!))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(await b.receive(sent[1]!))).toBe("LOFT_ERR_REPLAY");
    for (const i of [2, 3, 4, 5]) expect(await b.receive(sent[i]!)).toEqual({ ok: true, value: `m${i}` });
  });

  it(`keeps skipped keys of at most MAX_SKIPPED_CHAINS (${MAX_SKIPPED_CHAINS}) receiving chains`, async () => {
    const { a, b } = await parties();
    const held: Uint8Array[] = [];
    for (let round = 0; round < MAX_SKIPPED_CHAINS + 2; round++) {
      held.push(await a.send(`held ${round}`));
      expect((await b.receive(await a.send(`sent ${round}`))).ok).toBe(true);
      expect((await a.receive(await b.send(`reply ${round}`))).ok).toBe(true);
    }
    const chains = new Set(b.state.skipped.map((s) => toHex(s.headerKey)));
    expect(chains.size).toBe(MAX_SKIPPED_CHAINS);
    // the two oldest chains were evicted with their header keys: those messages no longer open
    expect(codeOf(await b.receive(held[0]!))).toBe("LOFT_ERR_DECRYPT");
    expect(codeOf(await b.receive(held[1]!))).toBe("LOFT_ERR_DECRYPT");
    for (let round = 2; round < held.length; round++)
      expect(await b.receive(held[round]!)).toEqual({ ok: true, value: `held ${round}` });
  });

  it("expires skipped keys older than the TTL, against the caller's clock", async () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, skippedKeyTtlMs: 1000 };
    const { a, b } = await parties(limits);
    const m0 = await a.send("m0");
    const m1 = await a.send("m1");
    const m2 = await a.send("m2");
    expect((await b.receive(m2, NOW)).ok).toBe(true);
    expect(await b.receive(m0, NOW + 1000)).toEqual({ ok: true, value: "m0" });
    expect(codeOf(await b.receive(m1, NOW + 1001))).toBe("LOFT_ERR_REPLAY");
    expect(b.state.skipped.length).toBe(1);
    // a committed step (here a send) drops it for good
    a.state = unwrap(await ratchetDecrypt(a.state, await b.send("x", NOW + 1001), NOW + 1001)).state;
    expect(b.state.skipped.length).toBe(0);
  });

  it("a failed decrypt leaves expired skipped keys for expireSkippedKeys to delete from the stored state", async () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, skippedKeyTtlMs: 1000 };
    const { a, b } = await parties(limits);
    const m0 = await a.send("m0");
    const m1 = await a.send("m1");
    expect((await b.receive(m1, NOW)).ok).toBe(true);
    expect(b.state.skipped.length).toBe(1);
    const expiredKey = b.state.skipped[0]!.messageKey;
    // Only failures afterwards (garbage, then the expired message itself): nothing is committed...
    const garbage = new Uint8Array(200);
    garbage[0] = m0[0]!;
    expect(codeOf(await ratchetDecrypt(b.state, garbage, NOW + 1001))).toBe("LOFT_ERR_DECRYPT");
    expect(codeOf(await b.receive(m0, NOW + 1001))).toBe("LOFT_ERR_REPLAY");
    // ...so the state the caller would store still holds the expired key (DR §6.4 says delete it).
    const toStore = expireSkippedKeys(b.state, NOW + 1001);
    expect(toStore).not.toBe(b.state);
    expect(toStore.skipped.length).toBe(0);
    expect(expiredKey.every((x) => x === 0)).toBe(true);
    expect(() => serializeRatchet(b.state)).toThrow(/already advanced/);
    const restored = unwrap(deserializeRatchet(serializeRatchet(toStore)));
    expect(restored.skipped.length).toBe(0);
    // At exactly the TTL a key is still valid, and nothing changes.
    const { a: a2, b: b2 } = await parties(limits);
    const n0 = await a2.send("n0");
    expect((await b2.receive(await a2.send("n1"), NOW)).ok).toBe(true);
    expect(expireSkippedKeys(b2.state, NOW + 1000)).toBe(b2.state);
    expect(await b2.receive(n0, NOW + 1000)).toEqual({ ok: true, value: "n0" });
  });

  it("zeroes superseded secrets and refuses to reuse an advanced state", async () => {
    const { a, b } = await parties();
    const old = a.state;
    const oldChainKey = old.sendChainKey!;
    const { state } = await ratchetEncrypt(old, utf8("x"), NOW);
    expect(oldChainKey.every((x) => x === 0)).toBe(true);
    expect(state.sendChainKey!.some((x) => x !== 0)).toBe(true);
    await expect(ratchetEncrypt(old, utf8("again"), NOW)).rejects.toThrow(/already advanced/);
    expect(() => serializeRatchet(old)).toThrow(/already advanced/);
    await expect(ratchetDecrypt(old, new Uint8Array(200), NOW)).rejects.toThrow(/already advanced/);
    void b;
  });

  it("rejects malformed, oversized and unknown-version messages with typed errors", async () => {
    const { a, b } = await parties();
    const good = await a.send("x");
    expect(codeOf(await ratchetDecrypt(b.state, good.subarray(0, MIN_MESSAGE_LEN - 1), NOW))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(await ratchetDecrypt(b.state, new Uint8Array(MAX_MESSAGE_LEN + 1), NOW))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    for (const version of [0, 4, 0xff]) {
      const unknown = good.slice();
      unknown[0] = version;
      expect(codeOf(await ratchetDecrypt(b.state, unknown, NOW))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    }
    expect(codeOf(await ratchetDecrypt(b.state, "nope" as unknown as Uint8Array, NOW))).toBe(
      "LOFT_ERR_MALFORMED",
    );
  });

  it("a low-order responder ratchet key is a typed error", async () => {
    const r = await ratchetFromHandshake({
      role: "initiator",
      exported: new Uint8Array(32),
      ad: AD,
      responderRatchetPublic: new Uint8Array(32),
    });
    expect(codeOf(r)).toBe("LOFT_ERR_MALFORMED");
  });
});

describe("ratchet state serialization", () => {
  it("round-trips exactly, including skipped keys, and the restored state keeps working", async () => {
    const { a, b } = await parties();
    const held = [await a.send("0"), await a.send("1")];
    expect((await b.receive(await a.send("2"))).ok).toBe(true);
    const bytes = serializeRatchet(b.state);
    const restored = unwrap(deserializeRatchet(bytes));
    expect(restored).toEqual(b.state);
    expect(equalBytes(serializeRatchet(restored), bytes)).toBe(true);
    const r = await ratchetDecrypt(restored, held[0]!, NOW);
    expect(r.ok && new TextDecoder().decode(r.value.plaintext)).toBe("0");
    // the decoder copied: the stored bytes are not zeroed by the restored state's wiping
    expect(equalBytes(unwrap(deserializeRatchet(bytes)).rootKey, b.state.rootKey)).toBe(true);
  });

  it("refuses unknown versions with LOFT_ERR_STATE_VERSION", async () => {
    const { b } = await parties();
    const map = { v: 2, ad: new Uint8Array(0) };
    expect(codeOf(deserializeRatchet(encodeCanonical(map)))).toBe("LOFT_ERR_STATE_VERSION");
    expect(codeOf(deserializeRatchet(encodeCanonical({ ...map, v: "1" })))).toBe("LOFT_ERR_STATE_VERSION");
    expect(deserializeRatchet(serializeRatchet(b.state)).ok).toBe(true);
  });

  it("refuses garbage and inconsistent states with typed errors", async () => {
    expect(codeOf(deserializeRatchet(new Uint8Array(0)))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(deserializeRatchet(encodeCanonical([1, 2, 3])))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(deserializeRatchet(encodeCanonical({ v: 1 })))).toBe("LOFT_ERR_SCHEMA");
    const { a } = await parties();
    const good = serializeRatchet(a.state);
    const truncated = good.subarray(0, good.length - 1);
    expect(codeOf(deserializeRatchet(truncated))).toBe("LOFT_ERR_MALFORMED");
  });
});

describe("ratchet operations under an asynchronous provider", () => {
  const runs = Math.max(30, Math.floor(FUZZ_RUNS / 200));

  it("calls on one state run one at a time: a concurrent second encrypt never reuses the chain key (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }),
        async (delays) => {
          let d = 0;
          const crypto = jitteredProvider(nobleCrypto, () => delays[d++ % delays.length]!);
          const { alice, bob } = await pair();
          const first = ratchetEncrypt(alice, utf8("one"), NOW, { crypto });
          const second = ratchetEncrypt(alice, utf8("two"), NOW, { crypto });
          const sent = await first;
          // The second call waited for the first, then found its state replaced: a caller bug, refused.
          await expect(second).rejects.toThrow(/already advanced/);
          const opened = unwrap(await ratchetDecrypt(bob, sent.message, NOW, { crypto }));
          expect(new TextDecoder().decode(opened.plaintext)).toBe("one");
        },
      ),
      { numRuns: runs },
    );
  }, 120_000);

  it("a failed decrypt queued before a good one leaves the state as it was; the good one then succeeds (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        async (delays, flip) => {
          let d = 0;
          const crypto = jitteredProvider(nobleCrypto, () => delays[d++ % delays.length]!);
          const { alice, bob } = await pair();
          const { message } = await ratchetEncrypt(alice, utf8("hello"), NOW, { crypto });
          const forged = message.slice();
          forged[flip % forged.length]! ^= 1 << (flip % 8);
          const bad = ratchetDecrypt(bob, forged, NOW, { crypto });
          const good = ratchetDecrypt(bob, message, NOW, { crypto });
          const b = await bad;
          expect(b.ok).toBe(false);
          const g = unwrap(await good);
          // Had the failed call changed or retired the state (DR §3.5), this one could not open.
          expect(new TextDecoder().decode(g.plaintext)).toBe("hello");
        },
      ),
      { numRuns: runs },
    );
  }, 120_000);
});

describe("message version 0x02: AES-256-GCM body (docs/protocol/ratchet.md, Version 0x02)", () => {
  const send = async (p: Party, text: string, messageVersion?: MessageVersion) => {
    const r = await ratchetEncrypt(p.state, utf8(text), NOW, messageVersion ? { messageVersion } : {});
    p.state = r.state;
    return r.message;
  };

  it("writes 0x01 unless asked (what an old peer reads), 0x02 when asked; a mixed burst opens in any order", async () => {
    const { a, b } = await parties();
    const burst = [
      await send(a, "m0"),
      await send(a, "m1", 2),
      await send(a, "m2", 1),
      await send(a, "m3", 2),
      await send(a, "m4", 2),
    ];
    expect(burst.map((m) => m[0])).toEqual([1, 2, 1, 2, 2]);
    for (const i of [3, 0, 4, 2, 1]) expect(await b.receive(burst[i]!)).toEqual({ ok: true, value: `m${i}` });
    // Bob answers in 0x02 across his DH ratchet step; Alice reads it and a 0x01 after it.
    const r0 = await send(b, "r0", 2);
    const r1 = await send(b, "r1");
    expect(await a.receive(r1)).toEqual({ ok: true, value: "r1" });
    expect(await a.receive(r0)).toEqual({ ok: true, value: "r0" });
    await expect(
      ratchetEncrypt(a.state, utf8("x"), NOW, { messageVersion: 4 as MessageVersion }),
    ).rejects.toThrow(/unknown message version/);
  });

  it("the 0x02 body is AES-256-GCM(MK, nonce[0..12], ad ‖ prefix) — checked with node:crypto", async () => {
    const hk = new Uint8Array(32).fill(0x11);
    const mk = new Uint8Array(32).fill(0x22);
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    const header: Header = { dh: new Uint8Array(32).fill(9), pn: 3, n: 7 };
    const pt = utf8("an AES-GCM body");
    const m = await sealMessage(nobleCrypto, 2, hk, mk, header, nonce, AD, pt);
    const gcm = createCipheriv("aes-256-gcm", mk, nonce.subarray(0, GCM_NONCE_LEN));
    gcm.setAAD(new Uint8Array([...AD, ...m.subarray(0, MESSAGE_PREFIX_LEN)]));
    const expected = new Uint8Array([...gcm.update(pt), ...gcm.final(), ...gcm.getAuthTag()]);
    expect(toHex(m.subarray(MESSAGE_PREFIX_LEN))).toBe(toHex(expected));
  });

  it("a 0x02 body does not open as 0x01 and vice versa, even under a header that opens", async () => {
    const hk = new Uint8Array(32).fill(0x33);
    const mk = new Uint8Array(32).fill(0x44);
    const nonce = new Uint8Array(24).fill(0x55);
    const header: Header = { dh: new Uint8Array(32).fill(9), pn: 0, n: 0 };
    const pt = utf8("same key, same nonce, other AEAD");
    const m1 = await sealMessage(nobleCrypto, 1, hk, mk, header, nonce, AD, pt);
    const m2 = await sealMessage(nobleCrypto, 2, hk, mk, header, nonce, AD, pt);
    // m1's version and header with m2's body, and the other way round.
    for (const [head, body] of [
      [m1, m2],
      [m2, m1],
    ] as const) {
      const spliced = new Uint8Array([
        ...head.subarray(0, MESSAGE_PREFIX_LEN),
        ...body.subarray(MESSAGE_PREFIX_LEN),
      ]);
      const parts = splitMessage(spliced);
      expect(await openHeader(nobleCrypto, hk, parts)).toBeDefined();
      expect(await openBody(nobleCrypto, mk, parts, AD)).toBeUndefined();
    }
    // Each opens as its own version.
    for (const m of [m1, m2])
      expect(toHex((await openBody(nobleCrypto, mk, splitMessage(m), AD))!)).toBe(toHex(pt));
  });
});

describe("message version 0x03: AES-256-GCM header and body (docs/protocol/ratchet.md, Version 0x03)", () => {
  it("the 0x03 header is AES-256-GCM(HK, nonce[12..24], AD = 03, header), the body as 0x02 — checked with node:crypto", async () => {
    const hk = new Uint8Array(32).fill(0x11);
    const mk = new Uint8Array(32).fill(0x22);
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    const header: Header = { dh: new Uint8Array(32).fill(9), pn: 3, n: 7 };
    const pt = utf8("an AES-GCM header and body");
    for (const crypto of [nobleCrypto, await createWebCryptoProvider()]) {
      const m = await sealMessage(crypto, 3, hk, mk, header, nonce, AD, pt);
      expect(m[0]).toBe(3);
      expect(toHex(m.subarray(1, 25))).toBe(toHex(nonce));
      const h = createCipheriv("aes-256-gcm", hk, nonce.subarray(12));
      h.setAAD(new Uint8Array([3]));
      const headerBytes = new Uint8Array([...header.dh, 0, 0, 0, 3, 0, 0, 0, 7]);
      const eh = new Uint8Array([...h.update(headerBytes), ...h.final(), ...h.getAuthTag()]);
      expect(toHex(m.subarray(25, MESSAGE_PREFIX_LEN))).toBe(toHex(eh));
      const gcm = createCipheriv("aes-256-gcm", mk, nonce.subarray(0, GCM_NONCE_LEN));
      gcm.setAAD(new Uint8Array([...AD, ...m.subarray(0, MESSAGE_PREFIX_LEN)]));
      const body = new Uint8Array([...gcm.update(pt), ...gcm.final(), ...gcm.getAuthTag()]);
      expect(toHex(m.subarray(MESSAGE_PREFIX_LEN))).toBe(toHex(body));
    }
  });

  it("a 0x03 header does not open as 0x01/0x02 and theirs not as 0x03; a mixed burst opens in any order", async () => {
    const hk = new Uint8Array(32).fill(0x33);
    const mk = new Uint8Array(32).fill(0x44);
    const nonce = new Uint8Array(24).fill(0x55);
    const header: Header = { dh: new Uint8Array(32).fill(9), pn: 0, n: 0 };
    const ms = await Promise.all(
      ([1, 2, 3] as const).map((v) => sealMessage(nobleCrypto, v, hk, mk, header, nonce, AD, utf8("x"))),
    );
    for (const m of ms)
      for (const v of [1, 2, 3]) {
        const relabelled = m.slice();
        relabelled[0] = v;
        const opened = await openHeader(nobleCrypto, hk, splitMessage(relabelled));
        expect(opened === undefined, `0x0${m[0]} as 0x0${v}`).toBe(v !== m[0]);
      }
    const { a, b } = await parties();
    const send = async (p: Party, text: string, messageVersion: MessageVersion) => {
      const r = await ratchetEncrypt(p.state, utf8(text), NOW, { messageVersion });
      p.state = r.state;
      return r.message;
    };
    const burst = [
      await send(a, "m0", 3),
      await send(a, "m1", 1),
      await send(a, "m2", 3),
      await send(a, "m3", 2),
    ];
    expect(burst.map((m) => m[0])).toEqual([3, 1, 3, 2]);
    for (const i of [2, 0, 3, 1]) expect(await b.receive(burst[i]!)).toEqual({ ok: true, value: `m${i}` });
    const r0 = await send(b, "r0", 3);
    expect(await a.receive(r0)).toEqual({ ok: true, value: "r0" });
    expect(codeOf(await ratchetDecrypt(a.state, r0, NOW))).toBe("LOFT_ERR_REPLAY");
  });
});

describe("ratchetEncryptParts: the same message as ratchetEncrypt, in two parts (prefix ‖ body)", () => {
  it.each([
    ["noble", 1],
    ["noble", 2],
    ["webcrypto", 2],
    ["noble", 3],
    ["webcrypto", 3],
  ] as const)(
    "%s, version 0x0%i: same bytes and next state; the parts open as one message",
    async (name, v) => {
      const crypto = name === "noble" ? nobleCrypto : await createWebCryptoProvider();
      const { a, b } = await parties();
      // One state, twice (ratchetEncrypt retires the state it advanced from), one fixed nonce.
      const stored = serializeRatchet(a.state);
      const copy = () => unwrap(deserializeRatchet(stored));
      const nonce = new Uint8Array(24).fill(0x5a);
      const opts = { crypto, messageVersion: v as MessageVersion, random: () => nonce.slice() };
      const text = utf8("x".repeat(16 * 1024));
      const whole = await ratchetEncrypt(copy(), text, NOW, opts);
      const parts = await ratchetEncryptParts(copy(), text, NOW, opts);
      expect(parts.prefix).toHaveLength(MESSAGE_PREFIX_LEN);
      const joined = new Uint8Array([...parts.prefix, ...parts.body]);
      expect(toHex(joined)).toBe(toHex(whole.message));
      expect(serializeRatchet(parts.state)).toEqual(serializeRatchet(whole.state));
      expect(joined[0]).toBe(v);
      // It opens; the next message's prefix over this body does not (the body's AD covers it).
      expect((await b.receive(joined)).ok).toBe(true);
      const next = await ratchetEncryptParts(parts.state, utf8("next"), NOW, { crypto, messageVersion: v });
      const spliced = new Uint8Array([...next.prefix, ...parts.body]);
      expect(codeOf(await ratchetDecrypt(b.state, spliced, NOW))).toBe("LOFT_ERR_DECRYPT");
      expect(await b.receive(new Uint8Array([...next.prefix, ...next.body]))).toEqual({
        ok: true,
        value: "next",
      });
    },
  );
});

/**
 * The batch calls (docs/protocol/ratchet.md §Performance): the same messages, plaintexts, errors
 * and final state as one call per message in order — also when the provider finishes its
 * operations in any order (jittered) — only the AEAD calls overlap. Mixed and hostile runs against
 * the one-by-one calls: ratchet.fuzz.test.ts.
 */
describe("ratchetEncryptBatch / ratchetDecryptBatch: one call per message, overlapped", () => {
  /** Nonces 1, 2, 3, … (each call draws the next): runs that draw in the same order match. */
  const counting = () => {
    let i = 0;
    return (n: number) => new Uint8Array(n).fill(++i & 0xff);
  };
  const texts = (k: number) => Array.from({ length: k }, (_, i) => utf8(`message ${i} `.repeat(i + 1)));

  it.each([
    ["noble", 1],
    ["noble", 2],
    ["webcrypto", 2],
    ["jittered", 2],
    ["noble", 3],
    ["webcrypto", 3],
    ["jittered", 3],
  ] as const)(
    "%s, version 0x0%i: the same bytes and state as ratchetEncryptParts in turn; they open in a batch",
    async (name, v) => {
      const crypto =
        name === "noble"
          ? nobleCrypto
          : name === "webcrypto"
            ? await createWebCryptoProvider()
            : jitteredProvider(nobleCrypto, () => Math.floor(Math.random() * 3));
      const { a, b } = await parties();
      const stored = serializeRatchet(a.state);
      const copy = () => unwrap(deserializeRatchet(stored));
      const messageVersion = v as MessageVersion;
      const one: Uint8Array[] = [];
      let state = copy();
      const random = counting();
      for (const t of texts(7)) {
        const r = await ratchetEncryptParts(state, t, NOW, { crypto, messageVersion, random });
        state = r.state;
        one.push(new Uint8Array([...r.prefix, ...r.body]));
      }
      const batch = await ratchetEncryptBatch(copy(), texts(7), NOW, {
        crypto,
        messageVersion,
        random: counting(),
      });
      expect(batch.messages.map((m) => toHex(new Uint8Array([...m.prefix, ...m.body])))).toEqual(
        one.map(toHex),
      );
      expect(serializeRatchet(batch.state)).toEqual(serializeRatchet(state));
      const opened = await ratchetDecryptBatch(b.state, one, NOW, { crypto });
      expect(opened.results.map((r) => (r.ok ? new TextDecoder().decode(r.value) : r.error.code))).toEqual(
        texts(7).map((t) => new TextDecoder().decode(t)),
      );
      expect(opened.state.recvCount).toBe(7);
    },
  );

  it("0x03: a run's header key is imported once (Aead.withKey), and the run's headers are opened together", async () => {
    const web = await createWebCryptoProvider();
    const gcm = web.aes256gcm;
    let imports = 0;
    let inFlight = 0;
    let most = 0;
    const crypto = {
      ...web,
      aes256gcm: {
        ...gcm,
        seal: gcm.seal.bind(gcm),
        open: gcm.open.bind(gcm),
        withKey: async (key: Uint8Array) => {
          imports++;
          const keyed = await gcm.withKey!(key);
          if (!keyed) return undefined;
          return {
            seal: keyed.seal.bind(keyed),
            open: async (...a: Parameters<typeof keyed.open>) => {
              most = Math.max(most, ++inFlight);
              try {
                await new Promise((r) => setTimeout(r, 1));
                return await keyed.open(...a);
              } finally {
                inFlight--;
              }
            },
          };
        },
      },
    };
    const { a, b } = await parties();
    const sent = await ratchetEncryptBatch(a.state, texts(6), NOW, { crypto, messageVersion: 3 });
    expect(imports).toBe(1);
    imports = 0;
    const opened = await ratchetDecryptBatch(
      b.state,
      sent.messages.map((m) => new Uint8Array([...m.prefix, ...m.body])),
      NOW,
      { crypto },
    );
    expect(opened.results.map((r) => (r.ok ? new TextDecoder().decode(r.value) : r.error.code))).toEqual(
      texts(6).map((t) => new TextDecoder().decode(t)),
    );
    // Bob's first message is his DH ratchet step, read on its own (per-call keys); the five after
    // it are one run under HKr: one import, their five headers in flight at once.
    expect(imports).toBe(1);
    expect(most).toBe(5);
  });

  it.each([1, 3] as const)(
    "a hostile batch (0x0%i replays and forgeries) opens each header under HKr once: exactly the one-by-one work, not quadratic",
    async (v) => {
      const { crypto, opens } = await headerOpenCounter();
      const { a, b } = await parties();
      expect((await b.receive(await a.send("first"))).ok).toBe(true);
      const sent = await ratchetEncryptBatch(a.state, texts(12), NOW, { messageVersion: v });
      const genuine = sent.messages.map((m) => new Uint8Array([...m.prefix, ...m.body]));
      b.state = (await ratchetDecryptBatch(b.state, genuine, NOW)).state;
      // Replays (their headers open under HKr, as numbers already read) between forged headers.
      const hostile = genuine.flatMap((m, i) => {
        const forged = m.slice();
        forged[30]! ^= 1;
        return i % 2 ? [m, forged] : [forged, m];
      });
      const stored = serializeRatchet(b.state);
      opens.reset();
      let seq = unwrap(deserializeRatchet(stored));
      const codes: string[] = [];
      for (const m of hostile) {
        const r = await ratchetDecrypt(seq, m, NOW, { crypto });
        codes.push(codeOf(r));
        if (r.ok) seq = r.value.state;
      }
      const oneByOne = opens.count;
      expect(new Set(codes)).toEqual(new Set(["LOFT_ERR_REPLAY", "LOFT_ERR_DECRYPT"]));
      opens.reset();
      const batch = await ratchetDecryptBatch(unwrap(deserializeRatchet(stored)), hostile, NOW, { crypto });
      expect(batch.results.map(codeOf)).toEqual(codes);
      expect(opens.count).toBe(oneByOne);
    },
  );

  it.each([1, 3] as const)(
    "0x0%i: a message read on its own in a batch has its header opened under HKr once, as one by one",
    async (v) => {
      const { crypto, opens } = await headerOpenCounter();
      const { a, b } = await parties();
      expect((await b.receive(await a.send("first"))).ok).toBe(true);
      const sent = await ratchetEncryptBatch(a.state, texts(3), NOW, { messageVersion: v });
      const [m0, m1, m2] = sent.messages.map((m) => new Uint8Array([...m.prefix, ...m.body]));
      // Reversed: no run (m2 skips two keys, m1 and m0 use them), so each is read on its own.
      const batch = [m2!, m1!, m0!];
      const stored = serializeRatchet(b.state);
      opens.reset();
      let seq = unwrap(deserializeRatchet(stored));
      for (const m of batch) {
        const r = await ratchetDecrypt(seq, m, NOW, { crypto });
        expect(r.ok).toBe(true);
        if (r.ok) seq = r.value.state;
      }
      expect(opens.count).toBe(3);
      opens.reset();
      const read = await ratchetDecryptBatch(unwrap(deserializeRatchet(stored)), batch, NOW, { crypto });
      expect(read.results.map(codeOf)).toEqual(["ok", "ok", "ok"]);
      expect(serializeRatchet(read.state)).toEqual(serializeRatchet(seq));
      expect(opens.count).toBe(3);
    },
  );

  it("an empty 0x03 batch makes no provider call (no header key import for nothing to seal)", async () => {
    const web = await createWebCryptoProvider();
    const calls: string[] = [];
    // Every function of the provider, one level of objects deep (aes256gcm.withKey among them).
    const spy = <T extends object>(o: T, name: string): T =>
      Object.fromEntries(
        Object.entries(o).map(([k, f]) => [
          k,
          typeof f === "function"
            ? (...a: unknown[]) => {
                calls.push(`${name}${k}`);
                return f.apply(o, a);
              }
            : f && typeof f === "object" && !(f instanceof Uint8Array)
              ? spy(f as object, `${name}${k}.`)
              : f,
        ]),
      ) as T;
    const crypto = spy(web, "");
    const { a } = await parties();
    const empty = await ratchetEncryptBatch(a.state, [], NOW, { crypto, messageVersion: 3 });
    expect(empty.messages).toEqual([]);
    expect(calls).toEqual([]);
    // The spy does see a real batch's calls (the import among them), and the state still sends.
    const one = await ratchetEncryptBatch(empty.state, texts(1), NOW, { crypto, messageVersion: 3 });
    expect(one.messages).toHaveLength(1);
    expect(calls).toContain("aes256gcm.withKey");
  });

  it("the bodies of a run are sealed and opened together (every AES-GCM call of the run in flight at once)", async () => {
    let inFlight = 0;
    let most = 0;
    const track =
      <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        most = Math.max(most, ++inFlight);
        try {
          await new Promise((r) => setTimeout(r, 1));
          return await f(...a);
        } finally {
          inFlight--;
        }
      };
    const gcm = nobleCrypto.aes256gcm;
    const crypto = {
      ...nobleCrypto,
      aes256gcm: {
        nonceLength: gcm.nonceLength,
        seal: track(gcm.seal.bind(gcm)),
        open: track(gcm.open.bind(gcm)),
      },
    };
    const { a, b } = await parties();
    const sent = await ratchetEncryptBatch(a.state, texts(6), NOW, { crypto, messageVersion: 2 });
    expect(most).toBe(6);
    most = 0;
    const opened = await ratchetDecryptBatch(
      b.state,
      sent.messages.map((m) => new Uint8Array([...m.prefix, ...m.body])),
      NOW,
      { crypto },
    );
    expect(opened.results.every((r) => r.ok)).toBe(true);
    // Bob's first message is his DH ratchet step, read on its own; the five after it, together.
    expect(most).toBe(5);
  });

  it("each body's AEAD starts as soon as its key exists, while KDF_CK's next steps still run (both ways)", async () => {
    // A provider whose HMAC answers after a timer (as WebCrypto's does, a round trip each): the
    // events say whether a body's AEAD began before the run's last KDF_CK step had ended.
    const events: string[] = [];
    const later = () => new Promise((r) => setTimeout(r, 1));
    const gcm = nobleCrypto.aes256gcm;
    const crypto = {
      ...nobleCrypto,
      hmacSha256: async (key: Uint8Array, ...parts: Uint8Array[]) => {
        await later();
        events.push("hmac");
        return nobleCrypto.hmacSha256(key, ...parts);
      },
      aes256gcm: {
        nonceLength: gcm.nonceLength,
        seal: (...a: Parameters<typeof gcm.seal>) => {
          events.push("aead");
          return gcm.seal(...a);
        },
        open: (...a: Parameters<typeof gcm.open>) => {
          events.push("aead");
          return gcm.open(...a);
        },
      },
    };
    const overlapped = () => {
      const firstAead = events.indexOf("aead");
      const lastHmac = events.lastIndexOf("hmac");
      events.length = 0;
      return firstAead >= 0 && firstAead < lastHmac;
    };
    const { a, b } = await parties();
    const sent = await ratchetEncryptBatch(a.state, texts(6), NOW, { crypto, messageVersion: 2 });
    expect(overlapped()).toBe(true);
    const messages = sent.messages.map((m) => new Uint8Array([...m.prefix, ...m.body]));
    // Bob's first message is his DH ratchet step, read on its own; the five after it are a run.
    const first = await ratchetDecryptBatch(b.state, messages.slice(0, 1), NOW, { crypto });
    events.length = 0;
    const opened = await ratchetDecryptBatch(first.state, messages.slice(1), NOW, { crypto });
    expect(overlapped()).toBe(true);
    expect(opened.results.map((r) => (r.ok ? new TextDecoder().decode(r.value) : r.error.code))).toEqual(
      texts(6)
        .slice(1)
        .map((t) => new TextDecoder().decode(t)),
    );
    // The same bytes as one message at a time (the batch test above checks them byte for byte).
    expect(opened.state.recvCount).toBe(6);
  });

  it("a batch that cannot be sent throws and leaves the state usable; an empty batch changes nothing", async () => {
    const { a, b } = await parties();
    await expect(ratchetEncryptBatch(b.state, [utf8("too early")], NOW)).rejects.toThrow(/cannot send/);
    expect(canSend(b.state)).toBe(false);
    const empty = await ratchetEncryptBatch(a.state, [], NOW);
    expect(empty.messages).toEqual([]);
    a.state = empty.state;
    const none = await ratchetDecryptBatch(b.state, [], NOW);
    expect(none).toEqual({ state: b.state, results: [] });
    // b's state is still live: a real message opens.
    const m = await ratchetEncrypt(unwrap(deserializeRatchet(serializeRatchet(a.state))), utf8("hi"), NOW);
    expect(unwrap(await ratchetDecrypt(b.state, m.message, NOW)).plaintext).toEqual(utf8("hi"));
  });

  it("a tampered body in a run: that message is refused, the others open, state as one by one (DR §3.5)", async () => {
    const { a, b } = await parties();
    expect((await b.receive(await a.send("first"))).ok).toBe(true); // Bob's DH step: before the runs
    const msgs = await sequence(5, (i) => a.send(`m${i}`));
    const bad = msgs[2]!.slice();
    bad[bad.length - 1]! ^= 1;
    const stored = serializeRatchet(b.state);
    const copy = () => unwrap(deserializeRatchet(stored));
    // The first run takes the fast way until the tampered body fails; the second (a replay at
    // its end) never does.
    for (const [run, expected] of [
      [
        [msgs[0]!, msgs[1]!, bad, msgs[3]!, msgs[4]!],
        ["ok", "ok", "LOFT_ERR_DECRYPT", "ok", "ok"],
      ],
      [
        [msgs[0]!, msgs[1]!, bad, msgs[3]!, msgs[4]!, msgs[0]!],
        ["ok", "ok", "LOFT_ERR_DECRYPT", "ok", "ok", "LOFT_ERR_REPLAY"],
      ],
    ] as const) {
      const batch = await ratchetDecryptBatch(copy(), run, NOW);
      let seq = copy();
      const codes: string[] = [];
      for (const m of run) {
        const r = await ratchetDecrypt(seq, m, NOW);
        codes.push(codeOf(r));
        if (r.ok) seq = r.value.state;
      }
      expect(batch.results.map(codeOf)).toEqual(codes);
      expect(codes).toEqual(expected);
      expect(serializeRatchet(batch.state)).toEqual(serializeRatchet(seq));
      // The tampered message's key was kept as skipped: the genuine one still opens, once.
      const late = await ratchetDecryptBatch(batch.state, [msgs[2]!, msgs[2]!], NOW);
      expect(late.results.map(codeOf)).toEqual(["ok", "LOFT_ERR_REPLAY"]);
    }
  });
});

describe("ratchetDecryptBatch: a step that throws part-way (provider exception)", () => {
  it("keeps what the messages before it did, as one call per message would (state live, plaintexts)", async () => {
    const { a, b } = await parties();
    expect((await b.receive(await a.send("first"))).ok).toBe(true); // Bob's DH step
    const m1 = await a.send("m1");
    expect((await a.receive(await b.send("reply"))).ok).toBe(true); // Alice steps too
    const m2 = await a.send("m2"); // Bob reads it with a DH step: draws randomness
    const failing = () => {
      throw new Error("provider failed");
    };
    // One by one: m1 opens, m2 throws, and the state after m1 is still usable.
    const stored = serializeRatchet(b.state);
    const one = unwrap(await ratchetDecrypt(unwrap(deserializeRatchet(stored)), m1, NOW));
    await expect(ratchetDecrypt(one.state, m2, NOW, { random: failing })).rejects.toThrow(/provider failed/);
    // The batch: m1 opened in a run and committed, then m2 throws. Nothing read is lost and the
    // state handed back is the live one after m1.
    const batch = await ratchetDecryptBatch(b.state, [m1, m2], NOW, { random: failing });
    expect(batch.results.map((r) => (r.ok ? new TextDecoder().decode(r.value) : r.error.code))).toEqual([
      "m1",
    ]);
    expect((batch.thrown as Error).message).toBe("provider failed");
    expect(serializeRatchet(batch.state)).toEqual(serializeRatchet(one.state));
    const again = await ratchetDecryptBatch(batch.state, [m2], NOW);
    expect(again.results.map(codeOf)).toEqual(["ok"]);
    // Nothing read yet when it throws: it throws, as ratchetDecrypt does, and the state stays live.
    await expect(ratchetDecryptBatch(one.state, [m2], NOW, { random: failing })).rejects.toThrow(
      /provider failed/,
    );
    expect(unwrap(await ratchetDecrypt(one.state, m2, NOW)).plaintext).toEqual(utf8("m2"));
  });
});

/**
 * An encrypt whose seal throws (a provider exception) commits nothing, like the batch decrypt's
 * `thrown` contract: the state is unchanged and usable, and every key the attempt derived — each
 * KDF_CK output, message keys and chain keys (DR §5.2) — is zeroed on the way out.
 */
describe("ratchetEncrypt / Parts / Batch: a seal that throws wipes the derived keys", () => {
  /** noble, recording every HMAC-SHA-256 output (KDF_CK's keys) and failing the `failAt`-th seal. */
  function failingSeal(aead: "xchacha20poly1305" | "aes256gcm", failAt: number) {
    const derived: Uint8Array[] = [];
    let seals = 0;
    const base = nobleCrypto[aead];
    const crypto = {
      ...recordingKdfCk(derived),
      [aead]: {
        nonceLength: base.nonceLength,
        open: base.open.bind(base),
        seal: (...args: Parameters<typeof base.seal>) => {
          if (++seals === failAt) return Promise.reject(new Error("seal failed"));
          return base.seal(...args);
        },
      },
    };
    return { crypto, derived };
  }
  const isZero = (b: Uint8Array) => b.every((x) => x === 0);

  it.each([
    ["ratchetEncrypt", "xchacha20poly1305", 1, 1],
    ["ratchetEncrypt", "xchacha20poly1305", 2, 1],
    ["ratchetEncrypt", "aes256gcm", 1, 2],
    ["ratchetEncryptParts", "xchacha20poly1305", 2, 1],
    ["ratchetEncryptParts", "aes256gcm", 1, 2],
    ["ratchetEncryptBatch", "xchacha20poly1305", 4, 1],
    ["ratchetEncryptBatch", "aes256gcm", 2, 2],
    ["ratchetEncrypt", "aes256gcm", 1, 3],
    ["ratchetEncrypt", "aes256gcm", 2, 3],
    ["ratchetEncryptBatch", "aes256gcm", 3, 3],
  ] as const)("%s, %s seal number %i throws (version 0x0%i)", async (call, aead, failAt, v) => {
    const { a, b } = await parties();
    expect((await b.receive(await a.send("first"))).ok).toBe(true);
    const before = serializeRatchet(a.state);
    const { crypto, derived } = failingSeal(aead, failAt);
    const options = { crypto, messageVersion: v as MessageVersion };
    const attempt =
      call === "ratchetEncrypt"
        ? ratchetEncrypt(a.state, utf8("lost"), NOW, options)
        : call === "ratchetEncryptParts"
          ? ratchetEncryptParts(a.state, utf8("lost"), NOW, options)
          : ratchetEncryptBatch(a.state, [utf8("one"), utf8("two"), utf8("three")], NOW, options);
    await expect(attempt).rejects.toThrow(/seal failed/);
    expect(derived.length).toBeGreaterThanOrEqual(2);
    expect(derived.filter((k) => !isZero(k))).toEqual([]);
    // Nothing committed: the same state, still live, and its next message opens at Bob's.
    expect(serializeRatchet(a.state)).toEqual(before);
    expect(await b.receive(await a.send("after"))).toEqual({ ok: true, value: "after" });
  });
});

describe("initAlice (the initiator's ratchetFromHandshake): a provider that throws wipes the new key pair", () => {
  it.each(["x25519", "hkdf"] as const)(
    "%s throws: the new DHs secret zeroed and forgotten",
    async (fault) => {
      const bobKeys = await generateRatchetKeyPair();
      const generated: Uint8Array[] = [];
      const forgotten: Uint8Array[] = [];
      let hkdfs = 0;
      const crypto: CryptoProvider = {
        ...nobleCrypto,
        x25519: {
          publicKey: (k: Uint8Array) => {
            generated.push(k);
            return nobleCrypto.x25519.publicKey(k);
          },
          sharedSecret: (k: Uint8Array, p: Uint8Array) =>
            fault === "x25519"
              ? Promise.reject(new Error("x25519 failed"))
              : nobleCrypto.x25519.sharedSecret(k, p),
          forget: (k: Uint8Array) => void forgotten.push(k),
        },
        // The bootstrap's split, then initAlice's KDF_RK (DR §3.3): the second fails.
        hkdfSha256: (...a) =>
          fault === "hkdf" && ++hkdfs === 2
            ? Promise.reject(new Error("hkdf failed"))
            : nobleCrypto.hkdfSha256(...a),
      };
      await expect(
        ratchetFromHandshake({
          role: "initiator",
          exported: new Uint8Array(32).fill(7),
          ad: AD,
          responderRatchetPublic: bobKeys.publicKey,
          crypto,
        }),
      ).rejects.toThrow(`${fault} failed`);
      if (fault === "hkdf") expect(hkdfs).toBe(2);
      expect(generated.length).toBe(1);
      expect(generated.filter((k) => k.some((x) => x !== 0))).toEqual([]);
      expect(forgotten).toEqual(generated);
    },
  );
});

describe("wipeRatchetState (a throwaway session's state, web/src/engine/warm-up.ts)", () => {
  it("zeroes every secret, lets the backend forget the DH secret, and the state is used no more", async () => {
    const bobKeys = await generateRatchetKeyPair();
    const forgotten: Uint8Array[] = [];
    const crypto: CryptoProvider = {
      ...nobleCrypto,
      x25519: { ...nobleCrypto.x25519, forget: (k: Uint8Array) => void forgotten.push(k) },
    };
    const made = await ratchetFromHandshake({
      role: "initiator",
      exported: new Uint8Array(32).fill(7),
      ad: AD,
      responderRatchetPublic: bobKeys.publicKey,
      crypto,
    });
    if (!made.ok) throw made.error;
    const state = made.value;
    const secrets = [state.dhSelfSecret, state.rootKey, state.sendChainKey!, state.nextSendHeaderKey];
    expect(secrets.every((k) => k.some((x) => x !== 0))).toBe(true);
    expect(forgotten).toEqual([]);
    wipeRatchetState(state, crypto);
    expect(secrets.filter((k) => k.some((x) => x !== 0))).toEqual([]);
    expect(forgotten).toEqual([state.dhSelfSecret]);
    await expect(ratchetEncrypt(state, utf8("after"), 0, { crypto })).rejects.toThrow(
      "ratchet state already advanced",
    );
  });
});

describe("ratchetDecrypt: a DH ratchet step whose sending half throws wipes what it derived", () => {
  it.each(["random", "x25519"] as const)(
    "%s fails: state unchanged, KDF_CK outputs and the new DHs zeroed and forgotten",
    async (fault) => {
      const { a, b } = await parties();
      expect((await b.receive(await a.send("first"))).ok).toBe(true);
      const skippedOne = await b.send("b0"); // Alice skips it: the old chain gains nothing, the new one a key
      const m = await b.send("b1");
      const derived: Uint8Array[] = [];
      const generated: Uint8Array[] = [];
      const forgotten: Uint8Array[] = [];
      let dhs = 0;
      const crypto = {
        ...recordingKdfCk(derived),
        x25519: {
          publicKey: (k: Uint8Array) => {
            generated.push(k);
            return nobleCrypto.x25519.publicKey(k);
          },
          // The receiving half's DH, then (fault "x25519") the sending half's refused.
          sharedSecret: (k: Uint8Array, p: Uint8Array) =>
            fault === "x25519" && ++dhs === 2
              ? Promise.resolve(undefined)
              : nobleCrypto.x25519.sharedSecret(k, p),
          forget: (k: Uint8Array) => void forgotten.push(k),
        },
      };
      const random = (n: number) => {
        if (fault === "random") throw new Error("random failed");
        return nobleCrypto.randomBytes(n);
      };
      const before = serializeRatchet(a.state);
      const thrown = await ratchetDecrypt(a.state, m, NOW, { crypto, random }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (fault === "random") expect(thrown).toEqual(new Error("random failed"));
      else {
        // The peer's key refused by X25519: the ratchet's one code for it (as the receiving half's
        // low-order refusal), a LoftError like every failure that throws (docs/contributing.md, "Errors").
        expect(thrown).toBeInstanceOf(LoftError);
        expect((thrown as LoftError).code).toBe("LOFT_ERR_DECRYPT");
        expect((thrown as LoftError).message).toMatch(/X25519 rejected/);
      }
      expect(serializeRatchet(a.state)).toEqual(before);
      expect(derived.length).toBeGreaterThanOrEqual(4);
      expect(derived.filter((k) => k.some((x) => x !== 0))).toEqual([]);
      expect(generated.length).toBe(fault === "random" ? 0 : 1);
      expect(generated.filter((k) => k.some((x) => x !== 0))).toEqual([]);
      expect(forgotten).toEqual(generated);
      // Still live: both messages open, in any order.
      expect(await a.receive(m)).toEqual({ ok: true, value: "b1" });
      expect(await a.receive(skippedOne)).toEqual({ ok: true, value: "b0" });
    },
  );
});

/**
 * Counters are u32 and a stored counter holds at most MAX_COUNTER (docs/protocol/ratchet.md,
 * "Limits"): a sender's last message is N = MAX_COUNTER − 1. A header naming N = MAX_COUNTER (only
 * a peer holding the header key can write one) is refused before any key is derived (DR §3.5).
 */
describe("message numbers at the u32 limit (MAX_COUNTER)", () => {
  /** Alice's sending chain and Bob's receiving chain moved, in step, to N = `at` (same keys). */
  async function nearTheEnd(at: number) {
    const { a, b } = await parties();
    expect((await b.receive(await a.send("first"))).ok).toBe(true);
    a.state = { ...a.state, sendCount: at };
    b.state = { ...b.state, recvCount: at };
    return { a, b };
  }
  /** The message numbered `n` that the next key of `state`'s sending chain seals (as a peer could). */
  async function numbered(state: RatchetState, n: number, text: string): Promise<Uint8Array> {
    const step = await kdfChain(nobleCrypto, state.sendChainKey!);
    const header = { dh: state.dhSelfPublic, pn: state.prevSendCount, n };
    return sealMessage(
      nobleCrypto,
      1,
      state.sendHeaderKey!,
      step.messageKey,
      header,
      new Uint8Array(24).fill(n & 0xff),
      AD,
      utf8(text),
    );
  }

  it("the last number opens and the state still stores; MAX_COUNTER is LOFT_ERR_MALFORMED, state unchanged", async () => {
    const { a, b } = await nearTheEnd(MAX_COUNTER - 3);
    const early = [await a.send("n-3"), await a.send("n-2")];
    const last = await a.send("last");
    await expect(a.send("one more")).rejects.toThrow(/sending chain exhausted/);
    // What the next key of the chain would seal, were a sender to go on.
    const beyond = await numbered(a.state, MAX_COUNTER, "beyond");
    // From Nr = MAX_COUNTER − 3 this skips 3 keys, well inside MAX_SKIP: only the number refuses it.
    const before = serializeRatchet(b.state);
    const r = await ratchetDecrypt(b.state, beyond, NOW);
    expect(codeOf(r)).toBe("LOFT_ERR_MALFORMED");
    expect(serializeRatchet(b.state)).toEqual(before);
    // The last message of the chain (N = MAX_COUNTER − 1) skips two keys and opens.
    expect(await b.receive(last)).toEqual({ ok: true, value: "last" });
    expect(b.state.recvCount).toBe(MAX_COUNTER);
    expect(unwrap(deserializeRatchet(serializeRatchet(b.state))).recvCount).toBe(MAX_COUNTER);
    // Past the end now, in both readers: one by one and the batch's fast way.
    const after = serializeRatchet(b.state);
    expect(codeOf(await ratchetDecrypt(b.state, beyond, NOW))).toBe("LOFT_ERR_MALFORMED");
    expect(serializeRatchet(b.state)).toEqual(after);
    const batch = await ratchetDecryptBatch(b.state, [beyond, early[1]!, early[0]!], NOW);
    expect(batch.results.map((x) => (x.ok ? new TextDecoder().decode(x.value) : x.error.code))).toEqual([
      "LOFT_ERR_MALFORMED",
      "n-2",
      "n-3",
    ]);
    expect(batch.state.recvCount).toBe(MAX_COUNTER);
    expect(batch.state.skipped).toEqual([]);
  });

  it("a batch whose run reaches the last number stops there; the next one is refused (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 6 }), async (skip, back) => {
        // Nr = MAX_COUNTER − skip − back; messages numbered up to MAX_COUNTER, in order.
        const start = MAX_COUNTER - skip - back;
        const { a, b } = await nearTheEnd(start);
        const sent = await sequence(skip + back, (i) => a.send(`m${start + i}`));
        const beyond = await numbered(a.state, MAX_COUNTER, "beyond");
        const batch = await ratchetDecryptBatch(b.state, [...sent, beyond], NOW);
        expect(batch.results.map(codeOf)).toEqual([...sent.map(() => "ok"), "LOFT_ERR_MALFORMED"]);
        expect(batch.state.recvCount).toBe(MAX_COUNTER);
        expect(deserializeRatchet(serializeRatchet(batch.state)).ok).toBe(true);
      }),
      { numRuns: 12 },
    );
  });
});

/**
 * A decrypt whose body open throws (a provider exception, not a failed tag) commits nothing, as
 * an encrypt whose seal throws: the state is unchanged and usable, and every KDF_CK output the
 * attempt derived (DR §5.2: skipped message keys, chain keys, the message key) is zeroed on the
 * way out — in the current chain and in a DH ratchet step alike (DR §3.5).
 */
describe("ratchetDecrypt: a body open that throws wipes what the attempt derived", () => {
  /** noble, recording every HMAC-SHA-256 output (KDF_CK's keys), whose AEAD open throws under any of them. */
  function failingOpen() {
    const derived: Uint8Array[] = [];
    const aead = (base: typeof nobleCrypto.aes256gcm) => ({
      nonceLength: base.nonceLength,
      seal: base.seal.bind(base),
      // Header keys come from KDF_RK (HKDF), message keys from KDF_CK: only a body open throws.
      open: (...args: Parameters<typeof base.open>) =>
        derived.some((k) => equalBytes(k, args[0]))
          ? Promise.reject(new Error("open failed"))
          : base.open(...args),
    });
    const crypto = {
      ...recordingKdfCk(derived),
      xchacha20poly1305: aead(nobleCrypto.xchacha20poly1305),
      aes256gcm: aead(nobleCrypto.aes256gcm),
    };
    return { crypto, derived };
  }

  it.each(["current chain", "DH ratchet step"] as const)(
    "in the %s, after skipping a key: state unchanged, every derived key zeroed, both messages open later",
    async (where) => {
      const { a, b } = await parties();
      expect((await b.receive(await a.send("first"))).ok).toBe(true);
      expect((await a.receive(await b.send("x0"))).ok).toBe(true);
      // Bob's x1 stays in flight: Alice skips its key, in the chain it belongs to.
      const skipped = await b.send("x1");
      let target: Uint8Array;
      if (where === "current chain") target = await b.send("x2");
      else {
        // Bob steps his DH ratchet on Alice's reply; his next message is in a new chain (PN = 2).
        expect((await b.receive(await a.send("second"))).ok).toBe(true);
        target = await b.send("y0");
      }
      const before = serializeRatchet(a.state);
      const { crypto, derived } = failingOpen();
      await expect(ratchetDecrypt(a.state, target, NOW, { crypto })).rejects.toThrow(/open failed/);
      // The skipped key, and the chain and message keys of the target: KDF_CK twice at least.
      expect(derived.length).toBeGreaterThanOrEqual(4);
      expect(derived.filter((k) => k.some((x) => x !== 0))).toEqual([]);
      expect(serializeRatchet(a.state)).toEqual(before);
      expect(await a.receive(target)).toEqual({ ok: true, value: where === "current chain" ? "x2" : "y0" });
      expect(await a.receive(skipped)).toEqual({ ok: true, value: "x1" });
    },
  );
});
