/**
 * Settings: username, notifications, signaling/relay URLs, passphrase, backup export/import,
 * delete identity.
 */
import {
  createEffect,
  createMemo,
  createResource,
  createSignal,
  type JSX,
  on,
  onCleanup,
  Show,
} from "solid-js";
import { parseSmpServerAddress } from "../../../core/smp/address.ts";
import {
  dismissRestoreFailure,
  dismissRestoreResult,
  exportBackup as makeBackup,
  restoreFailure,
  restoreFromSettings,
} from "../app/backup.ts";
import type { AppModel } from "../app/model.ts";
import {
  NOTIFICATION_MODES,
  type NotificationMode,
  notificationPermission,
  requestNotificationPermission,
} from "../app/notifications.ts";
import { problemText } from "../app/problems.ts";
import {
  defaultServers,
  hasPassphrase,
  loadServerSettings,
  saveNotificationMode,
  saveServers,
  saveUsername,
  serverListProblem,
  storedSignalingUrls,
  changePassphrase as storePassphrase,
} from "../app/settings.ts";
import { hasTurnServer } from "../engine/ice-servers.ts";
import { ShareFolder } from "../proxy/ShareFolder.tsx";
import { MIN_BACKUP_PASSPHRASE, passphraseProblem } from "../storage/backup.ts";
import { BuildHash } from "../update/BuildHash.tsx";
import { Back } from "./Back.tsx";
import { CryptoBackends } from "./CryptoBackends.tsx";
import { inlineConfirm } from "./confirm.ts";
import { formatIceServers, parseIceServers } from "./ice-servers.ts";
import { LiveRegion } from "./LiveRegion.tsx";
import { usernameProblem } from "./Onboarding.tsx";
import { backupFileFields, newPassphraseFields } from "./PassphraseFields.tsx";
import { PassphraseStrength } from "./PassphraseStrength.tsx";
import { saveFile } from "./save-file.ts";
import { WaitingForOtherTab } from "./WaitingForOtherTab.tsx";

