/**
 * The update banner (docs/user-guide.md "Updates"): a new version waiting shows its build hash and
 * waits for the person — "Update now" or "Later"; nothing changes until they choose. A build that
 * refused to run (its files don't match the hash it announced) is reported, and the running
 * version stays. A newer build that installed under the banner and did not say its hash when
 * "Update now" asked it (sw-client.ts `unansweredUpdate`) is said too, with what to do: nothing
 * was activated, and asking again (or a reload) shows its hash.
 */
import { createSignal, Show } from "solid-js";
import { applyUpdate, pendingUpdate, refusedUpdate, unansweredUpdate } from "../sw-client.ts";
import { groupHash } from "./format.ts";

export function UpdateBanner() {
  const [later, setLater] = createSignal<string | undefined>();
  const [busy, setBusy] = createSignal(false);
  const update = async () => {
    setBusy(true);
    try {
      await applyUpdate();
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <Show when={pendingUpdate() && later() !== pendingUpdate()}>
        <div class="banner" role="status" data-testid="update-banner">
          <Show
            when={unansweredUpdate()}
            fallback={
              <>
                Update available — new build{" "}
                <code data-testid="update-hash">{groupHash(pendingUpdate() ?? "")}</code>.{" "}
              </>
            }
          >
            <span data-testid="update-unanswered">
              A newer build was installed while this notice was shown, and it has not said which build it is
              yet, so nothing was updated: you're still on the version you had. Press Update now to ask it
              again, or reload the page to see its build.
            </span>{" "}
          </Show>
          <button type="button" class="link" data-testid="update-reload" disabled={busy()} onClick={update}>
            Update now
          </button>{" "}
          <button
            type="button"
            class="link"
            data-testid="update-later"
            onClick={() => setLater(pendingUpdate())}
          >
            Later
          </button>
        </div>
      </Show>
      <Show when={refusedUpdate()}>
        {(refused) => (
          <div class="banner" role="alert" data-testid="update-refused">
            An update was refused: build <code>{groupHash(refused().hash)}</code> doesn't match what it
            announced ({refused().reason}). You're still on the version you had.
          </div>
        )}
      </Show>
    </>
  );
}
