/**
 * The microphone and camera for a call (docs/user-guide.md, "Calls"): `getUserMedia` with its
 * failures named as `CallEndKind`s a person can act on, and a video call that falls back to
 * voice when there is no camera.
 */
import type { CallEndKind } from "./types.ts";

export class MediaRefused extends Error {
  constructor(
    readonly kind: Extract<CallEndKind, "permission" | "no-device" | "device-busy">,
    detail: string,
  ) {
    super(detail);
  }
}

/** A DOMException name from getUserMedia → what went wrong, in our terms. */
export function mediaFailure(e: unknown): MediaRefused {
  const name = (e as { name?: string })?.name ?? "";
  if (name === "NotAllowedError" || name === "SecurityError") return new MediaRefused("permission", name);
  if (name === "NotFoundError" || name === "OverconstrainedError") return new MediaRefused("no-device", name);
  if (name === "NotReadableError" || name === "AbortError") return new MediaRefused("device-busy", name);
  return new MediaRefused("no-device", name || String(e));
}

export interface LocalMedia {
  stream: MediaStream;
  audio: MediaStreamTrack;
  video?: MediaStreamTrack;
  /** Set when video was asked for and could not be had (the call goes on as voice). */
  note?: string;
}

/** Microphone (and camera for `video`). Throws `MediaRefused`. */
export async function openLocalMedia(
  video: boolean,
  devices: { audioinput?: string; videoinput?: string } = {},
): Promise<LocalMedia> {
  const md = globalThis.navigator?.mediaDevices;
  if (!md?.getUserMedia) throw new MediaRefused("no-device", "no mediaDevices in this context");
  const audio: MediaTrackConstraints | boolean = devices.audioinput
    ? { deviceId: { exact: devices.audioinput } }
    : true;
  if (video) {
    try {
      const stream = await md.getUserMedia({
        audio,
        video: devices.videoinput ? { deviceId: { exact: devices.videoinput } } : true,
      });
      const [a] = stream.getAudioTracks();
      const [v] = stream.getVideoTracks();
      if (a) return { stream, audio: a, ...(v ? { video: v } : {}) };
      for (const t of stream.getTracks()) t.stop();
    } catch (e) {
      const f = mediaFailure(e);
      if (f.kind === "permission") throw f;
      // No camera, or it is busy: the call goes on as voice.
      const voice = await openLocalMedia(false, devices);
      return {
        ...voice,
        note:
          f.kind === "device-busy"
            ? "Your camera is in use elsewhere: voice only."
            : "No camera found: voice only.",
      };
    }
  }
  let stream: MediaStream;
  try {
    stream = await md.getUserMedia({ audio });
  } catch (e) {
    throw mediaFailure(e);
  }
  const [a] = stream.getAudioTracks();
  if (!a) throw new MediaRefused("no-device", "no audio track");
  return { stream, audio: a };
}

/** A camera track alone (camera turned on mid-call, or another camera chosen). */
export async function openCamera(deviceId?: string): Promise<MediaStreamTrack> {
  try {
    const s = await navigator.mediaDevices.getUserMedia({
      video: deviceId ? { deviceId: { exact: deviceId } } : true,
    });
    const [v] = s.getVideoTracks();
    if (!v) throw new MediaRefused("no-device", "no video track");
    return v;
  } catch (e) {
    throw e instanceof MediaRefused ? e : mediaFailure(e);
  }
}

/** A microphone track alone (another microphone chosen). */
export async function openMicrophone(deviceId: string): Promise<MediaStreamTrack> {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId } } });
    const [a] = s.getAudioTracks();
    if (!a) throw new MediaRefused("no-device", "no audio track");
    return a;
  } catch (e) {
    throw e instanceof MediaRefused ? e : mediaFailure(e);
  }
}
