/**
 * The relay's entry point under fuzz: FUZZ_RUNS random frames to a live relay on loopback —
 * garbage, damaged valid frames, wrong-typed fields, and well-formed commands with random or real
 * ids, right or wrong signatures — plus random first frames on fresh connections. Every frame gets
 * a typed answer or a transport-level close; afterwards the relay is healthy: /health answers, a
 * full queue round trip works, no internal error was counted.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utf8 } from "../../core/bytes.ts";
import { encodeVersionHeader } from "../../core/codec/version.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import {
  authenticateCommand,
  authPublicKey,
  deriveAuthKey,
  newAuthKeyPair,
  newDhKeyPair,
  signCommand,
} from "../../core/relay/crypto.ts";
import {
  type Command,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  type ServerFrame,
} from "../../core/relay/protocol.ts";
import { connectRelay, RawSocket, startTestRelay, type TestRelay } from "../../relay-ws/testing.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { fieldSwapArb, mutate, mutationArb } from "./mutations.ts";

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay({ ratePerSecond: 0, maxFrameBytes: 32_768, queueQuota: 64 });
});
afterAll(async () => {
  await relay.close();
});

const ALLOWED_ERRORS = new Set([
  "AUTH",
  "QUOTA",
  "NO_MSG",
  "PROHIBITED",
  "DUPLICATE",
  "LIMIT",
  "NO_BUNDLE",
  "LARGE",
  "MALFORMED",
  "SCHEMA",
  "UNKNOWN",
]);

interface Real {
  rid: Uint8Array;
  sid: Uint8Array;
  rk: Uint8Array;
  sk: Uint8Array;
}

/**
 * A real queue, secured by a sender key, so structured commands reach real state; `request` sends
 * one command authorized by a key (signed under 1.0, authenticated under 1.1).
 */
async function securedQueue(
  request: (command: Command, key: Uint8Array) => Promise<ServerFrame>,
): Promise<Real> {
  const rk = newAuthKeyPair();
  const sk = newAuthKeyPair();
  const ids = await request(
    { k: "NEW", i: 1, rk: rk.publicKey, dk: newDhKeyPair().publicKey, sub: false },
    rk.secretKey,
  );
  if (ids.k !== "IDS") throw new Error("no queue");
  const real: Real = { rid: ids.r, sid: ids.s, rk: rk.secretKey, sk: sk.secretKey };
  expect((await request({ k: "SKEY", i: 2, q: real.sid, sk: sk.publicKey }, sk.secretKey)).k).toBe("OK");
  return real;
}

/** A structured command: real or random ids, right, wrong or no signature. */
function commandArb(real: Real): fc.Arbitrary<{ cmd: Command; key: "r" | "s" | "wrong" | "none" }> {
  const id = fc.oneof(
    fc.constant(real.rid),
    fc.constant(real.sid),
    fc.uint8Array({ minLength: 24, maxLength: 24 }),
  );
  const k32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const i = fc.integer({ min: 1, max: 0xffff_ffff });
  const cmd: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ k: fc.constant("PING" as const), i }),
    fc.record({ k: fc.constant("NEW" as const), i, rk: k32, dk: k32, sub: fc.boolean() }),
    fc.record({ k: fc.constant("KEY" as const), i, q: id, sk: k32 }),
    fc.record({ k: fc.constant("SKEY" as const), i, q: id, sk: k32 }),
    fc.record({
      k: fc.constant("SEND" as const),
      i,
      q: id,
      n: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      b: fc.uint8Array({ maxLength: 200 }),
    }),
    fc.record({ k: fc.constant("SUB" as const), i, q: id, w: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ k: fc.constant("GET" as const), i, q: id }),
    fc.record({
      k: fc.constant("ACK" as const),
      i,
      q: id,
      m: fc.uint8Array({ minLength: 24, maxLength: 24 }),
    }),
    fc.record({
      k: fc.constant("PKSET" as const),
      i,
      q: id,
      po: fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 3 }),
      pr: fc.boolean(),
    }),
    fc.record({ k: fc.constant("PKGET" as const), i, q: id }),
  );
  return fc.record({
    cmd,
    key: fc.constantFrom("r" as const, "s" as const, "wrong" as const, "none" as const),
  });
}

