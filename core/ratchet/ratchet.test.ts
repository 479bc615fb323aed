import { describe, expect, it } from "vitest";
import { equalBytes, toHex, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import type { Result } from "../errors.ts";
import {
  canSend,
  DEFAULT_RATCHET_LIMITS,
  deserializeRatchet,
  expireSkippedKeys,
  generateRatchetKeyPair,
  MAX_MESSAGE_LEN,
  MAX_SKIPPED_CHAINS,
  MIN_MESSAGE_LEN,
  type RatchetLimits,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
  serializeRatchet,
} from "./index.ts";

const NOW = 1_700_000_000_000;
const AD = ratchetAssociatedData(new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb2));

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

function pair(limits?: RatchetLimits, exported = new Uint8Array(32).fill(7)) {
  const bobKeys = generateRatchetKeyPair();
  const alice = unwrap(
    ratchetFromHandshake({
      role: "initiator",
      exported,
      ad: AD,
      responderRatchetPublic: bobKeys.publicKey,
      ...(limits ? { limits } : {}),
    }),
  );
  const bob = unwrap(
    ratchetFromHandshake({
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
  send(text: string, now = NOW): Uint8Array {
    const r = ratchetEncrypt(this.state, utf8(text), now);
    this.state = r.state;
    return r.message;
  }
  receive(message: Uint8Array, now = NOW): Result<string> {
    const r = ratchetDecrypt(this.state, message, now);
    if (!r.ok) return r;
    this.state = r.value.state;
    return { ok: true, value: new TextDecoder().decode(r.value.plaintext) };
  }
}

function parties(limits?: RatchetLimits) {
  const { alice, bob } = pair(limits);
  return { a: new Party(alice), b: new Party(bob) };
}

const codeOf = (r: Result<unknown>) => (r.ok ? "ok" : r.error.code);

describe("Double Ratchet with header encryption (Signal DR §4)", () => {
  it("Alice sends first; Bob can send only after receiving (DR §4.3)", () => {
    const { a, b } = parties();
    expect(canSend(a.state)).toBe(true);
    expect(canSend(b.state)).toBe(false);
    expect(() => b.send("too early")).toThrow(/cannot send before/);
    expect(b.receive(a.send("hello bob"))).toEqual({ ok: true, value: "hello bob" });
    expect(canSend(b.state)).toBe(true);
    expect(a.receive(b.send("hello alice"))).toEqual({ ok: true, value: "hello alice" });
  });

  it("round-trips a ping-pong conversation across many DH ratchet steps", () => {
    const { a, b } = parties();
    for (let i = 0; i < 20; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      for (let j = 0; j <= i % 3; j++)
        expect(to.receive(from.send(`m${i}.${j}`))).toEqual({ ok: true, value: `m${i}.${j}` });
    }
  });

  it("every message has its own key: equal plaintexts give unrelated ciphertexts", () => {
    const { a } = parties();
    const m1 = a.send("same");
    const m2 = a.send("same");
    expect(m1.length).toBe(MIN_MESSAGE_LEN + 4);
    expect(equalBytes(m1.subarray(1), m2.subarray(1))).toBe(false);
  });

  it("decrypts out-of-order messages within a chain and across a DH ratchet step", () => {
    const { a, b } = parties();
    const first = [a.send("a0"), a.send("a1"), a.send("a2")];
    expect(b.receive(first[2]!)).toEqual({ ok: true, value: "a2" });
    expect(b.state.skipped.length).toBe(2);
    expect(a.receive(b.send("b0"))).toEqual({ ok: true, value: "b0" });
    const second = [a.send("a3"), a.send("a4")];
    expect(b.receive(second[1]!)).toEqual({ ok: true, value: "a4" });
    expect(b.receive(first[0]!)).toEqual({ ok: true, value: "a0" });
    expect(b.receive(second[0]!)).toEqual({ ok: true, value: "a3" });
    expect(b.receive(first[1]!)).toEqual({ ok: true, value: "a1" });
    expect(b.state.skipped.length).toBe(0);
  });

  it("skips the rest of the previous chain using PN when the first message of a new chain arrives first", () => {
    const { a, b } = parties();
    expect(b.receive(a.send("a0"))).toEqual({ ok: true, value: "a0" });
    const late = [a.send("a1"), a.send("a2")];
    expect(a.receive(b.send("b0"))).toEqual({ ok: true, value: "b0" });
    const next = a.send("a3 (new chain, pn = 3)");
    expect(b.receive(next)).toEqual({ ok: true, value: "a3 (new chain, pn = 3)" });
    expect(b.state.skipped.map((s) => s.n)).toEqual([1, 2]);
    expect(b.receive(late[1]!)).toEqual({ ok: true, value: "a2" });
    expect(b.receive(late[0]!)).toEqual({ ok: true, value: "a1" });
  });

  it("rejects replays with LOFT_ERR_REPLAY: in the current chain and from a chain with stored skipped keys", () => {
    const { a, b } = parties();
    const m0 = a.send("m0");
    const m1 = a.send("m1");
    const m2 = a.send("m2");
    expect(b.receive(m1).ok).toBe(true);
    expect(codeOf(b.receive(m1))).toBe("LOFT_ERR_REPLAY");
    expect(a.receive(b.send("reply")).ok).toBe(true);
    expect(b.receive(a.send("new chain")).ok).toBe(true);
    expect(b.receive(m0).ok).toBe(true);
    expect(codeOf(b.receive(m0))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(b.receive(m1))).toBe("LOFT_ERR_REPLAY");
    expect(b.receive(m2).ok).toBe(true);
    // Every key of that chain is used: its header key is gone, so the replay no longer opens at all.
    expect(codeOf(b.receive(m2))).toBe("LOFT_ERR_DECRYPT");
  });

  it("a failed decryption leaves the state byte-for-byte unchanged and usable (DR §3.5)", () => {
    const { a, b } = parties();
    expect(b.receive(a.send("warm-up")).ok).toBe(true);
    const good = a.send("the real one");
    const before = serializeRatchet(b.state);
    const tamperedBody = good.slice();
    tamperedBody[tamperedBody.length - 1]! ^= 1;
    const tamperedHeader = good.slice();
    tamperedHeader[30]! ^= 1;
    const tamperedNonce = good.slice();
    tamperedNonce[3]! ^= 1;
    for (const bad of [tamperedBody, tamperedHeader, tamperedNonce])
      expect(codeOf(b.receive(bad))).toBe("LOFT_ERR_DECRYPT");
    expect(equalBytes(serializeRatchet(b.state), before)).toBe(true);
    expect(b.receive(good)).toEqual({ ok: true, value: "the real one" });
  });

  it("a tampered body under a stored skipped key does not delete that key", () => {
    const { a, b } = parties();
    const m0 = a.send("m0");
    expect(b.receive(a.send("m1")).ok).toBe(true);
    const bad = m0.slice();
    bad[bad.length - 5]! ^= 0x80;
    expect(codeOf(b.receive(bad))).toBe("LOFT_ERR_DECRYPT");
    expect(b.receive(m0)).toEqual({ ok: true, value: "m0" });
  });

  it("binds the associated data: a session with other identity keys cannot open the message", () => {
    const exported = new Uint8Array(32).fill(9);
    const bobKeys = generateRatchetKeyPair();
    const alice = unwrap(
      ratchetFromHandshake({
        role: "initiator",
        exported,
        ad: AD,
        responderRatchetPublic: bobKeys.publicKey,
      }),
    );
    const otherAd = ratchetAssociatedData(new Uint8Array(32).fill(0xa1), new Uint8Array(32).fill(0xb3));
    const bob = unwrap(
      ratchetFromHandshake({ role: "responder", exported, ad: otherAd, ratchetKeyPair: bobKeys }),
    );
    const { message } = ratchetEncrypt(alice, utf8("hi"), NOW);
    expect(codeOf(ratchetDecrypt(bob, message, NOW))).toBe("LOFT_ERR_DECRYPT");
  });

  it("a different exported secret (a different handshake) cannot open the message", () => {
    const bobKeys = generateRatchetKeyPair();
    const alice = unwrap(
      ratchetFromHandshake({
        role: "initiator",
        exported: new Uint8Array(32).fill(1),
        ad: AD,
        responderRatchetPublic: bobKeys.publicKey,
      }),
    );
    const bob = unwrap(
      ratchetFromHandshake({
        role: "responder",
        exported: new Uint8Array(32).fill(2),
        ad: AD,
        ratchetKeyPair: bobKeys,
      }),
    );
    expect(codeOf(ratchetDecrypt(bob, ratchetEncrypt(alice, utf8("hi"), NOW).message, NOW))).toBe(
      "LOFT_ERR_DECRYPT",
    );
  });

  it("refuses to skip more than MAX_SKIP keys in one chain (LOFT_ERR_TOO_MANY_SKIPPED)", () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, maxSkip: 5 };
    const { a, b } = parties(limits);
    const sent = Array.from({ length: 8 }, (_, i) => a.send(`m${i}`));
    const before = serializeRatchet(b.state);
    expect(codeOf(b.receive(sent[6]!))).toBe("LOFT_ERR_TOO_MANY_SKIPPED");
    expect(equalBytes(serializeRatchet(b.state), before)).toBe(true);
    expect(b.receive(sent[5]!)).toEqual({ ok: true, value: "m5" });
    expect(b.state.skipped.length).toBe(5);
    // in an established chain as well
    const later = Array.from({ length: 8 }, (_, i) => a.send(`n${i}`));
    expect(codeOf(b.receive(later[7]!))).toBe("LOFT_ERR_TOO_MANY_SKIPPED");
    expect(b.receive(later[3]!).ok).toBe(true); // n = 11 after recvCount 6: exactly MAX_SKIP
  });

  it("caps the total number of stored skipped keys, evicting the oldest", () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, maxSkip: 10, maxSkippedKeys: 4 };
    const { a, b } = parties(limits);
    const sent = Array.from({ length: 7 }, (_, i) => a.send(`m${i}`));
    expect(b.receive(sent[6]!).ok).toBe(true);
    expect(b.state.skipped.map((s) => s.n)).toEqual([2, 3, 4, 5]);
    expect(codeOf(b.receive(sent[0]!))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(b.receive(sent[1]!))).toBe("LOFT_ERR_REPLAY");
    for (const i of [2, 3, 4, 5]) expect(b.receive(sent[i]!)).toEqual({ ok: true, value: `m${i}` });
  });

  it(`keeps skipped keys of at most MAX_SKIPPED_CHAINS (${MAX_SKIPPED_CHAINS}) receiving chains`, () => {
    const { a, b } = parties();
    const held: Uint8Array[] = [];
    for (let round = 0; round < MAX_SKIPPED_CHAINS + 2; round++) {
      held.push(a.send(`held ${round}`));
      expect(b.receive(a.send(`sent ${round}`)).ok).toBe(true);
      expect(a.receive(b.send(`reply ${round}`)).ok).toBe(true);
    }
    const chains = new Set(b.state.skipped.map((s) => toHex(s.headerKey)));
    expect(chains.size).toBe(MAX_SKIPPED_CHAINS);
    // the two oldest chains were evicted with their header keys: those messages no longer open
    expect(codeOf(b.receive(held[0]!))).toBe("LOFT_ERR_DECRYPT");
    expect(codeOf(b.receive(held[1]!))).toBe("LOFT_ERR_DECRYPT");
    for (let round = 2; round < held.length; round++)
      expect(b.receive(held[round]!)).toEqual({ ok: true, value: `held ${round}` });
  });

  it("expires skipped keys older than the TTL, against the caller's clock", () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, skippedKeyTtlMs: 1000 };
    const { a, b } = parties(limits);
    const m0 = a.send("m0");
    const m1 = a.send("m1");
    const m2 = a.send("m2");
    expect(b.receive(m2, NOW).ok).toBe(true);
    expect(b.receive(m0, NOW + 1000)).toEqual({ ok: true, value: "m0" });
    expect(codeOf(b.receive(m1, NOW + 1001))).toBe("LOFT_ERR_REPLAY");
    expect(b.state.skipped.length).toBe(1);
    // a committed step (here a send) drops it for good
    a.state = unwrap(ratchetDecrypt(a.state, b.send("x", NOW + 1001), NOW + 1001)).state;
    expect(b.state.skipped.length).toBe(0);
  });

  it("a failed decrypt leaves expired skipped keys for expireSkippedKeys to delete from the stored state", () => {
    const limits = { ...DEFAULT_RATCHET_LIMITS, skippedKeyTtlMs: 1000 };
    const { a, b } = parties(limits);
    const m0 = a.send("m0");
    const m1 = a.send("m1");
    expect(b.receive(m1, NOW).ok).toBe(true);
    expect(b.state.skipped.length).toBe(1);
    const expiredKey = b.state.skipped[0]!.messageKey;
    // Only failures afterwards (garbage, then the expired message itself): nothing is committed...
    const garbage = new Uint8Array(200);
    garbage[0] = m0[0]!;
    expect(codeOf(ratchetDecrypt(b.state, garbage, NOW + 1001))).toBe("LOFT_ERR_DECRYPT");
    expect(codeOf(b.receive(m0, NOW + 1001))).toBe("LOFT_ERR_REPLAY");
    // ...so the state the caller would store still holds the expired key (DR §6.4 says delete it).
    const toStore = expireSkippedKeys(b.state, NOW + 1001);
    expect(toStore).not.toBe(b.state);
    expect(toStore.skipped.length).toBe(0);
    expect(expiredKey.every((x) => x === 0)).toBe(true);
    expect(() => serializeRatchet(b.state)).toThrow(/already advanced/);
    const restored = unwrap(deserializeRatchet(serializeRatchet(toStore)));
    expect(restored.skipped.length).toBe(0);
    // At exactly the TTL a key is still valid, and nothing changes.
    const { a: a2, b: b2 } = parties(limits);
    const n0 = a2.send("n0");
    expect(b2.receive(a2.send("n1"), NOW).ok).toBe(true);
    expect(expireSkippedKeys(b2.state, NOW + 1000)).toBe(b2.state);
    expect(b2.receive(n0, NOW + 1000)).toEqual({ ok: true, value: "n0" });
  });

  it("zeroes superseded secrets and refuses to reuse an advanced state", () => {
    const { a, b } = parties();
    const old = a.state;
    const oldChainKey = old.sendChainKey!;
    const { state } = ratchetEncrypt(old, utf8("x"), NOW);
    expect(oldChainKey.every((x) => x === 0)).toBe(true);
    expect(state.sendChainKey!.some((x) => x !== 0)).toBe(true);
    expect(() => ratchetEncrypt(old, utf8("again"), NOW)).toThrow(/already advanced/);
    expect(() => serializeRatchet(old)).toThrow(/already advanced/);
    expect(() => ratchetDecrypt(old, new Uint8Array(200), NOW)).toThrow(/already advanced/);
    void b;
  });

  it("rejects malformed, oversized and unknown-version messages with typed errors", () => {
    const { a, b } = parties();
    const good = a.send("x");
    expect(codeOf(ratchetDecrypt(b.state, good.subarray(0, MIN_MESSAGE_LEN - 1), NOW))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(ratchetDecrypt(b.state, new Uint8Array(MAX_MESSAGE_LEN + 1), NOW))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    const v2 = good.slice();
    v2[0] = 2;
    expect(codeOf(ratchetDecrypt(b.state, v2, NOW))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(codeOf(ratchetDecrypt(b.state, "nope" as unknown as Uint8Array, NOW))).toBe("LOFT_ERR_MALFORMED");
  });

  it("a low-order responder ratchet key is a typed error", () => {
    const r = ratchetFromHandshake({
      role: "initiator",
      exported: new Uint8Array(32),
      ad: AD,
      responderRatchetPublic: new Uint8Array(32),
    });
    expect(codeOf(r)).toBe("LOFT_ERR_MALFORMED");
  });
});

