/**
 * The restore result on Home (docs/user-guide.md "Backups"; docs/protocol/backup.md §4): what came
 * back from the backup and what did not, in people's words, until the person dismisses it.
 */
import { For, Show } from "solid-js";
import { dismissRestoreResult, lastRestore } from "../app/backup.ts";

export function RestoreResult() {
  return (
    <Show when={lastRestore()}>
      {(r) => (
        <section class="card" data-testid="restore-result" aria-labelledby="restore-result-title">
          <h2 id="restore-result-title">Backup restored</h2>
          <h3>Back on this device</h3>
          <ul data-testid="restore-result-back">
            <For each={r().back}>{(item) => <li>{item}</li>}</For>
          </ul>
          <h3>Not restored</h3>
          <ul data-testid="restore-result-not">
            <For each={r().not}>{(item) => <li>{item}</li>}</For>
          </ul>
          <button type="button" data-testid="restore-result-done" onClick={dismissRestoreResult}>
            Done
          </button>
        </section>
      )}
    </Show>
  );
}