describe("relay server under fuzz", () => {
  it(`answers ${FUZZ_RUNS} random frames with typed errors and stays healthy`, async () => {
    let s = await RawSocket.open(relay.url);
    const real = await securedQueue((command, key) => s.request(command, key));

    const samples = [
      ...commands(real, s.sessionId),
      ...fc.sample(fc.uint8Array({ maxLength: 200 }), Math.ceil(FUZZ_RUNS / 5)),
    ];
    const pool = samples.slice(0, 200);
    const mutated = fc.sample(
      fc.tuple(fc.constantFrom(...pool), mutationArb).map(([f, m]) => mutate(f, m, pool)),
      Math.ceil(FUZZ_RUNS / 5),
    );
    const swapped = fc.sample(
      fieldSwapArb(
        fc.sample(commandArb(real), 50).map((c) => c.cmd as unknown as Record<string, unknown>),
      ).map((t) => encodeClientFrame(t)),
      Math.ceil(FUZZ_RUNS / 5),
    );
    const oversized = [new Uint8Array(32_769), new Uint8Array(40_000)];
    const everything = [...samples, ...mutated, ...swapped, ...oversized];
    const frames = fc.sample(fc.shuffledSubarray(everything, { minLength: everything.length }), 1)[0]!;
    expect(frames.length).toBeGreaterThanOrEqual(FUZZ_RUNS);

    function commands(r: Real, session: Uint8Array): Uint8Array[] {
      return fc.sample(commandArb(r), Math.ceil((FUZZ_RUNS * 2) / 5)).map(({ cmd, key }) => {
        const t = encodeCommand(cmd);
        const secret =
          key === "r" ? r.rk : key === "s" ? r.sk : key === "wrong" ? newAuthKeyPair().secretKey : undefined;
        return encodeClientFrame(t, secret ? signCommand(secret, session, t) : undefined);
      });
    }

    // Send in batches, each closed by a PING whose OK proves every earlier frame was read.
    const codes = new Map<string, number>();
    let reopened = 0;
    let ping = 0xfff0_0000;
    for (let at = 0; at < frames.length; at += 250) {
      for (const f of frames.slice(at, at + 250)) s.send(f);
      const mark = ++ping;
      s.send(encodeClientFrame(encodeCommand({ k: "PING", i: mark })));
      for (;;) {
        const raw = await s.next();
        if (!raw) {
          // Closed for a transport-level violation: only 1009 (frame over twice the limit) may do it.
          expect(s.closeCode).toBe(1009);
          reopened++;
          s = await RawSocket.open(relay.url);
          break;
        }
        const d = decodeServerFrame(raw, 1 << 20);
        expect(d.ok).toBe(true);
        if (!d.ok) break;
        const f = d.value;
        if (f.k === "ERR") {
          expect(ALLOWED_ERRORS.has(f.e), `unexpected ${f.e}`).toBe(true);
          codes.set(f.e, (codes.get(f.e) ?? 0) + 1);
        }
        if (f.k === "OK" && f.i === mark) break;
      }
    }
    expect(codes.get("AUTH")).toBeGreaterThan(0);
    expect(codes.get("MALFORMED")).toBeGreaterThan(0);
    expect(codes.get("SCHEMA")).toBeGreaterThan(0);
    expect(reopened).toBeLessThanOrEqual(2);
    s.close();

    // Random first frames on fresh connections: VERSION and a 1002 close, or a HELLO.
    for (const first of fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 80 }),
        mutationArb.map((m) => mutate(encodeVersionHeader(), m, [encodeVersionHeader()])),
      ),
      200,
    )) {
      const c = await RawSocket.open(relay.url, false);
      await c.next();
      c.send(first);
      const reply = await c.nextFrame();
      if (reply.k === "ERR") {
        expect(reply.e).toBe("VERSION");
        await c.closed;
        expect(c.closeCode).toBe(1002);
      } else expect(reply.k).toBe("HELLO");
      c.close();
    }

    // Still healthy: /health, a full round trip, no internal errors.
    const health = await fetch(`http://127.0.0.1:${relay.port}/health`);
    expect(health.status).toBe(200);
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    const body = new Uint8Array(randomBytes(500));
    await bob.send(sender, body);
    const m = await alice.get(q);
    expect(m!.body).toEqual(body);
    await alice.ack(q, m!.msgId);
    await bob.send(sender, utf8("still fine"));
    const errors = await relay.registry.getSingleMetric("loft_relay_errors_total")!.get();
    expect(errors.values.find((v) => v.labels.code === "INTERNAL")?.value ?? 0).toBe(0);
    alice.close();
    bob.close();
  });

  it(`protocol 1.1: ${FUZZ_RUNS / 10} commands with right, wrong, replayed, reordered and 1.0 authorizations`, async () => {
    const s = await RawSocket.open(relay.url, true, {}, "authenticator");
    const real = await securedQueue((command, key) => s.authRequest(command, key));
    const keyOf = async (secret: Uint8Array) => {
      const k = await deriveAuthKey(
        nobleCrypto,
        secret,
        authPublicKey(secret),
        s.connectionKey!,
        s.sessionId,
      );
      if (!k.ok) throw k.error;
      return k.value;
    };
    const keys = {
      r: await keyOf(real.rk),
      s: await keyOf(real.sk),
      wrong: await keyOf(newAuthKeyPair().secretKey),
    };
    // Ids grow with the sequence; some frames are sent twice, some carry an id already passed,
    // some a 1.0 signature, some a random tag.
    const plan = fc.sample(
      fc.record({
        c: commandArb(real),
        how: fc.constantFrom("ok", "ok", "ok", "replay", "stale", "signature", "random"),
      }),
      FUZZ_RUNS / 10,
    );
    const frames: Uint8Array[] = [];
    let next = 10;
    for (const { c, how } of plan) {
      if (how !== "stale") next += 2;
      const i = how === "stale" ? Math.max(1, next - 5) : next;
      const t = encodeCommand({ ...c.cmd, i } as Command);
      const key = c.key === "none" ? undefined : keys[c.key];
      const a =
        key === undefined
          ? undefined
          : how === "signature"
            ? signCommand(c.key === "r" ? real.rk : real.sk, s.sessionId, t)
            : how === "random"
              ? new Uint8Array(randomBytes(32))
              : await authenticateCommand(nobleCrypto, key, t);
      const frame = encodeClientFrame(t, a);
      frames.push(frame);
      if (how === "replay") frames.push(frame);
    }
    const codes = new Map<string, number>();
    let ping = 0xfff0_0000;
    for (let at = 0; at < frames.length; at += 250) {
      for (const f of frames.slice(at, at + 250)) s.send(f);
      const mark = ++ping;
      s.send(encodeClientFrame(encodeCommand({ k: "PING", i: mark })));
      for (;;) {
        const raw = await s.next();
        expect(raw, `closed: ${s.closeCode} ${s.closeReason}`).toBeDefined();
        if (!raw) return;
        const d = decodeServerFrame(raw, 1 << 20);
        expect(d.ok).toBe(true);
        if (!d.ok) break;
        const f = d.value;
        const kind = f.k === "ERR" ? f.e : f.k;
        if (f.k === "ERR") expect(ALLOWED_ERRORS.has(f.e), `unexpected ${f.e}`).toBe(true);
        codes.set(kind, (codes.get(kind) ?? 0) + 1);
        if (f.k === "OK" && f.i === mark) break;
      }
    }
    expect(codes.get("AUTH")).toBeGreaterThan(0);
    expect(codes.get("OK")).toBeGreaterThan(frames.length / 250);
    s.close();
    const errors = await relay.registry.getSingleMetric("loft_relay_errors_total")!.get();
    expect(errors.values.find((v) => v.labels.code === "INTERNAL")?.value ?? 0).toBe(0);
  });
});
