/**
 * HandshakeState (Noise §5.3) for XX and XXhfs (Noise HFS §5): complete handshakes, the exact
 * message sizes, and each failure by its code — after which the state is zeroed and refuses
 * every further call.
 */
import { describe, expect, it } from "vitest";
import { faultyProvider, InjectedFault, secretsSeen } from "../../test/support/faulty-crypto.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import {
  HandshakeState,
  type PreparedEphemerals,
  prepareEphemerals,
  wipeEphemerals,
} from "./handshake-state.ts";
import { type HandshakePattern, XX, XX_HFS, XX_PSK3_AESGCM } from "./patterns.ts";
import { generateKeyPair, type KeyPair } from "./primitives.ts";

const prologue = utf8("loft test prologue");

async function pair(
  pattern: HandshakePattern,
  initiatorPrologue = prologue,
  responderPrologue = prologue,
  prepared?: PreparedEphemerals,
) {
  const si = await generateKeyPair();
  const sr = await generateKeyPair();
  return {
    si,
    sr,
    initiator: await HandshakeState.create({
      pattern,
      role: "initiator",
      prologue: initiatorPrologue,
      staticKeyPair: si,
      ...(prepared ? { prepared } : {}),
    }),
    responder: await HandshakeState.create({
      pattern,
      role: "responder",
      prologue: responderPrologue,
      staticKeyPair: sr,
    }),
  };
}

function must<T>(r: { ok: true; value: T } | { ok: false; error: Error }): T {
  if (!r.ok) throw r.error;
  return r.value;
}

