/**
 * A passphrase change while the engine runs loses nothing (storage.ts file comment, gate.ts): Bob
 * keeps writing to Alice while she sets the passphrase and changes it twice, so her storage stores
 * new messages, saves ratchet sessions and updates the contact during each re-seal. After a reload
 * and unlock with the last passphrase, every message and the contact open, every sealed record has
 * the passphrase layer, and the ratchet session was not rolled back (a message sent after the
 * reload arrives).
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/passphrase-race.e2e.ts`. Waits are on
 * conditions only; every loop is bounded in count.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import {
  byId,
  incoming,
  incomingTexts,
  inLoftDb,
  introduce,
  openChatFromHome,
  openChatHere,
  sendText,
  waitForState,
} from "../support/loft-ui.ts";
import { twoBrowsersPerSuite } from "../support/two-browsers.ts";

/** The `sealed.pass` flag (or `pass` for bare blobs) of every record in Alice's sealed stores. */
function passFlags(page: Page): Promise<Record<string, boolean[]>> {
  return inLoftDb(page, async ({ db, req }) => {
    const all = (name: string) =>
      req(db.transaction(name).objectStore(name).getAll()) as Promise<Record<string, unknown>[]>;
    const flag = (s: unknown) => (s as { pass?: boolean } | undefined)?.pass === true;
    return {
      self: (await all("self")).map((s) => flag(s.keys)),
      sessions: (await all("sessions")).map(flag),
      secrets: (await all("secrets")).map(flag),
      contacts: (await all("contacts")).map((c) => flag(c.sealed)),
      messages: (await all("messages")).map((m) => flag(m.sealed)),
    };
  });
}

const PASSPHRASES = ["first quiet harbour 81", "second amber lantern 52", "third silver orchard 37"];
/** History before the race, and the most Bob sends during it: together under one chat page (60). */
const BEFORE = 20;
const MAX_DURING = 36;

describe("passphrase change while the engine runs", () => {
  let a: Page;
  let b: Page;
  let url: string;
  twoBrowsersPerSuite((env) => {
    ({ a, b } = env);
    url = env.loft.url;
  });

  it("every message and contact opens after reload and unlock, all with the passphrase layer", async () => {
    const [aliceId, bobId] = await introduce(a, b, url);
    // Each opens the chat by a click, as people go on after meeting (no reload while the
    // engines' first connection opens; docs/contributing.md, "Tests").
    await openChatHere(a);
    await sendText(a, "hello Bob");
    await openChatFromHome(b, aliceId);
    await incoming(b, "hello Bob").waitFor();

    const sent: string[] = [];
    for (let i = 0; i < BEFORE; i++) {
      sent.push(`before-${i}`);
      await sendText(b, `before-${i}`);
    }
    await waitForState(b, `before-${BEFORE - 1}`, "delivered");
    // Alice reads the history (her read marker moves), then goes to Settings without a reload.
    await incoming(a, `before-${BEFORE - 1}`).waitFor();
    await byId(a, "back")
      .click()
      .catch(() => undefined);
    await a.goto(url);
    await byId(a, "nav-settings").click();

    let changing = true;
    const burst = (async () => {
      for (let i = 0; i < MAX_DURING && changing; i++) {
        sent.push(`during-${i}`);
        await sendText(b, `during-${i}`);
      }
    })();
    for (const pass of PASSPHRASES) {
      await byId(a, "passphrase-new").fill(pass);
      await byId(a, "passphrase-confirm").fill(pass);
      await byId(a, "set-passphrase").click();
      // The form clears itself once the passphrase is in place.
      await expect.poll(() => byId(a, "passphrase-new").inputValue(), { timeout: 60_000 }).toBe("");
      expect(await byId(a, "passphrase-result").textContent()).toContain("Passphrase set");
    }
    changing = false;
    await burst;
    const last = sent[sent.length - 1]!;
    await waitForState(b, last, "delivered");

    // A new visit: locked; the last passphrase opens everything.
    await a.goto(url);
    await byId(a, "unlock-passphrase").fill(PASSPHRASES[PASSPHRASES.length - 1]!);
    await byId(a, "unlock-submit").click();
    await byId(a, "my-username").waitFor();
    const bobItem = a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`);
    expect(await bobItem.textContent()).toContain("Bob");
    const flags = await passFlags(a);
    for (const [store, list] of Object.entries(flags))
      expect({ store, list }).toEqual({ store, list: list.map(() => true) });
    expect(flags.messages!.length).toBe(sent.length + 1);

    await openChatFromHome(a, bobId);
    // The history is read after the chat opens, in any order: wait for all of it, not the last one.
    await incoming(a, last).waitFor();
    await expect.poll(async () => (await incomingTexts(a)).sort()).toEqual([...sent].sort());

    // The ratchet session was not rolled back by a stale re-sealed copy: a new message arrives.
    await sendText(b, "after the reload");
    await incoming(a, "after the reload").waitFor({ timeout: 60_000 });
  });
});
