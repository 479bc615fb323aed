/**
 * "Share a folder" (docs/user-guide.md "Shared folders"): pick a folder, Loft copies it into this
 * browser's private storage and serves it at `/peer/<your id>/` — to you (the preview, opened in a
 * new tab) and to the contacts you tick. Below, who asked for what: every request served or refused.
 */
import { createResource, createSignal, For, onCleanup, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { contactIdOf } from "../identity.ts";
import { accessLog } from "./access-log.ts";
import { contentOrigin, contentUrl } from "./bridge.ts";
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

  /**
   * Shared pages are shown only on the content address, `peer.<this host>` (docs/operations.md,
   * docs/protocol/proxy.md §Isolation). Reached by an IP address or localhost there is none, and if
   * its bridge could not start (`dataset.contentOrigin` "failed", web/src/proxy/bridge.ts) it does
   * not answer: the preview would be an error page, so this section says why before offering it.
   */
  const origin = contentOrigin();
  const [bridge, setBridge] = createSignal(document.documentElement.dataset.contentOrigin);
  const watch = new MutationObserver(() => setBridge(document.documentElement.dataset.contentOrigin));
  watch.observe(document.documentElement, { attributes: true, attributeFilter: ["data-content-origin"] });
  onCleanup(() => watch.disconnect());
  const previewWorks = () => origin !== undefined && bridge() !== "failed";

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
      <Show when={origin === undefined}>
        <div class="card warning" data-testid="share-no-content-address">
          <p>
            <strong>Shared pages need Loft's content address,</strong> and this Loft has none: it is opened as{" "}
            {location.host}, an IP address or localhost. You can still share a folder — your contacts open it
            on their own Loft — but you can't preview it here, nor open what contacts share with you.
          </p>
          <p>
            To have one, whoever runs this Loft serves it under a host name (for example loft.example.com) and
            points peer. in front of that name (peer.loft.example.com) at the same server: a DNS name and a
            certificate that names it. Then open Loft by its name.
          </p>
        </div>
      </Show>
      <Show when={origin !== undefined && bridge() === "failed"}>
        <div class="card warning" data-testid="share-no-content-address">
          <p>
            <strong>Loft's content address, {origin}, is not answering,</strong> so shared pages can't be
            shown in this browser. Whoever runs this Loft must point that name at the same server as Loft (its
            DNS name and a certificate that names it) and pass it through to Loft. Reload once that is done.
          </p>
        </div>
      </Show>
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
              “{share.name}” — {share.files} files, {kib(share.bytes)}
              <Show when={previewWorks()} fallback=" — no preview here (see above)">
                {" — "}
                <a
                  href={contentUrl(me() ?? "") ?? `/peer/${me()}/`}
                  target="_blank"
                  rel="noopener"
                  data-testid="share-preview"
                >
                  Open preview
                </a>
              </Show>
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
