/**
 * The vault and backup formats with Node's WebCrypto (same W3C API as the browser). IndexedDB
 * persistence and CryptoKey structured clone are covered in Chromium by test/e2e/onboarding.e2e.ts.
 */

import { encode } from "@msgpack/msgpack";
import { argon2id } from "@noble/hashes/argon2.js";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { encodeDraft, encodeRoomName } from "../engine/local-notes.ts";
import { toBase64url } from "../lib/base64url.ts";
import { BackupError, backupAad, decryptBackup, encryptBackup } from "./backup.ts";
import type { BackupBundle } from "./storage.ts";
import {
  acceptableKdf,
  derivePassphraseKey,
  generateDeviceKey,
  type KdfParams,
  kdfNeedsUpgrade,
  LockedError,
  PASSPHRASE_KDF,
  type PassphraseConfig,
  PBKDF2_ITERATIONS,
  sealWithPassphrase,
  Vault,
  WrongPassphraseError,
} from "./vault.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

describe("vault: secrets at rest", () => {
  it("seals under a non-extractable AES-GCM device key and opens again", async () => {
    const device = await generateDeviceKey();
    expect(device.extractable).toBe(false);
    await expect(crypto.subtle.exportKey("raw", device)).rejects.toThrow();
    const vault = new Vault(device, false);
    const sealed = await vault.seal("session/abc", bytes(1, 2, 3));
    expect(sealed.pass).toBe(false);
    expect(sealed.iv).toHaveLength(12);
    expect(sealed.ct).toHaveLength(3 + 16);
    expect(await vault.open("session/abc", sealed)).toEqual(bytes(1, 2, 3));
  });

  it("binds the record name: a blob moved to another record does not open", async () => {
    const vault = new Vault(await generateDeviceKey(), false);
    const sealed = await vault.seal("session/alice", bytes(9));
    await expect(vault.open("session/mallory", sealed)).rejects.toThrow();
  });

  it("a flipped ciphertext bit is detected", async () => {
    const vault = new Vault(await generateDeviceKey(), false);
    const sealed = await vault.seal("self/keys", bytes(1, 2, 3, 4));
    sealed.ct[0]! ^= 1;
    await expect(vault.open("self/keys", sealed)).rejects.toThrow();
  });

  it("a passphrase adds an inner layer: locked without it, wrong one refused, right one opens", async () => {
    const device = await generateDeviceKey();
    const { vault, config } = await new Vault(device, false).withPassphrase("correct horse");
    const sealed = await vault.seal("self/keys", bytes(7, 7));
    expect(sealed.pass).toBe(true);

    const cold = new Vault(device, true);
    expect(cold.locked).toBe(true);
    await expect(cold.open("self/keys", sealed)).rejects.toBeInstanceOf(LockedError);
    await expect(cold.seal("x", bytes(1))).rejects.toBeInstanceOf(LockedError);
    await expect(cold.unlock("wrong horse", config as PassphraseConfig)).rejects.toBeInstanceOf(
      WrongPassphraseError,
    );
    await cold.unlock("correct horse", config as PassphraseConfig);
    expect(await cold.open("self/keys", sealed)).toEqual(bytes(7, 7));

    // Another device key can't open it even with the passphrase.
    const other = new Vault(await generateDeviceKey(), true);
    await expect(other.unlock("correct horse", config as PassphraseConfig)).rejects.toBeInstanceOf(
      WrongPassphraseError,
    );
  });
});

const bundle = (): BackupBundle => ({
  self: {
    identity: bytes(1, 2, 3),
    username: "Alice",
    privateIdentityKey: new Uint8Array(32).fill(5),
    privateNoiseKey: new Uint8Array(32).fill(6),
    createdAt: 1_700_000_000_000,
  },
  contacts: [],
  messages: [
    { id: "m1", contactId: "c".repeat(64), direction: "out", text: "hi", at: 1, state: "delivered" },
  ],
  settings: { signalingUrl: "wss://loft.example/signal" },
});

