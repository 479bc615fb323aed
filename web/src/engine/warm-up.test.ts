/**
 * The crypto warm-up (warm-up.ts): it runs a first contact's session for real — the handshake, the
 * bootstrap, a ratchet message each way, on the suite and version the engine uses with the
 * provider given — wiping every secret it made, also when a step fails; the page's `PageWarmUp`
 * runs it once per page, at its idle moment, for an engine that asked (`EngineConfig.warmUp`), is
 * not stopped and has no real session under way, storing nothing.
 */
import { describe, expect, it } from "vitest";
import { type Spent, timed } from "../../../bench/timed-provider.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../../core/crypto/webcrypto.ts";
import { type EngineNode, engineHarnessPerSuite, FAST_ENGINE, until } from "../../../test/support/engine.ts";
import { PageWarmUp, warmUpCrypto } from "./warm-up.ts";

/** A primitive `recording` can fail: one that a step of each stage (handshake, bootstrap, ratchet) calls. */
type Failing = "x25519.sharedSecret" | "hkdfSha256" | "mlkem768.decapsulate";

/**
 * `base`, recording every secret it hands out — random draws of key size (identity, ephemeral and
 * ratchet secret keys, ML-KEM seeds), X25519 and ML-KEM shared secrets, ML-KEM secret keys, HKDF
 * and HMAC outputs — and counting the calls of each `Failing` primitive; `failAt`: that call of
 * that primitive (0 the first) throws.
 */
function recording(base: CryptoProvider, failAt?: { primitive: Failing; call: number }) {
  const secrets: [string, Uint8Array][] = [];
  const calls = new Map<Failing, number>();
  const keep = <T extends Uint8Array | undefined>(name: string, b: T): T => {
    if (b) secrets.push([name, b]);
    return b;
  };
  const count = (primitive: Failing): void => {
    const n = calls.get(primitive) ?? 0;
    calls.set(primitive, n + 1);
    if (failAt?.primitive === primitive && failAt.call === n) throw new Error(`${primitive}: a test failure`);
  };
  const crypto: CryptoProvider = {
    ...base,
    randomBytes: (n) => {
      const b = base.randomBytes(n);
      return n === 32 || n === 64 ? keep(`randomBytes(${n})`, b) : b;
    },
    x25519: {
      ...base.x25519,
      sharedSecret: async (k, p) => {
        count("x25519.sharedSecret");
        return keep("x25519.sharedSecret", await base.x25519.sharedSecret(k, p));
      },
    },
    hkdfSha256: async (...a) => {
      count("hkdfSha256");
      return keep("hkdfSha256", await base.hkdfSha256(...a));
    },
    hmacSha256: async (...a) => keep("hmacSha256", await base.hmacSha256(...a)),
    mlkem768: {
      ...base.mlkem768,
      keyPairFromSeed: async (seed) => {
        const k = await base.mlkem768.keyPairFromSeed(seed);
        keep("mlkem768 secret key", k.secretKey);
        return k;
      },
      encapsulate: async (p, r) => {
        const e = await base.mlkem768.encapsulate(p, r);
        keep("mlkem768.encapsulate", e?.sharedSecret);
        return e;
      },
      decapsulate: async (k, c) => {
        count("mlkem768.decapsulate");
        return keep("mlkem768.decapsulate", await base.mlkem768.decapsulate(k, c));
      },
    },
  };
  /** The recorded secrets not all zeros (the sessions close and wipe after the call returns). */
  const left = () => secrets.filter(([, b]) => b.some((x) => x !== 0)).map(([name]) => name);
  return { crypto, secrets, calls, left };
}

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

  it("wipes every secret it made: keys, shared secrets, derived keys, the ratchet states", async () => {
    const r = recording(await createWebCryptoProvider());
    await warmUpCrypto(r.crypto);
    expect(r.secrets.length).toBeGreaterThan(20);
    await expect.poll(r.left).toEqual([]);
  });

  it("whichever step fails, it rejects and what was made before is wiped (handshake, bootstrap, ratchet)", async () => {
    const base = await createWebCryptoProvider();
    const whole = recording(base);
    await warmUpCrypto(whole.crypto);
    // Each call of each of these primitives fails in turn: the handshake's DH and ML-KEM, the
    // bootstrap's and the ratchet steps' HKDF (KDF_RK), the ratchet steps' DH (DR §3.5).
    const points = [...whole.calls].flatMap(([primitive, n]) =>
      Array.from({ length: n }, (_, call) => ({ primitive, call })),
    );
    expect(points.length).toBeGreaterThan(8);
    for (const failAt of points) {
      const r = recording(base, failAt);
      await expect(warmUpCrypto(r.crypto), JSON.stringify(failAt)).rejects.toThrow("a test failure");
      await expect.poll(() => [JSON.stringify(failAt), ...r.left()]).toEqual([JSON.stringify(failAt)]);
    }
  });
});

