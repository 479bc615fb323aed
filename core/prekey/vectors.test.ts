/**
 * Loft's first-contact vectors (docs/vectors/pqxdh-v1.json): stores, bundles, initial messages and
 * both resulting ratchet states replay from the random draws the file lists; the documented key
 * agreement (docs/protocol/prekeys.md, recomputed from Bob's secrets with noble primitives only)
 * yields the SK that opens Alice's first message; and the generator reproduces the file exactly.
 */
import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import {
  buildPqxdhVectorFile,
  documentedPqxdh,
  PQXDH_VECTOR_FILE,
} from "../../scripts/gen-ratchet-vectors.ts";
import { concatBytes, fromHex, toHex, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Result } from "../errors.ts";
import {
  initBob,
  ratchetAssociatedData,
  ratchetDecrypt,
  serializeRatchet,
  splitBootstrapSecret,
} from "../ratchet/index.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  decodePrekeyBundle,
  deserializePrekeyStore,
  encodePrekeyBundle,
  initiateSession,
  type PrekeyStore,
  prekeyBundle,
  serializePrekeyStore,
} from "./index.ts";
import { type PqxdhVectorFile, replayRandom } from "./vectors.ts";

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

const committed = readFileSync(PQXDH_VECTOR_FILE, "utf8");
const file = JSON.parse(committed) as PqxdhVectorFile;
const store = (hex: string): PrekeyStore => unwrap(deserializePrekeyStore(fromHex(hex)));

