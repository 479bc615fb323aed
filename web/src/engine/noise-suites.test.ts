/**
 * The engine's suite choice (noise-suites.ts) through the real `handshake` of dialing.ts over
 * memory links: the first session with a contact is ChaChaPoly and teaches both sides that the
 * other answers offers; the next dial runs AES-GCM when the provider has it natively; an offer a
 * peer refuses (one from before suites) clears the mark and the next dial is plain again; the
 * dialler's ephemeral keys made while the link opens are what the handshake uses. And
 * through whole engines (real signaling, in-memory links): the mark is stored with the contact,
 * so the first session after a restart (a reload) runs AES-GCM.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeVersionHeader, encodeVersionHeader } from "../../../core/codec/version.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../../core/crypto/webcrypto.ts";
import { err, isLoftError } from "../../../core/errors.ts";
import { createUserIdentity, type UserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import { type RunningSignaling, startSignaling } from "../../../signaling/testing.ts";
import { EngineHarness, type EngineNode, FAST_ENGINE, until } from "../../../test/support/engine.ts";
import type { Peer } from "./context.ts";
import { type DialingContext, handshake, prepareDialKeys } from "./dialing.ts";
import { SUITES_EXTENSION } from "./noise-suites.ts";
import { RATCHET_KEY_EXTENSION } from "./ratchet-store.ts";
import type { DialedLink } from "./transport.ts";

const now = 1_700_000_000_000;
const alice = createUserIdentity({ username: "alice", now, seed: new Uint8Array(32).fill(1) });
const bob = createUserIdentity({ username: "bob", now, seed: new Uint8Array(32).fill(2) });
const RATCHET_KEY = new Uint8Array(32).fill(9);

function ctxOf(user: UserIdentity, crypto: CryptoProvider): DialingContext {
  const storage = { setAnswersSuiteOffers: async () => {} };
  return {
    cfg: { handshakeTimeoutMs: 10_000, crypto, log: () => {} },
    user,
    storage,
  } as unknown as DialingContext;
}
function peerOf(user: UserIdentity): Peer {
  return { key: user.identity.verified.identity_key } as unknown as Peer;
}

/** Alice dials Bob, both through the engine's `handshake`. */
async function dial(
  crypto: CryptoProvider,
  aliceSeesBob: Peer,
  bobSeesAlice: Peer,
): Promise<[Session, Session]> {
  const [la, lb] = memoryLinkPair();
  return Promise.all([
    handshake(ctxOf(alice, crypto), aliceSeesBob, la as unknown as DialedLink, "direct"),
    handshake(ctxOf(bob, crypto), bobSeesAlice, lb as unknown as DialedLink, "direct", RATCHET_KEY),
  ]);
}

