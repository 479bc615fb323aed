/**
 * Files shared to Loft ("Share → Loft", sw/share-target.ts) stay in the share cache until they are
 * sent or discarded (app/share.ts). When the share arrived while Loft was locked, offline, or the
 * person left the /share screen before sending, Home offers them again: who gets them, or discard.
 */
import { createResource, createSignal, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { forgetShared, sharedNames } from "../app/share.ts";

export function SharedWaiting(props: { app: AppModel }) {
  const [files, { mutate }] = createResource(sharedNames);
  const n = () => files()?.length ?? 0;
  const [problem, setProblem] = createSignal<string>();
  const discard = () =>
    forgetShared().then(
      () => mutate([]),
      (e: unknown) =>
        setProblem(
          `The shared files could not be discarded (${(e as Error)?.message ?? e}). They are still waiting; try again.`,
        ),
    );
  return (
    <Show when={n() > 0}>
      <section class="card" data-testid="shared-waiting" aria-labelledby="shared-waiting-heading">
        <h2 id="shared-waiting-heading">Shared with Loft, not sent yet</h2>
        <p data-testid="shared-waiting-text">
          {n() === 1
            ? `${files()?.[0] ?? "A file"} is waiting to be sent.`
            : `${n()} files are waiting to be sent.`}
        </p>
        <div class="row">
          <button
            type="button"
            class="primary"
            data-testid="shared-waiting-send"
            onClick={() => props.app.go({ name: "share" })}
          >
            Choose who gets {n() === 1 ? "it" : "them"}
          </button>
          <button type="button" data-testid="shared-waiting-discard" onClick={() => void discard()}>
            Discard
          </button>
        </div>
        <Show when={problem()}>
          <p class="error" role="alert" data-testid="shared-waiting-error">
            {problem()}
          </p>
        </Show>
      </section>
    </Show>
  );
}
