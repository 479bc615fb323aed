/**
 * Fuzz the signaling server's entry point over real WebSockets: FUZZ_RUNS (≥ 10⁴) random and
 * mutated frames — random bytes, valid frames with bytes flipped, cut or spliced, and well-formed
 * MessagePack maps with known tags and wrong fields — sent after the version header on several
 * connections of a live server. Afterwards: no handler ever threw (no INTERNAL error), every
 * connection is still open and answering, and two well-behaved clients still register, look each
 * other up and exchange signed envelopes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { SignalingClient } from "../../core/signaling/client.ts";
import { type ClientMessage, clientCodec, signEnvelope } from "../../core/wire/signaling.ts";
import { signRegisterRequest } from "../../core/wire/signed.ts";
import { makeUser, RawClient, registerOn, startSignaling, wsFactory } from "../../signaling/testing.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { metricValue } from "../support/metrics.ts";

const TAGS = [
  "REGISTER_REQUEST",
  "UNREGISTER",
  "LOOKUP_REQUEST",
  "LIST_SERVERS_REQUEST",
  "SIGNAL",
  "SUBSCRIBE",
  "VERSION_HEADER",
  "ERROR",
  "PRESENCE",
  "ROOM_JOIN",
  "ROOM_LEAVE",
];
const FIELDS = [
  "id",
  "identity",
  "ttl_seconds",
  "timestamp",
  "nonce",
  "signature",
  "target_identity",
  "list_all",
  "envelope",
  "keys",
  "endpoint",
  "audience",
  "room",
  "max",
];

/**
 * Well-formed frames to mutate. The REGISTER is bound to `challenge` (the connection that will
 * carry it) and names `audience`, so mutations reach the server's deeper checks — identity
 * decoding, native signature verification — instead of stopping at BAD_CHALLENGE.
 */
async function templates(challenge: Uint8Array, audience: string): Promise<Uint8Array[]> {
  const alice = makeUser("alice");
  const bob = makeUser("bob");
  const a = alice.identity.verified.identity_key as Uint8Array<ArrayBuffer>;
  const b = bob.identity.verified.identity_key as Uint8Array<ArrayBuffer>;
  const messages: ClientMessage[] = [
    // Several, with increasing timestamps: once one is accepted, only later ones get past REPLAY.
    ...(await Promise.all(
      Array.from({ length: 16 }, (_, k) =>
        signRegisterRequest(nobleCrypto, alice, {
          ttl_seconds: 60,
          timestamp: Date.now() + k * 1_000,
          id: 1,
          nonce: challenge,
          audience,
        }),
      ),
    )),
    { t: "LOOKUP_REQUEST", id: 2, target_identity: b, list_all: false },
    { t: "LOOKUP_REQUEST", id: 3, list_all: true },
    { t: "LIST_SERVERS_REQUEST", id: 4 },
    { t: "SUBSCRIBE", id: 5, keys: [a, b] },
    { t: "UNREGISTER", id: 6 },
    { t: "ROOM_JOIN", id: 8, room: new Uint8Array(32).fill(1), max: 8 },
    { t: "ROOM_LEAVE", id: 9, room: new Uint8Array(32).fill(1) },
    {
      t: "SIGNAL",
      id: 7,
      envelope: await signEnvelope(nobleCrypto, alice.privateIdentityKey, {
        from: a,
        to: b,
        kind: "offer",
        payload: new Uint8Array(64),
        timestamp: Date.now(),
        nonce: new Uint8Array(16),
      }),
    },
  ];
  return messages.map((m) => clientCodec.encode(m));
}