describe("the engine's Noise suite choice", () => {
  it("first session ChaChaPoly and both learn; the next dial runs AES-GCM (native AES)", async () => {
    const web = await createWebCryptoProvider();
    expect(web.backends.aes256gcm).toBe("webcrypto");
    const aliceSeesBob = peerOf(bob);
    const bobSeesAlice = peerOf(alice);
    const [a1, b1] = await dial(web, aliceSeesBob, bobSeesAlice);
    expect(a1.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(Object.keys(a1.remoteExtensions).sort()).toEqual([RATCHET_KEY_EXTENSION, SUITES_EXTENSION].sort());
    expect(aliceSeesBob.answersSuiteOffers).toBe(true);
    expect(bobSeesAlice.answersSuiteOffers).toBe(true);
    a1.close();
    b1.close();
    const [a2, b2] = await dial(web, aliceSeesBob, bobSeesAlice);
    expect([a2.protocolName, b2.protocolName]).toEqual([
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
    ]);
    a2.send(new TextEncoder().encode("over AES-GCM"));
    expect(new TextDecoder().decode(await b2.receive())).toBe("over AES-GCM");
    a2.close();
    b2.close();
  });

  it("the dialler's ephemeral keys made while the link opens are taken by the handshake, once", async () => {
    const web = await createWebCryptoProvider();
    const ctx = ctxOf(alice, web);
    const prepared = await prepareDialKeys(ctx);
    expect(prepared?.e?.publicKey.length).toBe(32);
    expect(prepared?.e1?.publicKey.length).toBe(1184);
    const [la, lb] = memoryLinkPair();
    const [a, b] = await Promise.all([
      handshake(ctx, peerOf(bob), la as unknown as DialedLink, "direct", undefined, prepared),
      handshake(ctxOf(bob, web), peerOf(alice), lb as unknown as DialedLink, "direct", RATCHET_KEY),
    ]);
    expect(prepared).toEqual({ e: undefined, e1: undefined });
    a.send(new TextEncoder().encode("with prepared keys"));
    expect(new TextDecoder().decode(await b.receive())).toBe("with prepared keys");
    a.close();
    b.close();
  });

  it("no offer when AES-GCM would be pure JavaScript (noble), even to a contact that answers", async () => {
    const aliceSeesBob = { ...peerOf(bob), answersSuiteOffers: true } as Peer;
    const [a, b] = await dial(nobleCrypto, aliceSeesBob, peerOf(alice));
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    a.close();
    b.close();
  });

  it("a peer from before suites refuses the offer: the mark is cleared and the next dial works", async () => {
    const web = await createWebCryptoProvider();
    const aliceSeesOldBob = { ...peerOf(bob), answersSuiteOffers: true } as Peer;
    // Old Bob: the 1.0 header, a strict decoder that refuses unknown fields, no extension.
    const oldBob = (link: ReturnType<typeof memoryLinkPair>[1]) =>
      establishSession({
        link,
        role: "responder",
        kind: "direct",
        self: bob,
        extensions: { [RATCHET_KEY_EXTENSION]: RATCHET_KEY },
        versionCodec: {
          encode: () => encodeVersionHeader(),
          decode: (bytes) => {
            const h = decodeVersionHeader(bytes);
            return h.ok && h.value.noise_suites ? err("LOFT_ERR_SCHEMA", "unknown field") : h;
          },
        },
      });
    const [la, lb] = memoryLinkPair();
    const refused = handshake(ctxOf(alice, web), aliceSeesOldBob, la as unknown as DialedLink, "direct");
    const old = oldBob(lb);
    const code = await refused.then(
      () => "resolved",
      (e: unknown) => (isLoftError(e) ? e.code : String(e)),
    );
    expect(code).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    await old.catch(() => undefined);
    expect(aliceSeesOldBob.answersSuiteOffers).toBe(false);
    const [la2, lb2] = memoryLinkPair();
    const [a, b] = await Promise.all([
      handshake(ctxOf(alice, web), aliceSeesOldBob, la2 as unknown as DialedLink, "direct"),
      oldBob(lb2),
    ]);
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(aliceSeesOldBob.answersSuiteOffers).toBe(false);
    a.close();
    b.close();
  });
});

describe("the suite mark, stored with the contact (engines, real signaling)", () => {
  let signaling: RunningSignaling;
  let web: CryptoProvider;
  const h = new EngineHarness(() => ({
    signalingUrl: signaling.url,
    config: { ...FAST_ENGINE, crypto: web },
  }));
  beforeAll(async () => {
    signaling = await startSignaling();
    web = await createWebCryptoProvider();
  });
  afterAll(async () => {
    await signaling?.close();
  });
  afterEach(async () => {
    await h.stopAll();
  });

  const suiteOf = (n: EngineNode, peer: EngineNode) => n.engine.presence(peer.id).suite;

  it("the first session after a restart (a reload) runs AES-GCM: the mark survives in storage", async () => {
    const [a, b] = await h.pair();
    // Nothing known yet: the first session is plain, and teaches both sides.
    expect(suiteOf(a, b)).toBe("ChaChaPoly_BLAKE2s");
    await until(
      () =>
        a.storage.contacts.get(b.id)?.answersSuiteOffers === true &&
        b.storage.contacts.get(a.id)?.answersSuiteOffers === true,
      "both marks stored",
    );
    await a.engine.stop();
    await b.engine.stop();
    const a2 = h.node("alice", a.user, a.storage);
    const b2 = h.node("bob", b.user, b.storage);
    await a2.engine.start();
    await b2.engine.start();
    await until(() => h.online(a2, b2) && h.online(b2, a2), "online again after the restart");
    expect([suiteOf(a2, b2), suiteOf(b2, a2)]).toEqual(["AESGCM_SHA256", "AESGCM_SHA256"]);
    const m = await a2.engine.send(b2.id, "over AES-GCM after a reload");
    await until(() => h.stateOf(a2, m) === "delivered", "delivered");
  });
});
