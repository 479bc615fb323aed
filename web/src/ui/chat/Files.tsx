/**
 * The files of one chat (docs/user-guide.md, "Files"): every transfer with this contact, oldest
 * first, kept live by `file` events — name and size, a progress bar with speed and time left on
 * both sides, Accept/Decline for an offer, Cancel while it moves, Download once the receiver
 * checked the hash, and received images shown inline. Each row is a `listitem`; the bar is a
 * native `<progress>` labelled with the file's name.
 */
import { batch, createSignal, For, type JSX, onCleanup, onMount, Show } from "solid-js";
import { createStore, reconcile } from "solid-js/store";
import {
  acceptFile,
  cancelFile,
  declineFile,
  downloadProblem,
  fileBlob,
  fileStream,
  listFiles,
  listRoomFiles,
  previewable,
} from "../../app/files.ts";
import type { AppModel } from "../../app/model.ts";
import { voiceNoteDuration } from "../../app/voice-notes.ts";
import type { FileTransfer } from "../../engine/api.ts";
import { VoiceNotePlayer } from "../call/VoiceNote.tsx";
import { saveStreamed } from "../save-file.ts";

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatEta(s: number): string {
  if (s < 60) return `${Math.max(1, Math.round(s))} s left`;
  if (s < 3600) return `${Math.round(s / 60)} min left`;
  return `${(s / 3600).toFixed(1)} h left`;
}

/**
 * What the row says about where the transfer is, as the engine's states mean it (engine/files/
 * store.ts `FileState`): an outgoing "done" is the contact's device confirming the hash (not
 * merely sent), an "offered" one still waits for the contact's answer.
 */
function fileStatus(t: FileTransfer, name: string): string {
  const moving = `${formatBytes(t.done)} of ${formatBytes(t.size)}`;
  switch (t.state) {
    case "hashing":
      // Hashing a large file before the offer takes a moment: say how far it got.
      return t.done > 0 ? `Preparing… ${Math.floor((100 * t.done) / Math.max(1, t.size))}%` : "Preparing…";
    case "queued":
      return t.reason ?? `Will be offered when ${name} is online`;
    case "relaying":
      return `Into ${name}'s relay mailbox · ${moving}`;
    case "relayed":
      return `In ${name}'s relay mailbox: ${name} gets it when online`;
    case "offered":
      return t.direction === "out"
        ? `Offered — waiting for ${name} to accept`
        : `${name} offers you this file · ${formatBytes(t.size)}: accept to receive it`;
    case "sending":
    case "receiving": {
      const speed = t.speed > 0 ? ` · ${formatBytes(Math.round(t.speed))}/s` : "";
      const eta = t.eta !== undefined && t.speed > 0 ? ` · ${formatEta(t.eta)}` : "";
      return `${moving}${speed}${eta}`;
    }
    case "waiting":
      return `${moving} · paused until ${name} is connected again`;
    case "done":
      return t.direction === "out"
        ? `Received by ${name}, checked · ${formatBytes(t.size)}`
        : `Received · ${formatBytes(t.size)}, checked`;
    case "failed":
      // Every end the engine reaches says why (engine/files/words.ts); this is only a fallback.
      return (
        t.reason ??
        (t.direction === "out"
          ? `${t.name} did not go through. Try sending it again.`
          : `${t.name} did not arrive. Ask ${name} to send it again.`)
      );
    case "declined":
      return t.reason ?? (t.direction === "out" ? `${name} declined` : "Declined");
    case "cancelled":
      return t.reason ?? "Cancelled";
  }
}

/** Chunks flow (or wait to): the progress bar shows. */
const FLOWING = new Set(["sending", "receiving", "waiting", "relaying"]);
/** Not ended yet: it can be cancelled. */
const MOVING = new Set(["hashing", "queued", "offered", "relayed", ...FLOWING]);

/**
 * `contactId`: the files of one chat; or `roomId`: the files with the members of one room, each
 * row naming its member (`name(t)`).
 */
export interface FilesProps {
  app: AppModel;
  contactId?: string;
  roomId?: string;
  /** The other end's name: the contact's, or the row's member in a room. */
  name: (t?: FileTransfer) => string;
  /** The list's accessible name. */
  label?: string;
  onError: (e: string) => void;
}

/** The transfers of a chat or a room, kept live, and how one is drawn. */
export interface FilesModel {
  /** By key; each transfer's fields change in place (a row re-renders only what changed). */
  files: Readonly<Record<string, FileTransfer>>;
  /** Oldest first. */
  ordered(): FileTransfer[];
  /** A transfer's row: a `listitem`. */
  row(t: FileTransfer): JSX.Element;
}

