/**
 * What the UI sees of calls (web/src/engine/api.ts `ChatEngine.calls`; docs/protocol/calls.md):
 * one call at a time, its phase and media state as `CallView` in `call` events, and the controls.
 */
/** api.ts `ContactId` (lowercase hex of the identity key); api.ts imports this file. */
type ContactId = string;

/**
 * calling → ringing → connecting → active ⇄ reconnecting → ended (the caller);
 * incoming → connecting → active ⇄ reconnecting → ended (the callee). Any phase can end.
 */
export type CallPhase =
  | "calling"
  | "ringing"
  | "incoming"
  | "connecting"
  | "active"
  | "reconnecting"
  | "ended";

/** Why a call ended, from this side's point of view; `CallView.ended.message` says it in words. */
export type CallEndKind =
  | "hangup" // one side hung up an answered call
  | "cancelled" // we gave up before an answer
  | "missed" // an incoming call we did not answer
  | "declined" // one side said no
  | "busy" // the contact is in another call
  | "no-answer" // the contact did not answer in time
  | "offline" // no session to the contact: the call cannot ring
  | "blocked" // the contact is Rejected, waits on an identity decision, or is a request
  | "permission" // microphone/camera permission denied here
  | "no-device" // no microphone here
  | "device-busy" // the microphone is in use elsewhere
  | "unavailable" // the contact's microphone/camera is not available
  | "fingerprint" // the media connection's DTLS fingerprint is not the one sent in the session
  | "refused" // the contact's app refused our call (their fingerprint check, a bad offer)
  | "failed"; // the media connection could not be set up, or was lost for good

export interface CallView {
  /** Hex of the 16-byte call id. */
  id: string;
  contactId: ContactId;
  /** "out": we called. */
  direction: "out" | "in";
  /** The call was placed as a video call. */
  video: boolean;
  phase: CallPhase;
  micOn: boolean;
  cameraOn: boolean;
  sharingScreen: boolean;
  /** What the contact last said of its own microphone and video (`call.media`). */
  remoteMicOn: boolean;
  remoteVideoOn: boolean;
  /** When the media connection first came up (ms since epoch). */
  connectedAt?: number;
  /** Set once `phase === "ended"`. */
  ended?: { kind: CallEndKind; message: string };
  /** A problem that does not end the call ("No camera found: voice only"). */
  note?: string;
}

/** A camera or microphone (or, for `audiooutput`, a speaker the UI sets with `setSinkId`). */
export interface CallDevice {
  kind: "audioinput" | "videoinput" | "audiooutput";
  deviceId: string;
  label: string;
}

export interface CallControls {
  /** The call in progress, or the last one if it just ended; undefined before any call. */
  current(): CallView | undefined;
  /** Call a contact; progress and failures arrive as `call` events (never throws). */
  start(contactId: ContactId, options: { video: boolean }): void;
  /** Answer the incoming call (`video`: with the camera on). */
  accept(callId: string, options?: { video?: boolean }): void;
  /** Say no to the incoming call. */
  decline(callId: string): void;
  /** End (or cancel) the call. */
  hangUp(callId: string): void;
  setMic(on: boolean): void;
  setCamera(on: boolean): Promise<void>;
  shareScreen(on: boolean): Promise<void>;
  /** Microphones, cameras and speakers (labels once a permission was given). */
  devices(): Promise<CallDevice[]>;
  /** Switch the microphone or camera in use, mid-call. */
  useDevice(kind: "audioinput" | "videoinput", deviceId: string): Promise<void>;
  /** The media to show: ours (preview) and the contact's. */
  streams(): { local?: MediaStream; remote?: MediaStream };
}
