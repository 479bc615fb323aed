/**
 * Loft's side of bench:core: each subject drives the public core APIs (core/noise, core/session,
 * core/ratchet, core/identity) with the crypto provider it is given (core/crypto: noble,
 * WebCrypto or node:crypto — bench/core.ts `--backend`) and `await`s every core call.
 */

import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { createUserIdentity } from "../core/identity/identity.ts";
import { memoryLinkPair } from "../core/link/memory-link.ts";
import {
  generateKeyPair,
  HandshakeState,
  type NoiseTransport,
  type PreparedEphemerals,
  prepareEphemerals,
} from "../core/noise/index.ts";
import type { HandshakePattern } from "../core/noise/patterns.ts";
import {
  generateRatchetKeyPair,
  RATCHET_EXPORT_LABEL,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
} from "../core/ratchet/index.ts";
import { establishSession } from "../core/session/index.ts";
import type { Subject } from "./harness.ts";

const EMPTY = new Uint8Array(0);
/** The handshake extension carrying the responder's ratchet public key (web/src/engine/ratchet-store.ts). */
const RATCHET_KEY_EXTENSION = "ratchet-key";

function unwrap<T>(r: { ok: true; value: T } | { ok: false; error: Error }): T {
  if (!r.ok) throw r.error;
  return r.value;
}

/** Long-lived static keys, as every peer has (libp2p's subject reuses its static keys too). */
const initiatorStatic = await generateKeyPair();
const responderStatic = await generateKeyPair();

/** A complete handshake between two HandshakeStates in one process, empty payloads. */
export async function handshake(
  pattern: HandshakePattern,
  crypto: CryptoProvider = nobleCrypto,
  prepared?: PreparedEphemerals,
): Promise<[NoiseTransport, NoiseTransport]> {
  const prologue = new Uint8Array([1]);
  const i = await HandshakeState.create({
    pattern,
    role: "initiator",
    prologue,
    ...(prepared ? { prepared } : {}),
    staticKeyPair: initiatorStatic,
    crypto,
  });
  const r = await HandshakeState.create({
    pattern,
    role: "responder",
    prologue,
    staticKeyPair: responderStatic,
    crypto,
  });
  unwrap(await r.readMessage(unwrap(await i.writeMessage())));
  unwrap(await i.readMessage(unwrap(await r.writeMessage())));
  unwrap(await r.readMessage(unwrap(await i.writeMessage())));
  return [unwrap(await i.finish()), unwrap(await r.finish())];
}

export function loftHandshake(name: string, pattern: HandshakePattern, crypto?: CryptoProvider): Subject {
  return {
    name,
    run: async () => {
      await handshake(pattern, crypto);
      return 1;
    },
  };
}

/**
 * One handshake whose initiator made its ephemeral keys (X25519 `e`, ML-KEM-768 `e1`) beforehand,
 * as the engine's dialler does while its link opens (web/src/engine/dialing.ts `prepareDialKeys`):
 * self-timed, so the figure is the handshake's critical path, the keys' making left out.
 */
export function loftHandshakePrepared(
  name: string,
  pattern: HandshakePattern,
  crypto: CryptoProvider,
): Subject {
  return {
    name,
    run: async () => {
      const prepared = await prepareEphemerals(crypto);
      const start = performance.now();
      await handshake(pattern, crypto, prepared);
      return { ops: 1, seconds: (performance.now() - start) / 1000 };
    },
  };
}

/**
 * One operation: one `messageBytes` message sealed by one side's transport and opened by the
 * other's, with `crypto`'s AEAD.
 */
export async function loftTransport(
  name: string,
  messageBytes: number,
  pattern: HandshakePattern,
  crypto?: CryptoProvider,
): Promise<Subject> {
  const [ti, tr] = await handshake(pattern, crypto);
  const plaintext = new Uint8Array(messageBytes).fill(7);
  const sealed = new Uint8Array(messageBytes + 16);
  const opened = new Uint8Array(messageBytes);
  return {
    name,
    run: async () => {
      const ct = unwrap(await ti.send.encryptWithAd(EMPTY, plaintext, sealed));
      unwrap(await tr.receive.decryptWithAd(EMPTY, ct, opened));
      return 1;
    },
  };
}

