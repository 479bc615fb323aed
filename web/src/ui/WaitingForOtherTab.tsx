/**
 * Said while a restore waits for the tab running the chat to stop it (app/model.ts
 * `#whileEngineLockHeld`; docs/protocol/backup.md §5): that tab's stop can take seconds, and a
 * busy button alone reads as a hang.
 */
import { Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { engineHandBackMs } from "../page-timings.ts";

export function WaitingForOtherTab(props: { app: AppModel }) {
  return (
    <Show when={props.app.waitingForOtherTab()}>
      <p class="help" role="status" data-testid="restore-waiting">
        Waiting for Loft in another tab or window to stop chat before restoring (up to{" "}
        {Math.ceil(engineHandBackMs() / 1000)} seconds)…
      </p>
    </Show>
  );
}
