/**
 * Property tests of the Double Ratchet (Signal DR §4) and its state decoder: garbage, truncated,
 * bit-flipped, replayed and reordered messages, and random interleavings of two parties. Every
 * failure must be a typed `LoftError` and must leave the state byte-for-byte as it was (DR §3.5).
 * Messages of both versions (0x01 XChaCha20-Poly1305 body, 0x02 AES-256-GCM body,
 * docs/protocol/ratchet.md "Version 0x02") are mixed throughout, and a version byte swapped in
 * transit is one of the mutations. Expensive material (sessions with several chains and skipped keys) is built once and mutated.
 */
import { rngChacha20 } from "@noble/ciphers/chacha.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import type { LoftErrorCode, Result } from "../errors.ts";
import {
  canSend,
  deserializeRatchet,
  generateRatchetKeyPair,
  type RandomBytes,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetDecryptBatch,
  ratchetEncrypt,
  ratchetFromHandshake,
  serializeRatchet,
} from "./index.ts";
import type { MessageVersion } from "./message.ts";

const NOW = 1_700_000_000_000;
/**
 * The interleavings' budget. Its ~FUZZ_RUNS operations (FUZZ_RUNS / 30 cases of 30) cost about a
 * millisecond each on a quiet machine, most of it X25519 in noble for the DH ratchet steps the
 * interleavings exist to cause (DR §3.5) and each case's fresh pair: 6–13 s at 10⁴ (2 cores at load
 * ~8), over the 60 s default at load ~12 under two busy loops per core, and by proportion ~160 s under
 * `npm run fuzz` (FUZZ_RUNS twentyfold). A bound, proportional to the operations run, about 25×
 * the quiet figure; it returns as soon as the property holds.
 */
const INTERLEAVINGS_TIMEOUT = Math.max(60_000, FUZZ_RUNS * 30);
const AD = ratchetAssociatedData(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function seeded(seed: number): RandomBytes {
  const key = new Uint8Array(32);
  new DataView(key.buffer).setUint32(0, seed >>> 0);
  const prg = rngChacha20(key);
  return (n) => prg.randomBytes(n);
}

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

async function newPair(random: RandomBytes) {
  const exported = random(32);
  const bobKeys = await generateRatchetKeyPair(random);
  const alice = unwrap(
    await ratchetFromHandshake({
      role: "initiator",
      exported,
      ad: AD,
      responderRatchetPublic: bobKeys.publicKey,
      random,
    }),
  );
  const bob = unwrap(
    await ratchetFromHandshake({ role: "responder", exported, ad: AD, ratchetKeyPair: bobKeys }),
  );
  return { alice, bob };
}

/** The codes a rejected message may carry; anything else (or a throw) fails the property. */
const MESSAGE_ERRORS = new Set<LoftErrorCode>([
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_UNSUPPORTED_VERSION",
  "LOFT_ERR_DECRYPT",
  "LOFT_ERR_REPLAY",
  "LOFT_ERR_TOO_MANY_SKIPPED",
]);

async function expectRejectedUnchanged(
  state: RatchetState,
  snapshot: Uint8Array,
  message: Uint8Array,
  allowed = MESSAGE_ERRORS,
) {
  const r = await ratchetDecrypt(state, message, NOW);
  if (r.ok) throw new Error("a mutated or replayed message was accepted");
  expect(allowed.has(r.error.code)).toBe(true);
  expect(equalBytes(serializeRatchet(state), snapshot)).toBe(true);
}

/**
 * Built once: Bob after a few chains, holding skipped keys of two chains, plus messages of every
 * kind — already received, in order or after being skipped (replays); skipped (pending); later in
 * the current chain; and the first messages of Alice's next chain (Bob steps his DH ratchet).
 */
async function fixture() {
  const random = seeded(1);
  let { alice, bob } = await newPair(random);
  let sent = 0;
  const send = async (from: "a" | "b", label: string) => {
    // 0x02, 0x01 and 0x03 in turn, so every chain (and the pending set) holds every version.
    const messageVersion = ([2, 1, 3] as const)[sent++ % 3]!;
    const r = await ratchetEncrypt(from === "a" ? alice : bob, utf8(label), NOW, { random, messageVersion });
    if (from === "a") alice = r.state;
    else bob = r.state;
    return r.message;
  };
  const recv = async (to: "a" | "b", m: Uint8Array) => {
    const r = unwrap(await ratchetDecrypt(to === "a" ? alice : bob, m, NOW, { random }));
    if (to === "a") alice = r.state;
    else bob = r.state;
  };
  const received: Uint8Array[] = [];
  const pending: Uint8Array[] = [];
  const chain1: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) chain1.push(await send("a", `c1.${i}`));
  for (const i of [0, 3, 5]) {
    await recv("b", chain1[i]!);
    received.push(chain1[i]!);
  }
  // chain1[1] was skipped and then delivered: its replay must find the stored key gone.
  await recv("b", chain1[1]!);
  received.push(chain1[1]!);
  pending.push(chain1[2]!, chain1[4]!);
  await recv("a", await send("b", "reply"));
  const chain2: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) chain2.push(await send("a", `c2.${i}`));
  for (const i of [1, 2]) {
    await recv("b", chain2[i]!);
    received.push(chain2[i]!);
  }
  await recv("b", chain2[4]!);
  received.push(chain2[4]!);
  // pending: two skipped keys of the current chain, and a later message of it
  pending.push(chain2[0]!, chain2[3]!, chain2[5]!);
  const snapshot = serializeRatchet(bob);
  // Alice hears from Bob again (sent from a copy) and starts a third chain this Bob has not seen.
  const bobReply = await ratchetEncrypt(unwrap(deserializeRatchet(snapshot)), utf8("reply 2"), NOW, {
    random,
  });
  await recv("a", bobReply.message);
  pending.push(await send("a", "c3.0"), await send("a", "c3.1"));
  return { bob: unwrap(deserializeRatchet(snapshot)), snapshot, received, pending };
}