function frameArbitrary(base: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const random = fc.uint8Array({ maxLength: 600 });
  const mutated = fc
    .tuple(
      fc.constantFrom(...base),
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ op: fc.constant("cut" as const), at: fc.nat() }),
          fc.record({
            op: fc.constant("insert" as const),
            at: fc.nat(),
            bytes: fc.uint8Array({ maxLength: 8 }),
          }),
          fc.record({
            op: fc.constant("set" as const),
            at: fc.nat(),
            value: fc.integer({ min: 0, max: 255 }),
          }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([frame, ops]) => {
      let out = frame.slice();
      for (const op of ops) {
        const at = out.length === 0 ? 0 : op.at % out.length;
        if (op.op === "flip") out[at] = (out[at] ?? 0) ^ (1 << op.bit);
        else if (op.op === "set") out[at] = op.value;
        else if (op.op === "cut") out = out.slice(0, at);
        else {
          const next = new Uint8Array(out.length + op.bytes.length);
          next.set(out.subarray(0, at));
          next.set(op.bytes, at);
          next.set(out.subarray(at), at + op.bytes.length);
          out = next;
        }
      }
      return out;
    });
  const value = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.string({ maxLength: 40 }),
    fc.uint8Array({ maxLength: 80 }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom("from", "to", "kind", "payload", "timestamp", "nonce", "signature"),
      fc.oneof(fc.uint8Array({ maxLength: 70 }), fc.integer(), fc.string({ maxLength: 8 })),
    ),
  );
  const structured = fc
    .tuple(fc.constantFrom(...TAGS), fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 }))
    .map(([t, fields]) => encodeCanonical({ ...fields, t }));
  return fc.oneof(
    { arbitrary: random, weight: 2 },
    { arbitrary: mutated, weight: 5 },
    { arbitrary: structured, weight: 3 },
  );
}

describe("signaling server under fuzzed frames", () => {
  it(`survives ${FUZZ_RUNS} random/mutated frames and still serves well-behaved clients`, async () => {
    const unlimited = 10_000_000;
    const server = await startSignaling({
      connRate: unlimited,
      connBurst: unlimited,
      sourceRate: unlimited,
      sourceBurst: unlimited,
      maxRegistrationsPerSource: unlimited,
      listAll: true,
      // Fuzzing the handlers, not the verification budget (signaling/hardening.test.ts has that).
      sourceCpuMs: 1_000,
      sourceCpuBurstMs: 60_000,
    });
    try {
      const conns = await Promise.all([0, 1, 2, 3].map(() => RawClient.hello(server.url)));
      const challenge = (await conns[0]!.challenged)!;
      const frames = fc.sample(frameArbitrary(await templates(challenge, server.url)), {
        numRuns: FUZZ_RUNS,
        seed: 0x5167,
      });
      expect(frames.length).toBeGreaterThanOrEqual(10_000);
      // One fuzz target is registered, so fuzzed SIGNALs and SUBSCRIBEs can reach a live identity.
      const target = makeUser("target");
      expect((await conns[1]!.request(await registerOn(conns[1]!, target, { id: 1 }))).t).toBe(
        "REGISTER_RESPONSE",
      );
      const BATCH = 250;
      let sentinel = 0xffff_0000;
      for (let i = 0; i < frames.length; i += BATCH) {
        // Mostly the connection the REGISTER template is bound to; every fourth batch elsewhere.
        const batch = i / BATCH;
        const c = conns[batch % 4 === 3 ? 1 + (Math.floor(batch / 4) % 3) : 0]!;
        for (const f of frames.slice(i, i + BATCH)) c.sendRaw(f);
        // In-order processing: the sentinel's answer means the whole batch was handled.
        const reply = await c.request({ t: "LIST_SERVERS_REQUEST", id: ++sentinel });
        expect(reply.t).toBe("LIST_SERVERS_RESPONSE");
      }
      for (const c of conns) expect(c.isClosed).toBe(false);

      const metrics = await server.metrics();
      expect(metricValue(metrics, "loft_signaling_errors_total", 'code="INTERNAL"')).toBe(0);
      expect(metricValue(metrics, "loft_signaling_errors_total", 'code="MALFORMED"')).toBeGreaterThan(1_000);
      // Mutated REGISTERs got as far as signature verification.
      expect(metricValue(metrics, "loft_signaling_errors_total", 'code="BAD_SIGNATURE"')).toBeGreaterThan(0);

      const alice = makeUser("alice");
      const bob = makeUser("bob");
      const a = new SignalingClient({ url: server.url, user: alice, connect: wsFactory() });
      const b = new SignalingClient({ url: server.url, user: bob, connect: wsFactory() });
      await Promise.all([a.start(), b.start()]);
      expect((await a.lookup(bob.identity.verified.identity_key)).online).toBe(true);
      const got = new Promise<void>((resolve) => b.on((e) => e.type === "signal" && resolve()));
      await a.signal(bob.identity.verified.identity_key, "offer", new Uint8Array([1, 2, 3]));
      await got;
      a.close();
      b.close();
      for (const c of conns) c.close();
    } finally {
      await server.close();
    }
  });
});
