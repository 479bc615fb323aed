/**
 * The app's state as Solid signals: storage, the unlocked user, contacts (decoded and verified),
 * the running engine with presence, and the current screen. Screens read these and call the
 * actions of the app layer (this module and its neighbours in web/src/app/: settings, backup,
 * conversation, my-link); screens never write storage or call the engine themselves. Contact
 * records are written by the engine only (`ChatEngine.changeContact`, which stores, acts on the
 * change and emits `contact-changed`).
 */
import { type Accessor, batch, createEffect, createSignal } from "solid-js";
import { createStore, reconcile } from "solid-js/store";
import { toHex } from "../../../core/bytes.ts";
import { pageCrypto } from "../crypto.ts";
import type {
  ChatEngine,
  ContactChange,
  ContactEndpoints,
  ContactId,
  ContactRecord,
  DeviceRelayApi,
  EngineEvent,
  PendingIdentityChange,
  Presence,
  ServiceStatus,
  StoredMessage,
} from "../engine/api.ts";
import type { CallView } from "../engine/calls/types.ts";
import { type DraftKey, DraftStore } from "../engine/local-notes.ts";
import { sendRefusal } from "../engine/outgoing.ts";
import { loadEngine, loadOfflineEngine } from "../engine-loader.ts";
import {
  type ContactLink,
  contactIdOf,
  decodeIdentity,
  encodeIdentity,
  type Identity,
  type KnownContact,
  newUserIdentity,
  renamedUserIdentity,
  type TofuOutcome,
  tofuDecide,
  type UserIdentity,
} from "../identity.ts";
import { engineHandBackMs } from "../page-timings.ts";
import type { LoftStorage } from "../storage/storage.ts";
import { Activity } from "./activity.ts";
import { forgetDeviceFiles } from "./device-files.ts";
import { noteDeviceMessage } from "./devices.ts";
import { draftsWritten, foldDraftCopies, forgetDraft, holdDraftWrites, useDraftStore } from "./drafts.ts";
import { Navigation } from "./navigation.ts";
import {
  callNotificationContent,
  closeCallNotifications,
  closeNotifications,
  type NotificationMode,
  notificationContent,
  pageInBackground,
  showNotification,
} from "./notifications.ts";
import { afterOtherTabNews, type OtherTabNews, onOtherTabs, tellOtherTabs } from "./other-tabs.ts";
import { ActionFailed } from "./problems.ts";
import { parseRoute, type Route, routeContact } from "./routes.ts";

export type { Route } from "./routes.ts";

/** A contact with its identity decoded (and verified) for display. */
export interface ContactView {
  record: ContactRecord;
  identity: Identity;
  /** The pending candidate, decoded, if any. */
  pendingIdentity?: Identity;
}

/** A notice's way to the chat it is about: the contact, and the button's words. */
export interface NoticeChat {
  id: ContactId;
  label: string;
}

/** "closed": another tab deleted the identity or is restoring a backup (`closeForOtherTab`). */
export type Phase = "loading" | "onboarding" | "locked" | "ready" | "closed";

export class AppModel {
  readonly storage: LoftStorage;
  readonly phase: Accessor<Phase>;
  readonly #setPhase: (p: Phase) => void;
  /** Why this tab is "closed": what another tab did (app/other-tabs.ts). */
  readonly closedBy: Accessor<OtherTabNews | undefined>;
  readonly #setClosedBy: (n: OtherTabNews | undefined) => void;
  readonly user: Accessor<UserIdentity | undefined>;
  readonly #setUser: (u: UserIdentity | undefined) => void;
  readonly contacts: Accessor<ContactView[]>;
  readonly #setContacts: (c: ContactView[]) => void;
  /** The screen shown once ready; kept in step with the URL and history (navigation.ts). */
  readonly route: Accessor<Route>;
  readonly #nav = new Navigation();
  readonly engineProblem: Accessor<string | undefined>;
  readonly #setEngineProblem: (p: string | undefined) => void;
  /**
   * A restore waits for the tab running the chat to stop it (`#whileEngineLockHeld`), up to
   * page-timings.ts `engineHandBackMs`: the restore forms say so while it does, not a silent busy
   * button.
   */
  readonly waitingForOtherTab: Accessor<boolean>;
  readonly #setWaitingForOtherTab: (w: boolean) => void;
  /**
   * A restore under way in this tab, from reading its file to the reload (`whileRestoring`): the
   * restore forms show it however often they are left and opened again — a busy button of their
   * own was enabled again in a Settings screen opened anew, and nothing there said "restoring".
   */
  readonly restoring: Accessor<boolean>;
  readonly #setRestoring: (r: boolean) => void;
  /**
   * An unlock under way on the unlock screen (`unlock`: the key derivation, then the screens read
   * until the app opens): that screen's restore and Start over wait for it, as Unlock waits for a
   * restore. False once the app is open, though the engine may still be starting (waiting for
   * another tab's, say): what runs from Settings then stops or waits for it as at any start.
   */
  readonly unlocking: Accessor<boolean>;
  readonly #setUnlocking: (u: boolean) => void;
  readonly service: Accessor<ServiceStatus>;
  readonly #setService: (s: ServiceStatus) => void;
  /** Presence by contact id (offline when absent). */
  readonly presence: Record<ContactId, Presence>;
  readonly #setPresence: (id: ContactId, p: Presence) => void;
  /** A one-line notice for the user (plain words), cleared by the next one. */
  readonly notice: Accessor<string | undefined>;
  /**
   * The chat the notice is about, when there is something to do or see there: a way to it, with
   * the button's words from whoever set the notice (a file offer: "Open the chat to accept or
   * decline"; a rename: "Open the chat with …").
   */
  readonly noticeChat: Accessor<NoticeChat | undefined>;
  /**
   * The notice as said, a new value each time one is set, the same words or not (undefined when
   * there is none): App.tsx draws its words anew for each, so a screen reader announces a notice
   * said again (ui/LiveRegion.tsx) — the same words set again changed nothing on the page.
   */
  readonly noticeSaid: Accessor<object | undefined>;
  readonly setNotice: (n: string | undefined, chat?: NoticeChat) => void;
  /** Unread counts and last messages per contact (Home, the tab title). */
  readonly activity: Activity;
  /** Whether the page is visible (Page Visibility API); a chat counts as read only then. */
  readonly pageVisible: Accessor<boolean>;
  readonly #setPageVisible: (v: boolean) => void;
  /**
   * Whether the open chat is scrolled to its newest message (the chat screen's follow state,
   * ui/chat/follow.ts). A reader scrolled up into history has not seen what arrives meanwhile
   * (the screen shows the "new messages" pill): the chat counts as read only at the bottom.
   */
  readonly chatAtBottom: Accessor<boolean>;
  readonly setChatAtBottom: (atBottom: boolean) => void;
  /** The notification setting (persisted in the settings record). */
  readonly notificationMode: Accessor<NotificationMode>;
  readonly #setNotificationMode: (m: NotificationMode) => void;
  /** The user said "Not now" to the offer on Home. */
  readonly notificationOfferDismissed: Accessor<boolean>;
  readonly #setNotificationOfferDismissed: (d: boolean) => void;
  engine: ChatEngine | undefined;
  /** Called with each engine the app starts (web/src/proxy/start.ts: what serves shares to contacts). */
  readonly engineStarted = new Set<(engine: ChatEngine) => void>();
  #unsubscribe: (() => void) | undefined;
  /** The engine being started: the screens are usable before it is up (`#contactEngine` waits). */
  #engineStarting: Promise<void> | undefined;
  /** Stops the start under way (`#stopEngine`): what it loads then is stopped, never this page's. */
  #engineAbort: AbortController | undefined;
  readonly #listeners = new Set<(e: EngineEvent) => void>();

