/**
 * First run: choose a username (identity created in this browser) and, optionally, a passphrase
 * for this device; or restore a backup. The unlock screen, with its ways out when the passphrase
 * is forgotten: restore a backup, or start over (after a warning naming what is lost).
 */
import { createResource, createSignal, Show } from "solid-js";
import { deviceHoldings, restoreBackup, restoreForgotten } from "../app/backup.ts";
import type { AppModel } from "../app/model.ts";
import { problemText } from "../app/problems.ts";
import { validateUsername } from "../identity.ts";
import { passphraseProblem } from "../storage/backup.ts";
import { inlineConfirm } from "./confirm.ts";
import { backupFileFields, newPassphraseFields } from "./PassphraseFields.tsx";
import { WaitingForOtherTab } from "./WaitingForOtherTab.tsx";

export function usernameProblem(raw: string): string | undefined {
  const r = validateUsername(raw);
  if (r.ok) return undefined;
  const m = r.error.message;
  if (m.includes("empty")) return "Type a name first: it is what your contacts will see.";
  if (m.includes("longer")) return "Names can be at most 40 characters.";
  if (m.includes("white space")) return "Names can't start or end with a space.";
  return "That name has characters Loft can't use (control or text-direction characters).";
}

export function Onboarding(props: { app: AppModel }) {
  const [name, setName] = createSignal("");
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  const [restoreError, setRestoreError] = createSignal<string>();
  const [passError, setPassError] = createSignal<string>();
  const newPass = newPassphraseFields({
    testid: "onboarding-passphrase",
    label: () => "Passphrase",
    describedBy: "onboarding-pass-help",
  });
  const backup = backupFileFields("restore");

  const create = async (e: Event) => {
    e.preventDefault();
    const problem = usernameProblem(name());
    setError(problem);
    const pass = newPass.value();
    const weak = passphraseProblem(pass);
    const passProblem =
      pass === "" && newPass.repeated() === ""
        ? undefined
        : weak
          ? `${weak} Or leave both fields empty to skip.`
          : pass !== newPass.repeated()
            ? "The two passphrases differ."
            : undefined;
    setPassError(passProblem);
    // The focus goes to the first field to fix, so a keyboard or screen reader user lands on it.
    if (problem) return document.getElementById("username")?.focus();
    if (passProblem) return document.getElementById("onboarding-passphrase-new")?.focus();
    setBusy(true);
    try {
      await props.app.createIdentity(name().normalize("NFC"), pass || undefined);
      newPass.clear();
    } catch (x) {
      setError(problemText(x, "create your identity"));
    } finally {
      setBusy(false);
    }
  };

  const restore = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setRestoreError(undefined);
    try {
      await restoreBackup(props.app, backup.read);
    } catch (x) {
      setRestoreError(problemText(x, "restore the backup"));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="screen onboarding" data-testid="onboarding">
      <h1>Loft</h1>
      <p class="lead">Welcome.</p>
      <p>
        Loft is end-to-end encrypted chat between browsers. There is no account and no phone number: your
        identity is a key pair created here, in this browser, and never leaves it.
      </p>
      <form onSubmit={create} class="card" novalidate>
        <label for="username">Choose a name people will see</label>
        <input
          id="username"
          data-testid="username-input"
          data-autofocus
          autocomplete="nickname"
          maxLength={80}
          value={name()}
          onInput={(e) => setName(e.currentTarget.value)}
          aria-invalid={error() ? "true" : "false"}
          aria-describedby={error() ? "username-help username-error" : "username-help"}
        />
        <p id="username-help" class="help">
          1–40 characters. You can change it later; your contacts will see the new name.
        </p>
        <Show when={error()}>
          <p class="error" role="alert" id="username-error" data-testid="username-error">
            {error()}
          </p>
        </Show>
        <fieldset class="choices" data-testid="onboarding-passphrase">
          <legend>Protect Loft on this device with a passphrase (optional)</legend>
          <p class="help" id="onboarding-pass-help">
            Loft then asks for it each time it starts, and nobody else using this browser can open your keys.
            Nobody can recover a forgotten passphrase — keep a backup. Leave empty to skip; you can set one
            later in Settings.
          </p>
          {newPass.fields}
          <Show when={passError()}>
            <p class="error" role="alert" data-testid="onboarding-passphrase-error">
              {passError()}
            </p>
          </Show>
        </fieldset>
        <button type="submit" class="primary" data-testid="create-identity" disabled={busy()}>
          Create my identity
        </button>
      </form>
      <details class="card">
        <summary>Restore from a backup</summary>
        <form onSubmit={restore}>
          {backup.fields}
          <Show when={restoreError()}>
            <p class="error" role="alert" data-testid="restore-error">
              {restoreError()}
            </p>
          </Show>
          <button type="submit" data-testid="restore-submit" disabled={busy()}>
            Restore
          </button>
        </form>
      </details>
    </main>
  );
}

