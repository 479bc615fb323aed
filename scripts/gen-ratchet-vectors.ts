/**
 * Generates Loft's own Double Ratchet and PQXDH-style first-contact vectors:
 *
 *   docs/vectors/ratchet-v1.json  KDF_RK_HE / KDF_CK / bootstrap split, and a scripted two-party
 *                                 conversation with out-of-order delivery, a replay, a tampered
 *                                 message and an expired skipped key (Signal DR §4 with header
 *                                 encryption, docs/protocol/ratchet.md).
 *   docs/vectors/ratchet-v2.json  message version 0x02 (AES-256-GCM body): a scripted conversation
 *                                 mixing 0x02 and 0x01 messages, a tampered tag, a version byte
 *                                 swapped either way, a truncated and an unknown-version message.
 *   docs/vectors/ratchet-v3.json  message version 0x03 (AES-256-GCM header and body) mixed with 0x02
 *                                 and 0x01: out of order, replays, tampered header / tag / header IV,
 *                                 every relabelling, a truncated and an unknown-version message.
 *   docs/vectors/pqxdh-v1.json    two prekey stores, Bob's bundle, and first contact with and
 *                                 without one-time prekeys, with every intermediate value of the
 *                                 key agreement (docs/protocol/prekeys.md).
 *
 * Every random byte an operation draws is produced by a ChaCha20 DRBG seeded with
 * SHA-256("loft/vectors/" ‖ label) and written into the file, in draw order, next to the operation
 * (`random: [hex, ...]`). A replay needs only those lists, never the DRBG. The tests
 * (core/ratchet/vectors.test.ts, core/prekey/vectors.test.ts) replay the committed files and check
 * that this script regenerates them byte for byte.
 *
 *   npx tsx scripts/gen-ratchet-vectors.ts          # rewrite the files
 *   npx tsx scripts/gen-ratchet-vectors.ts --check  # exit 1 if a committed file differs
 */
import { fileURLToPath } from "node:url";
import { chacha20poly1305, rngChacha20 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { concatBytes, toHex, utf8 } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  encodePrekeyBundle,
  initiateSession,
  MAX_BUNDLE_AGE_MS,
  type PrekeyStore,
  prekeyBundle,
  serializePrekeyStore,
} from "../core/prekey/index.ts";
import {
  DEFAULT_RATCHET_LIMITS,
  expireSkippedKeys,
  generateRatchetKeyPair,
  kdfChain,
  kdfRoot,
  MAX_SKIPPED_CHAINS,
  MESSAGE_VERSION,
  MESSAGE_VERSION_2,
  MESSAGE_VERSION_3,
  type MessageVersion,
  MIN_MESSAGE_LEN,
  type RandomBytes,
  type RatchetLimits,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
  serializeRatchet,
  splitBootstrapSecret,
} from "../core/ratchet/index.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const RATCHET_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/ratchet-v1.json", import.meta.url));
export const RATCHET_V2_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/ratchet-v2.json", import.meta.url),
);
export const RATCHET_V3_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/ratchet-v3.json", import.meta.url),
);
export const PQXDH_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/pqxdh-v1.json", import.meta.url));

/** A DRBG whose every draw is recorded, so the file can list them operation by operation. */
class RecordedRandom {
  readonly #prg;
  #draws: string[] = [];
  constructor(label: string) {
    this.#prg = rngChacha20(sha256(utf8(`loft/vectors/${label}`)));
  }
  readonly random: RandomBytes = (n) => {
    const bytes = this.#prg.randomBytes(n);
    this.#draws.push(toHex(bytes));
    return bytes;
  };
  /** The draws since the last call. */
  take(): string[] {
    const d = this.#draws;
    this.#draws = [];
    return d;
  }
}

const T0 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Ratchet

async function kdfVectors(rng: RecordedRandom) {
  const secret = rng.random(32);
  const split = await splitBootstrapSecret(nobleCrypto, secret);
  const rk = rng.random(32);
  const dhOut = rng.random(32);
  const root = await kdfRoot(nobleCrypto, rk, dhOut);
  const ck = rng.random(32);
  const chain = await kdfChain(nobleCrypto, ck);
  rng.take();
  return {
    bootstrap: {
      secret: toHex(secret),
      sk: toHex(split.sharedSecret),
      shared_hka: toHex(split.sharedHeaderKeyA),
      shared_nhkb: toHex(split.sharedNextHeaderKeyB),
    },
    kdf_rk: {
      rk: toHex(rk),
      dh_out: toHex(dhOut),
      root_key: toHex(root.rootKey),
      chain_key: toHex(root.chainKey),
      next_header_key: toHex(root.nextHeaderKey),
    },
    kdf_ck: { ck: toHex(ck), message_key: toHex(chain.messageKey), next_chain_key: toHex(chain.chainKey) },
  };
}

type Party = "alice" | "bob";

