/**
 * The CLI's identity file (`loft id`; docs/user-guide.md "The command line"): a headless peer's
 * identity — the public Identity and its two secret keys — sealed with a passphrase, the same
 * way the PWA seals its backups (web/src/storage/vault.ts: Argon2id → AES-GCM 256, fresh salt
 * and IV, the KDF parameters bound as associated data). The passphrase comes from an environment
 * variable, never from the command line (it would show in `ps` and shell history).
 *
 * File (JSON, mode 0600): `{ "v": 1, "kind": "loft-identity", "kdf": …, "salt": b64url,
 * "iv": b64url, "ct": b64url }`; the plaintext is canonical MessagePack
 * `{ i: encoded Identity, k: Ed25519 seed (32), n: X25519 secret (32) }`.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import * as v from "valibot";
import { wipe } from "../core/bytes.ts";
import { fromBase64url, toBase64url } from "../core/codec/base64url.ts";
import { bytesSchema, decodeWith, encodeCanonical } from "../core/codec/codec.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  MAX_IDENTITY_BYTES,
  type UserIdentity,
} from "../core/identity/identity.ts";
import { passphraseStrength } from "../web/src/storage/passphrase-strength.ts";
import {
  acceptableKdf,
  type KdfParams,
  kdfOf,
  openWithPassphrase,
  type PassphraseBlob,
  sealWithPassphrase,
} from "../web/src/storage/vault.ts";

export const IDENTITY_FILE_VERSION = 1;
const KIND = "loft-identity";

/**
 * The file is missing, not an identity file, does not open, or the system refused to read or
 * write it (permissions, a directory, no such folder): a clear word for each.
 */
export class IdentityFileError extends Error {
  override name = "IdentityFileError";
  constructor(
    readonly code: "missing" | "malformed" | "wrong_passphrase" | "weak_passphrase" | "exists" | "io",
    message: string,
  ) {
    super(message);
  }
}

const secretsSchema = v.strictObject({
  i: bytesSchema(1, MAX_IDENTITY_BYTES),
  k: bytesSchema(32),
  n: bytesSchema(32),
});

/** What the seal binds: the format and the KDF's parameters (a file with them altered won't open). */
const aadOf = (kdf: KdfParams) =>
  new TextEncoder().encode(`${KIND}/v${IDENTITY_FILE_VERSION}/${JSON.stringify(kdf)}`);

/** Create a new identity for `username` in `path` (refuses to replace an existing file). */
export async function createIdentityFile(
  path: string,
  username: string,
  passphrase: string,
): Promise<UserIdentity> {
  // The app's rule for new passphrases (web/src/storage/passphrase-strength.ts): "too weak" is refused.
  const strength = passphraseStrength(passphrase);
  if (strength.score === 0)
    throw new IdentityFileError(
      "weak_passphrase",
      `the passphrase is too weak to seal an identity: ${strength.advice}`,
    );
  // Refused before the key derivation's second of work; `wx` below still refuses one made meanwhile.
  if ((await stat(path).catch(() => undefined))?.isFile())
    throw new IdentityFileError("exists", `${path} already holds an identity`);
  const user = createUserIdentity({ username, now: Date.now() });
  const plain = encodeCanonical({
    i: encodeIdentity(user.identity),
    k: user.privateIdentityKey,
    n: user.privateNoiseKey,
  });
  const blob = await sealWithPassphrase(passphrase, plain, aadOf);
  wipe(plain);
  const text = JSON.stringify({
    v: IDENTITY_FILE_VERSION,
    kind: KIND,
    ...kdfOf(blob),
    salt: toBase64url(blob.salt),
    iv: toBase64url(blob.iv),
    ct: toBase64url(blob.ct),
  });
  try {
    await writeFile(path, `${text}\n`, { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new IdentityFileError("exists", `${path} already holds an identity`);
    throw new IdentityFileError("io", `cannot write ${path}: ${(e as Error).message}`);
  }
  return user;
}

/** Open the identity in `path` with `passphrase`. */
export async function openIdentityFile(path: string, passphrase: string): Promise<UserIdentity> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      throw new IdentityFileError(
        "missing",
        `no identity file at ${path}: create one with \`loft id --name <name>\``,
      );
    throw new IdentityFileError("io", `cannot read ${path}: ${(e as Error).message}`);
  }
  const blob = parseFile(text);
  let plain: Uint8Array;
  try {
    plain = await openWithPassphrase(passphrase, blob, aadOf(kdfOf(blob)));
  } catch {
    throw new IdentityFileError("wrong_passphrase", "the passphrase does not open this identity file");
  }
  try {
    // The decoded fields are views into `plain`: decode and copy before it is wiped.
    const secrets = decodeWith(plain, secretsSchema, { maxBytes: MAX_IDENTITY_BYTES + 256, maxMapLength: 3 });
    if (!secrets.ok) throw new IdentityFileError("malformed", `identity file: ${secrets.error.message}`);
    // Verifying a stored identity is cheap and rare: the reference provider, no self-check at start.
    const identity = await decodeIdentity(nobleCrypto, secrets.value.i.slice());
    if (!identity.ok) throw new IdentityFileError("malformed", `identity file: ${identity.error.message}`);
    return {
      identity: identity.value,
      privateIdentityKey: secrets.value.k.slice(),
      privateNoiseKey: secrets.value.n.slice(),
    };
  } finally {
    wipe(plain);
  }
}

function parseFile(text: string): PassphraseBlob {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new IdentityFileError("malformed", "identity file: not JSON");
  }
  if (raw?.kind !== KIND || raw.v !== IDENTITY_FILE_VERSION)
    throw new IdentityFileError("malformed", "not a Loft identity file (or a newer version)");
  const { v: _v, kind: _k, salt, iv, ct, ...kdf } = raw;
  if (!acceptableKdf(kdf)) throw new IdentityFileError("malformed", "identity file: unknown KDF parameters");
  const bytes = (x: unknown, name: string): Uint8Array => {
    const b = typeof x === "string" ? fromBase64url(x, 64 * 1024) : undefined;
    if (!b?.ok) throw new IdentityFileError("malformed", `identity file: bad ${name}`);
    return b.value;
  };
  return { ...kdfOf(kdf), salt: bytes(salt, "salt"), iv: bytes(iv, "iv"), ct: bytes(ct, "ct") };
}
