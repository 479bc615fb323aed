/**
 * Transfer records sealed at rest (sealed-records.ts; docs/protocol/files.md §6): what reaches the
 * file store holds no name, type, hash or preview in clear; a record opens back to the transfer;
 * one moved to another key, changed, or sealed under another records key does not open (skipped
 * and counted, never a throw); a record an earlier version wrote in clear is read and flagged;
 * writes of one record land in call order although sealing is async; a closed store refuses the
 * listing too, and close waits for one under way; nor does it ask its store about cheap copy reads.
 */
import { encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utf8 } from "../../../../core/bytes.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import { until } from "../../../../test/support/engine.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { Held } from "../../../../test/support/held.ts";
import { RECORDS_KEY_SECRET, SealedFileStore, StoreClosed } from "./sealed-records.ts";
import { type FileRecord, type FileTransfer, MemoryFileStore } from "./store.ts";

function secrets() {
  const map = new Map<string, Uint8Array>();
  return {
    map,
    loadSecret: async (n: string) => map.get(n)?.slice(),
    saveSecret: async (n: string, v: Uint8Array) => {
      map.set(n, v.slice());
    },
  };
}

const transfer = (over: Partial<FileTransfer> = {}): FileTransfer => ({
  key: "c0ffee/in/7",
  contactId: "c0ffee",
  direction: "in",
  id: 7,
  name: "quarterly-plan-secret.pdf",
  size: 123_456,
  type: "application/pdf",
  hash: Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i),
  thumb: Uint8Array.from({ length: 64 }, (_, i) => (i * 7) & 0xff),
  state: "receiving",
  next: 3,
  done: 3 * 65_024,
  speed: 0,
  at: 1_700_000_000_000,
  ...over,
});

/** Whether `needle` occurs anywhere in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe("sealed transfer records", () => {
  it("stores no name, type, hash or preview in clear, and opens back to the transfer", async () => {
    const raw = new MemoryFileStore();
    const s = secrets();
    const store = new SealedFileStore(raw, nobleCrypto, s);
    const t = transfer();
    await store.putTransfer(t);
    const stored = [...raw.records.values()];
    expect(stored).toHaveLength(1);
    expect(Object.keys(stored[0]!).sort()).toEqual(["at", "key", "sealed"]);
    const bytes = encode(stored[0]);
    for (const secret of [utf8(t.name), utf8("quarterly"), utf8(t.type), t.hash, t.thumb!])
      expect(contains(bytes, secret)).toBe(false);
    expect(s.map.get(RECORDS_KEY_SECRET)?.length).toBe(32);
    const listed = await store.listTransfers();
    expect(listed).toEqual({ transfers: [t], clear: new Set(), unreadable: 0 });
    // A second store over the same secrets (a reload) opens it too.
    expect((await new SealedFileStore(raw, nobleCrypto, s).listTransfers()).transfers).toEqual([t]);
  });

  it("a record moved to another key, changed, or under another records key is skipped, not thrown", async () => {
    const raw = new MemoryFileStore();
    const s = secrets();
    await new SealedFileStore(raw, nobleCrypto, s).putTransfer(transfer());
    const good = raw.records.get("c0ffee/in/7") as FileRecord;
    await raw.putRecord({ ...good, key: "c0ffee/in/8" }); // moved
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: good.sealed.length * 8 - 1 }), async (bit) => {
        const changed = good.sealed.slice();
        changed[bit >>> 3]! ^= 1 << (bit & 7);
        const r2 = new MemoryFileStore();
        await r2.putRecord({ ...good, sealed: changed });
        await r2.putRecord({ key: "x/in/1", at: 1, sealed: changed.subarray(0, bit % 40) }); // truncated
        const listed = await new SealedFileStore(r2, nobleCrypto, s).listTransfers();
        expect(listed.transfers).toEqual([]);
        expect(listed.unreadable).toBe(2);
      }),
      { numRuns: FUZZ_RUNS },
    );
    const listed = await new SealedFileStore(raw, nobleCrypto, s).listTransfers();
    expect(listed.transfers.map((t) => t.key)).toEqual(["c0ffee/in/7"]);
    expect(listed.unreadable).toBe(1);
    const otherKey = await new SealedFileStore(raw, nobleCrypto, secrets()).listTransfers();
    expect(otherKey).toMatchObject({ transfers: [], unreadable: 2 });
  });

  it("reads a record an earlier version wrote in clear, and flags it to be sealed", async () => {
    const raw = new MemoryFileStore();
    const legacy = transfer({ key: "c0ffee/out/9", direction: "out", id: 9 });
    await raw.putRecord(legacy as unknown as FileRecord); // as the earlier IdbFileStore wrote it
    const listed = await new SealedFileStore(raw, nobleCrypto, secrets()).listTransfers();
    expect(listed.transfers).toEqual([legacy]);
    expect([...listed.clear]).toEqual([legacy.key]);
  });

  it("a closed store refuses the listing, and close waits for one under way", async () => {
    // Before, listTransfers went straight to the store: a closed store listed, and `close` did
    // not wait for a listing under way (files.md §6: nothing opens a file after the release).
    class HeldList extends MemoryFileStore {
      readonly lists = new Held();
      override async listRecords() {
        await this.lists.wait();
        return super.listRecords();
      }
    }
    const raw = new HeldList();
    const store = new SealedFileStore(raw, nobleCrypto, secrets());
    await store.putTransfer(transfer());
    const listing = store.listTransfers();
    await until(() => raw.lists.held.length === 1, "the listing is under way", 5_000);
    const closing = store.close(60_000);
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    raw.lists.letGo();
    expect((await listing).transfers).toHaveLength(1);
    expect(await closing).toBe(true);
    await expect(store.listTransfers()).rejects.toThrow(StoreClosed);
    expect(raw.lists.held).toHaveLength(0);
  });

  it("a closed store does not ask its store whether it reads copies cheaply (that may start the OPFS worker)", async () => {
    let asked = 0;
    const raw = Object.assign(new MemoryFileStore(), {
      readsCopyCheaply: async () => {
        asked++;
        return true;
      },
    });
    const closed = new SealedFileStore(raw, nobleCrypto, secrets());
    expect(await closed.close(1_000)).toBe(true);
    expect(await closed.readsCopyCheaply()).toBe(false);
    expect(asked).toBe(0);
    const open = new SealedFileStore(raw, nobleCrypto, secrets());
    expect(await open.readsCopyCheaply()).toBe(true);
    expect(await open.readsCopyCheaply()).toBe(true);
    expect(asked).toBe(1); // asked once
  });

  it("writes of one record land in call order", async () => {
    const raw = new MemoryFileStore();
    const store = new SealedFileStore(raw, nobleCrypto, secrets());
    const t = transfer();
    const writes: Promise<void>[] = [];
    for (let next = 0; next < 20; next++) {
      t.next = next;
      writes.push(store.putTransfer(t)); // a snapshot each time: `t` changes after the call
    }
    await Promise.all(writes);
    expect((await store.listTransfers()).transfers[0]?.next).toBe(19);
  });
});