  constructor(storage: LoftStorage) {
    this.storage = storage;
    [this.phase, this.#setPhase] = createSignal<Phase>("loading");
    [this.closedBy, this.#setClosedBy] = createSignal<OtherTabNews>();
    [this.user, this.#setUser] = createSignal<UserIdentity>();
    [this.contacts, this.#setContacts] = createSignal<ContactView[]>([]);
    this.route = this.#nav.route;
    [this.engineProblem, this.#setEngineProblem] = createSignal<string>();
    [this.waitingForOtherTab, this.#setWaitingForOtherTab] = createSignal(false);
    [this.restoring, this.#setRestoring] = createSignal(false);
    const [unlocking, setUnlocking] = createSignal(false);
    this.unlocking = () => unlocking() && this.phase() === "locked";
    this.#setUnlocking = setUnlocking;
    [this.service, this.#setService] = createSignal<ServiceStatus>({
      signaling: "disabled",
      relay: "disabled",
    });
    const [said, setSaid] = createSignal<{ text: string; chat: NoticeChat | undefined }>();
    this.notice = () => said()?.text;
    this.noticeChat = () => said()?.chat;
    this.noticeSaid = said;
    this.setNotice = (n, chat) => setSaid(n === undefined ? undefined : { text: n, chat });
    const [presence, setPresence] = createStore<Record<ContactId, Presence>>({});
    this.presence = presence;
    this.#setPresence = (id, p) => setPresence(id, reconcile(p));
    this.activity = new Activity(storage);
    useDraftStore(new DraftStore(storage));
    onOtherTabs((news) => this.#otherTabSaid(news));
    [this.pageVisible, this.#setPageVisible] = createSignal(
      typeof document === "undefined" || document.visibilityState === "visible",
    );
    [this.chatAtBottom, this.setChatAtBottom] = createSignal(true);
    [this.notificationMode, this.#setNotificationMode] = createSignal<NotificationMode>("on");
    [this.notificationOfferDismissed, this.#setNotificationOfferDismissed] = createSignal(false);
    // The open chat is read while it is visible and at its newest message: on opening it, on
    // coming back to the page, and when the reader scrolls back down.
    createEffect(() => {
      const r = this.route();
      if (this.phase() === "ready" && r.name === "chat" && this.pageVisible() && this.chatAtBottom()) {
        this.activity.read(r.id);
        void closeNotifications(r.id).catch(() => undefined);
      }
    });
  }

  /**
   * Follow the page's visibility and show the unread total in the tab title, "(3) Loft", and on
   * the installed app's icon.
   */
  attachPage(): void {
    document.addEventListener("visibilitychange", () =>
      this.#setPageVisible(document.visibilityState === "visible"),
    );
    createEffect(() => {
      const n = this.activity.total();
      document.title = n > 0 ? `(${n > 99 ? "99+" : n}) Loft` : "Loft";
      // The installed app's icon shows the same count (Badging API, where supported).
      const badge = navigator as Navigator & {
        setAppBadge?: (n: number) => Promise<void>;
        clearAppBadge?: () => Promise<void>;
      };
      void (n > 0 ? badge.setAppBadge?.(n) : badge.clearAppBadge?.())?.catch(() => undefined);
    });
  }

  /** The incoming call whose notification is shown, and when it was (the close waits for it). */
  #ringing: { id: string; shown: Promise<unknown> } | undefined;

  /** A call ringing while the page is in the background is notified; the notice goes when it stops ringing. */
  #callNotice(call: CallView): void {
    if (call.direction === "in" && call.phase === "incoming") {
      if (this.#ringing?.id === call.id || typeof document === "undefined" || !pageInBackground()) return;
      const name = this.contact(call.contactId)?.record.username ?? "Your contact";
      const content = callNotificationContent(
        this.notificationMode(),
        { id: call.contactId, name },
        call.video,
      );
      if (content) this.#ringing = { id: call.id, shown: showNotification(content).catch(() => undefined) };
    } else if (this.#ringing?.id === call.id) {
      const { shown } = this.#ringing;
      this.#ringing = undefined;
      void shown.then(() => closeCallNotifications(call.contactId)).catch(() => undefined);
    }
  }

  /** A notification for a message the person can't be seeing (notifications.ts). */
  async #notify(contactId: ContactId, text: string): Promise<void> {
    if (typeof document === "undefined" || !pageInBackground()) return;
    // A first-contact request's message can arrive before the contact list is refreshed.
    const record = this.contact(contactId)?.record ?? (await this.storage.getContact(contactId));
    if (!record) return;
    const content = notificationContent(
      this.notificationMode(),
      { id: contactId, name: record.username, request: record.request !== undefined },
      text,
    );
    if (content) await showNotification(content);
  }

  async setNotificationMode(mode: NotificationMode): Promise<void> {
    await this.storage.updateSettingsRecord({ notifications: mode });
    this.#setNotificationMode(mode);
  }

  async dismissNotificationOffer(): Promise<void> {
    // Not while a restore runs in this tab (Home hides the offer then): written during the import,
    // the choice would wait for it and land in the restored device, so it is not written at all —
    // the offer is shown again if the restore fails (docs/protocol/backup.md §5; the other settings
    // are refused in words by web/src/app/settings.ts `unlessRestoring`).
    if (this.restoring()) return;
    await this.storage.updateSettingsRecord({ notificationOfferDismissed: true });
    this.#setNotificationOfferDismissed(true);
  }

  /** Whether the person is looking at this contact's chat right now. */
  #viewing(id: ContactId): boolean {
    const r = this.route();
    return (
      this.phase() === "ready" &&
      r.name === "chat" &&
      r.id === id &&
      this.pageVisible() &&
      this.chatAtBottom()
    );
  }

  // --- lifecycle --------------------------------------------------------------------------------

  /** Decide the first screen: onboarding, unlock, or the app. */
  async boot(): Promise<void> {
    if (!(await this.storage.hasSelf())) return this.#setPhase("onboarding");
    if (this.storage.locked) return this.#setPhase("locked");
    await this.#enter();
  }

  async unlock(passphrase: string): Promise<void> {
    // Not while the unlock screen's restore runs (`whileRestoring`; its button is busy then): the
    // engine this starts would run under the import — begun before it, `#whileEngineLockHeld`
    // finds the lock held by this tab and does not wait (docs/protocol/backup.md §5).
    this.#refuseWhileRestoring("unlock");
    // And the other way round: a restore (or Start over) asked for while this runs is refused
    // (`whileRestoring`, `deleteIdentity`) — the engine this starts would run under its import.
    this.#setUnlocking(true);
    try {
      await this.storage.unlock(passphrase);
      await this.#enter();
    } finally {
      this.#setUnlocking(false);
    }
  }

  /**
   * A new identity, created in this browser. With a passphrase (the optional onboarding step),
   * the passphrase layer is set first, so the private keys are never stored without it.
   */
  async createIdentity(username: string, passphrase?: string): Promise<void> {
    const user = await newUserIdentity(username);
    if (passphrase) await this.storage.setPassphrase(passphrase);
    await this.storage.saveSelf({
      identity: encodeIdentity(user.identity),
      username: user.identity.verified.username,
      privateIdentityKey: user.privateIdentityKey,
      privateNoiseKey: user.privateNoiseKey,
      createdAt: user.identity.verified.created,
    });
    await this.#enter();
  }

  /**
   * Replace what is stored with a backup (`importing`, one transaction: app/backup.ts) once
   * nothing of this tab writes any more: the engine stopped and its stop ended (what it had
   * handed over stored, its sessions and transfers ended: engine.ts `stop`), the drafts typed
   * here written. Before, the engine ran until the import was done — a message arriving then
   * stored its ratchet state, its history, a contact's change over the restored ones: a device
   * holding a mix of the two (a forked ratchet, a contact reverted). The import itself waits for
   * any storage write still in flight (storage.ts `importBundle`). If it fails nothing was
   * replaced: the engine starts again over the data kept, and the error says what happened.
   * The caller reloads after it succeeds (`reload`); it runs inside `whileRestoring` (one restore
   * at a time, app/backup.ts), and calling it outside is a bug of ours.
   */
  async replaceStored(importing: () => Promise<void>): Promise<void> {
    if (!this.restoring()) throw new Error("replaceStored runs inside whileRestoring");
    // The other tabs stop writing before anything is replaced (app/other-tabs.ts): told here, past
    // `whileRestoring`'s check — told by the caller before it, a tab opened as the first import
    // began was locked for a restore that never began.
    tellOtherTabs("backup-restoring");
    await this.#replaceStored(importing);
  }

  /**
   * A restore (app/backup.ts: reading its file, `replaceStored`, the reload), one at a time in a
   * tab, shown by `restoring` while it runs. A second one asked for meanwhile (the forms' buttons
   * are busy while `restoring`, but a form can be submitted by a script or an assistive tool) is
   * refused in words and tells no tab anything: begun, this tab holds the engine lock and
   * `#whileEngineLockHeld` does not wait — its import queued behind the first's, its writes and
   * its held drafts (only the first's are held) lost the guarantees of `#replaceStored`, and the
   * first one's failure started the engine again while the second ran.
   */
  async whileRestoring<T>(restore: () => Promise<T>): Promise<T> {
    if (this.restoring())
      throw new ActionFailed(
        "Could not restore the backup: one is being restored in this tab already. Wait for it to end.",
        undefined,
      );
    // An unlock under way starts the engine once its key is derived: begun before the import, that
    // engine would run under it (`unlock`).
    this.#refuseWhileUnlocking("restore the backup");
    this.#setRestoring(true);
    try {
      return await restore();
    } finally {
      this.#setRestoring(false);
    }
  }

  /** `what` refused in words while this tab restores a backup (`whileRestoring`). */
  #refuseWhileRestoring(what: string): void {
    if (this.restoring())
      throw new ActionFailed(
        `Could not ${what}: a backup is being restored in this tab. Wait for it to end.`,
        undefined,
      );
  }

  /** `what` refused in words while this tab unlocks the device (`unlock`). */
  #refuseWhileUnlocking(what: string): void {
    if (this.unlocking())
      throw new ActionFailed(
        `Could not ${what}: this device is being unlocked in this tab. Wait for it to end.`,
        undefined,
      );
  }

  async #replaceStored(importing: () => Promise<void>): Promise<void> {
    const old = this.engine;
    await this.#stopEngine();
    /** Lets go of the draft writes held during the import (`holdDraftWrites`). */
    let draftsHeld: (() => void) | undefined;
    /** Lets go of the read markers held during the import (Activity `holdReads`). */
    let readsHeld: (() => void) | undefined;
    try {
      await draftsWritten();
      await this.#whileEngineLockHeld(async () => {
        // Told again, now that no engine runs: a tab opened after the first news (`replaceStored`) —
        // while this one waited for the engine lock, up to `engineHandBackMs` — knows nothing of
        // the restore, and would go on over the restored device with what it read of the replaced
        // one. The tabs already closed ignore it (`closeForOtherTab`).
        tellOtherTabs("backup-restoring");
        // Words typed here from now on are not written during the import: a draft write asked
        // for then waits for it (storage.ts `importBundle`, exclusive) and would land after it, in
        // the restored device; those started before it land first, and the import replaces them.
        // Held in memory, not dropped: success reloads with a new draft store (they go with what
        // was replaced), a failure writes them.
        draftsHeld = holdDraftWrites();
        // Read markers likewise (a chat opened during the import is read): written after it, they
        // would land in the restored device; a failure writes them.
        readsHeld = this.activity.holdReads();
        await importing();
        // The tabs it closed say now that it is done, not that it is under way.
        tellOtherTabs("backup-restored");
      });
    } catch (e) {
      // Nothing was replaced: the words typed during the import are written now, and drafts as
      // they are typed again (docs/protocol/backup.md §5). Before, they were dropped from memory:
      // a chat opened again showed the draft from before the import. A tab closed meanwhile
      // (`closeForOtherTab`) dropped them already: nothing is written.
      draftsHeld?.();
      readsHeld?.();
      // The other tabs, told of the restore before it (`replaceStored`), closed themselves: they
      // say now that nothing was replaced, not that a backup is being restored.
      tellOtherTabs("backup-not-restored");
      const user = this.user();
      if (user && this.phase() === "ready") {
        // As after a new username: what its stop had not stored goes to the next engine first.
        await this.#restartEngine(user, old);
      }
      throw e;
    }
  }

  /**
   * `task` with the engine lock held (`#takeEngineLock`). When another tab runs the chat, told of
   * the restore (app/other-tabs.ts) it stops its engine and only then lets the lock go
   * (`closeForOtherTab`): the import waits for that, and no engine starts anywhere while it runs.
   * Before, a tab whose chat ran elsewhere imported at once, while that tab's engine still stored
   * what arrived. A tab that does not let go in `engineHandBackMs` (page-timings.ts; frozen in the
   * background) is reported (no tab can be named: "Loft still runs chat in another tab or
   * window"), and nothing is changed.
   */
  async #whileEngineLockHeld(task: () => Promise<void>): Promise<void> {
    if (this.#releaseEngineLock || !navigator.locks) return task();
    this.#setWaitingForOtherTab(true);
    try {
      await navigator.locks.request(
        "loft-engine",
        { signal: AbortSignal.timeout(engineHandBackMs()) },
        () => {
          this.#setWaitingForOtherTab(false);
          return task();
        },
      );
    } catch (e) {
      if ((e as Error).name !== "TimeoutError") throw e;
      throw new ActionFailed(
        "Could not restore the backup: Loft still runs chat in another tab or window. Close it, then try again. Nothing was changed.",
        e,
      );
    } finally {
      this.#setWaitingForOtherTab(false);
    }
  }

  /** After a backup import: drop everything in memory and start over from storage. */
  async reload(): Promise<void> {
    await this.#stopEngine();
    this.activity.clear();
    // Drafts in memory belong to what the backup replaced (a restore clears the stored ones).
    useDraftStore(new DraftStore(this.storage));
    this.#setUser(undefined);
    await this.boot();
  }

  async #enter(): Promise<void> {
    const self = await this.storage.getSelf();
    if (!self) return this.#setPhase("onboarding");
    const decoded = await decodeIdentity(pageCrypto, self.identity);
    if (!decoded.ok) throw new Error("The identity stored on this device is damaged. Restore a backup.");
    const user: UserIdentity = {
      identity: decoded.value,
      privateIdentityKey: self.privateIdentityKey,
      privateNoiseKey: self.privateNoiseKey,
    };
    await this.#replayJournal(user);
    await this.refreshContacts();
    const settings = await this.storage.getSettingsRecord();
    this.#setNotificationMode(settings.notifications ?? "on");
    this.#setNotificationOfferDismissed(settings.notificationOfferDismissed === true);
    const route = this.route();
    batch(() => {
      this.#setUser(user);
      this.#setPhase("ready");
      // A deep link opened before unlocking may name a contact that isn't here.
      if (!this.#routeExists(route)) this.#leaveMissing();
    });
    await this.#startEngine(user);
  }

  /**
   * Open the outbox journal with the key derived from the unlocked identity, and store what it
   * still holds — messages handed over just before the last reload or close (storage/journal.ts;
   * docs/protocol/chat.md §9, "The outbox journal") — before any screen reads history and before
   * the engine starts, so they show where they were and go out with the rest of the outbox. A
   * replay that fails leaves the entries for the next start; the app opens anyway. The draft
   * copies (storage/draft-copies.ts) are opened with it and folded the same way.
   */
  async #replayJournal(user: UserIdentity): Promise<void> {
    this.storage.openJournal(user.identity.verified.identity_key, user.privateIdentityKey);
    try {
      await this.storage.replayJournal(sendRefusal);
    } catch (e) {
      console.warn("outbox journal replay failed:", (e as Error).message);
    }
    // Words typed just before the last reload or close, copied when the page went (app/drafts.ts;
    // docs/protocol/chat.md §9, "Draft copies"): into the sealed drafts before a composer reads one.
    await foldDraftCopies(this.#conversationExists());
  }

  /**
   * Whether a draft's conversation is still on this device (`foldDraftCopies`: a copy of a deleted
   * one is dropped). Asked only for the copies left at start — one per conversation, few; the
   * rooms are read once for all of them.
   */
  #conversationExists(): (key: DraftKey) => Promise<boolean> {
    let roomIds: Promise<Set<string>> | undefined;
    return async (key) => {
      const id = key.slice(key.indexOf(":") + 1);
      if (key.startsWith("chat:")) return (await this.storage.getContact(id)) !== undefined;
      // Loaded here, not with the page: the rooms code comes with the engine (engine-loader.ts).
      roomIds ??= import("../engine/rooms/store.ts")
        .then(({ RoomStore }) => new RoomStore(this.storage).rooms())
        .then((rooms) => new Set(rooms.map((r) => toHex(r.id))));
      return (await roomIds).has(id);
    };
  }

  /** Resolves the Web Lock that marks this tab as the one running the engine. */
  #releaseEngineLock: (() => void) | undefined;

  /**
   * One engine per device: two tabs running ratchets and outboxes over the same storage would
   * fork sessions. The first tab takes the "loft-engine" Web Lock; others run offline and say so.
   * A request the browser refuses (it rejects: a document no longer fully active) answers
   * "refused": offline too, as nobody can say no other engine runs — and the start ends, where
   * it waited for ever before, and with it every stop that waits for it (`#stopEngine`: a
   * deletion, a restore, a new username).
   */
  async #takeEngineLock(): Promise<"mine" | "taken" | "refused"> {
    if (this.#releaseEngineLock) return "mine";
    if (!navigator.locks) return "mine";
    return new Promise((resolve) => {
      navigator.locks
        .request("loft-engine", { ifAvailable: true }, (lock) => {
          if (!lock) {
            resolve("taken");
            return undefined;
          }
          resolve("mine");
          return new Promise<void>((release) => {
            this.#releaseEngineLock = release;
          });
        })
        .catch((e: unknown) => {
          console.warn("the engine lock was refused:", (e as Error).message);
          resolve("refused");
        });
    });
  }

  /**
   * An engine again after a stopped one (a new username, a restore that failed): the journal
   * replayed, then what the old engine's stop had not stored (`deferredSaves`) handed to the new
   * one first.
   */
  async #restartEngine(
    user: UserIdentity,
    old: { deferredSaves?(): readonly StoredMessage[] } | undefined,
    deferred: readonly StoredMessage[] = old?.deferredSaves?.() ?? [],
  ): Promise<void> {
    await this.#replayJournal(user);
    await this.#startEngine(user, deferred);
  }