export function Unlock(props: { app: AppModel }) {
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  let input!: HTMLInputElement;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.app.unlock(input.value);
    } catch (x) {
      setError(problemText(x, "unlock"));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="screen" data-testid="unlock">
      <h1>Unlock Loft</h1>
      <form onSubmit={submit} class="card">
        <label for="unlock-pass">Passphrase</label>
        <input
          id="unlock-pass"
          type="password"
          ref={input}
          autocomplete="current-password"
          data-testid="unlock-passphrase"
          data-autofocus
        />
        <Show when={error()}>
          <p class="error" role="alert" data-testid="unlock-error">
            {error()}
          </p>
        </Show>
        {/* Busy while the restore below runs too: an unlock then is refused (AppModel `unlock`). */}
        <button
          type="submit"
          class="primary"
          disabled={busy() || props.app.restoring()}
          data-testid="unlock-submit"
        >
          {busy() ? "Unlocking…" : "Unlock"}
        </button>
      </form>
      <section class="card" aria-labelledby="forgot-title">
        <h2 id="forgot-title">Forgot the passphrase?</h2>
        <p>Nobody can recover it. You can restore a backup, or start over as a new person on this device.</p>
        <RestoreForgotten app={props.app} />
        <StartOver app={props.app} />
      </section>
    </main>
  );
}

/** Restore a backup in place of everything here (decrypted first: a wrong file changes nothing). */
function RestoreForgotten(props: { app: AppModel }) {
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  const backup = backupFileFields("unlock-restore");
  const restore = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await restoreForgotten(props.app, backup.read);
      props.app.setNotice("Backup restored. This device has no passphrase now: set one in Settings.");
    } catch (x) {
      setError(problemText(x, "restore the backup"));
    } finally {
      setBusy(false);
    }
  };
  return (
    <details data-testid="unlock-restore">
      <summary>Restore from a backup</summary>
      <form onSubmit={restore}>
        <p class="help">
          Replaces everything on this device with the backup: its identity, contacts and history. This
          device's passphrase is removed.
        </p>
        {backup.fields}
        <Show when={error()}>
          <p class="error" role="alert" data-testid="unlock-restore-error">
            {error()}
          </p>
        </Show>
        {/* Busy while an unlock runs too: a restore then is refused (AppModel `whileRestoring`). */}
        <button type="submit" disabled={busy() || props.app.unlocking()} data-testid="unlock-restore-submit">
          {busy() ? "Restoring…" : "Restore backup"}
        </button>
        <WaitingForOtherTab app={props.app} />
      </form>
    </details>
  );
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Delete everything on this device and create a new identity, after naming what is lost. */
function StartOver(props: { app: AppModel }) {
  const [holdings] = createResource(() => deviceHoldings(props.app).catch(() => undefined));
  const [confirming, setConfirming] = createSignal(false);
  const dialog = inlineConfirm(() => setConfirming(false));
  const [busy, setBusy] = createSignal(false);
  const lost = () => {
    const h = holdings();
    if (!h) return "your identity, contacts and messages";
    return `the identity${h.username ? ` “${h.username}”` : ""} with its keys, ${plural(h.contacts, "contact", "contacts")} and ${plural(h.messages, "message", "messages")}`;
  };
  const [error, setError] = createSignal<string>();
  const startOver = async () => {
    setBusy(true);
    setError(undefined);
    // A refusal (a restore under way: AppModel `deleteIdentity`) or a failure is said here, and
    // the button is free again: thrown from a click handler it reached nobody, and left this
    // button busy until a reload.
    try {
      await props.app.deleteIdentity();
    } catch (x) {
      setError(problemText(x, "start over"));
      setBusy(false);
      return;
    }
    location.replace("/");
  };
  return (
    <details data-testid="unlock-start-over">
      <summary>Start over on this device</summary>
      <p class="card warning" data-testid="start-over-warning">
        Starting over deletes {lost()} from this browser. Without a backup they are gone for good, and your
        contacts will see you as someone new: they have to add your new contact link.
      </p>
      <Show
        when={confirming()}
        fallback={
          <button
            type="button"
            class="danger"
            data-testid="start-over"
            disabled={props.app.restoring() || props.app.unlocking()}
            ref={dialog.opener}
            onClick={() => setConfirming(true)}
          >
            Start over…
          </button>
        }
      >
        <div class="row" role="alertdialog" aria-labelledby="start-over-confirm-text" ref={dialog.ref}>
          <p id="start-over-confirm-text">Delete {lost()} now?</p>
          <button
            type="button"
            class="danger"
            data-testid="confirm-start-over"
            disabled={busy() || props.app.restoring() || props.app.unlocking()}
            onClick={startOver}
          >
            Yes, delete everything and start over
          </button>
          <button type="button" data-testid="cancel-start-over" data-cancel onClick={dialog.cancel}>
            Cancel
          </button>
        </div>
      </Show>
      <Show when={error()}>
        <p class="error" role="alert" data-testid="start-over-error">
          {error()}
        </p>
      </Show>
    </details>
  );
}
