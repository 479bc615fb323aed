/**
 * "Share → Loft" (docs/user-guide.md, "Files"): the files the operating system shared, and the
 * contacts they can go to. Picking one connects, offers the files and opens that chat.
 */
import { createResource, createSignal, For, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { forgetShared, sendShared, sharedFiles, shareTargets } from "../app/share.ts";
import { Back } from "./Back.tsx";
import { formatBytes } from "./chat/Files.tsx";

export function Share(props: { app: AppModel }) {
  const app = props.app;
  const [files] = createResource(sharedFiles);
  const [busy, setBusy] = createSignal<string>();
  const [problem, setProblem] = createSignal<string>();

  async function pick(id: string) {
    const f = files() ?? [];
    setProblem(undefined);
    const p = await sendShared(app, id, f, setBusy);
    setBusy(undefined);
    if (p) setProblem(p);
    else app.go({ name: "chat", id });
  }

  return (
    <main class="screen share" data-testid="share-screen">
      <div class="bar">
        <Back app={app} />
        <h1>Send to…</h1>
      </div>
      <Show when={(files() ?? []).length > 0} fallback={<p data-testid="share-empty">Nothing was shared.</p>}>
        <ul class="card" aria-label="Shared files">
          <For each={files()}>
            {(f) => (
              <li data-testid="shared-file">
                {f.name} · {formatBytes(f.size)}
              </li>
            )}
          </For>
        </ul>
        <h2>Pick a contact</h2>
        <ul class="contacts">
          <For each={shareTargets(app)}>
            {(c) => (
              <li>
                <button
                  type="button"
                  data-testid="share-to"
                  data-contact-id={c.record.id}
                  disabled={busy() !== undefined}
                  onClick={() => void pick(c.record.id)}
                >
                  {c.record.username}
                  <span class="sub"> · {app.presenceOf(c.record.id).status}</span>
                </button>
              </li>
            )}
          </For>
        </ul>
        <button
          type="button"
          data-testid="share-discard"
          onClick={() => void forgetShared().then(() => app.go({ name: "home" }))}
        >
          Discard
        </button>
      </Show>
      <p role="status" data-testid="share-status">
        {busy()}
      </p>
      <Show when={problem()}>
        <p class="error" role="alert" data-testid="share-problem">
          {problem()}
        </p>
      </Show>
    </main>
  );
}
