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

/** One other member in a room's call (docs/protocol/calls.md §7). */
export interface RoomCallMemberView {
  /** The member's identity key, hex (the room's member list has its name). */
  key: string;
  /** What the member last said of its microphone (`call.room.in`). */
  micOn: boolean;
  /** The media connection with this member is up and its DTLS fingerprint checked. */
  connected: boolean;
  /** The loudest voice in the call right now (active speaker). */
  speaking: boolean;
}

/** A room's voice call as this device sees it. */
export interface RoomCallView {
  roomId: string;
  /** We are in the call. */
  joined: boolean;
  micOn: boolean;
  /** We are the active speaker. */
  speaking: boolean;
  /** The others in the call (present members who said they are in it), in key order. */
  members: RoomCallMemberView[];
  /** The most people a room call holds (a full mesh: everyone sends to everyone). */
  limit: number;
  /** Why joining did not work, or a problem that does not end the call, in words. */
  note?: string;
}

export interface RoomCallControls {
  view(roomId: string): RoomCallView;
  /** Join (or start) the room's voice call; problems arrive as `note` (never throws). */
  join(roomId: string): void;
  leave(roomId: string): void;
  setMic(roomId: string, on: boolean): void;
  /** The members' audio, to play. */
  streams(roomId: string): { key: string; stream: MediaStream }[];
  /** Called with a room id whenever that room's call view changes. */
  subscribe(listener: (roomId: string) => void): () => void;
}