/** A ratchet vector file, as written: `description`, the generator, then the vectors. */
function ratchetFile(
  description: string,
  kdf: Awaited<ReturnType<typeof kdfVectors>>,
  session: Awaited<ReturnType<typeof conversation>>["session"],
  steps: Awaited<ReturnType<typeof conversation>>["steps"],
  limitEdges: unknown[],
): string {
  const file = {
    description,
    generator: "scripts/gen-ratchet-vectors.ts",
    kdf,
    session,
    steps,
    limit_edges: limitEdges,
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * A two-party session and its scripted steps: `encrypt`, `decrypt` (a failure leaves the state as
 * it was) and `expire` (`expireSkippedKeys`, what a caller stores after a failed decrypt).
 */
async function conversation(rng: RecordedRandom, limits: RatchetLimits) {
  const exported = rng.random(32);
  const bobKeys = await generateRatchetKeyPair(rng.random);
  rng.take();
  const ad = ratchetAssociatedData(sha256(utf8("alice identity key")), sha256(utf8("bob identity key")));
  const aliceInit = await ratchetFromHandshake({
    role: "initiator",
    exported,
    ad,
    limits,
    responderRatchetPublic: bobKeys.publicKey,
    random: rng.random,
  });
  if (!aliceInit.ok) throw aliceInit.error;
  const aliceInitRandom = rng.take();
  const bobInit = await ratchetFromHandshake({
    role: "responder",
    exported,
    ad,
    limits,
    ratchetKeyPair: bobKeys,
  });
  if (!bobInit.ok) throw bobInit.error;
  const states: Record<Party, RatchetState> = { alice: aliceInit.value, bob: bobInit.value };
  const session = {
    exported: toHex(exported),
    ad: toHex(ad),
    limits: { ...limits },
    bob_ratchet_secret: toHex(bobKeys.secretKey),
    bob_ratchet_public: toHex(bobKeys.publicKey),
    alice_init_random: aliceInitRandom,
    alice_state: toHex(serializeRatchet(states.alice)),
    bob_state: toHex(serializeRatchet(states.bob)),
  };

  const messages = new Map<string, Uint8Array>();
  const steps: Record<string, unknown>[] = [];
  const encrypt = async (party: Party, name: string, now: number, note: string, version?: MessageVersion) => {
    const plaintext = utf8(`${party}: ${name}`);
    const r = await ratchetEncrypt(states[party], plaintext, now, {
      random: rng.random,
      ...(version === undefined ? {} : { messageVersion: version }),
    });
    states[party] = r.state;
    messages.set(name, r.message);
    steps.push({
      note,
      party,
      op: "encrypt",
      now,
      ...(version === undefined ? {} : { version }),
      plaintext: toHex(plaintext),
      random: rng.take(),
      message: toHex(r.message),
      state: toHex(serializeRatchet(states[party])),
    });
  };
  const decrypt = async (party: Party, message: Uint8Array, now: number, note: string) => {
    const r = await ratchetDecrypt(states[party], message, now, { random: rng.random });
    if (r.ok) states[party] = r.value.state;
    steps.push({
      note,
      party,
      op: "decrypt",
      now,
      message: toHex(message),
      random: rng.take(),
      ...(r.ok ? { plaintext: toHex(r.value.plaintext) } : { error: r.error.code }),
      state: toHex(serializeRatchet(states[party])),
    });
  };
  const expire = (party: Party, now: number, note: string) => {
    states[party] = expireSkippedKeys(states[party], now);
    steps.push({ note, party, op: "expire", now, random: [], state: toHex(serializeRatchet(states[party])) });
  };
  const msg = (name: string) => messages.get(name)!;
  const skippedCount = (party: Party) => states[party].skipped.length;
  return { session, steps, encrypt, decrypt, expire, msg, skippedCount };
}

type Conversation = Awaited<ReturnType<typeof conversation>>;

/**
 * The edges of the limits (docs/protocol/ratchet.md, "Limits"), each in a session with small limits
 * so that the file stays short: MAX_SKIP exactly and one over, eviction at maxSkippedKeys, the
 * MAX_SKIPPED_CHAINS bound, and the TTL boundary (valid at exactly the TTL, expired 1 ms later,
 * also after a failed decrypt through `expireSkippedKeys`).
 */
async function limitEdges() {
  const limits: RatchetLimits = { maxSkip: 3, maxSkippedKeys: 4, skippedKeyTtlMs: 1000 };
  const wide: RatchetLimits = { maxSkip: 3, maxSkippedKeys: 100, skippedKeyTtlMs: 1000 };
  /** One case: a fresh conversation (its own recorded random stream) played by `play`. */
  const limitCase = async (
    name: string,
    stream: string,
    caseLimits: RatchetLimits,
    play: (c: Conversation) => Promise<void>,
  ) => {
    const c = await conversation(new RecordedRandom(`ratchet/limits/${stream}`), caseLimits);
    await play(c);
    return { name, session: c.session, steps: c.steps };
  };

  return [
    await limitCase("maxSkip: exactly MAX_SKIP skipped keys, and one more", "max-skip", limits, async (c) => {
      for (let i = 0; i < 5; i++) await c.encrypt("alice", `a${i}`, T0 + i, "");
      await c.decrypt(
        "bob",
        c.msg("a4"),
        T0 + 10,
        "a4 first: 4 keys to skip > maxSkip 3, LOFT_ERR_TOO_MANY_SKIPPED",
      );
      await c.decrypt("bob", c.msg("a3"), T0 + 11, "a3: exactly maxSkip (3) keys skipped, accepted");
      await c.decrypt("bob", c.msg("a4"), T0 + 12, "a4 is next in the chain now");
    }),
    await limitCase("maxSkippedKeys: the oldest skipped key is evicted", "eviction", limits, async (c) => {
      for (let i = 0; i < 3; i++) await c.encrypt("alice", `a${i}`, T0 + i, "");
      await c.decrypt("bob", c.msg("a2"), T0 + 10, "a0, a1 skipped (2 stored)");
      await c.encrypt("bob", "b0", T0 + 11, "");
      await c.decrypt("alice", c.msg("b0"), T0 + 12, "");
      for (let i = 3; i < 6; i++) await c.encrypt("alice", `a${i}`, T0 + 10 + i, "Alice's second chain");
      await c.decrypt(
        "bob",
        c.msg("a5"),
        T0 + 20,
        "a3, a4 skipped: 4 stored = maxSkippedKeys, nothing evicted yet",
      );
      if (c.skippedCount("bob") !== 4) throw new Error("vector generation: eviction setup");
      await c.encrypt("bob", "b1", T0 + 21, "");
      await c.decrypt("alice", c.msg("b1"), T0 + 22, "");
      for (let i = 6; i < 8; i++) await c.encrypt("alice", `a${i}`, T0 + 20 + i, "Alice's third chain");
      await c.decrypt(
        "bob",
        c.msg("a7"),
        T0 + 30,
        "a6 skipped: the 5th key, so the oldest (a0's) is evicted and zeroed",
      );
      await c.decrypt("bob", c.msg("a0"), T0 + 31, "a0's key was evicted: LOFT_ERR_REPLAY");
      await c.decrypt("bob", c.msg("a1"), T0 + 32, "a1's key is still stored");
    }),
    await limitCase(
      `MAX_SKIPPED_CHAINS (${MAX_SKIPPED_CHAINS}): skipped keys of older receiving chains are evicted`,
      "chains",
      wide,
      async (c) => {
        const firsts: string[] = [];
        for (let chain = 0; chain <= MAX_SKIPPED_CHAINS; chain++) {
          await c.encrypt("alice", `c${chain}m0`, T0 + chain * 10, "");
          await c.encrypt("alice", `c${chain}m1`, T0 + chain * 10 + 1, "");
          await c.decrypt("bob", c.msg(`c${chain}m1`), T0 + chain * 10 + 2, `chain ${chain}: m0 skipped`);
          firsts.push(`c${chain}m0`);
          await c.encrypt("bob", `b${chain}`, T0 + chain * 10 + 3, "");
          await c.decrypt("alice", c.msg(`b${chain}`), T0 + chain * 10 + 4, "");
        }
        const last = T0 + (MAX_SKIPPED_CHAINS + 1) * 10;
        await c.decrypt(
          "bob",
          c.msg(firsts[0]!),
          last,
          `chain 0 is the ${MAX_SKIPPED_CHAINS + 1}th most recent: its keys (and header key) were evicted, LOFT_ERR_DECRYPT`,
        );
        await c.decrypt(
          "bob",
          c.msg(firsts[1]!),
          last + 1,
          `chain 1 is within the ${MAX_SKIPPED_CHAINS} most recent: accepted`,
        );
      },
    ),
    await limitCase("skippedKeyTtlMs: the TTL boundary", "ttl", limits, async (c) => {
      for (let i = 0; i < 4; i++) await c.encrypt("alice", `a${i}`, T0 + i, "");
      await c.decrypt("bob", c.msg("a3"), T0 + 10, "a0, a1, a2 skipped, stored at T0 + 10");
      await c.decrypt("bob", c.msg("a0"), T0 + 10 + 1000, "exactly the TTL after storing: still valid");
      await c.decrypt(
        "bob",
        c.msg("a1"),
        T0 + 10 + 1001,
        "1 ms past the TTL: expired, LOFT_ERR_REPLAY, state unchanged",
      );
      c.expire(
        "bob",
        T0 + 10 + 1001,
        "after the failed decrypt the caller stores expireSkippedKeys: a1, a2 gone",
      );
      await c.decrypt("bob", c.msg("a2"), T0 + 10 + 1002, "a2's key is gone: LOFT_ERR_REPLAY");
    }),
  ];
}

export async function buildRatchetVectorFile(): Promise<string> {
  const rng = new RecordedRandom("ratchet");
  const kdf = await kdfVectors(rng);
  const { session, steps, encrypt, decrypt, msg } = await conversation(rng, DEFAULT_RATCHET_LIMITS);
  await encrypt("alice", "a0", T0, "Alice's first chain (header key shared_hka)");
  await encrypt("alice", "a1", T0 + 1, "");
  await encrypt("alice", "a2", T0 + 2, "");
  await decrypt(
    "bob",
    msg("a2"),
    T0 + 10,
    "out of order: header opens under NHKr, DH ratchet, a0 and a1 skipped",
  );
  await decrypt("bob", msg("a0"), T0 + 11, "skipped key used and deleted");
  await encrypt("bob", "b0", T0 + 12, "Bob's first chain (header key shared_nhkb)");
  await encrypt("bob", "b1", T0 + 13, "");
  await decrypt("alice", msg("b1"), T0 + 20, "Alice steps her DH ratchet; b0 skipped");
  await encrypt("alice", "a3", T0 + 21, "Alice's second chain: PN = 3");
  await decrypt(
    "bob",
    msg("a3"),
    T0 + 30,
    "Bob steps his DH ratchet (nothing left to skip in the old chain)",
  );
  await decrypt(
    "bob",
    msg("a1"),
    T0 + 31,
    "skipped key of an earlier chain (its header key is only in MKSKIPPED)",
  );
  await decrypt("alice", msg("b0"), T0 + 32, "skipped key");
  await decrypt("bob", msg("a3"), T0 + 33, "replay in the current chain: LOFT_ERR_REPLAY, state unchanged");
  await decrypt(
    "bob",
    msg("a1"),
    T0 + 34,
    "replay from a chain whose keys are all used: no header key left opens it, LOFT_ERR_DECRYPT",
  );
  await encrypt("alice", "a4", T0 + 40, "");
  await encrypt("alice", "a5", T0 + 41, "");
  const tampered = msg("a5").slice();
  tampered[tampered.length - 1]! ^= 0x01;
  await decrypt("bob", tampered, T0 + 49, "tampered body: LOFT_ERR_DECRYPT, state unchanged");
  await decrypt("bob", msg("a5"), T0 + 50, "the genuine a5; a4's key is stored as skipped at T0 + 50");
  await decrypt(
    "bob",
    msg("a4"),
    T0 + 50 + DEFAULT_RATCHET_LIMITS.skippedKeyTtlMs + 1,
    "a4 arrives after the skipped-key TTL: its key has expired (LOFT_ERR_REPLAY)",
  );
  await encrypt("bob", "b2", T0 + 60, "");
  await decrypt("alice", msg("b2"), T0 + 61, "");
  // 0x02 is defined since message version 0x02 (ratchet-v2.json), 0x03 since ratchet-v3.json;
  // 0x04 is not.
  const unknown = msg("a5").slice();
  unknown[0] = 0x04;
  await decrypt("alice", unknown, T0 + 62, "unknown message version");

  return ratchetFile(
    "Loft Double Ratchet with header encryption (Signal DR revision 1, §4), X25519 / HKDF-SHA-256 / " +
      "HMAC-SHA-256 / XChaCha20-Poly1305. Layouts and KDFs: docs/protocol/ratchet.md. Each operation " +
      "lists the random bytes it draws (in order); `state` is the party's serialized state afterwards.",
    kdf,
    session,
    steps,
    await limitEdges(),
  );
}

/**
 * Message version 0x02 (docs/protocol/ratchet.md, "Version 0x02"): the same KDFs and header
 * encryption, the body under AES-256-GCM with the first 12 bytes of the random nonce. Both parties
 * read both versions, so the script mixes them in one chain and across DH ratchet steps, and checks
 * that a version byte changed in transit (either way) is refused: the header's AD is that byte.
 */
export async function buildRatchetV2VectorFile(): Promise<string> {
  const rng = new RecordedRandom("ratchet/v2");
  const kdf = await kdfVectors(rng);
  const { session, steps, encrypt, decrypt, msg } = await conversation(rng, DEFAULT_RATCHET_LIMITS);
  const V1 = MESSAGE_VERSION;
  const V2 = MESSAGE_VERSION_2;
  await encrypt("alice", "a0", T0, "0x02: AES-256-GCM body, IV = nonce bytes 0..11", V2);
  await encrypt("alice", "a1", T0 + 1, "0x01 in the same chain (a mixed burst)", V1);
  await encrypt("alice", "a2", T0 + 2, "0x02", V2);
  await decrypt("bob", msg("a2"), T0 + 10, "0x02 out of order: DH ratchet, a0 and a1 skipped");
  await decrypt("bob", msg("a1"), T0 + 11, "0x01 with a skipped key");
  await decrypt("bob", msg("a0"), T0 + 12, "0x02 with a skipped key");
  await encrypt("bob", "b0", T0 + 13, "Bob's first chain, 0x02", V2);
  await encrypt("bob", "b1", T0 + 14, "", V2);
  await decrypt("alice", msg("b1"), T0 + 20, "Alice steps her DH ratchet; b0 skipped");
  await decrypt("alice", msg("b0"), T0 + 21, "skipped key, 0x02");
  await encrypt("alice", "a3", T0 + 22, "Alice's second chain: PN = 3", V2);
  const tag = msg("a3").slice();
  tag[tag.length - 1]! ^= 0x01;
  await decrypt("bob", tag, T0 + 30, "0x02 with a flipped tag bit: LOFT_ERR_DECRYPT, state unchanged");
  const asV1 = msg("a3").slice();
  asV1[0] = V1;
  await decrypt(
    "bob",
    asV1,
    T0 + 31,
    "0x02 message relabelled 0x01: the header's AD is the version byte, LOFT_ERR_DECRYPT",
  );
  const truncated = msg("a3").slice(0, MIN_MESSAGE_LEN - 1);
  await decrypt("bob", truncated, T0 + 32, "shorter than the smallest message: LOFT_ERR_MALFORMED");
  await decrypt("bob", msg("a3"), T0 + 33, "the genuine a3: Bob steps his DH ratchet");
  await decrypt("bob", msg("a3"), T0 + 34, "replay in the current chain: LOFT_ERR_REPLAY");
  await encrypt("bob", "b2", T0 + 40, "0x01 from Bob", V1);
  const asV2 = msg("b2").slice();
  asV2[0] = V2;
  await decrypt("alice", asV2, T0 + 41, "0x01 message relabelled 0x02: LOFT_ERR_DECRYPT");
  await decrypt("alice", msg("b2"), T0 + 42, "the genuine b2");
  const unknown = msg("a3").slice();
  unknown[0] = 0x04;
  await decrypt("bob", unknown, T0 + 43, "unknown message version: LOFT_ERR_UNSUPPORTED_VERSION");

  return ratchetFile(
    "Loft Double Ratchet message version 0x02 (Signal DR revision 1, §4 with header encryption; " +
      "body AEAD AES-256-GCM, IV = the first 12 bytes of the random nonce; header XChaCha20-Poly1305 " +
      "as in 0x01), mixed with 0x01 messages. Layouts: docs/protocol/ratchet.md, 'Version 0x02'. " +
      "An encrypt step's `version` is the version written (absent: 0x01). Each operation lists the " +
      "random bytes it draws (in order); `state` is the party's serialized state afterwards.",
    kdf,
    session,
    steps,
    [],
  );
}

/**
 * Message version 0x03 (docs/protocol/ratchet.md, "Version 0x03"): the body as 0x02, the header
 * under AES-256-GCM too, IV = the last 12 bytes of the random nonce. Mixed with 0x02 and 0x01 in
 * one chain and across DH ratchet steps; every relabelling between the three versions refused.
 */
export async function buildRatchetV3VectorFile(): Promise<string> {
  const rng = new RecordedRandom("ratchet/v3");
  const kdf = await kdfVectors(rng);
  const { session, steps, encrypt, decrypt, msg } = await conversation(rng, DEFAULT_RATCHET_LIMITS);
  const V1 = MESSAGE_VERSION;
  const V2 = MESSAGE_VERSION_2;
  const V3 = MESSAGE_VERSION_3;
  await encrypt("alice", "a0", T0, "0x03: header IV = nonce bytes 12..23, body IV = bytes 0..11", V3);
  await encrypt("alice", "a1", T0 + 1, "0x02 in the same chain (a mixed burst)", V2);
  await encrypt("alice", "a2", T0 + 2, "0x01", V1);
  await encrypt("alice", "a3", T0 + 3, "0x03", V3);
  await decrypt("bob", msg("a3"), T0 + 10, "0x03 out of order: DH ratchet, a0..a2 skipped");
  await decrypt("bob", msg("a1"), T0 + 11, "0x02 with a skipped key");
  await decrypt("bob", msg("a0"), T0 + 12, "0x03 with a skipped key");
  await decrypt("bob", msg("a2"), T0 + 13, "0x01 with a skipped key");
  await encrypt("bob", "b0", T0 + 14, "Bob's first chain, 0x03", V3);
  await encrypt("bob", "b1", T0 + 15, "", V3);
  await encrypt("bob", "b2", T0 + 16, "", V3);
  await decrypt("alice", msg("b0"), T0 + 20, "in order: Alice steps her DH ratchet");
  await decrypt("alice", msg("b2"), T0 + 21, "b1 skipped");
  await decrypt("alice", msg("b1"), T0 + 22, "skipped key, 0x03");
  await decrypt("alice", msg("b1"), T0 + 23, "replay of a used skipped key: LOFT_ERR_REPLAY");
  await decrypt("alice", msg("b2"), T0 + 24, "replay in the current chain: LOFT_ERR_REPLAY");
  await encrypt("alice", "a4", T0 + 25, "Alice's second chain: PN = 4", V3);
  const headerBit = msg("a4").slice();
  headerBit[30]! ^= 0x01;
  await decrypt("bob", headerBit, T0 + 30, "0x03 with a flipped header bit: LOFT_ERR_DECRYPT");
  const tag = msg("a4").slice();
  tag[tag.length - 1]! ^= 0x01;
  await decrypt("bob", tag, T0 + 31, "0x03 with a flipped body tag bit: LOFT_ERR_DECRYPT, state unchanged");
  const nonceHigh = msg("a4").slice();
  nonceHigh[1 + 23]! ^= 0x01;
  await decrypt("bob", nonceHigh, T0 + 32, "last nonce byte flipped (the header's IV): LOFT_ERR_DECRYPT");
  for (const v of [V1, V2]) {
    const relabelled = msg("a4").slice();
    relabelled[0] = v;
    await decrypt("bob", relabelled, T0 + 33, `0x03 message relabelled 0x0${v}: LOFT_ERR_DECRYPT`);
  }
  const truncated = msg("a4").slice(0, MIN_MESSAGE_LEN - 1);
  await decrypt("bob", truncated, T0 + 34, "shorter than the smallest message: LOFT_ERR_MALFORMED");
  await decrypt("bob", msg("a4"), T0 + 35, "the genuine a4: Bob steps his DH ratchet");
  await decrypt("bob", msg("a4"), T0 + 36, "replay in the current chain: LOFT_ERR_REPLAY");
  await encrypt("bob", "b3", T0 + 40, "0x02 from Bob", V2);
  const asV3 = msg("b3").slice();
  asV3[0] = V3;
  await decrypt("alice", asV3, T0 + 41, "0x02 message relabelled 0x03: LOFT_ERR_DECRYPT");
  await decrypt("alice", msg("b3"), T0 + 42, "the genuine b3");
  const unknown = msg("a4").slice();
  unknown[0] = 0x04;
  await decrypt("bob", unknown, T0 + 43, "unknown message version: LOFT_ERR_UNSUPPORTED_VERSION");

  return ratchetFile(
    "Loft Double Ratchet message version 0x03 (Signal DR revision 1, §4 with header encryption; " +
      "header AEAD AES-256-GCM, IV = the last 12 bytes of the random nonce; body AEAD AES-256-GCM, " +
      "IV = the first 12 bytes, as in 0x02), mixed with 0x02 and 0x01 messages. Layouts: " +
      "docs/protocol/ratchet.md, 'Version 0x03'. An encrypt step's `version` is the version written " +
      "(absent: 0x01). Each operation lists the random bytes it draws (in order); `state` is the " +
      "party's serialized state afterwards.",
    kdf,
    session,
    steps,
    [],
  );
}

// ---------------------------------------------------------------------------------------------
// PQXDH

const F = new Uint8Array(32).fill(0xff);
const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

export interface DocumentedPqxdhInputs {
  readonly bobIdentityKey: Uint8Array;
  readonly bobSignedPrekey: { id: number; publicKey: Uint8Array; secretKey: Uint8Array };
  readonly bobKemPrekey: { id: number; publicKey: Uint8Array; seed: Uint8Array };
  readonly bobOneTimePrekey: { id: number; publicKey: Uint8Array; secretKey: Uint8Array } | null;
  readonly aliceSignedPrekeyPublic: Uint8Array;
  readonly baseKey: Uint8Array;
  readonly kemCiphertext: Uint8Array;
  readonly sealedSender: Uint8Array;
}

/**
 * The key agreement exactly as docs/protocol/prekeys.md writes it, computed from Bob's secrets with
 * noble primitives only (no core/prekey code), so the vectors check the document, not just the code.
 */
export function documentedPqxdh(i: DocumentedPqxdhInputs) {
  const dh1 = x25519.getSharedSecret(i.bobSignedPrekey.secretKey, i.aliceSignedPrekeyPublic);
  const dh2 = x25519.getSharedSecret(i.bobSignedPrekey.secretKey, i.baseKey);
  const dh3 = i.bobOneTimePrekey ? x25519.getSharedSecret(i.bobOneTimePrekey.secretKey, i.baseKey) : null;
  const ss = ml_kem768.decapsulate(i.kemCiphertext, ml_kem768.keygen(i.bobKemPrekey.seed).secretKey);
  const opkField = i.bobOneTimePrekey
    ? concatBytes(new Uint8Array([1]), u32(i.bobOneTimePrekey.id), i.bobOneTimePrekey.publicKey)
    : new Uint8Array([0]);
  const h0 = sha256(
    concatBytes(
      utf8("LoftPQXDH/v1"),
      i.bobIdentityKey,
      u32(i.bobSignedPrekey.id),
      i.bobSignedPrekey.publicKey,
      u32(i.bobKemPrekey.id),
      i.bobKemPrekey.publicKey,
      opkField,
      i.baseKey,
      i.kemCiphertext,
    ),
  );
  const oneTime = dh3 ? [dh3] : [];
  const zeroSalt = new Uint8Array(32);
  const sealKey = hkdf(
    sha256,
    concatBytes(F, dh2, ...oneTime, ss),
    zeroSalt,
    concatBytes(utf8("LoftPQXDH/v1/sealed-sender"), h0),
    32,
  );
  const senderBlock = chacha20poly1305(sealKey, new Uint8Array(12), h0).decrypt(i.sealedSender);
  const h1 = sha256(concatBytes(h0, i.sealedSender));
  const sk = hkdf(
    sha256,
    concatBytes(F, dh1, dh2, ...oneTime, ss),
    zeroSalt,
    concatBytes(utf8("LoftPQXDH/v1/CURVE25519_SHA-256_ML-KEM-768"), h1),
    32,
  );
  return {
    dh1: toHex(dh1),
    dh2: toHex(dh2),
    dh3: dh3 ? toHex(dh3) : null,
    ss: toHex(ss),
    h0: toHex(h0),
    seal_key: toHex(sealKey),
    sender_block: toHex(senderBlock),
    h1: toHex(h1),
    sk: toHex(sk),
  };
}

/** A bundle one millisecond past MAX_BUNDLE_AGE_MS: the sender refuses it before drawing anything. */
async function staleBundleCase(rng: RecordedRandom, alice: PrekeyStore, bob: PrekeyStore) {
  const bundle = encodePrekeyBundle(prekeyBundle(bob));
  const now = bob.signedPrekeys[0]!.createdAt + MAX_BUNDLE_AGE_MS + 1;
  const r = await initiateSession({
    sender: alice,
    bundle,
    recipientIdentityKey: bob.identityKey,
    plaintext: utf8("too late"),
    now,
    random: rng.random,
  });
  if (r.ok || rng.take().length !== 0) throw new Error("vector generation: stale bundle accepted");
  return { bundle: toHex(bundle), now, error: r.error.code };
}

async function firstContactCase(
  name: string,
  rng: RecordedRandom,
  alice: PrekeyStore,
  bob: PrekeyStore,
  plaintext: string,
  now: number,
) {
  const bundle = encodePrekeyBundle(prekeyBundle(bob));
  const started = await initiateSession({
    sender: alice,
    bundle,
    recipientIdentityKey: bob.identityKey,
    plaintext: utf8(plaintext),
    now,
    random: rng.random,
  });
  if (!started.ok) throw started.error;
  const initiateRandom = rng.take();
  const header = started.value.header;
  const spk = bob.signedPrekeys.find((k) => k.id === header.signedPrekeyId)!;
  const kem = [...bob.kemPrekeys, ...bob.oneTimeKemPrekeys].find((k) => k.id === header.kemPrekeyId)!;
  const opk = bob.oneTimePrekeys.find((k) => k.id === header.oneTimePrekeyId) ?? null;
  const derivation = documentedPqxdh({
    bobIdentityKey: bob.identityKey,
    bobSignedPrekey: spk,
    bobKemPrekey: kem,
    bobOneTimePrekey: opk,
    aliceSignedPrekeyPublic: alice.signedPrekeys[0]!.publicKey,
    baseKey: header.baseKey,
    kemCiphertext: header.kemCiphertext,
    sealedSender: header.sealedSender,
  });
  const bundleHex = toHex(bundle);
  const bundleTime = documentedBundleTime(bob);
  const bobStoreBefore = toHex(serializePrekeyStore(bob));
  const accepted = await acceptInitialMessage(bob, started.value.message, { now, random: rng.random });
  if (!accepted.ok) throw accepted.error;
  const replay = await acceptInitialMessage(accepted.value.store, started.value.message, { now });
  if (replay.ok) throw new Error("vector generation: replay accepted");
  return {
    result: {
      name,
      now,
      bundle: bundleHex,
      bundle_time: bundleTime,
      bob_store_before: bobStoreBefore,
      plaintext: toHex(utf8(plaintext)),
      initiate_random: initiateRandom,
      initial_message: toHex(started.value.message),
      alice_state: toHex(serializeRatchet(started.value.state)),
      derivation,
      accept_random: rng.take(),
      sender_identity_key: toHex(accepted.value.senderIdentityKey),
      bob_store_after: toHex(serializePrekeyStore(accepted.value.store)),
      replay_cache_entry:
        header.oneTimePrekeyId === null
          ? toHex(concatBytes(header.baseKey, documentedSenderTag(alice.identityKey)))
          : null,
      bob_state: toHex(serializeRatchet(accepted.value.state)),
      replay_error: replay.error.code,
    },
    store: accepted.value.store,
  };
}

/**
 * The signed creation time of Bob's current generation (bundle v2), as docs/protocol/prekeys.md
 * writes it: "loft/prekey/v1" ‖ 0x00 ‖ 0x04 ‖ u64 createdAt ‖ u32 id SPK ‖ SPK ‖ u32 id PQSPK ‖ PQSPK.
 */
function documentedBundleTime(bob: PrekeyStore) {
  const spk = bob.signedPrekeys[0]!;
  const kpk = bob.kemPrekeys[0]!;
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(spk.createdAt));
  const message = concatBytes(
    utf8("loft/prekey/v1"),
    new Uint8Array([0, 0x04]),
    time,
    u32(spk.id),
    spk.publicKey,
    u32(kpk.id),
    kpk.publicKey,
  );
  return {
    created_at: spk.createdAt,
    signed_message: toHex(message),
    signature: toHex(spk.timeSignature!),
  };
}

/** Replay-cache sender tag: SHA-256("loft/prekey/seen-sender/v1" ‖ IK_A)[0..8]. */
function documentedSenderTag(identityKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8("loft/prekey/seen-sender/v1"), identityKey)).slice(0, 8);
}