/**
 * One operation: a whole session between two existing users, as the chat engine opens one —
 * version headers, Noise XXhfs+ML-KEM-768 over an in-memory Link pair, each side's signed
 * identity verified and bound to its Noise static key, the responder's fresh ratchet key in the
 * handshake extensions, then both Double Ratchets bootstrapped from the session's exported secret.
 */
export async function loftSessionSetup(crypto: CryptoProvider = nobleCrypto, suffix = ""): Promise<Subject> {
  const now = Date.now();
  const alice = await createUserIdentity({ username: "alice", now });
  const bob = await createUserIdentity({ username: "bob", now });
  return {
    name: `Loft session setup (XXhfs + identities + ratchet)${suffix}`,
    run: async () => {
      const [a, b] = memoryLinkPair();
      const bobRatchet = await generateRatchetKeyPair(undefined, crypto);
      const [sa, sb] = await Promise.all([
        establishSession({ link: a, role: "initiator", kind: "direct", self: alice, crypto }),
        establishSession({
          link: b,
          role: "responder",
          kind: "direct",
          self: bob,
          crypto,
          extensions: { [RATCHET_KEY_EXTENSION]: bobRatchet.publicKey },
        }),
      ]);
      const ad = await ratchetAssociatedData(
        alice.identity.verified.identity_key,
        bob.identity.verified.identity_key,
      );
      const theirs = sa.remoteExtensions[RATCHET_KEY_EXTENSION];
      if (!theirs) throw new Error("the responder's ratchet key is missing");
      unwrap(
        await ratchetFromHandshake({
          role: "initiator",
          exported: await sa.exportSecret(RATCHET_EXPORT_LABEL),
          ad,
          responderRatchetPublic: theirs,
          crypto,
        }),
      );
      unwrap(
        await ratchetFromHandshake({
          role: "responder",
          exported: await sb.exportSecret(RATCHET_EXPORT_LABEL),
          ad,
          ratchetKeyPair: bobRatchet,
          crypto,
        }),
      );
      sa.close();
      sb.close();
      return 1;
    },
  };
}

/**
 * Operations are messages of `messageBytes`, each encrypted by one side and decrypted by the
 * other; the direction flips every `replyEvery` messages (a DH ratchet step each time).
 */
export async function loftRatchet(
  messageBytes: number,
  replyEvery: number,
  crypto: CryptoProvider = nobleCrypto,
  suffix = "",
): Promise<Subject> {
  const bobKeys = await generateRatchetKeyPair(undefined, crypto);
  const exported = crypto.randomBytes(32);
  const ad = await ratchetAssociatedData(crypto.randomBytes(32), crypto.randomBytes(32));
  let alice: RatchetState = unwrap(
    await ratchetFromHandshake({
      role: "initiator",
      exported,
      ad,
      responderRatchetPublic: bobKeys.publicKey,
      crypto,
    }),
  );
  let bob: RatchetState = unwrap(
    await ratchetFromHandshake({ role: "responder", exported, ad, ratchetKeyPair: bobKeys, crypto }),
  );
  const text = new Uint8Array(messageBytes).fill(7);
  // Alice → Bob for `replyEvery` messages, then Bob → Alice as many: one call is one whole
  // cycle (two DH ratchet steps), so every slice does the same mix of work however short it is.
  const oneWay = async (from: RatchetState, to: RatchetState): Promise<[RatchetState, RatchetState]> => {
    for (let i = 0; i < replyEvery; i++) {
      const now = Date.now();
      const e = await ratchetEncrypt(from, text, now, { crypto });
      from = e.state;
      to = unwrap(await ratchetDecrypt(to, e.message, now, { crypto })).state;
    }
    return [from, to];
  };
  return {
    name: `Loft Double Ratchet enc+dec${suffix}`,
    run: async () => {
      [alice, bob] = await oneWay(alice, bob);
      [bob, alice] = await oneWay(bob, alice);
      return 2 * replyEvery;
    },
  };
}
