/**
 * Driving the PWA through its data-testids (the same steps as test/e2e/chat.e2e.ts), shared by the
 * relay browser tests. Every wait is on a condition, never a duration.
 */
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { contactLinkUrl, parseContactLinkUrl } from "../../core/identity/contact-link.ts";
import { createUserIdentity, type UserIdentity } from "../../core/identity/identity.ts";
import { type DraftKey, draftSecret } from "../../web/src/engine/local-notes.ts";

export const byId = (page: Page, testid: string) => page.getByTestId(testid);

/** A new identity on the first screen; ends on Home. Usable in hooks (no `expect.poll`). */
export async function createIdentity(page: Page, url: string, username: string): Promise<void> {
  await page.goto(url);
  await byId(page, "username-input").fill(username);
  await byId(page, "create-identity").click();
  await byId(page, "my-username").waitFor();
  expect(await byId(page, "my-username").textContent()).toBe(username);
}

/**
 * The user's own contact link; with `withRefs`, waits (on the link itself, bounded in time) until
 * it carries `refs`: the contact address is set up at the relay after the identity is created,
 * later on a loaded machine.
 */
export async function myLink(page: Page, withRefs = false): Promise<string> {
  await page.goto(new URL(page.url()).origin);
  const read = async () => {
    await byId(page, "nav-my-link").click();
    const link = await byId(page, "my-link").inputValue();
    await byId(page, "back").click();
    return link;
  };
  if (!withRefs) return read();
  let link = "";
  const hasRefs = async () => {
    link = await read();
    return linkHasRefs(link);
  };
  await expect.poll(hasRefs, { timeout: 60_000 }).toBe(true);
  return link;
}

async function linkHasRefs(link: string): Promise<boolean> {
  const parsed = await parseContactLinkUrl(nobleCrypto, link);
  return parsed.ok && parsed.value.refs !== undefined && Object.keys(parsed.value.refs).length > 0;
}

/** `user`'s contact link on the app at `url`, with no signaling or relay: a contact never online. */
export function offlineLink(url: string, user: UserIdentity): string {
  const link = contactLinkUrl(url, { identity: user.identity, signaling: [], relay: [] });
  if (!link.ok) throw link.error;
  return link.value;
}

/** Adds a new identity made here (never online) by its link; returns its contact id. */
export function addOfflineContact(page: Page, url: string, username: string): Promise<string> {
  return addByLink(page, offlineLink(url, createUserIdentity({ username, now: Date.now() })));
}

/**
 * Open a contact link in the app and confirm; returns the new contact's id. The outcome is waited
 * for, whole: the link is verified asynchronously, and a page already on the add screen (a link
 * opened by its hash alone) can show the previous link's outcome until the new one is checked.
 */
export async function addByLink(page: Page, link: string, outcome = "new-contact"): Promise<string> {
  await page.goto(link);
  await expectAddOutcome(page, outcome);
  await byId(page, "confirm-add").click();
  await byId(page, "contact-screen").waitFor();
  return (await byId(page, "contact-id").textContent())!;
}

/**
 * Waits (bounded) until the add screen shows `outcome`: the whole `data-outcome` (an attribute
 * selector matches it whole, not a part of it). A Playwright wait, not `expect.poll`, so that
 * hooks can add contacts too; a timeout names what the screen showed instead.
 */
export async function expectAddOutcome(page: Page, outcome: string): Promise<void> {
  const shown = page.locator(`[data-testid=add-outcome][data-outcome=${JSON.stringify(outcome)}]`);
  try {
    await shown.waitFor({ timeout: 30_000 });
  } catch {
    const other = await byId(page, "add-outcome")
      .getAttribute("data-outcome", { timeout: 1_000 })
      .catch(() => "no outcome shown");
    expect(other).toBe(outcome);
  }
}

/**
 * Two new users meet: each page creates an identity, then each opens the other's contact link.
 * `prepare` runs on each page between the two (a server setting both must use before they meet).
 * Returns [a's contact id at b, b's contact id at a]; a ends on b's contact screen, b at Home (it
 * showed its own link after adding a).
 */
export async function introduce(
  a: Page,
  b: Page,
  url: string,
  [nameA, nameB] = ["Alice", "Bob"],
  prepare?: (page: Page) => Promise<void>,
): Promise<[string, string]> {
  await createIdentity(a, url, nameA);
  await createIdentity(b, url, nameB);
  if (prepare) {
    await prepare(a);
    await prepare(b);
  }
  const aId = await addByLink(b, await myLink(a));
  const bId = await addByLink(a, await myLink(b));
  return [aId, bId];
}