describe("backup files", () => {
  it("round-trips with the passphrase and hides the content", async () => {
    // With the local section (docs/protocol/backup.md §3): a room, its name, a draft.
    const room = "ab".repeat(16);
    const record = {
      id: new Uint8Array(16).fill(0xab),
      k: new Uint8Array(32),
      h: new Uint8Array(32),
      joinedAt: 1,
      read: 0,
    };
    const local = [
      { n: "rooms", v: encodeCanonical([record]) },
      { n: `room-name/${room}`, v: encodeRoomName("Book club") },
      { n: `draft/room:${room}`, v: encodeDraft("half a thought", 7) },
    ];
    const text = await encryptBackup({ ...bundle(), local }, "backup passphrase");
    expect(text).not.toContain("Alice");
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(doc).toMatchObject({ format: "loft-backup", version: 3, kdf: "Argon2id", m: 32_768, t: 2, p: 1 });
    expect(doc.iterations).toBeUndefined();
    const back = await decryptBackup(text, "backup passphrase");
    expect(back.self.username).toBe("Alice");
    expect(back.self.privateIdentityKey).toEqual(new Uint8Array(32).fill(5));
    expect(back.messages[0]?.text).toBe("hi");
    expect(back.local).toEqual(local);
    expect(back.localDropped).toBeUndefined();
  });

  it("refuses a wrong passphrase, a changed header, a short passphrase and non-backups, in plain words", async () => {
    const text = await encryptBackup(bundle(), "backup passphrase");
    await expect(decryptBackup(text, "other passphrase")).rejects.toThrow(/Wrong passphrase/);
    const doc = JSON.parse(text) as Record<string, unknown>;
    // Lowering the work factor is caught by the AAD (the key differs too).
    await expect(decryptBackup(JSON.stringify({ ...doc, m: 19_456 }), "backup passphrase")).rejects.toThrow(
      /Wrong passphrase, or the backup file was changed/,
    );
    // Out-of-bounds work (a hang or an out-of-memory tab) is refused before any derivation.
    for (const bad of [{ p: 0 }, { m: 1024 }, { m: "x" }, { kdf: "scrypt" }])
      await expect(decryptBackup(JSON.stringify({ ...doc, ...bad }), "backup passphrase")).rejects.toThrow(
        /damaged/,
      );
    // A hostile header asking for more than 256 MiB or 8 passes: a clear refusal, no derivation.
    for (const costly of [{ m: 256 * 1024 + 1 }, { m: 1024 * 1024 }, { t: 9 }, { t: 16 }, { p: 9 }])
      await expect(decryptBackup(JSON.stringify({ ...doc, ...costly }), "backup passphrase")).rejects.toThrow(
        /more memory or time to open than Loft allows \(at most 256 MiB and 8 passes\)/,
      );
    await expect(decryptBackup(JSON.stringify({ ...doc, version: 4 }), "x")).rejects.toThrow(/newer version/);
    await expect(decryptBackup("not json", "x")).rejects.toBeInstanceOf(BackupError);
    await expect(decryptBackup("{}", "x")).rejects.toThrow(/not a Loft backup/);
    await expect(encryptBackup(bundle(), "short")).rejects.toThrow(/at least 8/);
    await expect(encryptBackup(bundle(), "password1")).rejects.toThrow(/too easy to guess/);
  });

  it("still opens a version 1 (PBKDF2) backup, and refuses a v1 header claiming Argon2id", async () => {
    const aad = backupAad(1, { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS });
    const plain = encode(bundle(), { ignoreUndefined: true });
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const key = await derivePassphraseKey("old backup pass", salt, {
      kdf: "PBKDF2-SHA256",
      iterations: PBKDF2_ITERATIONS,
    });
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: new Uint8Array(aad) },
        key,
        new Uint8Array(plain),
      ),
    );
    const v1 = {
      format: "loft-backup",
      version: 1,
      kdf: "PBKDF2-SHA256",
      iterations: PBKDF2_ITERATIONS,
      salt: toBase64url(salt),
      iv: toBase64url(iv),
      ciphertext: toBase64url(ct),
    };
    expect((await decryptBackup(JSON.stringify(v1), "old backup pass")).self.username).toBe("Alice");
    await expect(
      decryptBackup(JSON.stringify({ ...v1, kdf: "Argon2id", m: 32_768, t: 2, p: 1 }), "old backup pass"),
    ).rejects.toThrow(/damaged/);
  });
});

