/**
 * Said while a restore waits for the tab running the chat to stop it (app/model.ts
 * `#whileEngineLockHeld`; docs/protocol/backup.md §5): that tab's stop can take seconds, and a
 * busy button alone reads as a hang. The live region is drawn with the form, empty, and only its
 * words come and go (LiveRegion.tsx).
 */
import type { AppModel } from "../app/model.ts";
import { engineHandBackMs } from "../page-timings.ts";
import { LiveRegion } from "./LiveRegion.tsx";

export function WaitingForOtherTab(props: { app: AppModel }) {
  return (
    <LiveRegion when={props.app.waitingForOtherTab()} testid="restore-waiting-news">
      <p class="help" data-testid="restore-waiting">
        Waiting for Loft in another tab or window to stop chat before restoring (up to{" "}
        {Math.ceil(engineHandBackMs() / 1000)} seconds)…
      </p>
    </LiveRegion>
  );
}
