/**
 * Message history and contact records are sealed at rest (issue #17; docs/protocol/chat.md §9, and
 * web/src/storage/storage.ts "What stays clear"): after a real chat between two Chromium pages,
 * the raw IndexedDB records hold no message text, no contact name and no endpoint; history still
 * shows after a reload; and a record written in clear by an earlier version is still shown and
 * gets sealed by the migration.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/sealed-storage.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addByLink,
  byId,
  createIdentity,
  incoming,
  myLink,
  openChat,
  sendText,
  waitForState,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

/** Every record of `stores` as text (bytes as latin1), to search for clear content. */
function rawDump(page: Page, stores: string[]): Promise<Record<string, unknown[]>> {
  return page.evaluate(async (names) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open("loft");
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const plain = (v: unknown): unknown => {
      if (v instanceof Uint8Array) return String.fromCharCode(...v);
      if (Array.isArray(v)) return v.map(plain);
      if (v && typeof v === "object")
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
      return v;
    };
    const out: Record<string, unknown[]> = {};
    for (const name of names)
      out[name] = await new Promise<unknown[]>((resolve, reject) => {
        const r = db.transaction(name).objectStore(name).getAll();
        r.onsuccess = () => resolve(r.result.map(plain));
        r.onerror = () => reject(r.error);
      });
    db.close();
    return out;
  }, stores);
}

/** Write `value` as an earlier version would have: in clear, before any migration mark. */
function putLegacy(page: Page, store: string, value: unknown): Promise<void> {
  return page.evaluate(
    async ([name, v]) => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const r = indexedDB.open("loft");
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      await new Promise<void>((resolve, reject) => {
        const tx = db.transaction([name as string, "meta"], "readwrite");
        tx.objectStore(name as string).put(v);
        tx.objectStore("meta").delete("history-sealed");
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
      });
      db.close();
    },
    [store, value] as const,
  );
}

describe("history and contacts sealed at rest", () => {
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;
  let url: string;
  let bobId: string;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ a, b } = env);
    url = env.loft.url;
  });
  afterAll(async () => {
    await env?.close();
  });

  it("after a chat, IndexedDB holds no message text, contact name or endpoint in clear", async () => {
    await createIdentity(a, url, "Alice");
    await createIdentity(b, url, "Bobbington");
    const linkA = await myLink(a);
    const linkB = await myLink(b);
    const aliceId = await addByLink(b, linkA);
    bobId = await addByLink(a, linkB);
    await openChat(a, bobId);
    await sendText(a, "marmalade-7731 from Alice");
    await waitForState(a, "marmalade-7731 from Alice", "delivered");
    await openChat(b, aliceId);
    await incoming(b, "marmalade-7731 from Alice").waitFor();
    await sendText(b, "quince-5520 from Bob");
    await openChat(a, bobId);
    await incoming(a, "quince-5520 from Bob").waitFor();

    const dump = JSON.stringify(await rawDump(a, ["contacts", "messages"]));
    expect(dump).not.toContain("marmalade-7731");
    expect(dump).not.toContain("quince-5520");
    expect(dump).not.toContain("Bobbington");
    expect(dump).not.toContain("/signal");
    const raw = await rawDump(a, ["contacts", "messages"]);
    for (const r of [...raw.contacts!, ...raw.messages!]) expect(r).toHaveProperty("sealed");
  });

  it("history still shows after a reload, and a record left in clear by an older version is shown, then sealed", async () => {
    await putLegacy(a, "messages", {
      id: "legacy-message-1",
      contactId: bobId,
      direction: "in",
      text: "legacy-plain-42",
      at: 1,
      sentAt: 1,
      state: "received",
      remoteId: "legacy-remote-1",
    });
    await a.reload();
    await openChat(a, bobId);
    await incoming(a, "quince-5520 from Bob").waitFor();
    await incoming(a, "legacy-plain-42").waitFor();
    await expect
      .poll(async () => JSON.stringify(await rawDump(a, ["messages"])), { timeout: 30_000 })
      .not.toContain("legacy-plain-42");
    await a.reload();
    await openChat(a, bobId);
    await incoming(a, "legacy-plain-42").waitFor();
    expect(await byId(a, "chat").count()).toBe(1);
  });
});