export async function buildPqxdhVectorFile(): Promise<string> {
  const rng = new RecordedRandom("pqxdh");
  const aliceIdentitySecret = rng.random(32);
  const bobIdentitySecret = rng.random(32);
  rng.take();
  const aliceStore = createPrekeyStore({
    identitySecretKey: aliceIdentitySecret,
    now: T0,
    oneTimePrekeys: 1,
    oneTimeKemPrekeys: 0,
    random: rng.random,
  });
  const aliceStoreRandom = rng.take();
  const bobStore = createPrekeyStore({
    identitySecretKey: bobIdentitySecret,
    now: T0,
    oneTimePrekeys: 2,
    oneTimeKemPrekeys: 1,
    random: rng.random,
  });
  const bobStoreRandom = rng.take();
  const bobBareStore = createPrekeyStore({
    identitySecretKey: bobIdentitySecret,
    now: T0,
    oneTimePrekeys: 0,
    oneTimeKemPrekeys: 0,
    random: rng.random,
  });
  const bobBareStoreRandom = rng.take();
  const stores = {
    alice: toHex(serializePrekeyStore(aliceStore)),
    bob: toHex(serializePrekeyStore(bobStore)),
    bob_without_one_time_keys: toHex(serializePrekeyStore(bobBareStore)),
  };
  const withOneTime = await firstContactCase(
    "one-time X25519 and one-time ML-KEM prekeys",
    rng,
    aliceStore,
    bobStore,
    "hello bob, from alice",
    T0 + 1000,
  );
  const lastResort = await firstContactCase(
    "no one-time prekeys: signed prekey and last-resort ML-KEM prekey only",
    rng,
    aliceStore,
    bobBareStore,
    "hello again",
    T0 + 2000,
  );

  const file = {
    description:
      "Loft offline first contact (PQXDH rev 2 adapted to SREMP identities: DH1 = DH(SPK_A, SPK_B), " +
      "DH2 = DH(EK_A, SPK_B), DH3 = DH(EK_A, OPK_B), ML-KEM-768, sealed sender). Layouts and KDF: " +
      "docs/protocol/prekeys.md. Each operation lists the random bytes it draws, in order.",
    generator: "scripts/gen-ratchet-vectors.ts",
    alice: {
      identity_secret: toHex(aliceIdentitySecret),
      identity_key: toHex(aliceStore.identityKey),
      store_random: aliceStoreRandom,
      store: stores.alice,
    },
    bob: {
      identity_secret: toHex(bobIdentitySecret),
      identity_key: toHex(bobStore.identityKey),
      store_random: bobStoreRandom,
      store: stores.bob,
      store_without_one_time_keys_random: bobBareStoreRandom,
      store_without_one_time_keys: stores.bob_without_one_time_keys,
    },
    cases: [withOneTime.result, lastResort.result],
    stale_bundle: await staleBundleCase(rng, aliceStore, lastResort.store),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

if (isScript(import.meta.url))
  writeOrCheck([
    [RATCHET_VECTOR_FILE, await buildRatchetVectorFile()],
    [RATCHET_V2_VECTOR_FILE, await buildRatchetV2VectorFile()],
    [RATCHET_V3_VECTOR_FILE, await buildRatchetV3VectorFile()],
    [PQXDH_VECTOR_FILE, await buildPqxdhVectorFile()],
  ]);