const fx = await fixture();

describe("ratchet properties", () => {
  it("the fixture's pending messages all decrypt (so the rejections below are meaningful)", async () => {
    expect(new Set(fx.pending.map((m) => m[0]))).toEqual(new Set([1, 2, 3]));
    for (const m of fx.pending) {
      const copy = unwrap(deserializeRatchet(fx.snapshot));
      expect((await ratchetDecrypt(copy, m, NOW)).ok).toBe(true);
    }
  });

  it("garbage is rejected with a typed error and leaves the state unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.nat(2), async (bytes, setVersion) => {
        if (setVersion > 0 && bytes.length > 0) bytes[0] = setVersion;
        await expectRejectedUnchanged(fx.bob, fx.snapshot, bytes);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("bit-flipped, truncated, extended or spliced genuine messages are rejected; state unchanged", async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant("extend" as const),
        extra: fc.uint8Array({ minLength: 1, maxLength: 40 }),
      }),
      fc.record({ kind: fc.constant("splice" as const), other: fc.nat(), at: fc.nat() }),
      // 0x01 → 0x02 → 0x03 → 0x01, or any other byte: the header's AD is the version byte (ratchet.md)
      fc.record({ kind: fc.constant("version" as const), to: fc.nat(255) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat(), mutation, async (pick, mut) => {
        const genuine = fx.pending[pick % fx.pending.length]!;
        let bad: Uint8Array;
        switch (mut.kind) {
          case "flip":
            bad = genuine.slice();
            bad[mut.at % bad.length]! ^= 1 << mut.bit;
            break;
          case "truncate":
            bad = genuine.subarray(0, mut.at % genuine.length);
            break;
          case "extend":
            bad = new Uint8Array([...genuine, ...mut.extra]);
            break;
          case "version":
            bad = genuine.slice();
            bad[0] = mut.to === genuine[0] ? (genuine[0]! % 3) + 1 : mut.to;
            break;
          case "splice": {
            // header of one genuine message, body of another
            const other = fx.pending[mut.other % fx.pending.length]!;
            if (other === genuine) return;
            const cut = 81 + (mut.at % Math.max(1, Math.min(genuine.length, other.length) - 81));
            bad = new Uint8Array([...genuine.subarray(0, cut), ...other.subarray(cut)]);
            if (equalBytes(bad, genuine) || equalBytes(bad, other)) return;
            break;
          }
        }
        await expectRejectedUnchanged(fx.bob, fx.snapshot, bad);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("replays of received messages are refused (LOFT_ERR_REPLAY or, once the chain is gone, DECRYPT)", async () => {
    const codes = new Set<LoftErrorCode>(["LOFT_ERR_REPLAY", "LOFT_ERR_DECRYPT"]);
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (pick) => {
        await expectRejectedUnchanged(fx.bob, fx.snapshot, fx.received[pick % fx.received.length]!, codes);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("random interleavings of two parties: every delivered message decrypts exactly once, in any order", {
    timeout: INTERLEAVINGS_TIMEOUT,
  }, async () => {
    const op = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant("send" as const),
          who: fc.nat(1),
          count: fc.integer({ min: 1, max: 3 }),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant("deliver" as const), who: fc.nat(1), pick: fc.nat() }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("sendV2" as const),
          who: fc.nat(1),
          count: fc.integer({ min: 1, max: 3 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("sendV3" as const),
          who: fc.nat(1),
          count: fc.integer({ min: 1, max: 3 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant("replay" as const), who: fc.nat(1), pick: fc.nat() }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("tamper" as const),
          who: fc.nat(1),
          pick: fc.nat(),
          at: fc.nat(),
        }),
      },
    );
    const opsPerRun = 30;
    let checks = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.array(op, { minLength: opsPerRun, maxLength: opsPerRun }),
        fc.array(fc.nat(), { maxLength: 200 }),
        async (seed, ops, order) => {
          const random = seeded(seed);
          const pair = await newPair(random);
          const states: RatchetState[] = [pair.alice, pair.bob];
          // in flight *to* party i
          const inbox: { message: Uint8Array; label: string }[][] = [[], []];
          const delivered: Uint8Array[][] = [[], []];
          let counter = 0;
          const deliver = async (to: number, index: number) => {
            const [item] = inbox[to]!.splice(index, 1);
            const r = await ratchetDecrypt(states[to]!, item!.message, NOW, { random });
            if (!r.ok) throw r.error;
            expect(text(r.value.plaintext)).toBe(item!.label);
            states[to] = r.value.state;
            delivered[to]!.push(item!.message);
            checks++;
          };
          for (const o of ops) {
            const to = 1 - o.who;
            if (o.kind === "send" || o.kind === "sendV2" || o.kind === "sendV3") {
              if (!canSend(states[o.who]!)) continue;
              const messageVersion: MessageVersion = o.kind === "sendV3" ? 3 : o.kind === "sendV2" ? 2 : 1;
              for (let i = 0; i < o.count; i++) {
                const label = `${o.who}:${counter++}`;
                const r = await ratchetEncrypt(states[o.who]!, utf8(label), NOW, { random, messageVersion });
                states[o.who] = r.state;
                inbox[to]!.push({ message: r.message, label });
              }
            } else if (o.kind === "deliver") {
              if (inbox[o.who]!.length > 0) await deliver(o.who, o.pick % inbox[o.who]!.length);
            } else if (o.kind === "replay") {
              const old = delivered[o.who]!;
              if (old.length === 0) continue;
              const s = states[o.who]!;
              await expectRejectedUnchanged(s, serializeRatchet(s), old[o.pick % old.length]!);
              checks++;
            } else {
              const q = inbox[o.who]!;
              if (q.length === 0) continue;
              const bad = q[o.pick % q.length]!.message.slice();
              bad[o.at % bad.length]! ^= 0x10;
              const s = states[o.who]!;
              await expectRejectedUnchanged(s, serializeRatchet(s), bad);
              checks++;
            }
          }
          // drain both inboxes in an arbitrary order: nothing is lost
          let k = 0;
          while (inbox[0]!.length + inbox[1]!.length > 0) {
            const to = inbox[0]!.length === 0 ? 1 : inbox[1]!.length === 0 ? 0 : (order[k] ?? k) % 2;
            await deliver(to, (order[k + 1] ?? 0) % inbox[to]!.length);
            k += 2;
          }
        },
      ),
      { numRuns: Math.ceil(FUZZ_RUNS / opsPerRun) },
    );
    expect(checks).toBeGreaterThanOrEqual(FUZZ_RUNS / 2);
  });
});

/**
 * Built once for ratchetDecryptBatch: Bob has read Alice's first message (his DH step), and holds
 * a copy of that state; Alice's next 12 messages of that chain (every version), then — after a
 * reply from Bob — the first 3 of her next chain (a DH step inside a batch).
 */
async function runFixture() {
  const random = seeded(2);
  let { alice, bob } = await newPair(random);
  const send = async (label: string, messageVersion: MessageVersion) => {
    const r = await ratchetEncrypt(alice, utf8(label), NOW, { random, messageVersion });
    alice = r.state;
    return r.message;
  };
  const first = await send("m0", 2);
  bob = unwrap(await ratchetDecrypt(bob, first, NOW, { random })).state;
  const chain: Uint8Array[] = [first];
  for (let i = 1; i <= 12; i++) chain.push(await send(`m${i}`, ([1, 3, 2] as const)[i % 3]!));
  const snapshot = serializeRatchet(bob);
  const reply = await ratchetEncrypt(unwrap(deserializeRatchet(snapshot)), utf8("reply"), NOW, { random });
  alice = unwrap(await ratchetDecrypt(alice, reply.message, NOW, { random })).state;
  const next: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) next.push(await send(`n${i}`, i === 1 ? 2 : 3));
  return { snapshot, chain, next };
}

const run = await runFixture();

const webCrypto = await createWebCryptoProvider();

describe("ratchetDecryptBatch properties", () => {
  // noble, and WebCrypto (node's): there a 0x03 run's HKr is imported once (Aead.withKey) and the
  // headers opened under it are kept for the batch's later runs until a DH step changes HKr.
  it.each([
    ["noble", undefined],
    ["webcrypto", webCrypto],
  ] as const)(
    "%s: a batch gives the plaintexts, errors and state of ratchetDecrypt one by one: runs, gaps, replays, reorders, tampering, garbage, a DH step",
    async (_name, crypto) => {
      const pool = [...run.chain, ...run.next];
      const edit = fc.oneof(
        fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), at: fc.nat(), bit: fc.nat(7) }),
        fc.record({ kind: fc.constant("insert" as const), pos: fc.nat(), pick: fc.nat() }),
        fc.record({ kind: fc.constant("delete" as const), pos: fc.nat() }),
        fc.record({ kind: fc.constant("swap" as const), pos: fc.nat(), other: fc.nat() }),
        fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat(), at: fc.nat() }),
        fc.record({
          kind: fc.constant("garbage" as const),
          pos: fc.nat(),
          bytes: fc.uint8Array({ maxLength: 200 }),
        }),
      );
      let inputs = 0;
      let fastRuns = 0;
      const runs = Math.ceil(FUZZ_RUNS / 8);
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 6, max: 12 }),
          fc.array(edit, { maxLength: 3 }),
          fc.integer(),
          async (start, length, edits, seed) => {
            // A run of consecutive messages from Bob's next one on (or later: a gap), then edits;
            // Bob's state comes afresh from the snapshot for each way (a batch retires its input).
            const batch = run.chain.slice(start, start + length).map((m) => m.slice());
            for (const e of edits) {
              const pos = batch.length === 0 ? 0 : e.pos % batch.length;
              if (e.kind === "insert") batch.splice(pos, 0, pool[e.pick % pool.length]!.slice());
              else if (e.kind === "garbage") batch.splice(pos, 0, e.bytes);
              else if (batch.length === 0) continue;
              else if (e.kind === "delete") batch.splice(pos, 1);
              else if (e.kind === "swap") {
                const o = e.other % batch.length;
                [batch[pos], batch[o]] = [batch[o]!, batch[pos]!];
              } else if (e.kind === "flip") batch[pos]![e.at % batch[pos]!.length]! ^= 1 << e.bit;
              else batch[pos] = batch[pos]!.subarray(0, e.at % batch[pos]!.length);
            }
            inputs += batch.length;
            if (start === 1 && edits.length === 0) fastRuns++;
            const together = await ratchetDecryptBatch(unwrap(deserializeRatchet(run.snapshot)), batch, NOW, {
              random: seeded(seed),
              ...(crypto ? { crypto } : {}),
            });
            let state = unwrap(deserializeRatchet(run.snapshot));
            const random = seeded(seed);
            const oneByOne: Result<Uint8Array>[] = [];
            for (const m of batch) {
              const r = await ratchetDecrypt(state, m, NOW, { random, ...(crypto ? { crypto } : {}) });
              if (r.ok) state = r.value.state;
              oneByOne.push(r.ok ? { ok: true, value: r.value.plaintext } : r);
            }
            const show = (r: Result<Uint8Array>) => (r.ok ? text(r.value) : r.error.code);
            expect(together.results.map(show)).toEqual(oneByOne.map(show));
            for (const r of together.results) if (!r.ok) expect(MESSAGE_ERRORS.has(r.error.code)).toBe(true);
            expect(equalBytes(serializeRatchet(together.state), serializeRatchet(state))).toBe(true);
          },
        ),
        { numRuns: runs },
      );
      expect(inputs).toBeGreaterThanOrEqual(FUZZ_RUNS);
      expect(fastRuns).toBeGreaterThan(0);
    },
    120_000,
  );
});

describe("ratchet state decoder properties", () => {
  const { snapshot } = fx;
  const STATE_ERRORS = new Set<LoftErrorCode>([
    "LOFT_ERR_MALFORMED",
    "LOFT_ERR_SCHEMA",
    "LOFT_ERR_STATE_VERSION",
    "LOFT_ERR_FRAME_TOO_LARGE",
  ]);

  it("garbage is a typed error, never a throw", async () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const r = deserializeRatchet(bytes);
        expect(r.ok ? "ok" : STATE_ERRORS.has(r.error.code)).toBe(r.ok ? "ok" : true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("mutated stored states decode to a valid state or a typed error", async () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 7 }), fc.nat(), (at, bit, cut) => {
        const bytes = snapshot.slice();
        bytes[at % bytes.length]! ^= 1 << bit;
        for (const input of [bytes, snapshot.subarray(0, cut % snapshot.length)]) {
          const r = deserializeRatchet(input);
          if (r.ok) expect(serializeRatchet(r.value).length).toBeGreaterThan(0);
          else expect(STATE_ERRORS.has(r.error.code)).toBe(true);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
