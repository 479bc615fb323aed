/**
 * The OPFS worker's per-file chunk keys (worker-keys.ts): imported once per file and key, wiped
 * when replaced or forgotten — and an import that failed is not kept, so the file's next batch
 * imports again instead of failing with it until the handle closes. Node's WebCrypto (the W3C
 * API the worker calls); a failing import is the one `importKey` told to fail, as a browser's may.
 */
import { describe, expect, it } from "vitest";
import { WorkerKeys } from "./worker-keys.ts";

const importAesGcm = (raw: Uint8Array) =>
  crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, "AES-GCM", false, ["encrypt", "decrypt"]);

/** `importKey` whose next `failures` calls reject, as WebCrypto does on a passing failure. */
function flakyImport(failures: number) {
  const calls: number[] = [];
  const importKey = (raw: Uint8Array) => {
    calls.push(raw.length);
    if (failures-- > 0)
      return Promise.reject(new DOMException("the key could not be imported", "OperationError"));
    return importAesGcm(raw);
  };
  return { importKey, calls };
}

const keyBytes = (n: number) => new Uint8Array(32).fill(n);

/** The key works: it opens what it sealed. */
async function opens(key: CryptoKey): Promise<boolean> {
  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new Uint8Array([1, 2, 3]));
  const plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, sealed));
  return plain.join() === "1,2,3";
}

describe("OPFS worker keys", () => {
  it("a failed import is not kept: the file's next batch imports again, and opens", async () => {
    const { importKey, calls } = flakyImport(1);
    const keys = new WorkerKeys(importKey);
    const first = keyBytes(7);
    await expect(keys.get("t1", first)).rejects.toThrow("the key could not be imported");
    // The failed entry went, its raw key wiped.
    expect(keys.files()).toEqual([]);
    expect(first.every((b) => b === 0)).toBe(true);
    // Before: this awaited the kept rejected promise and failed again, until the handle closed.
    const key = await keys.get("t1", keyBytes(7));
    expect(await opens(key)).toBe(true);
    expect(calls).toEqual([32, 32]);
  });

  it("a key is imported once per file: the same key again is the kept one, its copy wiped", async () => {
    const { importKey, calls } = flakyImport(0);
    const keys = new WorkerKeys(importKey);
    const kept = keyBytes(1);
    const a = await keys.get("t1", kept);
    const copy = keyBytes(1);
    expect(await keys.get("t1", copy)).toBe(a);
    expect(copy.every((b) => b === 0)).toBe(true);
    expect(kept.every((b) => b === 1)).toBe(true);
    expect(calls).toEqual([32]);
  });

  it("another key for the file replaces the kept one (wiped); a failure of the older import does not drop the newer", async () => {
    let release: (() => void) | undefined;
    const keys = new WorkerKeys((raw) =>
      raw[0] === 1
        ? new Promise<CryptoKey>((_, reject) => {
            release = () => reject(new DOMException("late failure", "OperationError"));
          })
        : importAesGcm(raw),
    );
    const older = keyBytes(1);
    const failing = keys.get("t1", older);
    const newer = await keys.get("t1", keyBytes(2));
    expect(older.every((b) => b === 0)).toBe(true);
    release!();
    await expect(failing).rejects.toThrow("late failure");
    expect(keys.files()).toEqual(["t1"]);
    expect(await keys.get("t1", keyBytes(2))).toBe(newer);
  });

  it("forget wipes the file's key and drops it; other files keep theirs", async () => {
    const keys = new WorkerKeys(flakyImport(0).importKey);
    const k1 = keyBytes(3);
    await keys.get("t1", k1);
    await keys.get("t2", keyBytes(4));
    keys.forget("t1");
    keys.forget("never-held");
    expect(k1.every((b) => b === 0)).toBe(true);
    expect(keys.files()).toEqual(["t2"]);
  });
});
