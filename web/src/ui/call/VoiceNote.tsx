/**
 * Voice notes in a chat (docs/user-guide.md, "Voice notes"): the 🎙 button records from the
 * microphone (Recording… with its time, Send, Cancel) and sends the recording as an encrypted
 * file (app/voice-notes.ts); a received or sent voice note plays inline with its duration.
 */
import { createEffect, createSignal, onCleanup, Show } from "solid-js";
import { fileBlob } from "../../app/files.ts";
import type { AppModel } from "../../app/model.ts";
import {
  offerVoiceNote,
  type Recording,
  sendVoiceNote,
  startRecording,
  voiceNoteDuration,
  voiceNoteFor,
} from "../../app/voice-notes.ts";
import { mediaFailure } from "../../engine/calls/media.ts";
import { durationLabel, mediaProblem } from "../../engine/calls/words.ts";

export function VoiceNoteButton(props: { app: AppModel; id: string; name: string }) {
  const [rec, setRec] = createSignal<Recording>();
  const [now, setNow] = createSignal(Date.now());
  const [problem, setProblem] = createSignal<string>();
  const tick = setInterval(() => rec() && setNow(Date.now()), 500);
  let disposed = false;
  onCleanup(() => {
    disposed = true;
    clearInterval(tick);
    rec()?.cancel();
  });

  const start = async () => {
    setProblem(undefined);
    try {
      const r = await startRecording(() => void send());
      // The chat closed while the browser asked for the microphone, or a second click started
      // another: nothing records unseen.
      if (disposed || rec()) return r.cancel();
      setRec(r);
      setNow(Date.now());
    } catch (e) {
      setProblem(mediaProblem(mediaFailure(e).kind, false, "record again"));
    }
  };
  const send = async () => {
    const r = rec();
    setRec(undefined);
    const done = await r?.stop();
    if (!done) return;
    setProblem(await sendVoiceNote(props.app, props.id, done));
  };
  const cancel = () => {
    rec()?.cancel();
    setRec(undefined);
  };
  // The call screen offers a voice note when the contact is busy or offline.
  createEffect(() => {
    if (voiceNoteFor() !== props.id) return;
    offerVoiceNote(undefined);
    if (!rec()) void start();
  });

  return (
    <>
      <Show
        when={rec()}
        fallback={
          <button
            type="button"
            class="icon"
            data-testid="voice-note"
            aria-label={`Record a voice note for ${props.name}`}
            title="Voice note"
            onClick={() => void start()}
          >
            🎙
          </button>
        }
      >
        {(r) => (
          <span class="voice-recorder" role="status" data-testid="voice-recorder">
            Recording… {durationLabel(wholeSeconds(now() - r().startedAt))}{" "}
            <button type="button" class="primary" data-testid="voice-note-send" onClick={() => void send()}>
              Send
            </button>{" "}
            <button type="button" data-testid="voice-note-cancel" onClick={cancel}>
              Cancel
            </button>
          </span>
        )}
      </Show>
      <Show when={problem()}>
        <span class="call-problem" role="alert" data-testid="voice-note-problem">
          {problem()}
        </span>
      </Show>
    </>
  );
}

/** A running recording's time in whole seconds elapsed (a stopwatch: "0:01" once a second is in). */
const wholeSeconds = (ms: number) => Math.floor(Math.max(0, ms) / 1000) * 1000;

/** A voice note's inline player and duration (for a file named by `voiceNoteName`). */
export function VoiceNotePlayer(props: { app: AppModel; fileKey: string; name: string; from: string }) {
  const [src, setSrc] = createSignal<string>();
  let url: string | undefined;
  void fileBlob(props.app, props.fileKey).then((blob) => {
    if (!blob) return;
    url = URL.createObjectURL(blob);
    setSrc(url);
  });
  onCleanup(() => url && URL.revokeObjectURL(url));
  return (
    <Show when={src()}>
      {(s) => (
        <div class="voice-note" data-testid="voice-note-player">
          {/* biome-ignore lint/a11y/useMediaCaption: a voice note has no caption track to give */}
          <audio controls preload="metadata" src={s()} aria-label={`Voice note from ${props.from}`} />
          <span class="muted" data-testid="voice-note-duration">
            {voiceNoteDuration(props.name) ?? ""}
          </span>
        </div>
      )}
    </Show>
  );
}