describe.each([
  ["XX", XX, [32, 96, 64]],
  ["XXhfs", XX_HFS, [32 + 1184, 32 + 1088 + 16 + 48 + 16, 64]],
] as const)("%s handshake", (_name, pattern, sizes) => {
  it("completes: same handshake hash, each side learns the other's static key, payloads arrive", async () => {
    const { si, sr, initiator, responder } = await pair(pattern);
    const m1 = must(await initiator.writeMessage(utf8("one")));
    expect(m1.length).toBe(sizes[0] + 3);
    expect(must(await responder.readMessage(m1))).toEqual(utf8("one"));
    const m2 = must(await responder.writeMessage(utf8("two")));
    expect(m2.length).toBe(sizes[1] + 3);
    expect(must(await initiator.readMessage(m2))).toEqual(utf8("two"));
    const m3 = must(await initiator.writeMessage(utf8("three")));
    expect(m3.length).toBe(sizes[2] + 5);
    expect(must(await responder.readMessage(m3))).toEqual(utf8("three"));
    expect(initiator.status).toBe("complete");
    expect(responder.status).toBe("complete");

    const labels = ["loft ratchet bootstrap", "another label"];
    const a = must(await initiator.finish(labels));
    const b = must(await responder.finish(labels));
    expect(a.handshakeHash).toEqual(b.handshakeHash);
    expect(a.remoteStaticKey).toEqual(sr.publicKey);
    expect(b.remoteStaticKey).toEqual(si.publicKey);
    expect(a.protocolName).toBe(pattern.protocolName);

    const sealed = must(await a.send.encryptWithAd(new Uint8Array(0), utf8("ping")));
    expect(must(await b.receive.decryptWithAd(new Uint8Array(0), sealed))).toEqual(utf8("ping"));
    const back = must(await b.send.encryptWithAd(new Uint8Array(0), utf8("pong")));
    expect(must(await a.receive.decryptWithAd(new Uint8Array(0), back))).toEqual(utf8("pong"));
    // The two directions use different keys (Split's c1 / c2): same nonce (1), same plaintext.
    const fromA = must(await a.send.encryptWithAd(new Uint8Array(0), utf8("same")));
    const fromB = must(await b.send.encryptWithAd(new Uint8Array(0), utf8("same")));
    expect(equalBytes(fromA, fromB)).toBe(false);

    const exportedA = a.exportSecret("loft ratchet bootstrap");
    expect(exportedA).toHaveLength(32);
    expect(b.exportSecret("loft ratchet bootstrap")).toEqual(exportedA);
    expect(a.exportSecret("another label")).not.toEqual(exportedA);

    expect(initiator.status).toBe("finished");
    const twice = await initiator.finish(labels);
    expect(!twice.ok && twice.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("derives exports at finish and keeps no chaining key: other labels can't be derived later", async () => {
    const { initiator, responder } = await pair(pattern);
    must(await responder.readMessage(must(await initiator.writeMessage())));
    must(await initiator.readMessage(must(await responder.writeMessage())));
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const a = must(await initiator.finish(["loft/ratchet/v1"]));
    const b = must(await responder.finish(["loft/ratchet/v1"]));
    expect(a.exportSecret("loft/ratchet/v1")).toEqual(b.exportSecret("loft/ratchet/v1"));
    // With ck gone (docs/protocol/session.md §6), a label not derived at finish() is refused.
    expect(() => a.exportSecret("loft/other")).toThrow(RangeError);
    // The exported secret handed out is a copy: wiping the transport zeroes the kept one.
    const copy = a.exportSecret("loft/ratchet/v1");
    a.wipe();
    expect(copy.some((x) => x !== 0)).toBe(true);
    expect(() => a.exportSecret("loft/ratchet/v1")).toThrow(/after wipe/);
    // The handshake's own `ck`, `h` are zeroed at finish.
    expect(initiator.handshakeHash).toEqual(new Uint8Array(32));
    b.wipe();
  });

  it("a different prologue on one side fails the first encrypted read (LOFT_ERR_DECRYPT)", async () => {
    const { initiator, responder } = await pair(pattern, prologue, utf8("other prologue"));
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const r = await initiator.readMessage(must(await responder.writeMessage()));
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    expect(initiator.status).toBe("failed");
  });

  it("out-of-turn calls fail with LOFT_ERR_HANDSHAKE_STATE and leave a zeroed, dead state", async () => {
    const { initiator, responder } = await pair(pattern);
    const r = await responder.writeMessage();
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    expect(responder.status).toBe("failed");
    expect(responder.handshakeHash).toEqual(new Uint8Array(32));
    const again = await responder.readMessage(must(await initiator.writeMessage()));
    expect(!again.ok && again.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const fin = await responder.finish();
    expect(!fin.ok && fin.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");

    const early = await initiator.finish();
    expect(!early.ok && early.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const readFirst = await (await pair(pattern)).initiator.readMessage(new Uint8Array(100));
    expect(!readFirst.ok && readFirst.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("a truncated message is LOFT_ERR_MALFORMED, one over 65535 bytes LOFT_ERR_FRAME_TOO_LARGE", async () => {
    const { initiator, responder } = await pair(pattern);
    const m1 = must(await initiator.writeMessage());
    const short = await responder.readMessage(m1.subarray(0, sizes[0] - 1));
    expect(!short.ok && short.error.code).toBe("LOFT_ERR_MALFORMED");
    const { responder: r2 } = await pair(pattern);
    const big = await r2.readMessage(new Uint8Array(65536));
    expect(!big.ok && big.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("refuses to write a payload that would make the message exceed 65535 bytes", async () => {
    const { initiator } = await pair(pattern);
    const r = await initiator.writeMessage(new Uint8Array(65535 - sizes[0] + 1));
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const { initiator: i2 } = await pair(pattern);
    expect(must(await i2.writeMessage(new Uint8Array(65535 - sizes[0]))).length).toBe(65535);
  });

  it("a low-order ephemeral key from the peer fails with LOFT_ERR_MALFORMED", async () => {
    const { initiator, responder } = await pair(pattern);
    const m1 = must(await initiator.writeMessage());
    m1.fill(0, 0, 32); // u = 0, a low-order point (Noise §12.1 allows signalling an error)
    must(await responder.readMessage(m1));
    const r = await responder.writeMessage();
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_MALFORMED");
    expect(responder.status).toBe("failed");
  });

  it("a tampered message 2 or 3 fails with LOFT_ERR_DECRYPT", async () => {
    for (const target of [1, 2]) {
      const { initiator, responder } = await pair(pattern);
      const m1 = must(await initiator.writeMessage());
      must(await responder.readMessage(m1));
      const m2 = must(await responder.writeMessage());
      if (target === 1) {
        m2[m2.length - 1]! ^= 0x80;
        const r = await initiator.readMessage(m2);
        expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
        continue;
      }
      must(await initiator.readMessage(m2));
      const m3 = must(await initiator.writeMessage());
      m3[5]! ^= 1;
      const r = await responder.readMessage(m3);
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    }
  });

  it("leaves the caller's static key untouched, even after a failure wipes the state", async () => {
    const s: KeyPair = await generateKeyPair();
    const copy = s.privateKey.slice();
    const hs = await HandshakeState.create({ pattern, role: "responder", prologue, staticKeyPair: s });
    await hs.writeMessage();
    expect(hs.status).toBe("failed");
    expect(s.privateKey).toEqual(copy);
  });
});

describe("XX and XXhfs do not mix", () => {
  it("an XXhfs initiator and an XX responder fail (different protocol names in h)", async () => {
    const si = await generateKeyPair();
    const sr = await generateKeyPair();
    const initiator = await HandshakeState.create({
      pattern: XX_HFS,
      role: "initiator",
      prologue,
      staticKeyPair: si,
    });
    const responder = await HandshakeState.create({
      pattern: XX,
      role: "responder",
      prologue,
      staticKeyPair: sr,
    });
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const r = await initiator.readMessage(must(await responder.writeMessage()));
    expect(r.ok).toBe(false);
  });
});

describe("HandshakeState steps are async and one at a time", () => {
  it("a second step called while one runs is refused and leaves the running one intact", async () => {
    const { initiator, responder } = await pair(XX_HFS);
    const first = initiator.writeMessage();
    const second = await initiator.writeMessage();
    expect(!second.ok && second.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const m1 = must(await first);
    must(await responder.readMessage(m1));
    must(await initiator.readMessage(must(await responder.writeMessage())));
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const [a, b] = [must(await initiator.finish()), must(await responder.finish())];
    expect(a.handshakeHash).toEqual(b.handshakeHash);
  });

  it("abort() during a step: that step ends in LOFT_ERR_HANDSHAKE_STATE and nothing is produced", async () => {
    const { initiator, responder } = await pair(XX_HFS);
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const reading = initiator.readMessage(must(await responder.writeMessage()));
    initiator.abort();
    const r = await reading;
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    expect(initiator.status).toBe("failed");
    expect(initiator.handshakeHash).toEqual(new Uint8Array(32));
    const fin = await initiator.finish();
    expect(fin.ok).toBe(false);
  });
});

describe("ephemeral keys prepared ahead of time (HandshakeConfig.prepared)", () => {
  async function run(prepared: PreparedEphemerals) {
    const { initiator, responder } = await pair(XX_HFS, prologue, prologue, prepared);
    const m1 = must(await initiator.writeMessage());
    must(await responder.readMessage(m1));
    must(await initiator.readMessage(must(await responder.writeMessage())));
    must(await responder.readMessage(must(await initiator.writeMessage())));
    const [ti, tr] = [must(await initiator.finish()), must(await responder.finish())];
    const sealed = must(await ti.send.encryptWithAd(new Uint8Array(0), utf8("hello")));
    expect(must(await tr.receive.decryptWithAd(new Uint8Array(0), sealed))).toEqual(utf8("hello"));
    return m1;
  }

  it("the first message carries the prepared e and e1; they are taken once, then fresh keys", async () => {
    const prepared = await prepareEphemerals(nobleCrypto);
    const e = prepared.e!.publicKey.slice();
    const e1 = prepared.e1!.publicKey.slice();
    const m1 = await run(prepared);
    expect(m1.subarray(0, 32)).toEqual(e);
    expect(m1.length).toBe(32 + e1.length); // e1 in clear: no key yet at message 1 (HFS §4)
    expect(m1.subarray(32)).toEqual(e1);
    expect(prepared).toEqual({ e: undefined, e1: undefined });
    // The same (emptied) object again: the handshake makes its own keys, never the used ones.
    const again = await run(prepared);
    expect(again.subarray(0, 32)).not.toEqual(e);
    expect(again.subarray(32)).not.toEqual(e1);
  });

  it("a prepared e the handshake refuses (a public key of the wrong size) is wiped with the handshake, not dropped unwiped", async () => {
    const prepared = await prepareEphemerals(nobleCrypto);
    const priv = prepared.e!.privateKey;
    prepared.e = { privateKey: priv, publicKey: prepared.e!.publicKey.subarray(0, 31) };
    const hs = await HandshakeState.create({
      pattern: XX_HFS,
      role: "initiator",
      prologue,
      staticKeyPair: await generateKeyPair(),
      prepared,
    });
    await expect(hs.writeMessage()).rejects.toThrow(/prepared ephemeral public key/);
    expect(hs.status).toBe("failed");
    // The caller's mistake, not the provider's: later errors name the step and the exception.
    const later = await hs.writeMessage();
    expect(!later.ok && later.error.message).toBe(
      "LOFT_ERR_HANDSHAKE_STATE: write after the handshake is failed (an exception was thrown during write: RangeError)",
    );
    // Taken from `prepared` (the caller's wipeEphemerals no longer sees it), so the handshake wipes it.
    expect(prepared.e).toBeUndefined();
    expect(priv).toEqual(new Uint8Array(32));
    wipeEphemerals(prepared);
  });

  it("wipeEphemerals zeroes what no handshake took", async () => {
    const prepared = await prepareEphemerals(nobleCrypto);
    const [priv, kemSecret] = [prepared.e!.privateKey, prepared.e1!.secretKey];
    wipeEphemerals(prepared);
    expect(priv.every((b) => b === 0) && kemSecret.every((b) => b === 0)).toBe(true);
    expect(prepared).toEqual({ e: undefined, e1: undefined });
  });
});

/**
 * A provider that throws mid-step is no protocol error (no Result for it: the exception goes up as
 * it came), but the handshake ends there as after any other failure (see the file comment of
 * handshake-state.ts): `failed`, every secret derived so far zeroed, every later call refused with
 * LOFT_ERR_HANDSHAKE_STATE — never a second try on a half-mixed state. Every call of one side's
 * provider fails in turn, the first to the last (finish's Split and exports included).
 */
describe("a provider exception mid-handshake fails and wipes the state", () => {
  const psk = new Uint8Array(32).fill(7);

  /** The handshake with `faulty`'s provider on `role`'s side; the side's state and what threw, if anything. */
  async function run(pattern: HandshakePattern, role: "initiator" | "responder", failAt: number) {
    const faulty = faultyProvider(nobleCrypto, failAt);
    const make = (r: "initiator" | "responder") =>
      HandshakeState.create({
        pattern,
        role: r,
        prologue,
        staticKeyPair: r === "initiator" ? si : sr,
        ...(pattern.psk ? { psk } : {}),
        ...(r === role ? { crypto: faulty.crypto } : {}),
      });
    const [si, sr] = [await generateKeyPair(), await generateKeyPair()];
    let victim: HandshakeState | undefined;
    let thrown: unknown;
    try {
      victim = await make(role);
      const other = await make(role === "initiator" ? "responder" : "initiator");
      const [initiator, responder] = role === "initiator" ? [victim, other] : [other, victim];
      for (let i = 0; i < pattern.messages.length; i++) {
        const [writer, reader] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
        must(await reader.readMessage(must(await writer.writeMessage(utf8(`payload ${i}`)))));
      }
      // Two labels: a fault in the second export leaves the first one made, to be wiped.
      must(await victim.finish(["label", "second label"]));
      must(await other.finish(["label", "second label"]));
    } catch (e) {
      thrown = e;
    }
    return { faulty, victim, thrown };
  }

  it.each([
    ["XXhfs", "initiator", XX_HFS],
    ["XXhfs", "responder", XX_HFS],
    ["XXpsk3 (AES-GCM, SHA-256)", "initiator", XX_PSK3_AESGCM],
    ["XXpsk3 (AES-GCM, SHA-256)", "responder", XX_PSK3_AESGCM],
  ] as const)("%s, %s: each provider call in turn throws", async (_name, role, pattern) => {
    const clean = await run(pattern, role, 0);
    expect(clean.thrown).toBeUndefined();
    const total = clean.faulty.calls();
    expect(total).toBeGreaterThan(20);
    for (let k = 1; k <= total; k++) {
      const { faulty, victim, thrown } = await run(pattern, role, k);
      expect(thrown, `call ${k}`).toBeInstanceOf(InjectedFault);
      expect((thrown as InjectedFault).call).toBe(k);
      if (!victim) continue; // HandshakeState.create itself failed: there is no state to use
      const where = `call ${k} (${(thrown as InjectedFault).primitive})`;
      expect(victim.status, where).toBe("failed");
      expect(victim.handshakeHash, where).toEqual(new Uint8Array(32));
      const live = secretsSeen(faulty.log).filter((b) => b.some((x) => x !== 0));
      expect(live, where).toEqual([]);
      // Unusable: every later call is refused with a clear code, none reaches the provider.
      const calls = faulty.calls();
      for (const again of [
        await victim.writeMessage(),
        await victim.readMessage(new Uint8Array(2000)),
        await victim.finish(),
      ]) {
        expect(again.ok, where).toBe(false);
        expect(!again.ok && again.error.code, where).toBe("LOFT_ERR_HANDSHAKE_STATE");
        expect(!again.ok && again.error.message, where).toMatch(
          /^LOFT_ERR_HANDSHAKE_STATE: .+ the handshake is failed \(an exception was thrown during (write|read|finish): InjectedFault\)$/,
        );
      }
      expect(faulty.calls(), where).toBe(calls);
    }
  });

  it("prepareEphemerals: a provider exception leaves neither key pair behind", async () => {
    const clean = faultyProvider(nobleCrypto, 0);
    wipeEphemerals(await prepareEphemerals(clean.crypto));
    expect(clean.calls()).toBe(4); // e's and e1's random bytes, then both key pairs at once
    for (let k = 1; k <= clean.calls(); k++) {
      const faulty = faultyProvider(nobleCrypto, k);
      await expect(prepareEphemerals(faulty.crypto)).rejects.toBeInstanceOf(InjectedFault);
      expect(secretsSeen(faulty.log).filter((b) => b.some((x) => x !== 0))).toEqual([]);
    }
  });
});
