/**
 * Message history and contact records are sealed at rest (issue #17; docs/protocol/chat.md §9, and
 * web/src/storage/storage.ts "What stays clear"): after a real chat between two Chromium pages,
 * the raw IndexedDB records hold no message text, no contact name and no endpoint; history still
 * shows after a reload; a record written in clear by an earlier version is still shown and gets
 * sealed by the migration; and a passphrase layer made with PBKDF2 (before Argon2id) unlocks and
 * is re-derived with Argon2id on that unlock (vault.ts, storage.ts `unlock`).
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/sealed-storage.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import {
  byId,
  incoming,
  inLoftDb,
  introduce,
  openChat,
  openChatFromHome,
  openChatHere,
  sendText,
  waitForState,
} from "../support/loft-ui.ts";
import { twoBrowsersPerSuite } from "../support/two-browsers.ts";

/** Every record of `stores` as text (bytes as latin1), to search for clear content. */
function rawDump(page: Page, stores: string[]): Promise<Record<string, unknown[]>> {
  return inLoftDb(
    page,
    async ({ db, req }, names) => {
      const plain = (v: unknown): unknown => {
        if (v instanceof Uint8Array) return String.fromCharCode(...v);
        if (Array.isArray(v)) return v.map(plain);
        if (v && typeof v === "object")
          return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
        return v;
      };
      const out: Record<string, unknown[]> = {};
      for (const name of names)
        out[name] = (await req(db.transaction(name).objectStore(name).getAll())).map(plain);
      return out;
    },
    stores,
  );
}

/** Write `value` as an earlier version would have: in clear, before any migration mark. */
function putLegacy(page: Page, store: string, value: unknown): Promise<void> {
  return inLoftDb(
    page,
    async ({ db, done }, [name, v]) => {
      const tx = db.transaction([name, "meta"], "readwrite");
      tx.objectStore(name).put(v);
      tx.objectStore("meta").delete("history-sealed");
      await done(tx);
    },
    [store, value] as [string, unknown],
  );
}

/**
 * Turn this page's passphrase-less vault into what a version before Argon2id left with a
 * passphrase: every sealed record gets an inner AES-GCM layer under PBKDF2-SHA256 (600 000) of
 * `passphrase`, and meta "passphrase" a PBKDF2 config (vault.ts layout, written by hand with
 * WebCrypto so no app code is involved).
 */
function makeLegacyPassphrase(page: Page, passphrase: string): Promise<number> {
  return inLoftDb(
    page,
    async ({ db, req, done }, pass) => {
      const meta = db.transaction("meta").objectStore("meta");
      const device = (await req(meta.get("device-key"))) as CryptoKey;
      const enc = new TextEncoder();
      const salt = crypto.getRandomValues(new Uint8Array(16));
      const material = await crypto.subtle.importKey("raw", enc.encode(pass), "PBKDF2", false, ["deriveKey"]);
      const passKey = await crypto.subtle.deriveKey(
        { name: "PBKDF2", hash: "SHA-256", salt, iterations: 600_000 },
        material,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
      type Sealed = { v: 1; pass: boolean; iv: Uint8Array<ArrayBuffer>; ct: Uint8Array<ArrayBuffer> };
      const gcm = async (key: CryptoKey, data: Uint8Array<ArrayBuffer>, aad: Uint8Array<ArrayBuffer>) => {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const ct = new Uint8Array(
          await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, data),
        );
        return { iv, ct };
      };
      const addPass = async (name: string, s: Sealed): Promise<Sealed> => {
        const aad = enc.encode(`loft/sealed/v1/${name}`);
        const plain = new Uint8Array(
          await crypto.subtle.decrypt({ name: "AES-GCM", iv: s.iv, additionalData: aad }, device, s.ct),
        );
        const inner = await gcm(passKey, plain, aad);
        const both = new Uint8Array(12 + inner.ct.length);
        both.set(inner.iv);
        both.set(inner.ct, 12);
        const outer = await gcm(device, both, aad);
        return { v: 1, pass: true, iv: outer.iv, ct: outer.ct };
      };
      let count = 0;
      const rewrite = async (
        store: string,
        name: (key: IDBValidKey, v: Record<string, unknown>) => string,
      ) => {
        const keys = await req(db.transaction(store).objectStore(store).getAllKeys());
        const values = await req(db.transaction(store).objectStore(store).getAll());
        const out: [IDBValidKey, unknown][] = [];
        for (let i = 0; i < keys.length; i++) {
          const v = values[i] as Record<string, unknown>;
          if (store === "sessions" || store === "secrets")
            out.push([keys[i]!, await addPass(name(keys[i]!, v), v as unknown as Sealed)]);
          else if (store === "self")
            out.push([keys[i]!, { ...v, keys: await addPass("self/keys", v.keys as Sealed) }]);
          else out.push([keys[i]!, { ...v, sealed: await addPass(name(keys[i]!, v), v.sealed as Sealed) }]);
          count++;
        }
        const tx = db.transaction(store, "readwrite");
        for (const [k, v] of out)
          if (store === "contacts" || store === "messages") tx.objectStore(store).put(v);
          else tx.objectStore(store).put(v, k);
        await done(tx);
      };
      await rewrite("self", () => "self/keys");
      await rewrite("sessions", (k) => `session/${String(k)}`);
      await rewrite("secrets", (k) => `secret/${String(k)}`);
      await rewrite("contacts", (k) => `contact/${String(k)}`);
      await rewrite("messages", (k) => `message/${String(k)}`);
      const check = await addPass("passphrase-check", {
        v: 1,
        pass: false,
        ...(await gcm(
          device,
          enc.encode("loft/passphrase-check/v1"),
          enc.encode("loft/sealed/v1/passphrase-check"),
        )),
      });
      const tx = db.transaction("meta", "readwrite");
      tx.objectStore("meta").put({ kdf: "PBKDF2-SHA256", iterations: 600_000, salt, check }, "passphrase");
      await done(tx);
      return count;
    },
    passphrase,
  );
}

