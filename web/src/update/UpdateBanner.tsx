/**
 * The update banner (docs/user-guide.md "Updates"): a new version waiting shows its build hash and
 * waits for the person — "Update now" or "Later"; nothing changes until they choose. A build that
 * refused to run (its files don't match the hash it announced) is reported, and the running
 * version stays.
 */
import { createSignal, Show } from "solid-js";
import { applyUpdate, pendingUpdate, refusedUpdate } from "../sw-client.ts";
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
          Update available — new build{" "}
          <code data-testid="update-hash">{groupHash(pendingUpdate() ?? "")}</code>.{" "}
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
