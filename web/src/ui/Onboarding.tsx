/** First run: choose a username (identity created in this browser), or restore a backup. */
import { createSignal, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { validateUsername } from "../identity.ts";
import { decryptBackup } from "../storage/backup.ts";

export function usernameProblem(raw: string): string | undefined {
  const r = validateUsername(raw);
  if (r.ok) return undefined;
  const m = r.error.message;
  if (m.includes("empty")) return "Choose a name of at least 1 character.";
  if (m.includes("longer")) return "Names can be at most 40 characters.";
  if (m.includes("white space")) return "Names can't start or end with a space.";
  return "That name has characters Loft can't use (control or text-direction characters).";
}

export function Onboarding(props: { app: AppModel }) {
  const [name, setName] = createSignal("");
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  const [restoreError, setRestoreError] = createSignal<string>();
  let fileInput!: HTMLInputElement;
  let passInput!: HTMLInputElement;

  const create = async (e: Event) => {
    e.preventDefault();
    const problem = usernameProblem(name());
    setError(problem);
    if (problem) return;
    setBusy(true);
    try {
      await props.app.createIdentity(name().normalize("NFC"));
    } catch (x) {
      setError(`Could not create your identity: ${(x as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  const restore = async (e: Event) => {
    e.preventDefault();
    const file = fileInput.files?.[0];
    if (!file) return setRestoreError("Choose a backup file first.");
    setBusy(true);
    setRestoreError(undefined);
    try {
      const bundle = await decryptBackup(await file.text(), passInput.value);
      await props.app.storage.importBundle(bundle);
      await props.app.reload();
    } catch (x) {
      setRestoreError((x as Error).message);
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
          autocomplete="nickname"
          maxLength={80}
          value={name()}
          onInput={(e) => setName(e.currentTarget.value)}
          aria-invalid={error() ? "true" : "false"}
          aria-describedby="username-help"
        />
        <p id="username-help" class="help">
          1–40 characters. You can change it later; your contacts will see the new name.
        </p>
        <Show when={error()}>
          <p class="error" role="alert" data-testid="username-error">
            {error()}
          </p>
        </Show>
        <button type="submit" class="primary" data-testid="create-identity" disabled={busy()}>
          Create my identity
        </button>
      </form>
      <details class="card">
        <summary>Restore from a backup</summary>
        <form onSubmit={restore}>
          <label for="restore-file">Backup file</label>
          <input
            id="restore-file"
            type="file"
            accept=".loft,application/json"
            ref={fileInput}
            data-testid="restore-file"
          />
          <label for="restore-pass">Backup passphrase</label>
          <input id="restore-pass" type="password" ref={passInput} data-testid="restore-passphrase" />
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
      setError((x as Error).message);
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
        />
        <Show when={error()}>
          <p class="error" role="alert" data-testid="unlock-error">
            {error()}
          </p>
        </Show>
        <button type="submit" class="primary" disabled={busy()} data-testid="unlock-submit">
          {busy() ? "Unlocking…" : "Unlock"}
        </button>
      </form>
    </main>
  );
}
