/**
 * "Share → Loft" (docs/user-guide.md, "Files"): the files the operating system shared, and the
 * contacts and rooms they can go to. Picking a contact connects, offers the files and opens that
 * chat; picking a room offers them to its members and opens the room.
 */
import { createResource, createSignal, For, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { roomsOf } from "../app/rooms.ts";
import { forgetShared, sendShared, sendSharedToRoom, sharedFiles, shareTargets } from "../app/share.ts";
import { Back } from "./Back.tsx";
import { formatBytes } from "./chat/Files.tsx";
import { LiveRegion } from "./LiveRegion.tsx";
import { roomLabel } from "./Room.tsx";

export function Share(props: { app: AppModel }) {
  const app = props.app;
  const [files, { refetch }] = createResource(sharedFiles);
  const [busy, setBusy] = createSignal<string>();
  const [problem, setProblem] = createSignal<string>();

  async function pick(id: string) {
    const f = files() ?? [];
    setProblem(undefined);
    const p = await sendShared(app, id, f, setBusy);
    setBusy(undefined);
    if (p) await showProblem(p);
    else app.go({ name: "chat", id });
  }

  // Rooms this device can send in (not one the host removed it from).
  const rooms = () =>
    roomsOf(app)
      .rooms()
      .filter((r) => r.status !== "removed");
  async function pickRoom(id: string) {
    setProblem(undefined);
    const p = await sendSharedToRoom(app, id, files() ?? [], setBusy);
    setBusy(undefined);
    if (p) await showProblem(p);
    else app.go({ name: "room", room: id });
  }

  /** A refusal: said, and the list read again — the files offered before it left the share (app/share.ts). */
  async function showProblem(p: string) {
    setProblem(p);
    await refetch();
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
        <Show when={rooms().length > 0}>
          <h2>Or a room</h2>
          <ul class="contacts">
            <For each={rooms()}>
              {(r) => (
                <li>
                  <button
                    type="button"
                    data-testid="share-to-room"
                    data-room-id={r.id}
                    disabled={busy() !== undefined}
                    onClick={() => void pickRoom(r.id)}
                  >
                    {roomLabel(r)}
                  </button>
                </li>
              )}
            </For>
          </ul>
        </Show>
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
      {/* Drawn with the screen, empty: a refusal that comes into it is announced (LiveRegion.tsx). */}
      <LiveRegion when={problem() !== undefined} role="alert" testid="share-problem-news">
        <p class="error" data-testid="share-problem">
          {problem()}
        </p>
      </LiveRegion>
    </main>
  );
}
