/**
 * Replays Loft's offline first-contact vectors (docs/vectors/pqxdh-v1.json, written by
 * scripts/gen-ratchet-vectors.ts) with a given crypto provider: for each case, Alice's
 * `initiateSession` with the recorded draws must produce the recorded initial message and state,
 * and Bob's `acceptInitialMessage` the recorded plaintext, store and state; the replay is refused.
 * Used by core/prekey/vectors.test.ts, test/vectors/backends.test.ts and the Chromium page of
 * test/e2e/crypto-backends.e2e.ts.
 */
import { fromHex, toHex } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { RandomBytes } from "../ratchet/ratchet.ts";
import { serializeRatchet } from "../ratchet/state.ts";
import { acceptInitialMessage, initiateSession } from "./pqxdh.ts";
import { deserializePrekeyStore, type PrekeyStore, serializePrekeyStore } from "./store.ts";

export interface PqxdhCase {
  name: string;
  now: number;
  bundle: string;
  bundle_time: { created_at: number; signed_message: string; signature: string };
  bob_store_before: string;
  plaintext: string;
  initiate_random: string[];
  initial_message: string;
  alice_state: string;
  derivation: Record<string, string | null>;
  accept_random: string[];
  sender_identity_key: string;
  bob_store_after: string;
  bob_state: string;
  replay_error: string;
  replay_cache_entry: string | null;
}

export interface PqxdhVectorFile {
  alice: { identity_secret: string; identity_key: string; store_random: string[]; store: string };
  bob: {
    identity_secret: string;
    identity_key: string;
    store_random: string[];
    store: string;
    store_without_one_time_keys_random: string[];
    store_without_one_time_keys: string;
  };
  cases: PqxdhCase[];
  stale_bundle: { bundle: string; now: number; error: string };
}

/** Hands out the file's draws in order; a missing draw or one of another length throws. */
export function replayRandom(draws: readonly string[]): RandomBytes {
  let i = 0;
  return (n) => {
    const next = draws[i++];
    if (next === undefined || next.length !== 2 * n)
      throw new Error(`vector: draw ${i - 1} missing or not ${n} bytes`);
    return fromHex(next);
  };
}

function storeOf(hex: string): PrekeyStore {
  const r = deserializePrekeyStore(fromHex(hex));
  if (!r.ok) throw r.error;
  return r.value;
}

/** One case, both sides; the first mismatch, or "passed". */
export async function replayPqxdhCase(
  file: PqxdhVectorFile,
  c: PqxdhCase,
  crypto: CryptoProvider = nobleCrypto,
): Promise<string> {
  const started = await initiateSession({
    sender: storeOf(file.alice.store),
    bundle: fromHex(c.bundle),
    recipientIdentityKey: fromHex(file.bob.identity_key),
    plaintext: fromHex(c.plaintext),
    now: c.now,
    random: replayRandom(c.initiate_random),
    crypto,
  });
  if (!started.ok) return `${c.name}: initiate failed: ${started.error.code}`;
  if (toHex(started.value.message) !== c.initial_message) return `${c.name}: initial message`;
  if (toHex(serializeRatchet(started.value.state)) !== c.alice_state) return `${c.name}: alice state`;
  const accepted = await acceptInitialMessage(storeOf(c.bob_store_before), fromHex(c.initial_message), {
    now: c.now,
    random: replayRandom(c.accept_random),
    crypto,
  });
  if (!accepted.ok) return `${c.name}: accept failed: ${accepted.error.code}`;
  if (toHex(accepted.value.plaintext) !== c.plaintext) return `${c.name}: plaintext`;
  if (toHex(accepted.value.senderIdentityKey) !== c.sender_identity_key) return `${c.name}: sender`;
  if (toHex(serializePrekeyStore(accepted.value.store)) !== c.bob_store_after) return `${c.name}: bob store`;
  if (toHex(serializeRatchet(accepted.value.state)) !== c.bob_state) return `${c.name}: bob state`;
  const replayed = await acceptInitialMessage(accepted.value.store, fromHex(c.initial_message), {
    now: c.now,
    crypto,
  });
  if ((replayed.ok ? "accepted" : replayed.error.code) !== c.replay_error) return `${c.name}: replay`;
  return "passed";
}

/** Every case of the file; the first mismatch, or "passed". */
export async function replayPqxdhVectors(
  file: PqxdhVectorFile,
  crypto: CryptoProvider = nobleCrypto,
): Promise<string> {
  for (const c of file.cases) {
    const r = await replayPqxdhCase(file, c, crypto);
    if (r !== "passed") return r;
  }
  return "passed";
}
