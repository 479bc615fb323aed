/**
 * The crypto warm-up (warm-up.ts): it runs a first contact's session for real — the handshake, the
 * bootstrap, a ratchet message each way, on the suite and version the engine uses with the
 * provider given — and the engine runs it once started only when asked (`EngineConfig.warmUp`),
 * storing nothing.
 */
import { describe, expect, it } from "vitest";
import { type Spent, timed } from "../../../bench/timed-provider.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import { createWebCryptoProvider } from "../../../core/crypto/webcrypto.ts";
import { engineHarnessPerSuite, FAST_ENGINE, until } from "../../../test/support/engine.ts";
import { warmUpCrypto } from "./warm-up.ts";

describe("warmUpCrypto", () => {
  it("runs XXhfs+ML-KEM-768 on the AES-GCM suite, the bootstrap and a 0x03 message each way, on the given provider", async () => {
    const spent: Spent = new Map();
    const crypto = timed(await createWebCryptoProvider(), spent);
    const w = await warmUpCrypto(crypto);
    expect(w.protocol).toBe("Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256");
    expect(w.messageVersion).toBe(3);
    // What a first contact's session does, through this provider (no other one is used):
    // ML-KEM key generation, encapsulation and decapsulation (the handshake), X25519 and Ed25519
    // (handshake, identities), HKDF (the bootstrap), AES-GCM (Noise frames, ratchet header and body).
    for (const primitive of [
      "mlkem768.keyPairFromSeed",
      "mlkem768.encapsulate",
      "mlkem768.decapsulate",
      "x25519.sharedSecret",
      "ed25519.verify",
      "hkdfSha256",
      "aes256gcm.seal",
      "aes256gcm.open",
    ])
      expect([...spent.keys()], primitive).toContain(primitive);
  });

  it("falls back with the provider: ChaChaPoly and BLAKE2s where AES-GCM is not native (noble)", async () => {
    const w = await warmUpCrypto(nobleCrypto);
    expect(w.protocol).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(w.messageVersion).toBe(3);
  });
});

describe("the engine's warm-up", () => {
  const { h } = engineHarnessPerSuite(FAST_ENGINE);

  it("runs once started with warmUp, once per page, and stores nothing", async () => {
    const a = h.node("alice", undefined, undefined, undefined, { warmUp: true });
    const before = JSON.stringify([...a.storage.contacts.keys(), [...a.storage.messages.keys()]]);
    await a.engine.start();
    const w = await a.engine.warmedUp;
    expect(w?.messageVersion).toBe(3);
    expect(a.logs.some((l) => l.startsWith("crypto warmed up: Noise_XXhfs_25519+MLKEM768_"))).toBe(true);
    expect(JSON.stringify([...a.storage.contacts.keys(), [...a.storage.messages.keys()]])).toBe(before);
    expect(a.storage.sessions.size).toBe(0);
    // Once per page (the JavaScript is compiled once): another engine started here shares it.
    const b = h.node("bob", undefined, undefined, undefined, { warmUp: true });
    await b.engine.start();
    expect(await b.engine.warmedUp).toBe(w);
    expect(b.logs.some((l) => l.startsWith("crypto warm"))).toBe(false);
  });

  it("does not run without it (the engine's default)", async () => {
    const a = h.node("alice");
    await a.engine.start();
    await until(() => a.engine.serviceStatus().signaling === "connected", "signaling connected");
    expect(await a.engine.warmedUp).toBeUndefined();
    expect(a.logs.some((l) => l.startsWith("crypto warm"))).toBe(false);
  });
});