/**
 * `introduce`, then both open their chat and a sees b online (by either path: direct or via the
 * relay, whichever comes up first on this machine). By clicks, as people do: a reload here would
 * end the first connection between the two while it opens, and the engines would dial again.
 */
export async function startChatting(a: Page, b: Page, url: string): Promise<[string, string]> {
  const [aId, bId] = await introduce(a, b, url);
  await openChatHere(a);
  await openChatFromHome(b, aId);
  await waitForPresence(a, /^online/);
  return [aId, bId];
}

/** Home → the chat with a contact. */
export async function openChat(page: Page, contactId: string): Promise<void> {
  await page.goto(new URL(page.url()).origin);
  await openChatFromHome(page, contactId);
}

/**
 * On a contact's screen (where `addByLink` leaves a page): its chat, by a click, as a person goes
 * on after adding a contact. No navigation: `openChat` reloads the app, which ends
 * the engine's first connection to the new contact while it opens.
 */
export async function openChatHere(page: Page): Promise<void> {
  await byId(page, "open-chat").click();
  await byId(page, "chat").waitFor();
}

/** The chat with a contact by a click on Home, no navigation (which would lock a passphrase-protected app). */
export async function openChatFromHome(page: Page, contactId: string): Promise<void> {
  await page.locator(`[data-testid=contact-item][data-contact-id="${contactId}"]`).click();
  await page.locator("[data-testid=contact-screen], [data-testid=chat]").waitFor();
  if (await byId(page, "contact-screen").count()) await byId(page, "open-chat").click();
  await byId(page, "chat").waitFor();
}

/**
 * Settings → a new username, by clicks from Home, and back on Home once it is saved. By clicks: a
 * page load would end the connection (and replay the journal at unlock); the engine restarts under
 * the new identity version instead (app/model.ts `changeUsername`).
 */
export async function renameByClicks(page: Page, username: string): Promise<void> {
  await byId(page, "nav-settings").click();
  await byId(page, "settings-username").fill(username);
  await byId(page, "save-username").click();
  await expect
    .poll(() => byId(page, "username-result").textContent())
    .toBe("Saved. Contacts see the new name next time you connect.");
  await byId(page, "back").click();
  await byId(page, "home").waitFor();
}

/** Home → a contact's screen, by id or name (a contact item opens the chat; its header opens the contact). */
export async function openContact(page: Page, which: { username: string } | { id: string }): Promise<void> {
  await page.goto(new URL(page.url()).origin);
  const sel = "id" in which ? `[data-contact-id="${which.id}"]` : `[data-username="${which.username}"]`;
  await page.locator(`[data-testid=contact-item]${sel}`).click();
  await page.locator("[data-testid=contact-screen], [data-testid=chat]").waitFor();
  if (await byId(page, "chat").count()) await byId(page, "chat-contact").click();
  await byId(page, "contact-screen").waitFor();
}

export async function sendText(page: Page, text: string): Promise<void> {
  await byId(page, "composer-input").fill(text);
  await byId(page, "send-button").click();
  await expect.poll(() => byId(page, "composer-input").inputValue()).toBe("");
}

/**
 * A message whose text is exactly `text`: a substring match would also find "during-2" inside
 * "during-2" + the time "11:20 PM", or "burst 1" inside "burst 10".
 */
