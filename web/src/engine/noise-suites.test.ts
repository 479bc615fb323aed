/**
 * The engine's suite choice (noise-suites.ts) through the real `handshake` of dialing.ts over
 * memory links: the first session with a new contact already runs AES-GCM when the provider has
 * it natively, and teaches both sides that the other answers offers; no offer when AES-GCM would
 * be JavaScript; an offer a peer refuses (one from before suites) sets the mark to false, ends the
 * attempt as `suite-offer-refused`, and the next dial is plain; a plain session without the
 * extension marks the contact false too; the dialler's ephemeral keys made while the link opens
 * are what the handshake uses. And through whole engines (real signaling, in-memory links): a
 * fresh pair's first session is AES-GCM and the mark is stored with the contact, so the first
 * session after a restart (a reload) runs AES-GCM too; a contact whose device refuses the offer
 * is dialled again at once without one, and the message queued before is delivered, once; a dial
 * refused before its handshake hands its prepared ephemeral keys to the provider's `forget`.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../../../core/codec/version.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../../core/crypto/webcrypto.ts";
import { err, isLoftError } from "../../../core/errors.ts";
import { createUserIdentity, type UserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import {
  PROXY_DATA_EXTENSION,
  PROXY_FLAGS_EXTENSION,
  peerChunkLimit,
  peerReadsNoBody,
} from "../../../core/proxy/endpoint.ts";
import { MAX_CHUNK } from "../../../core/proxy/frames.ts";
import { DETACHED_EXTENSION, establishSession, type Session } from "../../../core/session/index.ts";
import { type RunningSignaling, startSignaling } from "../../../signaling/testing.ts";
import {
  EngineHarness,
  type EngineNode,
  FAST_ENGINE,
  Hub,
  type TestLink,
  until,
} from "../../../test/support/engine.ts";
import { type Peer, Refused } from "./context.ts";
import { type DialingContext, handshake, prepareDialKeys } from "./dialing.ts";
import { MBOX_ORDER_EXTENSION, peerReadsOrder } from "./mailbox.ts";
import { SUITE_OFFER_REFUSED, SUITES_EXTENSION } from "./noise-suites.ts";
import {
  BUNDLES_EXTENSION,
  liveMessageVersion,
  peerReadsBundles,
  RATCHET_VERSIONS_EXTENSION,
} from "./peer-ratchet.ts";
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
  const key = user.identity.verified.identity_key;
  return { key, id: toHex(key) } as unknown as Peer;
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
  it("the first session with a new contact runs AES-GCM (native AES); both learn the other answers", async () => {
    const web = await createWebCryptoProvider();
    expect(web.backends.aes256gcm).toBe("webcrypto");
    const aliceSeesBob = peerOf(bob);
    const bobSeesAlice = peerOf(alice);
    expect(aliceSeesBob.answersSuiteOffers).toBeUndefined();
    const [a1, b1] = await dial(web, aliceSeesBob, bobSeesAlice);
    expect([a1.protocolName, b1.protocolName]).toEqual([
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
    ]);
    expect(Object.keys(a1.remoteExtensions).sort()).toEqual(
      [
        BUNDLES_EXTENSION,
        DETACHED_EXTENSION,
        MBOX_ORDER_EXTENSION,
        PROXY_DATA_EXTENSION,
        PROXY_FLAGS_EXTENSION,
        RATCHET_KEY_EXTENSION,
        RATCHET_VERSIONS_EXTENSION,
        SUITES_EXTENSION,
      ].sort(),
    );
    // …each side announces session.detached, so ratchet bodies travel beside the Noise frames
    // (docs/protocol/session.md §5, "Detached frames").
    expect([a1.detachedFrames, b1.detachedFrames]).toEqual([true, true]);
    // …and that it reads bundles, so bursts go several chat messages to a ratchet message
    // (docs/protocol/chat.md §5, "Bundles").
    expect([peerReadsBundles(a1.remoteExtensions), peerReadsBundles(b1.remoteExtensions)]).toEqual([
      true,
      true,
    ]);
    // …and that it reads an announcement's order, so each `mbox` carries its `n` (mailbox.md §1,
    // "The order of announcements"); to a peer without it, none — it would refuse the `mbox`.
    expect([peerReadsOrder(a1.remoteExtensions), peerReadsOrder(b1.remoteExtensions)]).toEqual([true, true]);
    // …each side announces the ratchet versions it reads, so both write 0x03 (docs/protocol/ratchet.md).
    expect([liveMessageVersion(a1.remoteExtensions), liveMessageVersion(b1.remoteExtensions)]).toEqual([
      3, 3,
    ]);
    // …and each side announces the proxy DATA size it accepts (docs/protocol/proxy.md, "DATA size").
    expect([peerChunkLimit(a1.remoteExtensions), peerChunkLimit(b1.remoteExtensions)]).toEqual([
      MAX_CHUNK,
      MAX_CHUNK,
    ]);
    // …and that it reads a body-less REQUEST (docs/protocol/proxy.md, "Body-less requests").
    expect([peerReadsNoBody(a1.remoteExtensions), peerReadsNoBody(b1.remoteExtensions)]).toEqual([
      true,
      true,
    ]);
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

  it("a contact known not to answer offers gets a plain dial", async () => {
    const web = await createWebCryptoProvider();
    const aliceSeesBob = { ...peerOf(bob), answersSuiteOffers: false } as Peer;
    const [a, b] = await dial(web, aliceSeesBob, peerOf(alice));
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    // Bob sent the extension inside this session: the next dial offers again.
    expect(aliceSeesBob.answersSuiteOffers).toBe(true);
    a.close();
    b.close();
  });

  it("a peer from before suites refuses the offer to a new contact: marked false, and the next dial works", async () => {
    const web = await createWebCryptoProvider();
    const aliceSeesOldBob = peerOf(bob);
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
    const old = oldBob(lb).catch(() => undefined); // it fails too (LOFT_ERR_SCHEMA)
    // The attempt ends as "suite-offer-refused" (the controller dials again at once, plainly).
    const reason = await refused.then(
      () => "resolved",
      (e: unknown) => (e instanceof Refused ? e.reason : isLoftError(e) ? e.code : String(e)),
    );
    expect(reason).toBe(SUITE_OFFER_REFUSED);
    await old;
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
    // Old Bob dials Alice, who has not met him yet: the session has no extension, so she marks
    // him false too (and her dials to him will not offer).
    const bobAsSeenByAlice = peerOf(bob);
    const [la3, lb3] = memoryLinkPair();
    const [oldDial, aliceAnswers] = await Promise.all([
      establishSession({ link: la3, role: "initiator", kind: "direct", self: bob }),
      handshake(ctxOf(alice, web), bobAsSeenByAlice, lb3 as unknown as DialedLink, "direct", RATCHET_KEY),
    ]);
    expect(aliceAnswers.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(bobAsSeenByAlice.answersSuiteOffers).toBe(false);
    oldDial.close();
    aliceAnswers.close();
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

  it("a fresh pair's first session runs AES-GCM; the mark is stored, so it does after a restart too", async () => {
    const [a, b] = await h.pair();
    // Nothing known yet, and the dialler offers anyway: the first session is AES-GCM.
    expect([suiteOf(a, b), suiteOf(b, a)]).toEqual(["AESGCM_SHA256", "AESGCM_SHA256"]);
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

  /** Two fresh users, the one with the lower identity key (the one who dials, chat.md §1) first. */
  const lowerKeyFirst = () =>
    [createUserIdentity({ username: "x", now }), createUserIdentity({ username: "y", now })]
      .map((u) => ({ u, id: toHex(u.identity.verified.identity_key) }))
      .sort((x, y) => (x.id < y.id ? -1 : 1));

  /**
   * `n`'s device answers like one from before suites (docs/protocol/session.md §2, "Old peers"):
   * to a version header with noise_suites it sends the 1.0 header and closes (its strict decoder
   * refuses the field); a plain header goes through to `n`'s engine. Counts the refusals.
   */
  const answerLikeAnOldDevice = (n: EngineNode) => {
    const refusals = { offers: 0 };
    const deps = h.hub.endpoints.get(n.id)!;
    const onOffer = deps.onOffer;
    deps.onOffer = (offer) =>
      onOffer({
        ...offer,
        accept: () => {
          const link = offer.accept() as TestLink;
          const deliver = link.fromPeer.bind(link);
          let first = true;
          link.fromPeer = (m: Uint8Array) => {
            const header = first ? decodeVersionHeader(m) : undefined;
            first = false;
            if (header?.ok && header.value.noise_suites) {
              refusals.offers++;
              link.send(encodeVersionHeader());
              link.close("LOFT_ERR_SCHEMA");
            } else deliver(m);
          };
          return link;
        },
      });
    return refusals;
  };

  it("a device that refuses the offer: dialled again at once without one; the queued message arrives once", async () => {
    h.hub = new Hub();
    // Alice dials: hers is the lower key (chat.md §1), and Bob's glare delay outlasts the test.
    const [low, high] = lowerKeyFirst();
    const a = h.node("alice", low!.u);
    const b = h.node("bob", high!.u, undefined, undefined, { glareDelayMs: 60_000 });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    // Bob's device answers like one from before suites; his own dials would offer nothing (as an
    // old peer's).
    b.storage.contacts.get(a.id)!.answersSuiteOffers = false;
    await b.engine.start();
    const refusals = answerLikeAnOldDevice(b);
    const marks: boolean[] = [];
    const setMark = a.storage.setAnswersSuiteOffers.bind(a.storage);
    a.storage.setAnswersSuiteOffers = (id, answers) => {
      marks.push(answers);
      return setMark(id, answers);
    };
    await a.engine.start();
    const m = await a.engine.send(b.id, "queued before the offer was refused");
    await until(() => h.stateOf(a, m) === "delivered", "delivered");
    expect(refusals.offers).toBe(1);
    expect(marks[0]).toBe(false); // stored at the refusal, before the plain session
    expect(a.logs.filter((l) => l.includes("refused the Noise suite offer"))).toHaveLength(1);
    expect(a.logs).toContain(`attempt out ${b.id.slice(0, 8)} ended: suite-offer-refused`);
    expect(suiteOf(a, b)).toBe("ChaChaPoly_BLAKE2s");
    // Not a failure to show: Alice never told the person about an error with Bob.
    const shown = a.events.flatMap((e) =>
      e.type === "presence" && e.contactId === b.id && e.presence.lastError ? [e.presence.lastError] : [],
    );
    expect(shown).toEqual([]);
    const got = [...b.storage.messages.values()].filter((x) => x.direction === "in");
    expect(got.map((x) => x.text)).toEqual(["queued before the offer was refused"]);
  });

  it("a dial refused before its handshake: the prepared ephemeral keys go to the provider's forget, unwiped until then", async () => {
    h.hub = new Hub();
    // Alice dials (the lower key, chat.md §1; Bob's glare delay outlasts the test) with a provider
    // that records `forget` (core/crypto/provider.ts): what the handshake did not take must reach
    // it (node: OpenSSL's copies of the keys), not only be zeroed.
    const [low, high] = lowerKeyFirst();
    const forgotten: { what: string; length: number; live: boolean }[] = [];
    const record = (what: string) => (key: Uint8Array) =>
      forgotten.push({ what, length: key.length, live: key.some((b) => b !== 0) });
    const recording: CryptoProvider = {
      ...web,
      name: `${web.name}+forget-log`,
      x25519: {
        ...web.x25519,
        forget: (k) => {
          record("x25519")(k);
          web.x25519.forget?.(k);
        },
      },
      mlkem768: {
        ...web.mlkem768,
        forget: (k) => {
          record("mlkem768")(k);
          web.mlkem768.forget?.(k);
        },
      },
    };
    const a = h.node("alice", low!.u, undefined, undefined, { crypto: recording });
    const b = h.node("bob", high!.u, undefined, undefined, { glareDelayMs: 60_000 });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await b.engine.start();
    // Bob's device refuses every offer: no handshake runs, so no key of Alice's dial is taken.
    h.hub.endpoints.get(b.id)!.onOffer = (offer) => offer.refuse("busy");
    await a.engine.start();
    await until(() => forgotten.length >= 2, "the prepared keys forgotten");
    expect(h.hub.offers).toBeGreaterThan(0);
    // Each dial's pair, in turn: the X25519 private key and the ML-KEM-768 decapsulation key
    // (FIPS 203: 2400 bytes), handed over before they are zeroed.
    expect(forgotten.slice(0, 2)).toEqual([
      { what: "x25519", length: 32, live: true },
      { what: "mlkem768", length: 2400, live: true },
    ]);
  });

  /** The suite of the member link `n` holds with `peer` in `room` (undefined: no session). */
  const memberSuite = (n: EngineNode, room: string, peer: EngineNode) =>
    n.engine.rooms?.memberSession(room, peer.id)?.session.protocolName;
  const inRoom = async (name: string) => {
    const n = h.node(name);
    await n.engine.start();
    await until(() => n.engine.serviceStatus().signaling === "connected", `${name} registered`);
    return n;
  };

  it("room member links run AES-GCM too, from the first dial, in both roles", async () => {
    h.hub = new Hub();
    const [a, b] = [await inRoom("ann"), await inRoom("bea")];
    const room = await a.engine.rooms!.create();
    await b.engine.rooms!.join(room.fragment);
    await until(
      () => memberSuite(a, room.id, b) !== undefined && memberSuite(b, room.id, a) !== undefined,
      "linked",
    );
    expect([memberSuite(a, room.id, b), memberSuite(b, room.id, a)]).toEqual([
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
      "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256",
    ]);
    // Both roles say they read `room.mbox` `n` (rooms.md §9, "The order of announcements"): a
    // member without it is sent the four-key frame its decoder takes.
    const memberReadsOrder = (n: EngineNode, peer: EngineNode) => {
      const s = n.engine.rooms?.memberSession(room.id, peer.id)?.session;
      return s !== undefined && peerReadsOrder(s.remoteExtensions);
    };
    expect([memberReadsOrder(a, b), memberReadsOrder(b, a)]).toEqual([true, true]);
    a.engine.rooms!.send(room.id, "over AES-GCM in a room");
    await until(
      () => b.engine.rooms!.messages(room.id).some((m) => m.text === "over AES-GCM in a room"),
      "bea got it",
    );
  });

  it("a room member whose device refuses the offer: dialed again at once, plainly; the room works", async () => {
    h.hub = new Hub();
    const a = await inRoom("ann");
    const b = h.node("bea");
    await b.engine.start();
    await until(() => b.engine.serviceStatus().signaling === "connected", "bea registered");
    // Bea answers like a device from before suites, as Bob in the contact test above.
    const refusals = answerLikeAnOldDevice(b);
    const room = await a.engine.rooms!.create();
    // Ann present first (her join answered) before bea joins: the rendezvous is entered in the
    // background, and two joins in flight at once reach the server in either order — then bea,
    // there first, would dial ann and no offer of ann's would ever reach bea's old device.
    await until(() => a.engine.rooms!.room(room.id)?.status === "in", "ann in the room");
    await b.engine.rooms!.join(room.fragment);
    // Ann, present first, dials bea (rooms.md §3): refused once, then a plain session.
    await until(() => memberSuite(a, room.id, b) !== undefined, "linked after the refusal");
    expect(refusals.offers).toBe(1);
    expect(memberSuite(a, room.id, b)).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(a.logs.filter((l) => l.includes("refused the Noise suite offer"))).toHaveLength(1);
    // Not a refused attempt (that is for a wrong secret), and chat goes through.
    expect(a.engine.rooms!.room(room.id)?.refused).toEqual([]);
    a.engine.rooms!.send(room.id, "plainly, after the refusal");
    await until(
      () => a.engine.rooms!.messages(room.id).every((m) => m.state === "delivered"),
      "delivered to bea",
    );
  });
});
