/**
 * Property tests for the session layer's decoders and receive path: the transport frame
 * assembler (frames.ts) and the handshake payload decoder (payload.ts) fed garbage and mutated
 * valid input, FUZZ_RUNS cases each — only typed errors come out, reordering never splices a
 * message, a changed identity never decodes — and live sessions whose transport frames are
 * flipped, replayed, dropped or reordered in transit: the receiver closes with a typed reason
 * and never delivers anything the sender did not send, in order.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { LoftErrorCode } from "../errors.ts";
import { createUserIdentity, encodeIdentity } from "../identity/identity.ts";
import type { Link } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { TAGLEN } from "../noise/primitives.ts";
import { closeFrame, FrameAssembler, MAX_DATA_PAYLOAD, messageFrames } from "./frames.ts";
import { decodeHandshakePayload, encodeHandshakePayload } from "./payload.ts";
import { establishSession, type Session } from "./session.ts";

/** `npm run fuzz` raises FUZZ_RUNS twentyfold: give each property time in proportion. */
const PROPERTY_TIMEOUT = Math.max(60_000, FUZZ_RUNS * 5);

const ASSEMBLER_ERRORS: LoftErrorCode[] = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_CHUNK_LIMIT",
  "LOFT_ERR_UNKNOWN_TYPE",
];

const pattern = (n: number, salt: number) => {
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = (i * 13 + salt) & 0xff;
  return m;
};
/** Frame plaintexts as the sender produces them (without the 16 spare tag bytes). */
const plain = (frames: Uint8Array[]) => frames.map((f) => f.subarray(0, f.length - TAGLEN));

const originals = [pattern(10, 1), pattern(150_000, 2), pattern(0, 3), pattern(70_000, 4)];
const validStream: Uint8Array[] = [];
{
  let id = 0;
  for (const m of originals) {
    const frames = messageFrames(m, id);
    if (frames.length > 1) id++;
    validStream.push(...plain(frames));
  }
  validStream.push(...plain([closeFrame("bye")]));
}

describe("FrameAssembler", () => {
  it("reassembles the valid stream exactly (not vacuous)", () => {
    const asm = new FrameAssembler(1_000_000);
    const out: Uint8Array[] = [];
    for (const f of validStream) {
      const r = asm.push(f);
      if (!r.ok) throw r.error;
      if (r.value.kind === "message") out.push(r.value.message);
    }
    expect(out.length).toBe(originals.length);
    for (const [i, m] of out.entries()) expect(equalBytes(m, originals[i]!)).toBe(true);
  });

  it(
    "garbage, flipped, truncated, dropped, duplicated or swapped frames: typed errors, never a spliced message",
    () => {
      const edit = fc.oneof(
        fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), pos: fc.nat(), bit: fc.nat(7) }),
        fc.record({ kind: fc.constant("truncate" as const), at: fc.nat(), pos: fc.nat() }),
        fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }),
        fc.record({ kind: fc.constant("duplicate" as const), at: fc.nat(), to: fc.nat() }),
        fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), to: fc.nat() }),
        fc.record({
          kind: fc.constant("garbage" as const),
          at: fc.nat(),
          junk: fc.uint8Array({ maxLength: 300 }),
        }),
      );
      fc.assert(
        fc.property(
          fc.array(edit, { minLength: 1, maxLength: 3 }),
          fc.integer({ min: 1, max: 200_000 }),
          (edits, limit) => {
            const stream = validStream.slice();
            let bytesChanged = false;
            for (const e of edits) {
              const at = e.at % stream.length;
              if (e.kind === "flip") {
                const f = stream[at]!.slice();
                if (f.length === 0) continue;
                f[e.pos % f.length]! ^= 1 << e.bit;
                stream[at] = f;
                bytesChanged = true;
              } else if (e.kind === "truncate") {
                stream[at] = stream[at]!.subarray(0, e.pos % (stream[at]!.length + 1));
                bytesChanged = true;
              } else if (e.kind === "drop") stream.splice(at, 1);
              else if (e.kind === "duplicate") stream.splice(e.to % (stream.length + 1), 0, stream[at]!);
              else if (e.kind === "swap") {
                const to = e.to % stream.length;
                [stream[at], stream[to]] = [stream[to]!, stream[at]!];
              } else {
                stream.splice(at, 0, e.junk);
                bytesChanged = true;
              }
              if (stream.length === 0) return;
            }
            const asm = new FrameAssembler(limit);
            for (const f of stream) {
              const r = asm.push(f);
              if (!r.ok) {
                expect(ASSEMBLER_ERRORS).toContain(r.error.code);
                break;
              }
              if (r.value.kind === "close") break;
              if (r.value.kind === "message" && !bytesChanged) {
                // Frames moved around but unchanged: whatever comes out is one of the originals.
                const m = r.value.message;
                expect(originals.some((o) => equalBytes(o, m))).toBe(true);
                expect(m.length).toBeLessThanOrEqual(limit);
              }
            }
          },
        ),
        { numRuns: FUZZ_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );
});

