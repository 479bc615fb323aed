/**
 * The vault and backup formats with Node's WebCrypto (same W3C API as the browser). IndexedDB
 * persistence and CryptoKey structured clone are covered in Chromium by test/e2e/onboarding.e2e.ts.
 */
import { describe, expect, it } from "vitest";
import { BackupError, decryptBackup, encryptBackup } from "./backup.ts";
import type { BackupBundle } from "./storage.ts";
import {
  generateDeviceKey,
  LockedError,
  type PassphraseConfig,
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
    const text = await encryptBackup(bundle(), "backup passphrase");
    expect(text).not.toContain("Alice");
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(doc).toMatchObject({
      format: "loft-backup",
      version: 1,
      kdf: "PBKDF2-SHA256",
      iterations: 600_000,
    });
    const back = await decryptBackup(text, "backup passphrase");
    expect(back.self.username).toBe("Alice");
    expect(back.self.privateIdentityKey).toEqual(new Uint8Array(32).fill(5));
    expect(back.messages[0]?.text).toBe("hi");
  });

  it("refuses a wrong passphrase, a changed header, a short passphrase and non-backups, in plain words", async () => {
    const text = await encryptBackup(bundle(), "backup passphrase");
    await expect(decryptBackup(text, "other passphrase")).rejects.toThrow(/Wrong passphrase/);
    const doc = JSON.parse(text) as Record<string, unknown>;
    await expect(
      decryptBackup(JSON.stringify({ ...doc, iterations: 700_000 }), "backup passphrase"),
    ).rejects.toThrow(/Wrong passphrase, or the backup file was changed/);
    await expect(
      decryptBackup(JSON.stringify({ ...doc, iterations: 1e12 }), "backup passphrase"),
    ).rejects.toThrow(/damaged/);
    await expect(decryptBackup(JSON.stringify({ ...doc, version: 2 }), "x")).rejects.toThrow(/newer version/);
    await expect(decryptBackup("not json", "x")).rejects.toBeInstanceOf(BackupError);
    await expect(decryptBackup("{}", "x")).rejects.toThrow(/not a Loft backup/);
    await expect(encryptBackup(bundle(), "short")).rejects.toThrow(/at least 8/);
  });
});