const messageWithText = (page: Page, selector: string, text: string) =>
  page.locator(selector, {
    has: page.locator("[data-testid=message-text]", {
      hasText: new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`),
    }),
  });

export const outgoing = (page: Page, text: string) =>
  messageWithText(page, "[data-testid=message][data-direction=out]", text);

export const incoming = (page: Page, text: string) =>
  messageWithText(page, "[data-testid=message][data-direction=in]", text);

export async function waitForState(page: Page, text: string, state: string, timeout = 60_000): Promise<void> {
  await messageWithText(page, `[data-testid=message][data-direction=out][data-state=${state}]`, text).waitFor(
    {
      timeout,
    },
  );
}

export async function waitForPresence(page: Page, label: string | RegExp, timeout = 60_000): Promise<void> {
  const text = () => byId(page, "chat-presence").textContent();
  if (typeof label === "string") await expect.poll(text, { timeout }).toBe(label);
  else await expect.poll(text, { timeout }).toMatch(label);
}

/** Texts of the incoming messages in the open chat, in display order. */
export function incomingTexts(page: Page): Promise<string[]> {
  return page
    .locator("[data-testid=message][data-direction=in] [data-testid=message-text]")
    .allTextContents();
}

/** What `inLoftDb` hands its function, in the page. */
export interface LoftDb {
  db: IDBDatabase;
  /** A request's result (or its error) as a promise. */
  req<T>(request: IDBRequest<T>): Promise<T>;
  /** A transaction's completion (or its error) as a promise. */
  done(tx: IDBTransaction): Promise<void>;
}

/**
 * Runs `fn` in the page on the app's own IndexedDB ("loft"), opened for it and closed after.
 * `fn` runs in the page: it sees only its arguments (`arg` travels as JSON), not this module.
 */
export function inLoftDb<R, A = undefined>(
  page: Page,
  fn: (idb: LoftDb, arg: A) => Promise<R>,
  arg?: A,
): Promise<R> {
  return page.evaluate(`(async () => {
    const req = (r) => new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const done = (tx) => new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    const db = await req(indexedDB.open("loft"));
    try {
      return await (${fn.toString()})({ db, req, done }, ${JSON.stringify(arg) ?? "undefined"});
    } finally {
      db.close();
    }
  })()`) as Promise<R>;
}

/** Names of the engine secrets in the page's IndexedDB (values stay sealed). */
export async function secretNames(page: Page): Promise<string[]> {
  const keys = await inLoftDb(page, ({ db, req }) =>
    req(db.transaction("secrets").objectStore("secrets").getAllKeys()),
  );
  return keys.map(String);
}

/** Both sides hold the other's mailbox (exchanged inside the E2EE session). */
export async function waitForMailboxes(a: Page, aId: string, b: Page, bId: string): Promise<void> {
  await expect
    .poll(async () => (await secretNames(a)).includes(`relay/tx/${bId}`), { timeout: 60_000 })
    .toBe(true);
  await expect
    .poll(async () => (await secretNames(b)).includes(`relay/tx/${aId}`), { timeout: 60_000 })
    .toBe(true);
}

/**
 * From now until `allowWrites` (or a reload), every write the page makes to these IndexedDB
 * object stores fails as on a full disk: the transaction is aborted (so nothing it wrote stays)
 * and the call throws `QuotaExceededError`. Stands in for storage that refuses a change, which a
 * test can't otherwise cause on demand.
 */
export async function failWrites(page: Page, stores: string[]): Promise<void> {
  await page.evaluate((names) => {
    const proto = IDBObjectStore.prototype as IDBObjectStore & Record<string, unknown>;
    const w = window as unknown as { __loftWrites?: Record<string, unknown> };
    w.__loftWrites ??= { put: proto.put, add: proto.add, delete: proto.delete, clear: proto.clear };
    const originals = w.__loftWrites;
    for (const method of Object.keys(originals)) {
      const original = originals[method] as (...args: unknown[]) => unknown;
      proto[method] = function (this: IDBObjectStore, ...args: unknown[]) {
        if (!names.includes(this.name)) return original.apply(this, args);
        try {
          this.transaction.abort();
        } catch {}
        throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
      };
    }
  }, stores);
}

/** Undo `failWrites`. */
export async function allowWrites(page: Page): Promise<void> {
  await page.evaluate(() => {
    const proto = IDBObjectStore.prototype as IDBObjectStore & Record<string, unknown>;
    const originals = (window as unknown as { __loftWrites?: Record<string, unknown> }).__loftWrites;
    for (const [method, original] of Object.entries(originals ?? {})) proto[method] = original;
  });
}

/**
 * The stored draft of a conversation as it lies in IndexedDB (app/drafts.ts, engine/local-notes.ts):
 * null when there is none, else whether its bytes hold `plain` anywhere (they must not: sealed).
 */
export function storedDraft(
  page: Page,
  key: DraftKey,
  plain: string,
): Promise<{ holdsPlain: boolean } | null> {
  return inLoftDb(
    page,
    async ({ db, req }, { name, text }) => {
      const value = await req(db.transaction("secrets").objectStore("secrets").get(name));
      if (value === undefined) return null;
      const { iv, ct } = value as { iv: Uint8Array; ct: Uint8Array };
      const all = new TextDecoder("latin1").decode(new Uint8Array([...iv, ...ct]));
      const utf8 = new TextDecoder().decode(ct);
      return { holdsPlain: all.includes(text) || utf8.includes(text) };
    },
    { name: draftSecret(key), text: plain },
  );
}

/**
 * From now on, record in the page each time an element comes into a live region (one whose test
 * id ends in "-news": ui/LiveRegion.tsx), anywhere inside it, or its words change in place: an
 * addition (or changed text) is what the region announces, and (role status or alert: atomic) it
 * reads its whole text then, recorded as it is at that moment — once per region for the changes
 * of one update. The same words left in place,
 * or set again into the same element, are not announced. `announced` reads them.
 */
export async function watchLiveRegions(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { loftAnnounced?: { region: string; text: string }[] };
    if (w.loftAnnounced) return;
    const said: { region: string; text: string }[] = [];
    w.loftAnnounced = said;
    new MutationObserver((records) => {
      const regions = new Set<Element>();
      for (const r of records) {
        const at = r.target instanceof Element ? r.target : r.target.parentElement;
        const region = at?.closest('[data-testid$="-news"]');
        // An element added and gone again in the same update was never on screen: not announced.
        // Words changed in place are (aria-relevant "additions text", the default): a text node
        // added, or one whose text changed — left out, a region whose words change that way would
        // seem silent, and a check that it says something once pass on nothing recorded.
        const news =
          r.type === "characterData"
            ? r.target.isConnected
            : [...r.addedNodes].some(
                (n) => n.isConnected && (n instanceof Element || (n instanceof Text && n.data.trim() !== "")),
              );
        if (region && news) regions.add(region);
      }
      for (const region of regions)
        said.push({
          region: region.getAttribute("data-testid") ?? "",
          text: region.textContent?.trim() ?? "",
        });
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

/** What the live region `testid` announced since `watchLiveRegions`: its words each time, in order. */
export function announced(page: Page, testid: string): Promise<string[]> {
  return page.evaluate(
    (testid) =>
      (window as unknown as { loftAnnounced: { region: string; text: string }[] }).loftAnnounced
        .filter((a) => a.region === testid)
        .map((a) => a.text),
    testid,
  );
}

/**
 * In the open Settings: set `passphrase` (web/src/ui/Settings.tsx, "Passphrase"), wait until it
 * is said set, then reload — the device locked, on the unlock screen.
 */
export async function setPassphraseAndLock(page: Page, passphrase: string, timeout = 60_000): Promise<void> {
  await byId(page, "passphrase-new").fill(passphrase);
  await byId(page, "passphrase-confirm").fill(passphrase);
  await byId(page, "set-passphrase").click();
  await expect
    .poll(() => byId(page, "passphrase-result").textContent(), { timeout })
    .toContain("Passphrase set");
  await page.reload();
  await byId(page, "unlock").waitFor({ timeout });
}

/**
 * Hold WebCrypto encryptions in the page until `releaseEncrypt()` is called in it (or
 * `releaseHeld`): nothing the page seals (a commit, a draft write) is written meanwhile.
 * `holdsEncryptionOf` tells which write is held, `heldCount` how many are.
 *
 * - `method`: "decrypt" holds decryptions instead (an unlock's passphrase check, a slow device);
 * - `aadPrefix`: only those whose additional data (UTF-8) starts with it (storage's sealed records
 *   name what they seal: "loft/sealed/v1/session/…", "loft/sealed/v1/passphrase-check");
 * - `once`: only the first of those; the rest go through.
 */
export async function holdEncrypt(
  page: Page,
  options: { method?: "encrypt" | "decrypt"; aadPrefix?: string; once?: boolean } = {},
): Promise<void> {
  await page.evaluate(
    ({ method, aadPrefix, once }) => {
      const subtle = crypto.subtle;
      const original = subtle[method].bind(subtle);
      const held: (() => void)[] = [];
      const inputs: Uint8Array[] = [];
      const w = window as unknown as { releaseEncrypt: () => void; heldInputs: Uint8Array[] };
      w.heldInputs = inputs;
      w.releaseEncrypt = () => {
        subtle[method] = original;
        for (const go of held) go();
      };
      const bytes = (data: BufferSource) =>
        ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
          : new Uint8Array(data).slice();
      subtle[method] = (...args: Parameters<SubtleCrypto["encrypt"]>) => {
        const ad = (args[0] as { additionalData?: BufferSource }).additionalData;
        const matches =
          aadPrefix === undefined || (ad !== undefined && new TextDecoder().decode(ad).startsWith(aadPrefix));
        if (!matches || (once && inputs.length > 0)) return original(...args);
        inputs.push(bytes(args[2]));
        return new Promise((resolve, reject) =>
          held.push(() => void original(...args).then(resolve, reject)),
        );
      };
    },
    { method: options.method ?? "encrypt", aadPrefix: options.aadPrefix, once: options.once ?? false },
  );
}

/** How many operations `holdEncrypt` holds (or held, once released) in the page. */
export function heldCount(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { heldInputs?: Uint8Array[] }).heldInputs?.length ?? 0);
}

/** Let what `holdEncrypt` holds in the page go on (and what comes after go through). */
export async function releaseHeld(page: Page): Promise<void> {
  await page.evaluate(() => (window as unknown as { releaseEncrypt: () => void }).releaseEncrypt());
}

/** Whether an encryption `holdEncrypt` holds in the page has `text` (UTF-8) in what it seals. */
export function holdsEncryptionOf(page: Page, text: string): Promise<boolean> {
  return page.evaluate((text) => {
    const inputs = (window as unknown as { heldInputs?: Uint8Array[] }).heldInputs ?? [];
    return inputs.some((bytes) => new TextDecoder().decode(bytes).includes(text));
  }, text);
}

// ---- rooms (web/src/ui/Room.tsx), shared by the rooms browser tests -------------------------------

/**
 * Make a room from Home (its link shown, then opened): its link and its id. Ends on its screen.
 * `timeout` bounds the wait for the link (its QR code), which a loaded machine may draw slowly.
 */
export async function createRoom(page: Page, timeout: number): Promise<{ link: string; roomId: string }> {
  await byId(page, "nav-new-room").click();
  await byId(page, "room-link-qr").waitFor({ timeout });
  const link = await byId(page, "room-link").inputValue();
  await byId(page, "open-room").click();
  await byId(page, "room-screen").waitFor();
  return { link, roomId: (await byId(page, "room-screen").getAttribute("data-room-id")) ?? "" };
}

/**
 * An init script for a page whose member links can never open: it answers no WebRTC offer (its
 * remote description never settles) and reaches no relay (its /relay WebSockets go nowhere). It is
 * still present at the room's rendezvous, so the members dial it again and again (rooms.md §3).
 */
export const NO_MEMBER_LINK = `(() => {
  const proto = window.RTCPeerConnection && window.RTCPeerConnection.prototype;
  if (proto) proto.setRemoteDescription = () => new Promise(() => {});
  const Ws = window.WebSocket;
  window.WebSocket = new Proxy(Ws, {
    construct(target, [url, protocols]) {
      const u = String(url);
      return new target(/\\/relay$/.test(new URL(u, location.href).pathname) ? "ws://127.0.0.1:9/" : u, protocols);
    },
  });
})();`;

/** Members shown connected on a room screen. */
export const onlineMembers = (page: Page) => page.locator("[data-testid=room-member][data-state=online]");

/** Texts of the room's messages sent (`out`) or received (`in`) on `page`, in display order. */
export const roomTexts = (page: Page, direction: "in" | "out") =>
  page
    .locator(`[data-testid=room-message][data-direction=${direction}] [data-testid=room-message-text]`)
    .allTextContents();

/** Our room message holding `text` on `page`: its state line ("Delivered to all 2") and where each copy is. */
export const ourRoomMessage = (page: Page, text: string) =>
  page.locator("[data-testid=room-message][data-direction=out]", {
    has: page.locator("[data-testid=room-message-text]", { hasText: text }),
  });

/** Where the copy of our room message holding `text` for the member `name` is ("Bea: delivered"). */
export const roomRecipient = (page: Page, text: string, name: string) =>
  ourRoomMessage(page, text).locator("[data-testid=room-message-recipient]", { hasText: `${name}:` });

/** Type `text` into the open composer key by key, as a person does, and send it with Enter. */
export async function typeAndSend(page: Page, text: string): Promise<void> {
  const input = byId(page, "composer-input");
  await input.pressSequentially(text);
  await input.press("Enter");
}