describe("decodeHandshakePayload", () => {
  const user = createUserIdentity({
    username: "fuzz",
    now: 1_700_000_000_000,
    seed: new Uint8Array(32).fill(9),
  });
  const identityBytes = encodeIdentity(user.identity);
  const valid = encodeHandshakePayload(user.identity, { ratchet_key: new Uint8Array(32).fill(7) });

  it("decodes the valid payload (not vacuous)", async () => {
    const r = await decodeHandshakePayload(nobleCrypto, valid);
    expect(r.ok && r.value.identity.verified.username).toBe("fuzz");
  });

  it(
    "garbage and mutations: typed errors only, and a changed identity never decodes",
    async () => {
      const input = fc.oneof(
        fc.uint8Array({ maxLength: 600 }),
        fc.tuple(fc.nat(valid.length * 8 - 1)).map(([bit]) => {
          const m = valid.slice();
          m[bit >> 3]! ^= 1 << (bit & 7);
          return m;
        }),
        fc.nat(valid.length - 1).map((n) => valid.subarray(0, n)),
        fc
          .tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 16 }))
          .map(([at, junk]) => {
            const m = valid.slice();
            m.set(junk.subarray(0, m.length - at), at);
            return m;
          }),
      );
      await fc.assert(
        fc.asyncProperty(input, async (bytes) => {
          const r = await decodeHandshakePayload(nobleCrypto, bytes);
          if (!r.ok) {
            expect([...ASSEMBLER_ERRORS, "LOFT_ERR_BAD_SIGNATURE", "LOFT_ERR_BAD_IDENTITY"]).toContain(
              r.error.code,
            );
            return;
          }
          // Only the unsigned extension bytes may differ; the identity is exactly the signed one.
          expect(equalBytes(encodeIdentity(r.value.identity), identityBytes)).toBe(true);
        }),
        { numRuns: FUZZ_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );
});

