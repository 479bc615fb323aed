/**
 * Settings' "This build" line (README "Checking the build"): the hash of the running build — the
 * SHA-256 of its precache manifest, which names every file of the app — for comparing with the
 * hash the operator or the project publishes, and with what `npm run build` printed.
 */
import { Show } from "solid-js";
import { runningBuild } from "../sw-client.ts";
import { groupHash } from "./format.ts";

export function BuildHash() {
  return (
    <section class="card" data-testid="build-hash-section">
      <h2>This build</h2>
      <Show
        when={runningBuild()}
        fallback={<p class="help">No installed build yet (development, or first visit).</p>}
      >
        {(hash) => (
          <>
            <p>
              <code data-testid="build-hash" data-hash={hash()}>
                {groupHash(hash())}
              </code>
            </p>
            <p class="help">
              Compare it with the hash published for this version: if they differ, this isn't the build you
              were told you'd get.
            </p>
          </>
        )}
      </Show>
    </section>
  );
}
