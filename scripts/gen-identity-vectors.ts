/**
 * Deterministic vectors for core/identity and the signed SREMP requests of core/wire, from fixed
 * seeds, written to docs/vectors/identity-*.json. `core/identity/vectors.test.ts` rebuilds them
 * and requires byte equality with the files, and checks each file independently with noble.
 *
 *   npx tsx scripts/gen-identity-vectors.ts          # rewrite the files
 *   npx tsx scripts/gen-identity-vectors.ts --check  # exit 1 if a file is stale
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { toHex } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { contactLinkUrl, encodeContactLink } from "../core/identity/contact-link.ts";
import {
  createUserIdentity,
  encodeIdentity,
  encodeIdentityVerifiedData,
  type IdentityChanges,
  type IdentityExtensions,
  type IdentityFlags,
  identitySignedBytes,
  type UserIdentity,
  updateIdentity,
} from "../core/identity/identity.ts";
import { formatSafetyCode, safetyCode, safetyCodeQr } from "../core/identity/safety-code.ts";
import {
  signDeliveryConfirmation,
  signRegisterRequest,
  signRelayRegister,
  signRetrieveMessages,
  signStoreMessage,
} from "../core/wire/signed.ts";
import { srempCodec } from "../core/wire/sremp.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

const T0 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const seed = (byte: number) => new Uint8Array(32).fill(byte);
const nonce = (byte: number) => new Uint8Array(16).fill(byte);

interface IdentitySpec {
  name: string;
  seed: number;
  username: string;
  now: number;
  flags?: Partial<IdentityFlags>;
  extensions?: IdentityExtensions;
}

const SPECS: IdentitySpec[] = [
  { name: "alice", seed: 1, username: "alice", now: T0 },
  { name: "bob", seed: 2, username: "bob", now: T0 + 1 },
  {
    name: "carol-relay",
    seed: 3,
    username: "Carol’s relay 🎻",
    now: T0 + 2,
    flags: { uses_relay: true, is_machine_account: true, is_relay_server: true, prefers_async: true },
    extensions: {
      profile_picture: new Uint8Array([0x89, 0x50, 0x4e, 0x47]),
      additional_metadata: { lang: new Uint8Array([0x65, 0x6e]), "tz.offset": new Uint8Array([0x3c]) },
    },
  },
  // Input in NFD ("Jose" + U+0301): the identity carries the NFC form "José".
  { name: "jose-nfd-input", seed: 4, username: "Jose\u0301", now: T0 + 3 },
];

function hexRecord(r: Record<string, Uint8Array> | undefined): Record<string, string> | undefined {
  if (r === undefined) return undefined;
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, toHex(v)]));
}

function describeIdentity(user: UserIdentity) {
  const v = user.identity.verified;
  return {
    username: v.username,
    flags: v.flags,
    extensions:
      v.extensions === undefined
        ? undefined
        : {
            profile_picture: v.extensions.profile_picture && toHex(v.extensions.profile_picture),
            additional_metadata: hexRecord(v.extensions.additional_metadata),
          },
    version: v.version,
    created: v.created,
    private_identity_key: toHex(user.privateIdentityKey),
    private_noise_key: toHex(user.privateNoiseKey),
    identity_key: toHex(v.identity_key),
    noise_key: toHex(v.noise_key),
    verified_data: toHex(encodeIdentityVerifiedData(v)),
    signed_bytes: toHex(identitySignedBytes(v)),
    signature: toHex(user.identity.signature),
    identity: toHex(encodeIdentity(user.identity)),
  };
}

interface UpdateSpec {
  name: string;
  from: string;
  now: number;
  changes: IdentityChanges;
  /** JSON view of `changes` (seeds as hex). */
  changesJson: Record<string, unknown>;
}

const UPDATES: UpdateSpec[] = [
  {
    name: "alice-v2-renamed",
    from: "alice",
    now: T0 + 60_000,
    changes: { username: "Alice" },
    changesJson: { username: "Alice" },
  },
  {
    name: "alice-v2-noise-rotated",
    from: "alice",
    now: T0 + 120_000,
    changes: { noiseSeed: seed(0x11) },
    changesJson: { noise_seed: toHex(seed(0x11)) },
  },
];