describe("live sessions with transport frames tampered in transit", () => {
  const alice = createUserIdentity({ username: "alice", now: 1, seed: new Uint8Array(32).fill(1) });
  const bob = createUserIdentity({ username: "bob", now: 1, seed: new Uint8Array(32).fill(2) });

  /** Forwards initiator → responder, applying `edit` to the list of transport frames once 5 are in. */
  function tamperingRelay(from: Link, to: Link, edit: (frames: Uint8Array[]) => Uint8Array[]) {
    const held: Uint8Array[] = [];
    void (async () => {
      for (let i = 0; ; i++) {
        let m: Uint8Array;
        try {
          m = await from.receive();
        } catch {
          return;
        }
        if (to.state === "closed") return;
        if (i < 3) {
          to.send(m); // version header, handshake messages 1 and 3
          continue;
        }
        held.push(m);
        if (held.length === 5) for (const f of edit(held)) to.send(f);
      }
    })();
    void (async () => {
      for (;;) {
        try {
          const m = await to.receive();
          if (from.state !== "closed") from.send(m);
        } catch {
          from.close();
          return;
        }
      }
    })();
  }

  it("the receiver closes with a typed reason and delivers only a correct prefix", async () => {
    const edits = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(4), pos: fc.nat() }),
      fc.record({ kind: fc.constant("replay" as const), at: fc.nat(4), of: fc.nat(4) }),
      fc.record({ kind: fc.constant("drop" as const), at: fc.nat(3) }),
      fc.record({ kind: fc.constant("swap" as const), at: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(edits, async (e) => {
        const [la, relayA] = memoryLinkPair();
        const [relayB, lb] = memoryLinkPair();
        tamperingRelay(relayA, relayB, (frames) => {
          const f = frames.map((x) => x.slice());
          if (e.kind === "flip") f[e.at]![e.pos % f[e.at]!.length]! ^= 1;
          else if (e.kind === "replay") f.splice(e.at + 1, 0, f[Math.min(e.of, e.at)]!);
          else if (e.kind === "drop") f.splice(e.at, 1);
          else [f[e.at], f[e.at + 1]] = [f[e.at + 1]!, f[e.at]!];
          return f;
        });
        const [a, b] = await Promise.all([
          establishSession({ link: la, role: "initiator", kind: "direct", self: alice, protocol: "XX" }),
          establishSession({ link: lb, role: "responder", kind: "direct", self: bob, protocol: "XX" }),
        ]);
        const sent = Array.from({ length: 5 }, (_, i) => utf8(`message ${i}`));
        for (const m of sent) a.send(m);
        const got: Uint8Array[] = [];
        for (;;) {
          try {
            got.push(await b.receive());
          } catch {
            break;
          }
        }
        expect((await b.closed).reason).toBe("LOFT_ERR_DECRYPT");
        expect(got.length).toBeLessThanOrEqual(sent.length);
        for (const [i, m] of got.entries()) expect(m).toEqual(sent[i]);
        a.close();
      }),
      { numRuns: 100 }, // a full handshake per case; the decoders above carry the FUZZ_RUNS budget
    );
  });

  it(
    "a mutated version header or handshake message in transit never yields a working session",
    async () => {
      // Forward (initiator → responder) messages: 0 version header, 1 Noise message 1, 2 message 3;
      // backward: 0 version header, 1 message 2.
      const target = fc.record({
        forward: fc.boolean(),
        index: fc.nat(2),
        mutate: fc.oneof(
          fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.nat(7) }),
          fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
          fc.record({ kind: fc.constant("garbage" as const), junk: fc.uint8Array({ maxLength: 120 }) }),
        ),
      });
      await fc.assert(
        fc.asyncProperty(target, async ({ forward, index, mutate }) => {
          const at = forward ? index : Math.min(index, 1);
          const change = (m: Uint8Array): Uint8Array => {
            if (mutate.kind === "garbage") return mutate.junk;
            if (mutate.kind === "truncate") return m.subarray(0, mutate.pos % m.length);
            const c = m.slice();
            c[mutate.pos % c.length]! ^= 1 << mutate.bit;
            return c;
          };
          const [la, relayA] = memoryLinkPair();
          const [relayB, lb] = memoryLinkPair();
          const pipe = async (from: Link, to: Link, rewrite: boolean) => {
            for (let i = 0; ; i++) {
              let m: Uint8Array;
              try {
                m = await from.receive();
              } catch {
                to.close((await from.closed).detail ?? "closed");
                return;
              }
              if (to.state !== "closed") to.send(rewrite && i === at ? change(m) : m);
            }
          };
          void pipe(relayA, relayB, forward);
          void pipe(relayB, relayA, !forward);
          const outcome = async (p: Promise<Session>) => {
            try {
              const s = await p;
              // A session that exists must be closed by its peer's refusal, never deliver data.
              const closed = await s.closed;
              return `session closed: ${closed.reason}`;
            } catch (e) {
              return (e as { code?: string }).code ?? String(e);
            }
          };
          const results = await Promise.all([
            outcome(
              establishSession({ link: la, role: "initiator", kind: "direct", self: alice, protocol: "XX" }),
            ),
            outcome(
              establishSession({ link: lb, role: "responder", kind: "direct", self: bob, protocol: "XX" }),
            ),
          ]);
          for (const r of results)
            expect(r).toMatch(/^(LOFT_ERR_[A-Z_]+|session closed: LOFT_ERR_LINK_CLOSED)$/);
          expect(results.filter((r) => r.startsWith("session"))).not.toHaveLength(2);
        }),
        { numRuns: 100 },
      );
    },
    PROPERTY_TIMEOUT,
  );
});

