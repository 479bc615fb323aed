/**
 * The relay path's codecs (docs/device.md §13): the device messages `link`, `linked`, `relay-in`,
 * `relay-took`, `relay-out`, and the `dev.*` application messages a device reads from its owner —
 * round trips, typed refusals (non-canonical, unknown, ill-shaped, oversized) and fuzzing; and the
 * ratchet both sides start from one serial session.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { padToBucket } from "../codec/padding.ts";
import { createUserIdentity } from "../identity/identity.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { generateRatchetKeyPair, ratchetDecrypt, ratchetEncrypt } from "../ratchet/index.ts";
import { establishSession, type Session } from "../session/session.ts";
import { decodeDeviceMessage, encodeDeviceMessage, MAX_BRIDGED_BYTES } from "./messages.ts";
import { decodeDeviceAppMessage, encodeDeviceAppMessage, startDeviceRatchet } from "./relay.ts";

/** An owner (initiator) and a device (responder) session over a memory link, serial kind, XX. */
async function sessionPair(): Promise<[Session, Session]> {
  const owner = await createUserIdentity({ username: "owner", now: Date.now() });
  const device = await createUserIdentity({
    username: "device",
    now: Date.now(),
    flags: { is_machine_account: true },
  });
  const [a, b] = memoryLinkPair();
  return Promise.all([
    establishSession({ link: a, role: "initiator", kind: "serial", self: owner, protocol: "XX" }),
    establishSession({ link: b, role: "responder", kind: "serial", self: device, protocol: "XX" }),
  ]);
}
const f = (n: number, v: number) => new Uint8Array(n).fill(v);
const link = {
  t: "link",
  q: { u: "wss://relay.example/relay", r: f(24, 1), s: f(24, 2), a: f(32, 3), k: f(32, 4) },
  m: { u: "wss://relay.example/relay", s: f(24, 5), k: f(32, 6) },
} as const;

describe("relay device messages", () => {
  it("round-trip; refuse ill-shaped and oversized ones with LOFT_ERR_SCHEMA", () => {
    for (const m of [
      link,
      { t: "linked", k: f(32, 7) },
      { t: "relay-in", b: f(MAX_BRIDGED_BYTES, 8) },
      { t: "relay-out", b: f(1, 9) },
      { t: "relay-took" },
    ] as const) {
      const r = decodeDeviceMessage(encodeDeviceMessage(m));
      expect(r.ok && r.value).toEqual(m);
    }
    for (const bad of [
      { ...link, q: { ...link.q, u: "https://relay.example/" } },
      { ...link, q: { ...link.q, r: f(23, 1) } },
      { ...link, m: { ...link.m, k: f(31, 1) } },
      { ...link, extra: 1 },
      { t: "linked", k: f(33, 7) },
      { t: "relay-in", b: new Uint8Array(0) },
      { t: "relay-out", b: f(MAX_BRIDGED_BYTES + 1, 1) },
      { t: "relay-took", b: f(1, 1) },
    ]) {
      const r = decodeDeviceMessage(encodeCanonical(bad));
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_SCHEMA");
    }
  });
  // Mutated and arbitrary bytes: the seeds of codecs.test.ts's device-message fuzz include these.
});

describe("dev.* application messages", () => {
  it("round-trip padded; other chat messages are LOFT_ERR_UNKNOWN_TYPE; non-canonical is LOFT_ERR_MALFORMED", () => {
    for (const m of [
      { t: "sync" },
      { t: "dev.cmd", id: 1, c: "led on" },
      { t: "dev.out", id: 1, ok: true, m: "x".repeat(1024) },
      { t: "dev.telemetry", n: 3, at: 1_700_000_000_000, r: { "temp.c": 21.5 } },
    ] as const) {
      const padded = encodeDeviceAppMessage(m);
      expect(padded.length).toBeGreaterThanOrEqual(256);
      const r = decodeDeviceAppMessage(padded);
      expect(r.ok && r.value).toEqual(m);
    }
    const chat = decodeDeviceAppMessage(
      padToBucket(encodeCanonical({ t: "msg", id: "a".repeat(22), at: 1, text: "hi" })),
    );
    expect(!chat.ok && chat.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    const long = decodeDeviceAppMessage(
      padToBucket(encodeCanonical({ t: "dev.cmd", id: 1, c: "x".repeat(129) })),
    );
    expect(!long.ok && long.error.code).toBe("LOFT_ERR_SCHEMA");
    // {t: "sync"} with the map's key as a str8 instead of a fixstr: same value, not canonical.
    const nc = decodeDeviceAppMessage(
      padToBucket(new Uint8Array([0x81, 0xd9, 0x01, 0x74, 0xa4, 0x73, 0x79, 0x6e, 0x63])),
    );
    expect(!nc.ok && nc.error.code).toBe("LOFT_ERR_MALFORMED");
    const unpadded = decodeDeviceAppMessage(encodeCanonical({ t: "sync" }));
    expect(unpadded.ok).toBe(false);
  });

  it("decodes arbitrary bytes to a value or a typed error, never a throw", () => {
    const seed = encodeDeviceAppMessage({ t: "dev.cmd", id: 9, c: "read" });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc
            .array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 3 })
            .map((flips) => {
              const b = seed.slice();
              for (const x of flips) b[x.at % b.length]! ^= x.xor;
              return b;
            }),
        ),
        (bytes) => {
          const r = decodeDeviceAppMessage(bytes);
          if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("the device ratchet", () => {
  it("starts equal on both ends of one session: the owner writes first, the device answers; a replay is refused", async () => {
    const [owner, device] = await sessionPair();
    const ownerKey = device.remoteIdentity.verified.identity_key;
    const deviceKey = owner.remoteIdentity.verified.identity_key;
    const kp = await generateRatchetKeyPair();
    const bob = await startDeviceRatchet(device, deviceKey, { ratchetKeyPair: kp });
    const alice = await startDeviceRatchet(owner, ownerKey, { deviceRatchetPublic: kp.publicKey });
    if (!alice.ok || !bob.ok) throw new Error("ratchet did not start");
    expect(alice.value.id).toEqual(bob.value.id);
    const first = await ratchetEncrypt(alice.value.state, encodeDeviceAppMessage({ t: "sync" }), Date.now());
    const read = await ratchetDecrypt(bob.value.state, first.message, Date.now());
    expect(read.ok).toBe(true);
    if (!read.ok) return;
    const again = await ratchetDecrypt(read.value.state, first.message, Date.now());
    expect(!again.ok && again.error.code).toBe("LOFT_ERR_REPLAY");
    const answer = await ratchetEncrypt(
      read.value.state,
      encodeDeviceAppMessage({ t: "dev.out", id: 1, ok: true, m: "ok" }),
      Date.now(),
    );
    const got = await ratchetDecrypt(first.state, answer.message, Date.now());
    expect(got.ok && decodeDeviceAppMessage(got.value.plaintext)).toMatchObject({
      ok: true,
      value: { t: "dev.out", m: "ok" },
    });
    // Another session's ratchet does not read it.
    const [o2, d2] = await sessionPair();
    const kp2 = await generateRatchetKeyPair();
    const bob2 = await startDeviceRatchet(d2, o2.remoteIdentity.verified.identity_key, {
      ratchetKeyPair: kp2,
    });
    if (!bob2.ok) throw new Error("no ratchet");
    expect((await ratchetDecrypt(bob2.value.state, first.message, Date.now())).ok).toBe(false);
  });
});
