/**
 * Replays Loft's Double Ratchet vectors (docs/vectors/ratchet-v1.json and, for message version
 * 0x02, docs/vectors/ratchet-v2.json, written by scripts/gen-ratchet-vectors.ts) with a given crypto provider: the KDFs, then every scripted
 * session with exactly the random draws the file lists. Used by core/ratchet/vectors.test.ts, by
 * test/vectors/backends.test.ts for every backend in Node, and by the page of
 * test/e2e/crypto-backends.e2e.ts in Chromium.
 */
import { fromHex, toHex } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { ratchetFromHandshake } from "./bootstrap.ts";
import { kdfChain, kdfRoot, splitBootstrapSecret } from "./kdf.ts";
import type { MessageVersion } from "./message.ts";
import { expireSkippedKeys, type RandomBytes, ratchetDecrypt, ratchetEncrypt } from "./ratchet.ts";
import { type RatchetState, serializeRatchet } from "./state.ts";

export interface Step {
  note: string;
  party: "alice" | "bob";
  /** `expire`: the state a caller stores after a failed decrypt (`expireSkippedKeys`). */
  op: "encrypt" | "decrypt" | "expire";
  now: number;
  /** `encrypt` only: the message version written (docs/protocol/ratchet.md); absent = 0x01. */
  version?: number;
  plaintext?: string;
  message?: string;
  random: string[];
  error?: string;
  state: string;
}

export interface SessionVector {
  exported: string;
  ad: string;
  limits: { maxSkip: number; maxSkippedKeys: number; skippedKeyTtlMs: number };
  bob_ratchet_secret: string;
  bob_ratchet_public: string;
  alice_init_random: string[];
  alice_state: string;
  bob_state: string;
}

export interface RatchetVectorFile {
  kdf: {
    bootstrap: Record<"secret" | "sk" | "shared_hka" | "shared_nhkb", string>;
    kdf_rk: Record<"rk" | "dh_out" | "root_key" | "chain_key" | "next_header_key", string>;
    kdf_ck: Record<"ck" | "message_key" | "next_chain_key", string>;
  };
  session: SessionVector;
  steps: Step[];
  /** Limit edges (maxSkip, maxSkippedKeys eviction, MAX_SKIPPED_CHAINS, TTL), each its own session. */
  limit_edges: { name: string; session: SessionVector; steps: Step[] }[];
}

/** Hands out the file's draws in order; a draw of another length, or a missing one, fails. */
function replayRandom(draws: readonly string[]): RandomBytes & { rest(): number } {
  let i = 0;
  const fn = ((n: number) => {
    const next = draws[i++];
    if (next === undefined) throw new Error(`vector: no random draw left (wanted ${n} bytes)`);
    if (next.length !== 2 * n)
      throw new Error(`vector: draw ${i - 1} has ${next.length / 2} bytes, wanted ${n}`);
    return fromHex(next);
  }) as RandomBytes & { rest(): number };
  fn.rest = () => draws.length - i;
  return fn;
}

/**
 * Replays the whole file with `crypto`'s primitives (noble by default); returns the first
 * mismatch, or "passed".
 */
export async function replayRatchetVectors(
  file: RatchetVectorFile,
  crypto: CryptoProvider = nobleCrypto,
): Promise<string> {
  const k = file.kdf;
  const split = await splitBootstrapSecret(crypto, fromHex(k.bootstrap.secret));
  if (toHex(split.sharedSecret) !== k.bootstrap.sk) return "bootstrap sk";
  if (toHex(split.sharedHeaderKeyA) !== k.bootstrap.shared_hka) return "bootstrap shared_hka";
  if (toHex(split.sharedNextHeaderKeyB) !== k.bootstrap.shared_nhkb) return "bootstrap shared_nhkb";
  const root = await kdfRoot(crypto, fromHex(k.kdf_rk.rk), fromHex(k.kdf_rk.dh_out));
  if (toHex(root.rootKey) !== k.kdf_rk.root_key) return "kdf_rk root_key";
  if (toHex(root.chainKey) !== k.kdf_rk.chain_key) return "kdf_rk chain_key";
  if (toHex(root.nextHeaderKey) !== k.kdf_rk.next_header_key) return "kdf_rk next_header_key";
  const chain = await kdfChain(crypto, fromHex(k.kdf_ck.ck));
  if (toHex(chain.messageKey) !== k.kdf_ck.message_key) return "kdf_ck message_key";
  if (toHex(chain.chainKey) !== k.kdf_ck.next_chain_key) return "kdf_ck next_chain_key";

  const main = await replaySession(file.session, file.steps, "", crypto);
  if (main !== "passed") return main;
  for (const edge of file.limit_edges) {
    const r = await replaySession(edge.session, edge.steps, `${edge.name}: `, crypto);
    if (r !== "passed") return r;
  }
  return "passed";
}

/** One session's initialisation and scripted steps; returns the first mismatch, or "passed". */
async function replaySession(
  s: SessionVector,
  steps: readonly Step[],
  prefix: string,
  crypto: CryptoProvider,
): Promise<string> {
  const exported = fromHex(s.exported);
  const ad = fromHex(s.ad);
  const random = replayRandom(s.alice_init_random);
  const alice = await ratchetFromHandshake({
    role: "initiator",
    exported,
    ad,
    responderRatchetPublic: fromHex(s.bob_ratchet_public),
    limits: s.limits,
    random,
    crypto,
  });
  const bob = await ratchetFromHandshake({
    role: "responder",
    exported,
    ad,
    limits: s.limits,
    ratchetKeyPair: { secretKey: fromHex(s.bob_ratchet_secret), publicKey: fromHex(s.bob_ratchet_public) },
    crypto,
  });
  if (!alice.ok || !bob.ok || random.rest() !== 0) return "session init";
  const states: Record<"alice" | "bob", RatchetState> = { alice: alice.value, bob: bob.value };
  if (toHex(serializeRatchet(states.alice)) !== s.alice_state) return "alice initial state";
  if (toHex(serializeRatchet(states.bob)) !== s.bob_state) return "bob initial state";

  for (const [i, step] of steps.entries()) {
    const stepRandom = replayRandom(step.random);
    const where = `${prefix}step ${i} (${step.party} ${step.op}: ${step.note})`;
    if (step.op === "expire") {
      states[step.party] = expireSkippedKeys(states[step.party], step.now);
    } else if (step.op === "encrypt") {
      const r = await ratchetEncrypt(states[step.party], fromHex(step.plaintext!), step.now, {
        random: stepRandom,
        crypto,
        ...(step.version === undefined ? {} : { messageVersion: step.version as MessageVersion }),
      });
      states[step.party] = r.state;
      if (toHex(r.message) !== step.message) return `${where}: message`;
    } else {
      const r = await ratchetDecrypt(states[step.party], fromHex(step.message!), step.now, {
        random: stepRandom,
        crypto,
      });
      if (r.ok) {
        states[step.party] = r.value.state;
        if (step.error !== undefined || toHex(r.value.plaintext) !== step.plaintext)
          return `${where}: plaintext`;
      } else if (r.error.code !== step.error) return `${where}: got ${r.error.code}`;
    }
    if (stepRandom.rest() !== 0) return `${where}: unused random draws`;
    if (toHex(serializeRatchet(states[step.party])) !== step.state) return `${where}: state`;
  }
  return "passed";
}