describe('bulk frames and the other messages of one session (docs/protocol/session.md §5, "Bulk frames")', () => {
  const alice = createUserIdentity({ username: "alice", now: 1, seed: new Uint8Array(32).fill(1) });
  const bob = createUserIdentity({ username: "bob", now: 1, seed: new Uint8Array(32).fill(2) });

  it(
    "any interleaving of bulk and other messages, single frames and chunked ones: every message arrives whole, each kind in its order, the session stays open",
    async () => {
      const op = fc.record({
        bulk: fc.boolean(),
        chunked: fc.boolean(), // over one DATA frame: CHUNK frames with a message id
        pause: fc.boolean(), // a turn of the event loop first: the send chain is part way through
      });
      // One live session for every case (message ids and nonces run on across them, as in a long
      // session): a case that breaks it fails the ones after it too, so the first failing case is
      // the one to read, not the one fast-check shrinks to.
      const [la, lb] = memoryLinkPair();
      const [a, b] = await Promise.all([
        establishSession({ link: la, role: "initiator", kind: "direct", self: alice, protocol: "XX" }),
        establishSession({ link: lb, role: "responder", kind: "direct", self: bob, protocol: "XX" }),
      ]);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
          const sent: { id: number; bulk: boolean }[] = [];
          for (const o of ops) {
            if (o.pause) await new Promise((resolve) => setTimeout(resolve, 0));
            const id = n++;
            const m = new Uint8Array(o.chunked ? MAX_DATA_PAYLOAD + 100 : 8).fill(id & 0xff);
            new DataView(m.buffer).setUint32(0, id);
            if (o.bulk) a.sendParts([m], { bulk: true });
            else a.send(m);
            sent.push({ id, bulk: o.bulk });
          }
          await a.flushed();
          const got: number[] = [];
          for (let i = 0; i < sent.length; i++) {
            const m = await b.receive();
            const id = new DataView(m.buffer, m.byteOffset).getUint32(0);
            expect(m.length).toBe(
              ops[sent.findIndex((s) => s.id === id)]!.chunked ? MAX_DATA_PAYLOAD + 100 : 8,
            );
            expect(m.every((x, j) => j < 4 || x === (id & 0xff))).toBe(true);
            got.push(id);
          }
          expect([...got].sort((x, y) => x - y)).toEqual(sent.map((s) => s.id));
          const kind = (bulk: boolean) => sent.filter((s) => s.bulk === bulk).map((s) => s.id);
          expect(got.filter((id) => kind(true).includes(id))).toEqual(kind(true));
          expect(got.filter((id) => kind(false).includes(id))).toEqual(kind(false));
          expect(b.state).toBe("open");
          expect(a.dropped).toBe(0);
        }),
        { numRuns: 200 }, // each case seals up to 12 messages of up to 64 KiB on one live session
      );
      a.close();
    },
    PROPERTY_TIMEOUT,
  );
});
