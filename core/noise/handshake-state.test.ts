/**
 * HandshakeState (Noise §5.3) for XX and XXhfs (Noise HFS §5): complete handshakes, the exact
 * message sizes, and each failure by its code — after which the state is zeroed and refuses
 * every further call.
 */
import { describe, expect, it } from "vitest";
import { equalBytes, utf8 } from "../bytes.ts";
import { HandshakeState } from "./handshake-state.ts";
import { type HandshakePattern, XX, XX_HFS } from "./patterns.ts";
import { generateKeyPair, type KeyPair } from "./primitives.ts";

const prologue = utf8("loft test prologue");

function pair(pattern: HandshakePattern, initiatorPrologue = prologue, responderPrologue = prologue) {
  const si = generateKeyPair();
  const sr = generateKeyPair();
  return {
    si,
    sr,
    initiator: new HandshakeState({
      pattern,
      role: "initiator",
      prologue: initiatorPrologue,
      staticKeyPair: si,
    }),
    responder: new HandshakeState({
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
  it("completes: same handshake hash, each side learns the other's static key, payloads arrive", () => {
    const { si, sr, initiator, responder } = pair(pattern);
    const m1 = must(initiator.writeMessage(utf8("one")));
    expect(m1.length).toBe(sizes[0] + 3);
    expect(must(responder.readMessage(m1))).toEqual(utf8("one"));
    const m2 = must(responder.writeMessage(utf8("two")));
    expect(m2.length).toBe(sizes[1] + 3);
    expect(must(initiator.readMessage(m2))).toEqual(utf8("two"));
    const m3 = must(initiator.writeMessage(utf8("three")));
    expect(m3.length).toBe(sizes[2] + 5);
    expect(must(responder.readMessage(m3))).toEqual(utf8("three"));
    expect(initiator.status).toBe("complete");
    expect(responder.status).toBe("complete");

    const labels = ["loft ratchet bootstrap", "another label"];
    const a = must(initiator.finish(labels));
    const b = must(responder.finish(labels));
    expect(a.handshakeHash).toEqual(b.handshakeHash);
    expect(a.remoteStaticKey).toEqual(sr.publicKey);
    expect(b.remoteStaticKey).toEqual(si.publicKey);
    expect(a.protocolName).toBe(pattern.protocolName);

    const sealed = must(a.send.encryptWithAd(new Uint8Array(0), utf8("ping")));
    expect(must(b.receive.decryptWithAd(new Uint8Array(0), sealed))).toEqual(utf8("ping"));
    const back = must(b.send.encryptWithAd(new Uint8Array(0), utf8("pong")));
    expect(must(a.receive.decryptWithAd(new Uint8Array(0), back))).toEqual(utf8("pong"));
    // The two directions use different keys (Split's c1 / c2): same nonce (1), same plaintext.
    const fromA = must(a.send.encryptWithAd(new Uint8Array(0), utf8("same")));
    const fromB = must(b.send.encryptWithAd(new Uint8Array(0), utf8("same")));
    expect(equalBytes(fromA, fromB)).toBe(false);

    const exportedA = a.exportSecret("loft ratchet bootstrap");
    expect(exportedA).toHaveLength(32);
    expect(b.exportSecret("loft ratchet bootstrap")).toEqual(exportedA);
    expect(a.exportSecret("another label")).not.toEqual(exportedA);

    expect(initiator.status).toBe("finished");
    const twice = initiator.finish(labels);
    expect(!twice.ok && twice.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("derives exports at finish and keeps no chaining key: other labels can't be derived later", () => {
    const { initiator, responder } = pair(pattern);
    must(responder.readMessage(must(initiator.writeMessage())));
    must(initiator.readMessage(must(responder.writeMessage())));
    must(responder.readMessage(must(initiator.writeMessage())));
    const a = must(initiator.finish(["loft/ratchet/v1"]));
    const b = must(responder.finish(["loft/ratchet/v1"]));
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

  it("a different prologue on one side fails the first encrypted read (LOFT_ERR_DECRYPT)", () => {
    const { initiator, responder } = pair(pattern, prologue, utf8("other prologue"));
    must(responder.readMessage(must(initiator.writeMessage())));
    const r = initiator.readMessage(must(responder.writeMessage()));
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    expect(initiator.status).toBe("failed");
  });

  it("out-of-turn calls fail with LOFT_ERR_HANDSHAKE_STATE and leave a zeroed, dead state", () => {
    const { initiator, responder } = pair(pattern);
    const r = responder.writeMessage();
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    expect(responder.status).toBe("failed");
    expect(responder.handshakeHash).toEqual(new Uint8Array(32));
    const again = responder.readMessage(must(initiator.writeMessage()));
    expect(!again.ok && again.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const fin = responder.finish();
    expect(!fin.ok && fin.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");

    const early = initiator.finish();
    expect(!early.ok && early.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const readFirst = pair(pattern).initiator.readMessage(new Uint8Array(100));
    expect(!readFirst.ok && readFirst.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("a truncated message is LOFT_ERR_MALFORMED, one over 65535 bytes LOFT_ERR_FRAME_TOO_LARGE", () => {
    const { initiator, responder } = pair(pattern);
    const m1 = must(initiator.writeMessage());
    const short = responder.readMessage(m1.subarray(0, sizes[0] - 1));
    expect(!short.ok && short.error.code).toBe("LOFT_ERR_MALFORMED");
    const { responder: r2 } = pair(pattern);
    const big = r2.readMessage(new Uint8Array(65536));
    expect(!big.ok && big.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("refuses to write a payload that would make the message exceed 65535 bytes", () => {
    const { initiator } = pair(pattern);
    const r = initiator.writeMessage(new Uint8Array(65535 - sizes[0] + 1));
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const { initiator: i2 } = pair(pattern);
    expect(must(i2.writeMessage(new Uint8Array(65535 - sizes[0]))).length).toBe(65535);
  });

  it("a low-order ephemeral key from the peer fails with LOFT_ERR_MALFORMED", () => {
    const { initiator, responder } = pair(pattern);
    const m1 = must(initiator.writeMessage());
    m1.fill(0, 0, 32); // u = 0, a low-order point (Noise §12.1 allows signalling an error)
    must(responder.readMessage(m1));
    const r = responder.writeMessage();
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_MALFORMED");
    expect(responder.status).toBe("failed");
  });

  it("a tampered message 2 or 3 fails with LOFT_ERR_DECRYPT", () => {
    for (const target of [1, 2]) {
      const { initiator, responder } = pair(pattern);
      const m1 = must(initiator.writeMessage());
      must(responder.readMessage(m1));
      const m2 = must(responder.writeMessage());
      if (target === 1) {
        m2[m2.length - 1]! ^= 0x80;
        const r = initiator.readMessage(m2);
        expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
        continue;
      }
      must(initiator.readMessage(m2));
      const m3 = must(initiator.writeMessage());
      m3[5]! ^= 1;
      const r = responder.readMessage(m3);
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_DECRYPT");
    }
  });

  it("leaves the caller's static key untouched, even after a failure wipes the state", () => {
    const s: KeyPair = generateKeyPair();
    const copy = s.privateKey.slice();
    const hs = new HandshakeState({ pattern, role: "responder", prologue, staticKeyPair: s });
    hs.writeMessage();
    expect(hs.status).toBe("failed");
    expect(s.privateKey).toEqual(copy);
  });
});

describe("XX and XXhfs do not mix", () => {
  it("an XXhfs initiator and an XX responder fail (different protocol names in h)", () => {
    const si = generateKeyPair();
    const sr = generateKeyPair();
    const initiator = new HandshakeState({ pattern: XX_HFS, role: "initiator", prologue, staticKeyPair: si });
    const responder = new HandshakeState({ pattern: XX, role: "responder", prologue, staticKeyPair: sr });
    must(responder.readMessage(must(initiator.writeMessage())));
    const r = initiator.readMessage(must(responder.writeMessage()));
    expect(r.ok).toBe(false);
  });
});