describe("ratchet state serialization", () => {
  it("round-trips exactly, including skipped keys, and the restored state keeps working", () => {
    const { a, b } = parties();
    const held = [a.send("0"), a.send("1")];
    expect(b.receive(a.send("2")).ok).toBe(true);
    const bytes = serializeRatchet(b.state);
    const restored = unwrap(deserializeRatchet(bytes));
    expect(restored).toEqual(b.state);
    expect(equalBytes(serializeRatchet(restored), bytes)).toBe(true);
    const r = ratchetDecrypt(restored, held[0]!, NOW);
    expect(r.ok && new TextDecoder().decode(r.value.plaintext)).toBe("0");
    // the decoder copied: the stored bytes are not zeroed by the restored state's wiping
    expect(equalBytes(unwrap(deserializeRatchet(bytes)).rootKey, b.state.rootKey)).toBe(true);
  });

  it("refuses unknown versions with LOFT_ERR_STATE_VERSION", () => {
    const { b } = parties();
    const map = { v: 2, ad: new Uint8Array(0) };
    expect(codeOf(deserializeRatchet(encodeCanonical(map)))).toBe("LOFT_ERR_STATE_VERSION");
    expect(codeOf(deserializeRatchet(encodeCanonical({ ...map, v: "1" })))).toBe("LOFT_ERR_STATE_VERSION");
    expect(deserializeRatchet(serializeRatchet(b.state)).ok).toBe(true);
  });

  it("refuses garbage and inconsistent states with typed errors", () => {
    expect(codeOf(deserializeRatchet(new Uint8Array(0)))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(deserializeRatchet(encodeCanonical([1, 2, 3])))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(deserializeRatchet(encodeCanonical({ v: 1 })))).toBe("LOFT_ERR_SCHEMA");
    const { a } = parties();
    const good = serializeRatchet(a.state);
    const truncated = good.subarray(0, good.length - 1);
    expect(codeOf(deserializeRatchet(truncated))).toBe("LOFT_ERR_MALFORMED");
  });
});
