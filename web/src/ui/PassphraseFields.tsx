/**
 * Form fields every passphrase form shares: a new passphrase with its strength meter and the
 * repeat field (onboarding, Settings), and a backup file with its passphrase (the restore forms on
 * onboarding, the unlock screen and Settings). Each returns its fields and what reads them.
 */
import { createSignal, type JSX } from "solid-js";
import { BackupError, decryptBackup } from "../storage/backup.ts";
import type { BackupBundle } from "../storage/storage.ts";
import { PassphraseStrength } from "./PassphraseStrength.tsx";

export interface NewPassphraseFields {
  fields: JSX.Element;
  value: () => string;
  repeated: () => string;
  clear: () => void;
}

/**
 * A new passphrase, its strength, and "Repeat it". Test ids: `<testid>-new`, `-strength`,
 * `-confirm`.
 */
export function newPassphraseFields(opts: {
  testid: string;
  label: () => string;
  describedBy?: string;
}): NewPassphraseFields {
  const [typed, setTyped] = createSignal("");
  let first!: HTMLInputElement;
  let second!: HTMLInputElement;
  const fields = (
    <>
      <label for={`${opts.testid}-new`}>{opts.label()}</label>
      <input
        id={`${opts.testid}-new`}
        type="password"
        autocomplete="new-password"
        ref={first}
        data-testid={`${opts.testid}-new`}
        aria-describedby={opts.describedBy}
        onInput={(e) => setTyped(e.currentTarget.value)}
      />
      <PassphraseStrength value={typed()} testid={`${opts.testid}-strength`} />
      <label for={`${opts.testid}-confirm`}>Repeat it</label>
      <input
        id={`${opts.testid}-confirm`}
        type="password"
        autocomplete="new-password"
        ref={second}
        data-testid={`${opts.testid}-confirm`}
      />
    </>
  );
  return {
    fields,
    value: () => first.value,
    repeated: () => second.value,
    clear: () => {
      first.value = second.value = "";
      setTyped("");
    },
  };
}

/** A backup file and its passphrase. Test ids: `<testid>-file`, `<testid>-passphrase`. */
export function backupFileFields(testid: string): { fields: JSX.Element; read: () => Promise<BackupBundle> } {
  let file!: HTMLInputElement;
  let pass!: HTMLInputElement;
  const fields = (
    <>
      <label for={`${testid}-file`}>Backup file</label>
      <input
        id={`${testid}-file`}
        type="file"
        accept=".loft,application/json"
        ref={file}
        data-testid={`${testid}-file`}
      />
      <label for={`${testid}-pass`}>Backup passphrase</label>
      <input id={`${testid}-pass`} type="password" ref={pass} data-testid={`${testid}-passphrase`} />
    </>
  );
  /** The decrypted backup; throws a message for the person (no file, wrong passphrase, not a backup). */
  const read = async () => {
    const f = file.files?.[0];
    if (!f) throw new BackupError("Choose a backup file first.");
    return decryptBackup(await f.text(), pass.value);
  };
  return { fields, read };
}
