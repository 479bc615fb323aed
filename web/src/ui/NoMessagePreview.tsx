/**
 * The preview on Home of a conversation — a contact's or a room's — with no message: files may
 * have gone back and forth all the same (they are kept apart from messages, engine/files/store.ts,
 * so the last message misses them), and then it names the newest one rather than say "No
 * messages yet". Nothing is shown until the files are listed (the engine starts after Home), so
 * "No messages yet" never flashes before a file's name — or until the engine is known not to come.
 */
import { createEffect, createSignal, onCleanup, onMount, Show } from "solid-js";
import { listFiles, listRoomFiles } from "../app/files.ts";
import type { AppModel } from "../app/model.ts";
import type { FileTransfer } from "../engine/api.ts";
import { previewText } from "./format.ts";

export function NoMessagePreview(props: { app: AppModel; contact?: string; room?: string }) {
  const app = props.app;
  const [newest, setNewest] = createSignal<FileTransfer>();
  const [listed, setListed] = createSignal(false);
  const ours = (t: FileTransfer) =>
    props.room !== undefined ? t.room === props.room : t.room === undefined && t.contactId === props.contact;
  const consider = (t: FileTransfer) => {
    const n = newest();
    if (ours(t) && (!n || t.at >= n.at)) setNewest(t);
  };
  const list = () =>
    void (
      props.room !== undefined ? listRoomFiles(app, props.room) : listFiles(app, props.contact ?? "")
    ).then(
      (all) => {
        for (const t of all) consider(t);
        setListed(true);
      },
      () => setListed(true),
    );
  // No engine came (engine-loader.ts, app/model.ts `#runEngine`: it did not load): there is no
  // file list to wait for, and the preview says what it knows.
  createEffect(() => {
    if (app.engineProblem() !== undefined && !app.engine) setListed(true);
  });
  onMount(() => {
    const off = app.onEvent((e) => {
      if (e.type === "file") consider(e.transfer);
    });
    const started = () => list();
    if (app.engine) list();
    else app.engineStarted.add(started);
    onCleanup(() => {
      off();
      app.engineStarted.delete(started);
    });
  });
  return (
    <Show
      when={newest()}
      fallback={<Show when={listed()}>{<span class="muted">No messages yet</span>}</Show>}
    >
      {(t) => (
        <>
          <Show when={t().direction === "out"}>
            <span class="muted">You: </span>
          </Show>
          File: {previewText(t().name)}
        </>
      )}
    </Show>
  );
}
