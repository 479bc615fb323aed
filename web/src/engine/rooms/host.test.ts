/**
 * The host's signed room state (docs/protocol/rooms.md §8): made and verified from the link alone,
 * through hand-overs; every tampered, foreign, replayed or malformed state refused with a typed
 * error (fuzzed); a byte-exact vector the doc shows.
 */
import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  type RoomState,
  secretCommitment,
  signHandover,
  signState,
  supersedes,
  verifyHandover,
  verifyState,
} from "./host.ts";

const id = Uint8Array.from({ length: 16 }, (_, i) => i);
const secret = Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i);
const hostPriv = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i);
const h = ed25519.getPublicKey(hostPriv);
const ann = Uint8Array.from({ length: 32 }, () => 0xa1);
const bea = Uint8Array.from({ length: 32 }, () => 0xb2);
const cat = Uint8Array.from({ length: 32 }, () => 0xc3);

const state = (over: Partial<RoomState> = {}): RoomState => ({
  c: secretCommitment(id, 0, secret),
  e: 0,
  hid: ann,
  host: h,
  id,
  m: [bea, cat],
  v: 1,
  x: [],
  ...over,
});

describe("room state", () => {
  it("a state the host signed verifies from the link's id and h; lists come out sorted", () => {
    const signed = signState(state({ m: [cat, bea] }), hostPriv, []);
    const r = verifyState(signed.bytes, id, h);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.state.m.map(toHex)).toEqual([toHex(bea), toHex(cat)]);
  });

  it("vector: the doc's state (v 1, Ann host, Bea and Cat listed) encodes and signs to rooms-v1.json's states[0]", () => {
    const signed = signState(state(), hostPriv, []);
    // Ed25519 is deterministic: the same bytes every run (docs.test.ts checks the doc shows them).
    const file = JSON.parse(
      readFileSync(new URL("../../../../docs/vectors/rooms-v1.json", import.meta.url), "utf8"),
    ) as { states: { state: string }[] };
    expect(toHex(signed.bytes)).toBe(file.states[0]!.state);
    expect(verifyState(signed.bytes, id, h).ok).toBe(true);
  });

  it("refused: another room, another host key, a flipped byte, a changed list, a foreign signer", () => {
    const signed = signState(state(), hostPriv, []);
    expect(verifyState(signed.bytes, new Uint8Array(16), h)).toMatchObject({ ok: false });
    expect(verifyState(signed.bytes, id, ed25519.getPublicKey(new Uint8Array(32).fill(9)))).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_BAD_SIGNATURE" },
    });
    for (let i = 0; i < signed.bytes.length; i += 7) {
      const bad = signed.bytes.slice();
      bad[i] = (bad[i] ?? 0) ^ 0x01;
      expect(verifyState(bad, id, h).ok).toBe(false);
    }
    const mallory = new Uint8Array(32).fill(7);
    const forged = signState(state({ x: [bea] }), mallory, []);
    expect(verifyState(forged.bytes, id, h)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_BAD_SIGNATURE" },
    });
  });

  it("a hand-over chain: the new host's states verify from the link; a former host's no longer supersede", () => {
    const beaPriv = new Uint8Array(32).fill(0x42);
    const beaRoomKey = ed25519.getPublicKey(beaPriv);
    const v1 = signState(state(), hostPriv, []);
    const ho = signHandover(id, 0, beaRoomKey, hostPriv);
    expect(verifyHandover(id, 0, ho, h)).toBe(true);
    expect(verifyHandover(id, 1, ho, h)).toBe(false); // the index is signed
    const v2 = signState(state({ v: 2, host: beaRoomKey, hid: bea }), beaPriv, [ho]);
    const got = verifyState(v2.bytes, id, h);
    expect(got.ok).toBe(true);
    if (!got.ok) return;
    expect(supersedes(got.value, v1)).toBe(true);
    // The former host signs v3 with the old (shorter) chain: valid, but it does not supersede.
    const stale = signState(state({ v: 3, x: [bea] }), hostPriv, []);
    const staleV = verifyState(stale.bytes, id, h);
    expect(staleV.ok).toBe(true);
    if (staleV.ok) expect(supersedes(staleV.value, got.value)).toBe(false);
    // A chain whose host is not the state's host is refused.
    const wrong = signState(state({ v: 2, host: h }), hostPriv, [ho]);
    expect(verifyState(wrong.bytes, id, h)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_BAD_SIGNATURE" },
    });
  });

  it("replay: an older or equal version never supersedes", () => {
    const v1 = verifyState(signState(state(), hostPriv, []).bytes, id, h);
    const v2 = verifyState(signState(state({ v: 2, x: [cat] }), hostPriv, []).bytes, id, h);
    if (!v1.ok || !v2.ok) throw new Error("unsigned");
    expect(supersedes(v2.value, v1.value)).toBe(true);
    expect(supersedes(v1.value, v2.value)).toBe(false);
    expect(supersedes(v2.value, v2.value)).toBe(false);
  });

  it("malformed: non-canonical, extra fields, oversized, version 0, lists too long", () => {
    const good = signState(state(), hostPriv, []);
    const body = encodeCanonical(state());
    const sig = ed25519.sign(new Uint8Array(0), hostPriv);
    for (const bytes of [
      new Uint8Array(0),
      new Uint8Array(20_000),
      encodeCanonical({ ho: [], s: body, sig, z: 1 }),
      encodeCanonical({ ho: [], s: encodeCanonical({ ...state(), v: 0 }), sig }),
      encodeCanonical({ ho: [], s: encodeCanonical({ ...state(), m: Array(65).fill(bea) }), sig }),
      encodeCanonical({ ho: Array(17).fill({ k: bea, sig }), s: body, sig }),
      good.bytes.subarray(0, good.bytes.length - 1),
    ])
      expect(verifyState(bytes, id, h).ok).toBe(false);
  });

  it("refused: lists the host signed out of order or with a key twice (one encoding per state)", () => {
    // Signed by the real host key, so only the order check can refuse them.
    const signedBody = (over: Partial<RoomState>) => {
      const s = encodeCanonical(state(over));
      const msg = Uint8Array.from([...new TextEncoder().encode("loft/room/state/v1"), 0, ...s]);
      return encodeCanonical({ ho: [], s, sig: ed25519.sign(msg, hostPriv) });
    };
    expect(verifyState(signedBody({ m: [bea, cat], x: [ann, cat] }), id, h).ok).toBe(true);
    for (const over of [{ m: [cat, bea] }, { m: [bea, bea, cat] }, { x: [cat, ann] }, { x: [ann, ann] }])
      expect(verifyState(signedBody(over), id, h)).toMatchObject({
        ok: false,
        error: { code: "LOFT_ERR_MALFORMED" },
      });
  });

  it("fuzz: random bytes never throw, and never verify", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(verifyState(bytes, id, h).ok).toBe(false);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("fuzz: a signed state with any byte changed never verifies", () => {
    const good = signState(state(), hostPriv, []).bytes;
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = good.slice();
        b[i] = (b[i] ?? 0) ^ x;
        expect(verifyState(b, id, h).ok).toBe(false);
      }),
      // Most of these reach an Ed25519 verification (tens of ms on a loaded CI core): a sample.
      { numRuns: 48 },
    );
  });
});
