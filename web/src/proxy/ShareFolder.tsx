/**
 * "Share a folder" (docs/user-guide.md "Shared folders"): pick a folder, Loft copies it into this
 * browser's private storage and serves it at `/peer/<your id>/` — to you (the preview, opened in a
 * new tab) and to the contacts you tick. Below, who asked for what: every request served or refused.
 */
import { createResource, createSignal, For, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { contactIdOf } from "../identity.ts";
import { accessLog } from "./access-log.ts";
import { contentUrl } from "./bridge.ts";
import { listShares, type StoredShare, setShareContacts, shareFolder, stopSharing } from "./opfs-shares.ts";
import { reloadProxyShares } from "./start.ts";

const kib = (n: number) =>
  n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;

export function ShareFolder(props: { app: AppModel }) {
  const app = props.app;
  const [shares, { refetch }] = createResource(listShares);
  const [status, setStatus] = createSignal<string>();
  const me = () => {
    const u = app.user();
    return u ? contactIdOf(u.identity) : "";
  };
  const accepted = () => app.contacts().filter((c) => !c.record.request);
  let input!: HTMLInputElement;

  const pick = async () => {
    const files = [...(input.files ?? [])];
    if (files.length === 0) return;
    setStatus("Copying the folder into Loft…");
    try {
      const { share, skipped } = await shareFolder(files, []);
      await reloadProxyShares();
      await refetch();
      setStatus(
        `Shared “${share.name}”: ${share.files} files, ${kib(share.bytes)}.` +
          (skipped.length ? ` Skipped ${skipped.length} hidden or unsafe names.` : ""),
      );
    } catch (e) {
      setStatus(`Couldn't share the folder: ${(e as Error).message}`);
    }
    input.value = "";
  };
  const toggle = async (share: StoredShare, id: string, on: boolean) => {
    const contacts = on ? [...new Set([...share.contacts, id])] : share.contacts.filter((c) => c !== id);
    await setShareContacts(share.root, contacts);
    await reloadProxyShares();
    await refetch();
  };
  const stop = async (share: StoredShare) => {
    await stopSharing(share.root);
    await reloadProxyShares();
    await refetch();
    setStatus(`Stopped sharing “${share.name}”.`);
  };

  return (
    <section class="card" data-testid="share-section">
      <h2>Shared folder</h2>
      <p class="help">
        A folder you share is copied into this browser and served, end to end encrypted, to the contacts you
        choose while Loft is open. Only files inside it can be reached.
      </p>
      <label class="row">
        <span>Share a folder</span>
        <input
          ref={input}
          type="file"
          data-testid="share-folder-input"
          {...{ webkitdirectory: true }}
          multiple
          onChange={() => void pick()}
        />
      </label>
      <Show when={status()}>
        <p role="status" data-testid="share-status">
          {status()}
        </p>
      </Show>
      <For each={shares() ?? []}>
        {(share) => (
          <div data-testid="share-item">
            <p>
              “{share.name}” — {share.files} files, {kib(share.bytes)} —{" "}
              <a
                href={contentUrl(me() ?? "") ?? `/peer/${me()}/`}
                target="_blank"
                rel="noopener"
                data-testid="share-preview"
              >
                Open preview
              </a>
            </p>
            <fieldset>
              <legend>Who can open it</legend>
              <Show
                when={accepted().length > 0}
                fallback={<p class="help">Only you, for now: you have no contacts yet.</p>}
              >
                <For each={accepted()}>
                  {(c) => (
                    // A checkbox and its name on one line (styles.css label.check), not a full-width box.
                    <label class="check">
                      <input
                        type="checkbox"
                        checked={share.contacts.includes(c.record.id)}
                        onChange={(e) => void toggle(share, c.record.id, e.currentTarget.checked)}
                      />
                      {c.record.username}
                    </label>
                  )}
                </For>
              </Show>
            </fieldset>
            <button type="button" class="danger" onClick={() => void stop(share)}>
              Stop sharing
            </button>
          </div>
        )}
      </For>
      <Show when={accessLog().length > 0}>
        <details data-testid="access-log">
          <summary>Requests ({accessLog().length})</summary>
          <ul>
            <For each={[...accessLog()].reverse().slice(0, 50)}>
              {(r) => (
                <li>
                  {new Date(r.at).toLocaleTimeString()} ·{" "}
                  {r.peer === me() ? "you" : (app.contact(r.peer)?.record.username ?? "someone")} · {r.method}{" "}
                  {r.path} ·{" "}
                  {r.outcome === "refused" ? `refused (${r.refused?.replace(/_/g, " ")})` : r.outcome}
                  {r.status ? ` ${r.status}` : ""} · {kib(r.bytes)}
                </li>
              )}
            </For>
          </ul>
        </details>
      </Show>
    </section>
  );
}
