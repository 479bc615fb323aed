/**
 * This tab was locked because another tab deleted the identity or is restoring a backup
 * (app/other-tabs.ts, `AppModel.closeForOtherTab`): what it held belongs to what was replaced.
 * It says why, in plain words, and a reload starts over from what the device holds now.
 */
import type { AppModel } from "../app/model.ts";
import type { OtherTabNews } from "../app/other-tabs.ts";

const WHY: Record<OtherTabNews, string> = {
  "identity-deleted": "Your identity was deleted on this device in another tab.",
  "backup-restoring": "A backup is being restored on this device in another tab.",
  "backup-restored": "A backup was restored on this device in another tab.",
  "backup-not-restored":
    "A backup restore in another tab did not go through: nothing on this device was changed.",
};

export function TabClosed(props: { app: AppModel }) {
  return (
    <main class="screen" data-testid="tab-closed">
      <h1>Loft is locked in this tab</h1>
      <div class="card">
        <p data-testid="tab-closed-why">{WHY[props.app.closedBy() ?? "identity-deleted"]}</p>
        <p>
          Anything you were typing here was not kept. Reload this tab to go on with what is on this device
          now.
        </p>
        <button
          type="button"
          class="primary"
          data-testid="tab-closed-reload"
          onClick={() => location.reload()}
        >
          Reload
        </button>
      </div>
    </main>
  );
}