/** Build every vector file's content (file name → JSON value). */
export async function buildIdentityVectors(): Promise<Record<string, unknown>> {
  const users = new Map<string, UserIdentity>();
  const identities = SPECS.map((s) => {
    const user = createUserIdentity({
      username: s.username,
      now: s.now,
      seed: seed(s.seed),
      flags: s.flags,
      extensions: s.extensions,
    });
    users.set(s.name, user);
    return {
      name: s.name,
      seed: toHex(seed(s.seed)),
      username_input: s.username,
      now: s.now,
      ...describeIdentity(user),
    };
  });
  const updates = UPDATES.map((u) => {
    const next = updateIdentity(users.get(u.from)!, u.changes, u.now);
    return { name: u.name, from: u.from, now: u.now, changes: u.changesJson, ...describeIdentity(next) };
  });

  const alice = users.get("alice")!;
  const bob = users.get("bob")!;
  const carol = users.get("carol-relay")!;
  const aliceKey = alice.identity.verified.identity_key;
  const bobKey = bob.identity.verified.identity_key;
  const carolKey = carol.identity.verified.identity_key;

  const safety = [
    [alice, bob],
    [alice, carol],
  ].map(([a, b]) => {
    const ka = a!.identity.verified.identity_key;
    const kb = b!.identity.verified.identity_key;
    const code = safetyCode(ka, kb);
    return {
      a: a!.identity.verified.username,
      b: b!.identity.verified.username,
      identity_key_a: toHex(ka),
      identity_key_b: toHex(kb),
      code,
      formatted: formatSafetyCode(code),
      qr_shown_by_a: safetyCodeQr(ka, kb),
      qr_shown_by_b: safetyCodeQr(kb, ka),
    };
  });

  const link = {
    identity: alice.identity,
    signaling: ["wss://signal.loft.example/ws"],
    relay: ["wss://relay.loft.example/ws"],
    refs: { mailbox: new Uint8Array(24).fill(0xab) },
  };
  const payload = encodeContactLink(link);
  const url = contactLinkUrl("https://loft.example", link);
  if (!payload.ok || !url.ok) throw new Error("contact link vector does not encode");

  const frame = (m: Parameters<typeof srempCodec.encode>[0]) => toHex(srempCodec.encode(m));
  const requests = {
    register_request: frame(
      await signRegisterRequest(nobleCrypto, alice, {
        id: 1,
        ttl_seconds: 300,
        timestamp: T0,
        nonce: nonce(0x07),
        audience: "wss://signal.loft.example/ws",
      }),
    ),
    relay_register: frame(
      await signRelayRegister(nobleCrypto, alice, {
        id: 2,
        capabilities: { max_message_size: 65_536, max_storage_duration: 172_800 },
        timestamp: T0,
        nonce: nonce(0x08),
      }),
    ),
    retrieve_messages: frame(
      await signRetrieveMessages(nobleCrypto, bob, {
        id: 3,
        timestamp: T0,
        since: T0 - 3_600_000,
        nonce: nonce(0x09),
      }),
    ),
    store_message: frame(
      await signStoreMessage(nobleCrypto, alice, {
        id: 4,
        recipient: bobKey,
        encrypted_blob: new Uint8Array([1, 2, 3, 4]),
        message_id: 42,
      }),
    ),
    delivery_confirmation: frame(
      await signDeliveryConfirmation(nobleCrypto, bob, { id: 5, message_id: 42, timestamp: T0 + 5_000 }),
    ),
  };

  return {
    "identity-vectors.json": {
      description:
        "SREMP identities from fixed seeds (docs/protocol/identity.md). Seeds derive keys with HKDF-SHA256, salt 'loft/identity-seed/v1', info 'ed25519 identity key' / 'x25519 noise key' ('x25519 rotated noise key' for noise_seed). signed_bytes = 'loft/sremp/identity/v1' || 0x00 || verified_data. All byte strings are hex.",
      generator: "scripts/gen-identity-vectors.ts",
      identities,
      updates,
    },
    "identity-safety-codes.json": {
      description:
        "Safety codes (docs/protocol/identity.md, Safety code): Signal NumericFingerprint, 5200 iterations, key = stableId = raw 32-byte Ed25519 identity key.",
      generator: "scripts/gen-identity-vectors.ts",
      iterations: 5200,
      pairs: safety,
      carol_identity_key: toHex(carolKey),
      alice_identity_key: toHex(aliceKey),
    },
    "identity-contact-links.json": {
      description: "A contact link for 'alice' (docs/protocol/identity.md, Contact link).",
      generator: "scripts/gen-identity-vectors.ts",
      links: [
        {
          identity: "alice",
          signaling: link.signaling,
          relay: link.relay,
          refs: hexRecord(link.refs),
          payload: payload.value,
          url: url.value,
        },
      ],
    },
    "identity-signed-requests.json": {
      description:
        "Signed SREMP request frames (docs/protocol/wire.md, Signed requests) made with the identities of identity-vectors.json, and the 1.0 VERSION_HEADER frame. Frames are hex.",
      generator: "scripts/gen-identity-vectors.ts",
      version_header: toHex(encodeVersionHeader()),
      ...requests,
    },
  };
}

export const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "vectors");

export function serialise(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

if (isScript(import.meta.url))
  writeOrCheck(
    Object.entries(await buildIdentityVectors()).map(([file, value]) => [
      join(VECTORS_DIR, file),
      serialise(value),
    ]),
  );
