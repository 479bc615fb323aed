/**
 * Voice notes (docs/user-guide.md, "Voice notes"): a recording from the microphone sent as an
 * encrypted file through the file transfer path (app/files.ts `sendFiles`, docs/protocol/files.md)
 * — nothing new on the wire. The file's name carries the duration ("Voice note 0:07.webm"), since
 * a MediaRecorder WebM has none in its header. `offerVoiceNote` lets the call screen open the
 * recorder for a contact who is busy or offline.
 */
import { createSignal } from "solid-js";
import { durationLabel } from "../engine/calls/words.ts";
import { sendFiles } from "./files.ts";
import type { AppModel } from "./model.ts";

/** Longest voice note: the recorder stops on its own here. */
export const MAX_VOICE_NOTE_MS = 5 * 60_000;
const NAME = /^Voice note (\d+:\d\d)\.(webm|ogg|m4a)$/;

/** The contact whose chat should open its voice-note recorder (set by the call screen). */
const [voiceNoteFor, setVoiceNoteFor] = createSignal<string | undefined>(undefined);

export { voiceNoteFor };
export const offerVoiceNote = (contactId: string | undefined) => setVoiceNoteFor(contactId);

/**
 * "Voice note 0:07.webm" for a recording of `ms` milliseconds of `type`: whole seconds, as the
 * recorder showed them when Send was pressed (never under 0:01).
 */
export function voiceNoteName(ms: number, type: string): string {
  const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
  return `Voice note ${durationLabel(Math.max(1000, Math.floor(ms / 1000) * 1000))}.${ext}`;
}

/** The duration a voice note's name says, or undefined for any other file. */
export function voiceNoteDuration(name: string): string | undefined {
  return NAME.exec(name)?.[1];
}

export interface Recording {
  /** Stop and hand over the recording (undefined when it was empty). */
  stop(): Promise<{ blob: Blob; ms: number } | undefined>;
  cancel(): void;
  startedAt: number;
}

/** Start recording the microphone; throws a MediaRefused-like error in words when it can't. */
export async function startRecording(onLimit: () => void): Promise<Recording> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) =>
    MediaRecorder.isTypeSupported(t),
  );
  let recorder: MediaRecorder;
  try {
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  } catch (e) {
    // No recorder after all: the microphone is not left on.
    for (const t of stream.getTracks()) t.stop();
    throw e;
  }
  const chunks: Blob[] = [];
  recorder.ondataavailable = (e) => {
    if (e.data.size > 0) chunks.push(e.data);
  };
  let limit: ReturnType<typeof setTimeout> | undefined;
  const release = () => {
    clearTimeout(limit);
    for (const t of stream.getTracks()) t.stop();
  };
  // The time shown, the name's duration and the length limit count from the recorder's own
  // `start` event, not from the click: on a busy device the recorder can start a good part of a
  // second later, and a note named "0:01" must hold a second of sound.
  let fallback: ReturnType<typeof setTimeout> | undefined;
  const started = new Promise<number>((resolve) => {
    recorder.onstart = () => resolve(Date.now());
    fallback = setTimeout(() => resolve(Date.now()), 2_000);
  });
  try {
    recorder.start(250);
  } catch (e) {
    clearTimeout(fallback);
    release();
    throw e;
  }
  const startedAt = await started;
  clearTimeout(fallback);
  limit = setTimeout(onLimit, MAX_VOICE_NOTE_MS);
  return {
    startedAt,
    stop: () =>
      new Promise((resolve) => {
        recorder.onstop = () => {
          release();
          const blob = new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" });
          resolve(blob.size > 0 ? { blob, ms: Date.now() - startedAt } : undefined);
        };
        recorder.stop();
      }),
    cancel: () => {
      recorder.onstop = null;
      if (recorder.state !== "inactive") recorder.stop();
      release();
    },
  };
}

/** Send a recording to the contact as an encrypted file; resolves with a problem in words, if any. */
export function sendVoiceNote(
  app: AppModel,
  contactId: string,
  rec: { blob: Blob; ms: number },
): Promise<string | undefined> {
  const type = rec.blob.type.split(";")[0] || "audio/webm";
  const file = new File([rec.blob], voiceNoteName(rec.ms, type), { type });
  return sendFiles(app, contactId, [file]);
}