describe("passphrase KDF (Argon2id, versioned)", () => {
  it("new passphrase layers use Argon2id with PASSPHRASE_KDF; the check opens only with the passphrase", async () => {
    const device = await generateDeviceKey();
    const { config } = await new Vault(device, false).withPassphrase("correct horse battery");
    expect(config).toMatchObject({ kdf: "Argon2id", m: 32 * 1024, t: 2, p: 1 });
    expect(PASSPHRASE_KDF).toEqual({ kdf: "Argon2id", m: 32_768, t: 2, p: 1 });
    expect(kdfNeedsUpgrade(config!)).toBe(false);
    // Argon2id as RFC 9106 defines it (noble's implementation is checked against the RFC vectors).
    const raw = argon2id(new TextEncoder().encode("correct horse battery"), config!.salt, {
      m: 32_768,
      t: 2,
      p: 1,
      dkLen: 32,
    });
    const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
    const aad = new TextEncoder().encode("loft/sealed/v1/passphrase-check");
    const inner = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: new Uint8Array(config!.check.iv), additionalData: aad },
        device,
        new Uint8Array(config!.check.ct),
      ),
    );
    const check = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: new Uint8Array(inner.subarray(0, 12)),
        additionalData: new TextEncoder().encode("loft/sealed/v1/passphrase-check"),
      },
      key,
      new Uint8Array(inner.subarray(12)),
    );
    expect(new TextDecoder().decode(check)).toBe("loft/passphrase-check/v1");
  });

  it("a PBKDF2 passphrase layer (made before Argon2id) still unlocks, and asks to be upgraded", async () => {
    const device = await generateDeviceKey();
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const legacy = { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS } as const;
    const key = await derivePassphraseKey("old passphrase", salt, legacy);
    const vault = new Vault(device, true, key);
    const check = await vault.seal("passphrase-check", new TextEncoder().encode("loft/passphrase-check/v1"));
    const sealed = await vault.seal("self/keys", bytes(4, 2));
    const config: PassphraseConfig = { ...legacy, salt, check };
    expect(kdfNeedsUpgrade(config)).toBe(true);
    const cold = new Vault(device, true);
    await cold.unlock("old passphrase", config);
    expect(await cold.open("self/keys", sealed)).toEqual(bytes(4, 2));
  });

  it("refuses unknown or out-of-bounds KDF parameters before deriving anything", async () => {
    for (const bad of [
      { kdf: "Argon2id", m: 2 ** 30, t: 2, p: 1 },
      { kdf: "Argon2id", m: 512 * 1024, t: 1, p: 1 },
      { kdf: "Argon2id", m: 32_768, t: 9, p: 1 },
      { kdf: "Argon2id", m: 32_768, t: 0, p: 1 },
      { kdf: "PBKDF2-SHA256", iterations: 1_000 },
      { kdf: "bcrypt" },
    ]) {
      expect(acceptableKdf(bad)).toBe(false);
      await expect(derivePassphraseKey("x", new Uint8Array(16), bad as KdfParams)).rejects.toThrow(
        RangeError,
      );
    }
    // The ceiling itself (256 MiB, 8 passes) is accepted.
    expect(acceptableKdf({ kdf: "Argon2id", m: 256 * 1024, t: 8, p: 1 })).toBe(true);
  });

  it("sealWithPassphrase refuses a KDF setting it must not write, at the call, saying which: out of KDF_BOUNDS, not Argon2id, malformed", async () => {
    const aad = (k: KdfParams) => new TextEncoder().encode(k.kdf);
    for (const bad of [
      { kdf: "Argon2id", m: 1024, t: 1, p: 1 },
      { kdf: "Argon2id", m: 512 * 1024, t: 1, p: 1 },
      { kdf: "Argon2id", m: 32_768, t: 0, p: 1 },
      { kdf: "Argon2id", m: 32_768, t: 2.5, p: 1 },
      { kdf: "Argon2id", m: 32_768, t: 2 },
      // Within PBKDF2's bounds, and read from legacy files: never written.
      { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS },
      { kdf: "bcrypt" },
      null,
      "Argon2id",
    ]) {
      // Before: the PBKDF2 one sealed a file under PBKDF2, null threw a TypeError from inside.
      await expect(
        sealWithPassphrase("pass", bytes(1), aad, bad as Extract<KdfParams, { kdf: "Argon2id" }>),
      ).rejects.toThrow(/^sealWithPassphrase: kdf must be Argon2id .*\(KDF_BOUNDS\), got /);
    }
    // The cheapest setting a reader accepts (what tests write with) still seals, and opens.
    const cheapest = { kdf: "Argon2id", m: 19 * 1024, t: 1, p: 1 } as const;
    const blob = await sealWithPassphrase("pass", bytes(7), aad, cheapest);
    expect(blob).toMatchObject(cheapest);
  });
});