/** A room's files as a list of their own, under its messages. */
export function Files(props: FilesProps) {
  const model = createFiles(props);
  return (
    <Show when={model.ordered().length > 0}>
      <section class="files" aria-label={props.label ?? `Files with ${props.name()}`} data-testid="files">
        {/* biome-ignore lint/a11y/useSemanticElements: the rows are listitems a chat's timeline also holds (MessageList.tsx) */}
        <div role="list">
          <For each={model.ordered()}>{(t) => model.row(t)}</For>
        </div>
      </section>
    </Show>
  );
}

/**
 * The files model; `onNew` hears of each transfer the first time it is seen (from the listing or
 * an event), which is how a chat places it in its timeline once (Chat.tsx) — the progress events
 * after that change the row's fields only, never the timeline.
 */
export function createFiles(props: FilesProps, onNew?: (t: FileTransfer) => void): FilesModel {
  /** A row's name for buttons read aloud: in a room the same file has a row per member. */
  const rowName = (t: FileTransfer) =>
    props.roomId === undefined
      ? t.name
      : `${t.name} ${t.direction === "out" ? "to" : "from"} ${props.name(t)}`;
  const mine = (t: FileTransfer) =>
    props.roomId !== undefined ? t.room === props.roomId : t.contactId === props.contactId;
  const [files, setFiles] = createStore<Record<string, FileTransfer>>({});
  const [previews, setPreviews] = createSignal<Record<string, string>>({});
  const urls: string[] = [];
  let disposed = false;

  const ordered = () => Object.values(files).sort((a, b) => a.at - b.at);

  /** Keys whose preview is read or being read: each file is read from storage once. */
  const previewing = new Set<string>();
  async function preview(t: FileTransfer) {
    if (t.direction !== "in" || t.state !== "done" || !previewable(t) || previewing.has(t.key)) return;
    previewing.add(t.key);
    const blob = await fileBlob(props.app, t.key);
    if (!blob) previewing.delete(t.key); // not there (yet): a later event tries again
    if (!blob || disposed) return;
    const url = URL.createObjectURL(blob);
    urls.push(url);
    setPreviews((p) => ({ ...p, [t.key]: url }));
  }

  /** The sender's preview of an image, shown until (or instead of) the file itself. */
  const [thumbs, setThumbs] = createSignal<Record<string, string>>({});
  function thumb(t: FileTransfer) {
    if (!t.thumb || thumbs()[t.key]) return;
    const url = URL.createObjectURL(new Blob([t.thumb as Uint8Array<ArrayBuffer>], { type: "image/webp" }));
    urls.push(url);
    setThumbs((p) => ({ ...p, [t.key]: url }));
  }

  function put(t: FileTransfer) {
    const known = files[t.key] !== undefined;
    thumb(t);
    setFiles(t.key, reconcile(t));
    if (!known) onNew?.(t);
    void preview(t);
  }

  /** Files being written to disk for a download: a large one takes a while, and is saved once. */
  const [saving, setSaving] = createSignal<ReadonlySet<string>>(new Set());
  async function download(t: FileTransfer) {
    if (saving().has(t.key)) return;
    setSaving((s) => new Set(s).add(t.key));
    try {
      const stream = await fileStream(props.app, t.key);
      if (!stream || !(await saveStreamed(t.name, stream, () => fileBlob(props.app, t.key))))
        props.onError(`${t.name} is no longer on this device. Ask ${props.name(t)} to send it again.`);
    } catch (e) {
      // The engine's own words when the file itself is the problem, else the save failed here:
      // told apart by the error's type (app/files.ts `downloadProblem`).
      props.onError(downloadProblem(t.name, e));
    } finally {
      setSaving((s) => {
        const rest = new Set(s);
        rest.delete(t.key);
        return rest;
      });
    }
  }

  const act = (p: Promise<void>) => p.catch((x: unknown) => props.onError((x as Error).message));

  /**
   * `file` events are applied once per animation frame, the newest of each transfer: a room file
   * has a row per member, each with its own progress events, and the page draws at most once a
   * frame anyway. A hidden page (no frames) applies them on the next task instead.
   */
  const due = new Map<string, FileTransfer>();
  let flushing = false;
  function flush() {
    flushing = false;
    if (disposed) return;
    const ts = [...due.values()];
    due.clear();
    // One update of the list for the frame's transfers, not one (and a sort of the rows) each.
    batch(() => {
      for (const t of ts) put(t);
    });
  }
  function later(t: FileTransfer) {
    due.set(t.key, t);
    if (flushing) return;
    flushing = true;
    if (document.hidden) setTimeout(flush, 0);
    else requestAnimationFrame(flush);
  }

  onMount(() => {
    const off = props.app.onEvent((e) => {
      if (e.type === "file" && mine(e.transfer)) later(e.transfer);
    });
    const listing =
      props.roomId !== undefined
        ? listRoomFiles(props.app, props.roomId)
        : listFiles(props.app, props.contactId ?? "");
    void listing.then((all) => {
      if (!disposed) for (const t of all) if (!files[t.key] && !due.has(t.key)) put(t);
    });
    onCleanup(() => {
      disposed = true;
      off();
      for (const u of urls) URL.revokeObjectURL(u);
    });
  });

  const row = (t: FileTransfer) => {
    let el!: HTMLDivElement;
    // Accept, Decline and Cancel end the state that shows them: the button pressed goes, and the
    // focus with it, to the page's top (a keyboard user starts over, a screen reader says nothing).
    // Once it has gone, the focus moves to the row's next button, or else to the row, whose status
    // says what happened — only after a press here (Accept's Cancel goes too, when the file is in),
    // and only if the focus is still nowhere: a person gone on to the composer keeps it there.
    // A press counts once: a person who pressed Accept, then clicked away and scrolled back through
    // the chat, is not pulled back to this row minutes later when the file is in — only one whose
    // focus was still in the row (on Cancel) when its buttons went.
    let answered = false;
    const answer = (p: Promise<void>) => {
      answered = true;
      act(p);
    };
    /** Placed in a Show branch that holds buttons (it renders nothing). */
    const keepFocus = (): undefined => {
      onCleanup(() => {
        const pressed = answered;
        answered = false;
        const inRow = el.contains(document.activeElement);
        queueMicrotask(() => {
          if (!(pressed || inRow) || !el.isConnected) return;
          const active = document.activeElement;
          if (active && active !== document.body) return;
          (el.querySelector<HTMLElement>(".file-actions button:not(:disabled)") ?? el).focus();
        });
      });
      return undefined;
    };
    return (
      // biome-ignore lint/a11y/useSemanticElements: a listitem in a chat's timeline (MessageList.tsx) or a room's list
      <div
        ref={el}
        tabIndex={-1}
        role="listitem"
        class={`file ${t.direction} ${t.state}`}
        data-testid="file"
        data-state={t.state}
        data-direction={t.direction}
      >
        <div class="file-head">
          <span class="file-dir" aria-hidden="true">
            {t.direction === "out" ? "↑" : "↓"}
          </span>
          <span class="file-name" data-testid="file-name">
            {t.name}
          </span>
          <Show when={props.roomId !== undefined}>
            <span class="file-peer" data-testid="file-peer">
              {t.direction === "out" ? "to" : "from"} {props.name(t)}
            </span>
          </Show>
        </div>
        <Show when={!previews()[t.key] && thumbs()[t.key]}>
          {(src) => (
            <img class="file-thumb" src={src()} alt={`Preview of ${t.name}`} data-testid="file-thumb" />
          )}
        </Show>
        <Show when={previews()[t.key]}>
          {(src) => (
            <img
              class="file-preview"
              src={src()}
              alt={`${t.name}, from ${props.name(t)}`}
              data-testid="file-preview"
            />
          )}
        </Show>
        <Show when={t.state === "done" && voiceNoteDuration(t.name) && t.type.startsWith("audio/")}>
          <VoiceNotePlayer app={props.app} fileKey={t.key} name={t.name} from={props.name(t)} />
        </Show>
        <Show when={FLOWING.has(t.state)}>
          <progress
            max={t.size || 1}
            value={t.done}
            aria-label={`${t.name}: ${formatBytes(t.done)} of ${formatBytes(t.size)}`}
            data-testid="file-progress"
          />
        </Show>
        <p class="file-status" data-testid="file-status" role={t.state === "failed" ? "alert" : undefined}>
          {fileStatus(t, props.name(t))}
        </p>
        <div class="file-actions">
          <Show when={t.direction === "in" && t.state === "offered"}>
            {keepFocus()}
            <button
              type="button"
              class="primary"
              data-testid="file-accept"
              onClick={() => answer(acceptFile(props.app, t.key))}
            >
              Accept <span class="sr-only">{rowName(t)}</span>
            </button>
            <button
              type="button"
              data-testid="file-decline"
              onClick={() => answer(declineFile(props.app, t.key))}
            >
              Decline <span class="sr-only">{rowName(t)}</span>
            </button>
          </Show>
          <Show when={MOVING.has(t.state) && !(t.direction === "in" && t.state === "offered")}>
            {keepFocus()}
            <button
              type="button"
              data-testid="file-cancel"
              onClick={() => answer(cancelFile(props.app, t.key))}
            >
              Cancel <span class="sr-only">{rowName(t)}</span>
            </button>
          </Show>
          <Show when={t.direction === "in" && t.state === "done"}>
            <button
              type="button"
              data-testid="file-download"
              disabled={saving().has(t.key)}
              onClick={() => void download(t)}
            >
              {saving().has(t.key) ? "Saving…" : "Download"} <span class="sr-only">{rowName(t)}</span>
            </button>
          </Show>
        </div>
      </div>
    );
  };
  return { files, ordered, row };
}