function Section(props: { title: string; children: JSX.Element; testid?: string }) {
  return (
    <section class="card" data-testid={props.testid}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

/**
 * Result line under a form: ok in green, problems in red, announced to screen readers — its live
 * region (`<testid>-news`) drawn with the form, empty, and the words put in it (LiveRegion.tsx),
 * drawn anew for each result: the same failure twice is announced twice.
 */
function Outcome(props: {
  value: { ok: boolean; text: string } | undefined;
  testid: string;
  /** The message's element as drawn (for `showOutcome`). */
  ref?: (el: HTMLElement) => void;
}) {
  return (
    <LiveRegion news={props.value} testid={`${props.testid}-news`}>
      <p class={props.value?.ok ? "ok" : "error"} data-testid={props.testid} ref={props.ref}>
        {props.value?.text}
      </p>
    </LiveRegion>
  );
}

type Result = { ok: boolean; text: string } | undefined;

/**
 * Brings a form's message into view once it is drawn: on a phone the message under a form's
 * button can be below the visible part of the screen, and the person would not see why nothing
 * happened (the `role="status"` reads it aloud, but only to a screen reader).
 */
function showOutcome(outcome: () => HTMLElement | undefined): void {
  // After the microtask: the message is drawn (and its ref set) by the signal update that precedes.
  queueMicrotask(() => outcome()?.scrollIntoView({ block: "nearest" }));
}

/** Input types a person types into (a field the keys go to, not a box or a button). */
const TYPED = new Set(["text", "password", "search", "email", "url", "tel", "number"]);

/** Whether the focus is in a field the person types into, outside `form`. */
function typingOutside(form: HTMLElement): boolean {
  const f = document.activeElement;
  const typed = f instanceof HTMLTextAreaElement || (f instanceof HTMLInputElement && TYPED.has(f.type));
  return typed && !form.contains(f);
}

export function Settings(props: { app: AppModel }) {
  const app = props.app;
  const [record, { refetch }] = createResource(() => loadServerSettings(app));
  const defaults = defaultServers();

  // username
  const [name, setName] = createSignal(app.user()?.identity.verified.username ?? "");
  const [nameResult, setNameResult] = createSignal<Result>();
  const saveName = async (e: Event) => {
    e.preventDefault();
    const problem = usernameProblem(name());
    if (problem) return setNameResult({ ok: false, text: problem });
    try {
      await saveUsername(app, name().normalize("NFC"));
    } catch (x) {
      // The field keeps what was typed: saving again is one click.
      return setNameResult({ ok: false, text: problemText(x, "save your name") });
    }
    setNameResult({ ok: true, text: "Saved. Contacts see the new name next time you connect." });
  };

  // endpoints
  const [endpointResult, setEndpointResult] = createSignal<Result>();
  let signalingInput!: HTMLTextAreaElement;
  let relayInput!: HTMLTextAreaElement;
  let iceInput!: HTMLTextAreaElement;
  let relayOnlyInput!: HTMLInputElement;
  let mailboxInput!: HTMLInputElement;
  const NEEDS_TURN = "Relay-only needs a TURN server: add a turn: line above first.";
  /** The signaling server hands out TURN credentials (ICE_SERVERS): its relay counts as one. */
  const serverTurn = () => props.app.service().serverTurn === true;
  /** Refuse to tick "TURN relays only" while neither the field nor the server gives a TURN server. */
  const checkRelayOnly = () => {
    if (!relayOnlyInput.checked) return;
    const ice = parseIceServers(iceInput.value);
    if (serverTurn() || ("servers" in ice && hasTurnServer(ice.servers))) return;
    relayOnlyInput.checked = false;
    setEndpointResult({ ok: false, text: NEEDS_TURN });
  };
  const saveEndpoints = async (e: Event) => {
    e.preventDefault();
    // One per line (or separated by spaces or commas), each once, in the order typed.
    const lines = (field: HTMLTextAreaElement) => [
      ...new Set(
        field.value
          .split(/[\s,]+/)
          .map((s) => s.trim())
          .filter(Boolean),
      ),
    ];
    const signalingUrls = lines(signalingInput);
    const relayUrls = lines(relayInput);
    const listProblem =
      serverListProblem("signaling", signalingUrls) ?? serverListProblem("relay", relayUrls);
    if (listProblem) return setEndpointResult({ ok: false, text: listProblem });
    const ice = parseIceServers(iceInput.value);
    if ("bad" in ice)
      return setEndpointResult({
        ok: false,
        text: `Not a STUN/TURN server line: "${ice.bad}". Write stun:host:port, or turn:host:port user password.`,
      });
    const mailboxServer = mailboxInput.value.trim();
    if (mailboxServer && !parseSmpServerAddress(mailboxServer))
      return setEndpointResult({
        ok: false,
        text: "The mailbox server must be an SMP server address: smp://fingerprint@host:port (a password goes after the fingerprint: smp://fingerprint:password@host).",
      });
    const relayOnly = relayOnlyInput.checked;
    if (relayOnly && !serverTurn() && !hasTurnServer(ice.servers))
      return setEndpointResult({ ok: false, text: NEEDS_TURN });
    // Only the server fields change (an empty field means the default); other settings stay.
    try {
      await saveServers(app, {
        signalingUrls,
        relayUrls,
        iceServers: ice.servers,
        mailboxServer,
        ...(relayOnly ? { iceTransportPolicy: "relay" as const } : {}),
      });
    } catch (x) {
      // Not re-read from storage: the fields keep what was typed.
      return setEndpointResult({ ok: false, text: problemText(x, "save the servers") });
    }
    await refetch();
    setEndpointResult({ ok: true, text: "Saved. They are used from the next start of the app." });
  };

  // passphrase
  const [newBackupPass, setNewBackupPass] = createSignal("");
  const [passResult, setPassResult] = createSignal<Result>();
  const [hasPass, setHasPass] = createSignal(hasPassphrase(app));
  const [ownBusy, setBusy] = createSignal(false);
  // A restore keeps the forms busy while it runs, this screen left and opened again meanwhile.
  const busy = () => ownBusy() || app.restoring();
  const newPass = newPassphraseFields({
    testid: "passphrase",
    label: () => (hasPass() ? "New passphrase" : "Passphrase"),
  });
  /** Set (a string) or remove (`null`) the passphrase; a failure leaves the old one in place. */
  const changePassphrase = async (to: string | null, done: () => void) => {
    setBusy(true);
    try {
      await storePassphrase(app, to);
      done();
    } catch (x) {
      setPassResult({ ok: false, text: problemText(x, "change the passphrase") });
    } finally {
      setBusy(false);
    }
  };
  const setPassphrase = async (e: Event) => {
    e.preventDefault();
    const problem = passphraseProblem(newPass.value());
    if (problem) return setPassResult({ ok: false, text: problem });
    if (newPass.value() !== newPass.repeated())
      return setPassResult({ ok: false, text: "The two passphrases differ." });
    await changePassphrase(newPass.value(), () => {
      newPass.clear();
      setHasPass(true);
      setPassResult({ ok: true, text: "Passphrase set. Loft asks for it each time it starts." });
    });
  };
  const removePassphrase = () =>
    changePassphrase(null, () => {
      setHasPass(false);
      setPassResult({ ok: true, text: "Passphrase removed." });
    });

  // backup
  const [backupResult, setBackupResult] = createSignal<Result>();
  let backupOutcome: HTMLElement | undefined;
  let backupPass!: HTMLInputElement;
  const exportBackup = async (e: Event) => {
    e.preventDefault();
    dismissRestoreFailure(); // one form's message at a time: the other's is about an older try
    setBusy(true);
    try {
      const text = await makeBackup(app, backupPass.value);
      saveFile(
        new Blob([text], { type: "application/json" }),
        `loft-backup-${new Date().toISOString().slice(0, 10)}.loft`,
      );
      backupPass.value = "";
      setNewBackupPass("");
      setBackupResult({ ok: true, text: "Backup saved. Keep the file and its passphrase apart." });
    } catch (x) {
      setBackupResult({ ok: false, text: problemText(x, "make the backup") });
      showOutcome(() => backupOutcome);
    } finally {
      setBusy(false);
    }
  };
  // The restore's outcome and progress live outside this screen (app/backup.ts, app/model.ts
  // `restoring`): left while a restore runs and opened again, it shows the restore still under
  // way, its button busy, then how it ended.
  // One object per failure (a memo): its Outcome's live region draws the words anew for each new
  // object (LiveRegion.tsx `news`), so one made at each read would be said again on any redraw.
  let importForm: HTMLFormElement | undefined;
  // Whether this screen said the failure in the notice instead of under its form: it ended while
  // the person typed in another field (below). Decided when it ends, never on opening (the form is
  // not drawn yet when the memo first runs): a failure from before is read under the form where
  // the screen opens.
  const inNotice = createMemo(
    () => restoreFailure() !== undefined && importForm !== undefined && typingOutside(importForm),
  );
  const importResult = createMemo((): Result => {
    const failure = restoreFailure();
    return failure === undefined || inNotice() ? undefined : { ok: false, text: failure };
  });
  let importOutcome: HTMLElement | undefined;
  const importFields = backupFileFields("import");
  const importBackup = async (e: Event) => {
    e.preventDefault();
    setBackupResult(undefined);
    if (await restoreFromSettings(app, importFields.read)) {
      app.go({ name: "home" });
      app.setNotice("Backup restored.");
    }
    // Settings left while it ran: said where the person is, as "Backup restored." is (and kept
    // for Settings opened again). On Settings, the failure is brought into view, or said in the
    // notice while the person types elsewhere (below).
    else if (app.route().name !== "settings") app.setNotice(restoreFailure());
  };
  // How a restore ended, brought into view on the Settings screen open when it ends: this one, or
  // one opened again while it ran — whose own form did not start it, and whose message was below
  // the fold, unseen (the submitting screen's message is gone with that screen). Not on opening
  // (`defer`): a failure from before is read where the screen opens, as its other forms' are.
  // Not while the person types in another field either: the page scrolled away from the field
  // (on a phone, the whole screen's length), and their next key scrolled it back, the failure out
  // of sight again. Then it is said in the notice, at the top where they are, as when Settings was
  // left, and not under the form as well (drawn there, it would be announced twice) — but kept, as
  // then, for Settings opened again: a notice dismissed by reflex, or cleared by the next screen,
  // took the only word that the backup was not restored.
  createEffect(
    on(
      restoreFailure,
      (failure) => {
        if (failure === undefined) return;
        if (inNotice()) app.setNotice(failure);
        else showOutcome(() => importOutcome);
      },
      { defer: true },
    ),
  );
  // How the restore ended, once read: gone when this screen is left after it ended (left while it
  // runs, or said only in the notice, kept for the screen opened again). Before, it stayed until
  // the next restore or a reload.
  onCleanup(() => {
    if (!app.restoring() && !inNotice()) dismissRestoreFailure();
  });

  // delete
  const [confirmDelete, setConfirmDelete] = createSignal(false);
  const deleteDialog = inlineConfirm(() => setConfirmDelete(false));
  const [deleteError, setDeleteError] = createSignal<string>();
  const deleteIdentity = async () => {
    setDeleteError(undefined);
    // A refusal (a restore under way: AppModel `deleteIdentity`) or a failure is said here: thrown
    // from a click handler it reached nobody, and the identity stayed with no word why.
    try {
      await app.deleteIdentity();
    } catch (x) {
      setDeleteError(problemText(x, "delete the identity"));
      return;
    }
    dismissRestoreResult(); // it was about the identity that went
    location.replace("/");
  };

  return (
    <main class="screen settings" data-testid="settings">
      <Back app={app} />
      <h1>Settings</h1>

      <Section title="Your name">
        <form onSubmit={saveName}>
          <label for="settings-username">Name</label>
          <input
            id="settings-username"
            data-testid="settings-username"
            value={name()}
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <button type="submit" disabled={app.restoring()} data-testid="save-username">
            Save name
          </button>
          <Outcome value={nameResult()} testid="username-result" />
        </form>
      </Section>

      <Notifications app={app} />

      <Section title="Servers">
        <Show when={record.state === "ready"}>
          <form onSubmit={saveEndpoints}>
            <label for="signaling-url">Signaling servers (one per line)</label>
            <textarea
              id="signaling-url"
              rows={2}
              data-testid="signaling-url"
              ref={signalingInput}
              value={storedSignalingUrls(record()).join("\n")}
              placeholder={defaults.signalingUrl}
            />
            <label for="relay-urls">Relays (one per line)</label>
            <textarea
              id="relay-urls"
              rows={2}
              data-testid="relay-urls"
              ref={relayInput}
              value={(record()?.relayUrls ?? []).join("\n")}
              placeholder={defaults.relayUrls.join("\n")}
            />
            <p class="help">
              Leave empty to use this site's own servers. Several signaling servers: the app uses the first
              one that answers and moves to the next when it stops answering. Several relays: your mailboxes
              (where contacts leave messages while you are offline) are spread across them, and when one is
              down new ones go to another; your contact address is on the first one that answers.
            </p>
            <label for="mailbox-server">Mailbox server</label>
            <input
              id="mailbox-server"
              data-testid="mailbox-server"
              ref={mailboxInput}
              value={record()?.mailboxServer ?? ""}
              placeholder="smp://fingerprint@host:5223"
              aria-describedby="mailbox-server-help"
              spellcheck={false}
              autocomplete="off"
            />
            <p class="help" id="mailbox-server-help">
              Empty: your mailboxes stay on the first relay. An SMP server address (smp://…, from a SimpleX
              server or another Loft relay) keeps the mailboxes of contacts you add from now on there; this
              site's relay carries the connection to it and never sees what is in it.
            </p>
            <label for="ice-servers">STUN / TURN servers (one per line)</label>
            <textarea
              id="ice-servers"
              rows={2}
              data-testid="ice-servers"
              ref={iceInput}
              value={formatIceServers(record()?.iceServers)}
              placeholder={"stun:stun.example.org:3478\nturn:turn.example.org:3478 user password"}
            />
            <p class="help">
              Empty: direct connections use only this network's own addresses and nothing is sent to a third
              party. Add a STUN server to cross home routers, a TURN server for networks that block them.
            </p>
            <Show when={serverTurn()}>
              <p class="help" data-testid="server-turn">
                This site also provides a TURN relay: its passwords are short-lived and renewed for you, and
                are used besides the servers above.
              </p>
            </Show>
            <label class="check" for="ice-relay-only">
              <input
                id="ice-relay-only"
                type="checkbox"
                data-testid="ice-relay-only"
                ref={relayOnlyInput}
                checked={record()?.iceTransportPolicy === "relay"}
                onChange={checkRelayOnly}
              />
              Use TURN relays only
            </label>
            <p class="help">
              Direct connections then go through your TURN server, so contacts never see your IP address
              (slower, and it needs a TURN server above).
            </p>
            <button type="submit" disabled={app.restoring()} data-testid="save-endpoints">
              Save servers
            </button>
            <Outcome value={endpointResult()} testid="endpoints-result" />
          </form>
        </Show>
      </Section>

      <Section title="Passphrase">
        <p>
          Your keys are stored encrypted by this browser. A passphrase adds a second lock: without it, nobody
          using this browser profile can open Loft. There is no way to recover a forgotten passphrase — keep a
          backup.
        </p>
        <form onSubmit={setPassphrase}>
          {newPass.fields}
          <div class="row">
            <button type="submit" disabled={busy()} data-testid="set-passphrase">
              {hasPass() ? "Change passphrase" : "Set passphrase"}
            </button>
            <Show when={hasPass()}>
              <button
                type="button"
                disabled={busy()}
                data-testid="remove-passphrase"
                onClick={removePassphrase}
              >
                Remove passphrase
              </button>
            </Show>
          </div>
          <Outcome value={passResult()} testid="passphrase-result" />
        </form>
      </Section>

      <Section title="Backup" testid="backup-section">
        <p>
          A backup file holds your identity, contacts and history, encrypted with a passphrase you choose
          here. Restore it on a new device to keep your identity.
        </p>
        <form onSubmit={exportBackup}>
          <label for="backup-pass">Backup passphrase (at least {MIN_BACKUP_PASSPHRASE} characters)</label>
          <input
            id="backup-pass"
            type="password"
            autocomplete="new-password"
            ref={backupPass}
            data-testid="backup-passphrase"
            onInput={(e) => setNewBackupPass(e.currentTarget.value)}
          />
          <PassphraseStrength value={newBackupPass()} testid="backup-passphrase-strength" />
          <button type="submit" disabled={busy()} data-testid="export-backup">
            Save backup file
          </button>
          <Outcome value={backupResult()} testid="backup-result" ref={(el) => (backupOutcome = el)} />
        </form>
        <form onSubmit={importBackup} ref={importForm}>
          <h3>Restore</h3>
          <p class="help">Restoring replaces the identity, contacts and history on this device.</p>
          {importFields.fields}
          <button type="submit" disabled={busy()} data-testid="import-backup">
            Restore backup
          </button>
          <LiveRegion when={app.restoring() && !app.waitingForOtherTab()} testid="restore-progress-news">
            <p class="help" data-testid="restore-progress">
              Restoring the backup… It goes on if you leave this screen.
            </p>
          </LiveRegion>
          <WaitingForOtherTab app={app} />
          <Outcome value={importResult()} testid="import-result" ref={(el) => (importOutcome = el)} />
        </form>
      </Section>

      <Section title="Delete identity">
        <p>
          Deletes your identity, keys, contacts and history from this browser. Without a backup they are gone
          for good.
        </p>
        <Show
          when={confirmDelete()}
          fallback={
            <button
              type="button"
              class="danger"
              data-testid="delete-identity"
              disabled={app.restoring()}
              ref={deleteDialog.opener}
              onClick={() => setConfirmDelete(true)}
            >
              Delete my identity…
            </button>
          }
        >
          <div class="row" role="alertdialog" aria-label="Confirm deletion" ref={deleteDialog.ref}>
            <button
              type="button"
              class="danger"
              data-testid="confirm-delete"
              disabled={app.restoring()}
              onClick={deleteIdentity}
            >
              Yes, delete everything
            </button>
            <button type="button" data-cancel onClick={deleteDialog.cancel}>
              Cancel
            </button>
          </div>
        </Show>
        <Show when={deleteError()}>
          <p class="error" role="alert" data-testid="delete-error">
            {deleteError()}
          </p>
        </Show>
      </Section>
      <ShareFolder app={app} />
      <BuildHash />
      <CryptoBackends />
      <p class="help">Loft {__LOFT_VERSION__}</p>
    </main>
  );
}

const MODE_TEXT: Record<NotificationMode, { label: string; help: string }> = {
  on: { label: "Show who wrote and the message", help: "" },
  private: {
    label: "Show who wrote, hide the message",
    help: "For a lock screen or a shared screen: the text stays in Loft.",
  },
  off: { label: "Off", help: "" },
};

/**
 * Notifications: the setting (persisted) and the browser's permission, asked for from the button
 * here or on Home, never on load.
 */
function Notifications(props: { app: AppModel }) {
  const app = props.app;
  const [permission, setPermission] = createSignal(notificationPermission());
  const [result, setResult] = createSignal<Result>();
  /** A choice that could not be saved: it stays selected, with a way to try again. */
  const [unsaved, setUnsaved] = createSignal<NotificationMode>();
  const choose = async (mode: NotificationMode) => {
    try {
      await saveNotificationMode(app, mode);
    } catch (x) {
      setUnsaved(mode);
      return setResult({ ok: false, text: problemText(x, "save the notification choice") });
    }
    setUnsaved(undefined);
    setResult({ ok: true, text: "Saved." });
  };
  const allow = async () => setPermission(await requestNotificationPermission());
  /**
   * Blocked in the browser's site settings: Loft can't ask again (browsers allow one prompt), so
   * the choices that show notifications are unavailable and the person is told where to allow
   * them. The permission is read again when it changes there or the page gets the focus back.
   */
  const blocked = () => permission() === "denied";
  const reread = () => setPermission(notificationPermission());
  // The permission's status arrives a moment later, when an `onCleanup` registered then would
  // belong to no component (Solid runs it never): the cleanup is registered now and lets go of it.
  let status: PermissionStatus | undefined;
  let gone = false;
  window.addEventListener("focus", reread);
  onCleanup(() => {
    gone = true;
    window.removeEventListener("focus", reread);
    status?.removeEventListener("change", reread);
  });
  void navigator.permissions
    ?.query({ name: "notifications" })
    .then((s) => {
      if (gone) return;
      status = s;
      s.addEventListener("change", reread);
    })
    .catch(() => undefined);
  return (
    <Section title="Notifications" testid="notifications-section">
      <Show
        when={permission() !== "unsupported"}
        fallback={<p>This browser can't show notifications for Loft.</p>}
      >
        <Show when={blocked()}>
          <div class="card warning" id="notifications-blocked" data-testid="notifications-blocked">
            <p>
              <strong>Notifications are blocked for this site in your browser,</strong> so Loft can't show
              any: the choices below are unavailable until you allow them.
            </p>
            <p data-testid="notifications-how">
              To allow them, open this site's settings — on a computer, click the icon left of the address
              bar; on a phone, the browser's menu, then Settings, Site settings — set Notifications to Allow,
              then come back here.
            </p>
          </div>
        </Show>
        <fieldset class="choices">
          <legend>When a message arrives while Loft is in the background</legend>
          {NOTIFICATION_MODES.map((mode) => (
            <label
              class="check"
              classList={{ unavailable: blocked() && mode !== "off" }}
              for={`notify-${mode}`}
            >
              <input
                id={`notify-${mode}`}
                type="radio"
                name="notifications"
                value={mode}
                data-testid={`notify-${mode}`}
                // "Off" stays a choice; the others can't work while the browser blocks notifications.
                // Nor while a restore runs here: the choice would land in the restored device.
                disabled={(blocked() && mode !== "off") || app.restoring()}
                aria-describedby={blocked() && mode !== "off" ? "notifications-blocked" : undefined}
                checked={(unsaved() ?? app.notificationMode()) === mode}
                onChange={() => void choose(mode)}
              />
              <span>
                {MODE_TEXT[mode].label}
                <Show when={MODE_TEXT[mode].help}>
                  <span class="help"> {MODE_TEXT[mode].help}</span>
                </Show>
              </span>
            </label>
          ))}
        </fieldset>
        <Show when={permission() === "default" && app.notificationMode() !== "off"}>
          <p>This browser has not allowed Loft to notify you yet.</p>
          <button type="button" data-testid="allow-notifications" onClick={allow}>
            Allow notifications
          </button>
        </Show>
        <Outcome value={result()} testid="notifications-result" />
        <Show when={unsaved()}>
          {(mode) => (
            <button type="button" data-testid="notifications-retry" onClick={() => void choose(mode())}>
              Try again
            </button>
          )}
        </Show>
      </Show>
    </Section>
  );
}