describe("docs/vectors/pqxdh-v1.json", () => {
  it("prekey stores regenerate from the identity secrets and the recorded draws", async () => {
    const make = (secret: string, draws: string[], oneTimePrekeys: number, oneTimeKemPrekeys: number) =>
      toHex(
        serializePrekeyStore(
          createPrekeyStore({
            identitySecretKey: fromHex(secret),
            now: 1_700_000_000_000,
            oneTimePrekeys,
            oneTimeKemPrekeys,
            random: replayRandom(draws),
          }),
        ),
      );
    expect(make(file.alice.identity_secret, file.alice.store_random, 1, 0)).toBe(file.alice.store);
    expect(make(file.bob.identity_secret, file.bob.store_random, 2, 1)).toBe(file.bob.store);
    expect(make(file.bob.identity_secret, file.bob.store_without_one_time_keys_random, 0, 0)).toBe(
      file.bob.store_without_one_time_keys,
    );
  });

  it.each(file.cases.map((c) => [c.name, c] as const))("%s: replays on both sides", async (_, c) => {
    expect(toHex(encodePrekeyBundle(prekeyBundle(store(c.bob_store_before))))).toBe(c.bundle);
    const started = unwrap(
      await initiateSession({
        sender: store(file.alice.store),
        bundle: fromHex(c.bundle),
        recipientIdentityKey: fromHex(file.bob.identity_key),
        plaintext: fromHex(c.plaintext),
        now: c.now,
        random: replayRandom(c.initiate_random),
      }),
    );
    expect(toHex(started.message)).toBe(c.initial_message);
    expect(toHex(serializeRatchet(started.state))).toBe(c.alice_state);
    const bob = store(c.bob_store_before);
    const accepted = unwrap(
      await acceptInitialMessage(bob, fromHex(c.initial_message), {
        now: c.now,
        random: replayRandom(c.accept_random),
      }),
    );
    expect(toHex(accepted.plaintext)).toBe(c.plaintext);
    expect(toHex(accepted.senderIdentityKey)).toBe(c.sender_identity_key);
    expect(c.sender_identity_key).toBe(file.alice.identity_key);
    expect(toHex(serializePrekeyStore(accepted.store))).toBe(c.bob_store_after);
    expect(toHex(serializeRatchet(accepted.state))).toBe(c.bob_state);
    const replayed = await acceptInitialMessage(accepted.store, fromHex(c.initial_message), { now: c.now });
    expect(replayed.ok ? "accepted" : replayed.error.code).toBe(c.replay_error);
  });

  it.each(file.cases.map((c) => [c.name, c] as const))(
    "%s: the documented key agreement gives the SK that opens Alice's first message",
    async (_, c) => {
      const bob = store(c.bob_store_before);
      const alice = store(file.alice.store);
      const { header, ratchetMessage } = unwrap(decodeInitialMessage(fromHex(c.initial_message)));
      const spk = bob.signedPrekeys.find((k) => k.id === header.signedPrekeyId)!;
      const kem = [...bob.kemPrekeys, ...bob.oneTimeKemPrekeys].find((k) => k.id === header.kemPrekeyId)!;
      const opk = bob.oneTimePrekeys.find((k) => k.id === header.oneTimePrekeyId) ?? null;
      const derived = documentedPqxdh({
        bobIdentityKey: bob.identityKey,
        bobSignedPrekey: spk,
        bobKemPrekey: kem,
        bobOneTimePrekey: opk,
        aliceSignedPrekeyPublic: alice.signedPrekeys[0]!.publicKey,
        baseKey: header.baseKey,
        kemCiphertext: header.kemCiphertext,
        sealedSender: header.sealedSender,
      });
      expect(derived).toEqual(c.derivation);
      // The sealed sender block is IK_A ‖ SPK_A id ‖ SPK_A ‖ signature.
      expect(derived.sender_block!.slice(0, 64)).toBe(file.alice.identity_key);
      const keys = await splitBootstrapSecret(nobleCrypto, fromHex(derived.sk!));
      const session = initBob({
        sharedSecret: keys.sharedSecret,
        sharedHeaderKeyA: keys.sharedHeaderKeyA,
        sharedNextHeaderKeyB: keys.sharedNextHeaderKeyB,
        bobRatchetKeyPair: spk,
        ad: ratchetAssociatedData(alice.identityKey, bob.identityKey),
      });
      const opened = unwrap(await ratchetDecrypt(session, ratchetMessage, c.now));
      expect(toHex(opened.plaintext)).toBe(c.plaintext);
    },
  );

  it.each(file.cases.map((c) => [c.name, c] as const))(
    "%s: the bundle's signed time and the replay-cache entry are as documented (noble only)",
    async (_, c) => {
      const bundle = unwrap(await decodePrekeyBundle(nobleCrypto, fromHex(c.bundle)));
      expect(bundle.signedTime?.createdAt).toBe(c.bundle_time.created_at);
      expect(toHex(bundle.signedTime!.signature)).toBe(c.bundle_time.signature);
      const msg = fromHex(c.bundle_time.signed_message);
      expect(toHex(msg.slice(0, 16))).toBe(
        toHex(concatBytes(utf8("loft/prekey/v1"), new Uint8Array([0, 4]))),
      );
      expect(ed25519.verify(bundle.signedTime!.signature, msg, bundle.identityKey, { zip215: false })).toBe(
        true,
      );
      const header = unwrap(decodeInitialMessage(fromHex(c.initial_message))).header;
      const tag = sha256(concatBytes(utf8("loft/prekey/seen-sender/v1"), fromHex(file.alice.identity_key)));
      expect(c.replay_cache_entry).toBe(
        header.oneTimePrekeyId === null ? toHex(concatBytes(header.baseKey, tag.slice(0, 8))) : null,
      );
    },
  );

  it("a bundle 1 ms past MAX_BUNDLE_AGE_MS is refused before any random draw", async () => {
    const r = await initiateSession({
      sender: store(file.alice.store),
      bundle: fromHex(file.stale_bundle.bundle),
      recipientIdentityKey: fromHex(file.bob.identity_key),
      plaintext: utf8("too late"),
      now: file.stale_bundle.now,
      random: replayRandom([]),
    });
    expect(r.ok ? "ok" : r.error.code).toBe(file.stale_bundle.error);
    expect(file.stale_bundle.error).toBe("LOFT_ERR_STALE_PREKEY");
  });

  it("is exactly what scripts/gen-ratchet-vectors.ts generates", async () => {
    expect(await buildPqxdhVectorFile()).toBe(committed);
  });
});