describe("PageWarmUp", () => {
  it("a failed run is logged and the next request runs again", async () => {
    const w = new PageWarmUp();
    const logs: string[] = [];
    const log = (m: string) => logs.push(m);
    const failing = recording(await createWebCryptoProvider(), {
      primitive: "mlkem768.decapsulate",
      call: 0,
    });
    expect(await w.request(() => ({ crypto: failing.crypto }), log)).toBeUndefined();
    expect(logs).toEqual(["crypto warm-up failed: mlkem768.decapsulate: a test failure"]);
    const ran = await w.request(() => ({ crypto: nobleCrypto }), log);
    expect(ran?.messageVersion).toBe(3);
    expect(logs[1]).toMatch(
      /^crypto warmed up: Noise_XXhfs_25519\+MLKEM768_ChaChaPoly_BLAKE2s, ratchet 0x03, /,
    );
    // Once it ran, the page's run is every later request's, and nothing is asked again: the
    // request's engine says it took it.
    expect(await w.request(() => expect.unreachable("asked again"), log)).toBe(ran);
    expect(logs.slice(2)).toEqual([
      "crypto warm-up: already run in this page (Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s), not again",
    ]);
  });
});

describe("the engine's warm-up", () => {
  const { h } = engineHarnessPerSuite(FAST_ENGINE);

  /** A page's warm-up whose idle moments the test gives (`idle()`). */
  function manualPage(): { page: PageWarmUp; idle: () => void } {
    const waiting: (() => void)[] = [];
    return {
      page: new PageWarmUp((run) => waiting.push(run)),
      idle: () => {
        for (const run of waiting.splice(0)) run();
      },
    };
  }

  it("runs once started with warmUp, once per page, and stores nothing", async () => {
    const page = new PageWarmUp();
    const a = h.node("alice", undefined, undefined, undefined, { warmUp: page });
    const before = JSON.stringify([...a.storage.contacts.keys(), [...a.storage.messages.keys()]]);
    await a.engine.start();
    const w = await a.engine.warmedUp;
    expect(w?.messageVersion).toBe(3);
    expect(a.logs.some((l) => l.startsWith("crypto warmed up: Noise_XXhfs_25519+MLKEM768_"))).toBe(true);
    expect(JSON.stringify([...a.storage.contacts.keys(), [...a.storage.messages.keys()]])).toBe(before);
    expect(a.storage.sessions.size).toBe(0);
    // Once per page (the JavaScript is compiled once): another engine started here shares it.
    const b = h.node("bob", undefined, undefined, undefined, { warmUp: page });
    await b.engine.start();
    expect(await b.engine.warmedUp).toBe(w);
    // It says so: one line of its own, and no "warmed up".
    expect(b.logs.filter((l) => l.startsWith("crypto warm"))).toEqual([
      `crypto warm-up: already run in this page (${w?.protocol}), not again`,
    ]);
  });

  it("an engine stopped before its warm-up ran leaves it to the next engine of the page", async () => {
    const { page, idle } = manualPage();
    const a = h.node("alice", undefined, undefined, undefined, { warmUp: page });
    await a.engine.start();
    await a.engine.stop();
    // The same user and storage started again in the page (a rename, a hand-over).
    const b = h.node("alice", a.user, a.storage, undefined, { warmUp: page });
    await b.engine.start();
    idle();
    expect(await a.engine.warmedUp).toBeUndefined();
    expect((await b.engine.warmedUp)?.messageVersion).toBe(3);
    expect(a.logs.some((l) => l.startsWith("crypto warm"))).toBe(false);
    expect(b.logs.filter((l) => l.startsWith("crypto warmed up")).length).toBe(1);
  });

  it("does not run once a real session is being set up (it compiles the same code)", async () => {
    const { page, idle } = manualPage();
    const [a, b] = await h.pair(false, false, { warmUp: page });
    idle();
    expect(await a.engine.warmedUp).toBeUndefined();
    expect(await b.engine.warmedUp).toBeUndefined();
    for (const n of [a, b]) {
      expect(n.logs).toContain("crypto warm-up skipped: a session is already being set up");
      expect(n.logs.some((l) => l.startsWith("crypto warmed up"))).toBe(false);
    }
  });

  it("does not run once a room member link is being set up", async () => {
    const { page, idle } = manualPage();
    const [a, b] = ["ann", "bea"].map((name) =>
      h.node(name, undefined, undefined, undefined, { warmUp: page }),
    );
    for (const n of [a!, b!]) {
      await n.engine.start();
      await until(
        () => n.engine.serviceStatus().signaling === "connected",
        `${n.user.identity.verified.username} registered`,
      );
    }
    const room = await a!.engine.rooms!.create();
    await b!.engine.rooms!.join(room.fragment);
    const linked = (n: EngineNode) =>
      n.engine.rooms!.room(room.id)?.members.some((m) => m.state === "online");
    await until(() => linked(a!) === true && linked(b!) === true, "ann and bea linked");
    idle();
    for (const n of [a!, b!]) {
      expect(await n.engine.warmedUp).toBeUndefined();
      expect(n.logs).toContain("crypto warm-up skipped: a session is already being set up");
    }
  });

  it("does not run without it (the engine's default)", async () => {
    const a = h.node("alice");
    await a.engine.start();
    await until(() => a.engine.serviceStatus().signaling === "connected", "signaling connected");
    expect(await a.engine.warmedUp).toBeUndefined();
    expect(a.logs.some((l) => l.startsWith("crypto warm"))).toBe(false);
  });
});