  #startEngine(user: UserIdentity, deferred: readonly StoredMessage[] = []): Promise<void> {
    // Closed by another tab meanwhile (`closeForOtherTab`, come while a step before this one
    // waited: a new username's save, its engine's stop): the engine stays stopped — started now,
    // it would take the engine lock again, over storage that is retired or deleted.
    if (this.phase() === "closed") return Promise.resolve();
    const abort = new AbortController();
    this.#engineAbort = abort;
    const starting = this.#runEngine(user, deferred, abort.signal);
    this.#engineStarting = starting;
    return starting;
  }

  async #runEngine(
    user: UserIdentity,
    deferred: readonly StoredMessage[],
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await this.#loadEngine(user, deferred, signal);
    } catch (e) {
      if (signal.aborted) return; // stopped meanwhile: nothing to say about an engine not wanted
      // Not even the offline stand-in loaded (offline-engine.ts: a new version installed under
      // this page). The screens stay usable and say so; those waiting on the engine settle too
      // (NoMessagePreview shows "No messages yet" once the problem is set).
      console.error("chat engine failed to load", e);
      this.#setEngineProblem(
        "Loft could not load its chat engine (a new version may have been installed). Reload the page.",
      );
    }
  }

  async #loadEngine(
    user: UserIdentity,
    deferred: readonly StoredMessage[],
    signal: AbortSignal,
  ): Promise<void> {
    const lock = await this.#takeEngineLock();
    const listener = (e: EngineEvent) => this.#onEvent(e);
    const loaded =
      lock === "mine"
        ? await loadEngine(this.storage, user, listener, undefined, signal)
        : await loadOfflineEngine(
            this.storage,
            user,
            listener,
            lock === "taken"
              ? "Loft is open in another tab or window; chat runs there. Messages you write here wait."
              : "Loft could not check that no other tab runs the chat. Messages you write here wait. Reload the page.",
            signal,
          );
    if (signal.aborted) {
      // Stopped while it started (`#stopEngine`: another tab's change, a restore, a new identity
      // version): an engine kept now would run beside the next one, or in a closed tab, with its
      // listener never ended.
      loaded.unsubscribe();
      await loaded.engine.stop();
      return;
    }
    // Before the screens can reach it (`this.engine`): no hand-over overtakes these.
    if (deferred.length > 0) loaded.engine.adoptDeferred?.(deferred);
    this.engine = loaded.engine;
    for (const started of this.engineStarted) started(loaded.engine);
    this.#setEngineProblem(loaded.problem);
    this.#setService(loaded.engine.serviceStatus());
    this.#unsubscribe = loaded.unsubscribe;
    for (const c of this.contacts()) this.#setPresence(c.record.id, loaded.engine.presence(c.record.id));
  }

  /**
   * What another tab did to the device's storage (app/other-tabs.ts; what follows which news is
   * its `afterOtherTabNews`). An open tab locks at once (`closeForOtherTab`); a closed tab only
   * changes its words — before, a tab told that a failed restore changed nothing said so still
   * while a later one replaced the device. The tab stays closed (its keys, drafts and engine are
   * gone); a reload starts over from what the device holds now.
   */
  #otherTabSaid(news: OtherTabNews): void {
    const open = this.phase() !== "closed";
    const next = afterOtherTabNews(open ? "open" : this.closedBy(), news);
    if (next === "open" || next === undefined) return;
    if (open) this.closeForOtherTab(next);
    else this.#setClosedBy(next);
  }

  /**
   * Another tab deleted the identity or is restoring a backup (app/other-tabs.ts; also the
   * database's own `blocking` on a deletion, web/src/main.tsx): what this tab holds belongs to
   * what is replaced. Locked at once: drafts in memory and pending writes dropped, no draft copy or
   * journal entry written when the page goes, the keys dropped, the engine stopped (its writes
   * fail on the closed database); the screen says why, and a reload starts from what is stored.
   */
  closeForOtherTab(news: OtherTabNews): void {
    if (this.phase() === "closed") return;
    useDraftStore(undefined);
    this.storage.retire();
    batch(() => {
      this.#setClosedBy(news);
      this.#setUser(undefined);
      this.#setPhase("closed");
      this.setNotice(undefined);
    });
    this.activity.clear();
    void this.#stopEngine()
      .catch((e: unknown) =>
        console.warn("stopping the engine after another tab's change:", (e as Error).message),
      )
      .finally(() => {
        this.#releaseEngineLock?.();
        this.#releaseEngineLock = undefined;
      });
  }

  async #stopEngine(): Promise<void> {
    // A start under way is stopped, and ends before this returns (`#loadEngine` stops what it
    // loaded): the caller's next step — a new start, the lock let go, the database deleted — then
    // finds no engine running. One still loading the engine's code ends at once, not when the
    // code comes (engine-loader.ts `madeUnlessStopped`): a deletion does not wait on the network.
    this.#engineAbort?.abort();
    this.#engineAbort = undefined;
    await this.#engineStarting;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    await this.engine?.stop();
    this.engine = undefined;
    // The engine lock stays with this tab (a restart takes it again); closing the tab frees it.
  }

  /** Screens that need engine events (the chat view) subscribe here; survives engine restarts. */
  onEvent(listener: (e: EngineEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #onEvent(e: EngineEvent): void {
    switch (e.type) {
      case "presence":
        this.#setPresence(e.contactId, e.presence);
        break;
      case "service":
        this.#setService(e.status);
        break;
      case "message":
        if (e.message.direction === "out") this.activity.sent(e.message);
        else {
          const viewing = this.#viewing(e.message.contactId);
          this.activity.incoming(e.message, viewing);
          if (!viewing) void this.#notify(e.message.contactId, e.message.text).catch(() => undefined);
        }
        break;
      case "message-state":
        void this.activity.outgoing(e.contactId, e.id, e.state);
        break;
      case "call":
        this.#callNotice(e.call);
        break;
      case "identity-change":
      case "contact-updated":
      case "contact-added":
      case "contact-changed":
        void this.refreshContacts();
        break;
      case "contact-renamed":
        this.setNotice(`${e.from} is now called ${e.to}.`, {
          id: e.contactId,
          label: `Open the chat with ${e.to}`,
        });
        void this.refreshContacts();
        break;
      case "error":
        // A retry failing the same way (each dial after its backoff, docs/protocol/chat.md §6) is no
        // news: a notice showing those very words is left as it is. Set again, it would be
        // announced again at each attempt (`noticeSaid`), a screen reader repeating it for good.
        if (this.notice() !== e.error.message || this.noticeChat() !== undefined)
          this.setNotice(e.error.message);
        break;
      case "device":
        noteDeviceMessage(e.contactId, e.message);
        break;
      case "file": {
        // An offer waits on the person: say so unless its chat is on screen (Files.tsx shows it).
        const t = e.transfer;
        if (t.direction === "in" && t.state === "offered" && !this.#viewing(t.contactId))
          this.setNotice(
            `${this.contact(t.contactId)?.record.username ?? "A contact"} wants to send you ${t.name}.`,
            { id: t.contactId, label: "Open the chat to accept or decline" },
          );
        break;
      }
    }
    for (const l of this.#listeners) l(e);
  }

  // --- navigation -------------------------------------------------------------------------------

  /**
   * Take the address bar as the current screen and follow the browser's Back/Forward (call once,
   * from main.tsx). A screen about a contact that is not on this device lands on Home with a
   * notice, checked once the contacts are loaded.
   */
  attachHistory(): void {
    this.#nav.attach({
      unknownPath: () => this.setNotice("That address is not a screen of Loft; here is the home screen."),
      popped: (route) => {
        this.setNotice(undefined);
        if (!this.#routeExists(route)) this.#leaveMissing();
      },
    });
  }

  /** Show a screen (a new history entry; `replace` swaps the current one instead). */
  go(route: Route, options: { replace?: boolean } = {}): void {
    this.setNotice(undefined);
    if (this.#routeExists(route)) this.#nav.go(route, options.replace ?? false);
    else this.#leaveMissing();
  }

  /** The in-app ← Back to `to` (Home by default): the browser's Back when that is where it leads. */
  back(to: Route = { name: "home" }): void {
    this.setNotice(undefined);
    this.#nav.back(to);
  }

  /** Open a path the Service Worker sent (a notification click); unknown paths open Home. */
  openPath(path: string): void {
    const route = parseRoute(path);
    this.go(route ?? { name: "home" });
  }

  /** Whether the contact a route is about exists (always true before the contacts are loaded). */
  #routeExists(route: Route): boolean {
    const id = routeContact(route);
    return id === undefined || this.phase() !== "ready" || this.contact(id) !== undefined;
  }

  #leaveMissing(): void {
    this.#nav.go({ name: "home" }, true);
    this.setNotice("That contact is not on this device (it may have been deleted).");
  }

  // --- contacts ---------------------------------------------------------------------------------

  async refreshContacts(): Promise<void> {
    const records = await this.storage.listContacts();
    const views: ContactView[] = [];
    for (const record of records) {
      const id = await decodeIdentity(pageCrypto, record.identity);
      if (!id.ok) continue; // never display what doesn't verify
      const view: ContactView = { record, identity: id.value };
      if (record.pending) {
        const p = await decodeIdentity(pageCrypto, record.pending.identity);
        if (p.ok) view.pendingIdentity = p.value;
      }
      views.push(view);
    }
    this.#setContacts(views);
    await this.activity.sync(records);
  }

  contact(id: ContactId): ContactView | undefined {
    return this.contacts().find((c) => c.record.id === id);
  }

  presenceOf(id: ContactId): Presence {
    return this.presence[id] ?? { status: "offline", since: 0 };
  }

  /** What opening or pasting this link would do (no side effects). */
  assessLink(link: ContactLink): TofuOutcome | { self: true } {
    const me = this.user();
    if (me && contactIdOf(me.identity) === contactIdOf(link.identity)) return { self: true };
    const known: KnownContact[] = this.contacts().map((c) => ({
      id: c.record.id,
      identity: c.identity,
      trust: c.record.trust,
      firstSeen: c.record.firstSeen,
      lastSeen: c.record.lastSeen,
    }));
    return tofuDecide(known, link.identity);
  }

  /**
   * Act on a contact link the user confirmed (TOFU, core/identity/tofu.ts). Returns the contact
   * to show. A new contact is added as Unknown; a newer version with the same keys is stored; a
   * rotated noise key, a signed conflict or a username already used by another key is recorded as
   * `pending` on the known contact, which blocks sending until the user decides; a downgrade or a
   * rejected contact changes nothing.
   */
  async acceptLink(link: ContactLink): Promise<ContactId> {
    const outcome = this.assessLink(link);
    if ("self" in outcome) throw new Error("That is your own contact link.");
    const now = Date.now();
    const id = contactIdOf(link.identity);
    const endpoints: ContactEndpoints = { signaling: link.signaling, relay: link.relay };
    if (link.refs) endpoints.refs = link.refs;
    const d = outcome.decision;
    let show = id;
    const engine = await this.#contactEngine();
    switch (d.kind) {
      case "new-contact":
        await engine.changeContact(id, {
          kind: "add",
          contact: {
            id,
            identity: encodeIdentity(link.identity),
            username: link.identity.verified.username,
            trust: "unknown",
            firstSeen: now,
            lastSeen: now,
            endpoints,
          },
        });
        break;
      case "unchanged":
        await engine.changeContact(id, { kind: "endpoints", endpoints });
        break;
      case "updated":
        await engine.changeContact(
          id,
          {
            kind: "identity",
            identity: encodeIdentity(link.identity),
            username: link.identity.verified.username,
          },
          { kind: "endpoints", endpoints },
        );
        break;
      case "downgrade":
      case "rejected":
        break;
      case "noise-key-rotated":
      case "conflict":
      case "rename-collision":
      case "username-collision": {
        const change: PendingIdentityChange = {
          kind: d.kind,
          identity: encodeIdentity(link.identity),
          seenAt: now,
          source: "link",
        };
        for (const c of outcome.concerns) await engine.changeContact(c, { kind: "pending", change });
        show = outcome.concerns[0] ?? id;
        break;
      }
    }
    await this.refreshContacts();
    return show;
  }

  /** Accept a first-contact request: they become an ordinary (Unknown) contact; replies can go. */
  async acceptRequest(id: ContactId): Promise<void> {
    await (await this.#contactEngine()).changeContact(id, { kind: "accept-request" });
    await this.refreshContacts();
  }

  /** Decline a first-contact request: the sender is blocked and gets nothing back. */
  async declineRequest(id: ContactId): Promise<void> {
    await (await this.#contactEngine()).changeContact(id, { kind: "decline-request" });
    this.#settled(id);
    await this.refreshContacts();
  }

  async setTrust(id: ContactId, trust: ContactRecord["trust"]): Promise<void> {
    await (await this.#contactEngine()).changeContact(id, { kind: "trust", trust });
    if (trust === "rejected") this.#settled(id);
    await this.refreshContacts();
  }

  /**
   * The user dealt with everything from `id` by declining or blocking them: what they sent is read
   * (the read marker, so it stays so after a reload and an unblock) and its notifications close.
   * Nothing newer can come in to count: the engine drops a blocked sender's messages
   * (web/src/engine/relay-mailbox.ts), after the change above is stored.
   */
  #settled(id: ContactId): void {
    this.activity.read(id);
    void closeNotifications(id).catch(() => undefined);
  }

  /**
   * The user's decision on a pending identity change.
   * - noise-key-rotated: accept stores the new identity (signed by the same identity key, so trust
   *   is kept) and drops the ratchet session; keep leaves the old one (the engine keeps refusing
   *   links with the new noise key and asks again).
   * - username-collision: accept adds the new key as a separate, Unknown contact; keep adds it as
   *   Rejected, so it can't connect and its links are refused.
   * - rename-collision: accept stores the renamed identity (same keys, trust kept); keep leaves the
   *   old name (the engine asks again when the contact presents the new name).
   * - conflict, downgrade: nothing to accept; dismissing keeps what is stored.
   */
  async resolvePending(id: ContactId, decision: "accept" | "keep"): Promise<ContactId> {
    const view = this.contact(id);
    const pending = view?.record.pending;
    const candidate = view?.pendingIdentity;
    if (!view || !pending || !candidate) return id;
    const engine = await this.#contactEngine();
    const now = Date.now();
    let show = id;
    const changes: ContactChange[] = [];
    if (pending.kind === "rename-collision" && decision === "accept") {
      // The same keys under the new name; trust is kept (signed by the same identity key).
      changes.push({ kind: "identity", identity: pending.identity, username: candidate.verified.username });
    } else if (pending.kind === "noise-key-rotated" && decision === "accept") {
      changes.push({
        kind: "identity",
        identity: pending.identity,
        username: candidate.verified.username,
        newRatchet: true,
      });
    } else if (pending.kind === "username-collision") {
      const newId = contactIdOf(candidate);
      if (!(await this.storage.getContact(newId)))
        await engine.changeContact(newId, {
          kind: "add",
          contact: {
            id: newId,
            identity: pending.identity,
            username: candidate.verified.username,
            trust: decision === "accept" ? "unknown" : "rejected",
            firstSeen: now,
            lastSeen: now,
          },
        });
      if (decision === "accept") show = newId;
    }
    changes.push({ kind: "clear-pending" });
    await engine.changeContact(id, ...changes);
    await this.refreshContacts();
    return show;
  }

  /** A device paired over a cable (app/devices.ts builds the record): added as a trusted contact. */
  async addDeviceContact(contact: ContactRecord): Promise<void> {
    await (await this.#contactEngine()).changeContact(contact.id, { kind: "add", contact });
    await this.refreshContacts();
  }

  /** Paired devices through the relay (docs/device.md §13), while the engine runs with a relay. */
  deviceRelay(): DeviceRelayApi | undefined {
    return this.engine?.devices;
  }

  async deleteContact(id: ContactId): Promise<void> {
    // The draft goes with the contact, after it and not before: a deletion the storage refuses
    // (a full disk) keeps the contact, and must keep its draft too. The stored draft goes in the
    // contact's own deletion (storage.ts deleteContact, one transaction with the contact); then
    // the one in memory, a write still pending and any copy (forgetDraft: its empty write is
    // chained after a write in flight, so none lands after it).
    await (await this.#contactEngine()).changeContact(id, { kind: "delete" });
    await forgetDraft(`chat:${id}`);
    await this.refreshContacts();
  }

  /**
   * Contact records are written by the engine only (`changeContact`); it runs once unlocked. The
   * screens are usable while it still starts (a contact link opened, "Add" pressed at once): wait
   * for it rather than refuse.
   */
  async #contactEngine(): Promise<ChatEngine> {
    if (!this.engine) await this.#engineStarting?.catch(() => undefined);
    if (!this.engine) throw new Error("Loft is not ready yet: unlock it first.");
    return this.engine;
  }

  // --- own identity -------------------------------------------------------------------------------

  myId(): string {
    const u = this.user();
    return u ? toHex(u.identity.verified.identity_key) : "";
  }

  /** New username: a new signed identity version (SREMP: version + 1, new signature). */
  async changeUsername(username: string): Promise<void> {
    const u = this.user();
    if (!u) return;
    const next = await renamedUserIdentity(u, username);
    const self = await this.storage.getSelfPublic();
    await this.storage.saveSelf({
      identity: encodeIdentity(next.identity),
      username: next.identity.verified.username,
      privateIdentityKey: next.privateIdentityKey,
      privateNoiseKey: next.privateNoiseKey,
      createdAt: self?.createdAt ?? next.identity.verified.created,
    });
    // The engine restarts under the new identity version. Deferred saves (docs/protocol/chat.md
    // §9) go to the new engine, which stores them before any later message of their contact, and
    // the journal is replayed first as at unlock (what can be stored now is, in order).
    const old = this.engine;
    await this.#stopEngine();
    // Closed by another tab while it saved or stopped: the keys stay dropped, nothing restarts.
    if (this.phase() === "closed") return;
    const deferred = old?.deferredSaves?.() ?? [];
    this.#setUser(next);
    await this.#restartEngine(next, undefined, deferred);
  }

  async deleteIdentity(): Promise<void> {
    // Not while a restore runs in this tab (its buttons are busy then): the deletion would wait for
    // the import, and the other tabs would be told the backup was restored on a deleted device.
    this.#refuseWhileRestoring("delete the identity");
    // Nor while an unlock runs: the engine it starts would run over a device being deleted.
    this.#refuseWhileUnlocking("delete the identity");
    // First: the other tabs stop writing before anything is cleared (app/other-tabs.ts).
    tellOtherTabs("identity-deleted");
    await this.#stopEngine();
    this.#releaseEngineLock?.();
    this.#releaseEngineLock = undefined;
    useDraftStore(undefined);
    await this.storage.destroy();
    await forgetDeviceFiles();
  }
}