function passphraseKdf(page: Page): Promise<string | undefined> {
  return inLoftDb(page, async ({ db, req }) => {
    const config = (await req(db.transaction("meta").objectStore("meta").get("passphrase"))) as
      | { kdf?: string }
      | undefined;
    return config?.kdf;
  });
}

describe("history and contacts sealed at rest", () => {
  let a: Page;
  let b: Page;
  let url: string;
  let bobId: string;
  twoBrowsersPerSuite((env) => {
    ({ a, b } = env);
    url = env.loft.url;
  });

  it("after a chat, IndexedDB holds no message text, contact name or endpoint in clear", async () => {
    let aliceId: string;
    [aliceId, bobId] = await introduce(a, b, url, ["Alice", "Bobbington"]);
    // Each opens the chat by a click, as people go on after meeting (no reload while the
    // engines' first connection opens; docs/contributing.md, "Tests").
    await openChatHere(a);
    await sendText(a, "marmalade-7731 from Alice");
    await waitForState(a, "marmalade-7731 from Alice", "delivered");
    await openChatFromHome(b, aliceId);
    await incoming(b, "marmalade-7731 from Alice").waitFor();
    await sendText(b, "quince-5520 from Bob");
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

  it("a passphrase set before Argon2id (PBKDF2) unlocks, and is re-derived with Argon2id on that unlock", async () => {
    await a.goto(url);
    await byId(a, "my-username").waitFor();
    // Close the app's connection first so the rewrite below is not interleaved with its writes.
    await a.goto("about:blank");
    await a.goto(`${url}/health`);
    expect(await makeLegacyPassphrase(a, "an old passphrase from 2025")).toBeGreaterThan(3);
    expect(await passphraseKdf(a)).toBe("PBKDF2-SHA256");
    await a.goto(url);
    await byId(a, "unlock-passphrase").fill("an old passphrase from 2025");
    await byId(a, "unlock-submit").click();
    await byId(a, "my-username").waitFor();
    await expect.poll(() => passphraseKdf(a), { timeout: 30_000 }).toBe("Argon2id");
    await openChatFromHome(a, bobId);
    await incoming(a, "quince-5520 from Bob").waitFor();
    // The upgraded vault opens with the same passphrase after a reload, back on the same chat.
    await a.reload();
    await byId(a, "unlock-passphrase").fill("an old passphrase from 2025");
    await byId(a, "unlock-submit").click();
    await byId(a, "chat").waitFor();
    await incoming(a, "legacy-plain-42").waitFor();
  });

  it("a record that does not open is skipped; the rest of the contacts and the history still show", async () => {
    // A damaged message in Bob's history and a damaged contact: sealed blobs that fail AES-GCM.
    await inLoftDb(
      a,
      async ({ db, done }, contactId) => {
        const junk = () => ({
          v: 1,
          pass: true,
          iv: crypto.getRandomValues(new Uint8Array(12)),
          ct: crypto.getRandomValues(new Uint8Array(48)),
        });
        const tx = db.transaction(["messages", "contacts"], "readwrite");
        tx.objectStore("messages").put({
          id: "damaged-1",
          contactId,
          at: 2,
          state: "received",
          sealed: junk(),
        });
        tx.objectStore("contacts").put({
          id: "ab".repeat(32),
          trust: "unknown",
          firstSeen: 1,
          lastSeen: 1,
          sealed: junk(),
        });
        await done(tx);
      },
      bobId,
    );
    await a.goto(url);
    await byId(a, "unlock-passphrase").fill("an old passphrase from 2025");
    await byId(a, "unlock-submit").click();
    await byId(a, "my-username").waitFor();
    await a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`).waitFor();
    expect(await a.locator("[data-testid=contact-item]").count()).toBe(1);
    await openChatFromHome(a, bobId);
    await incoming(a, "quince-5520 from Bob").waitFor();
    await incoming(a, "legacy-plain-42").waitFor();
  });
});
