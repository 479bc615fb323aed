/**
 * The app side of calls (docs/user-guide.md, "Calls"): the call in progress as a Solid signal kept
 * live by the engine's `call` events, and the actions the call screens take. Screens go through
 * here, never to the engine directly (like app/conversation.ts); the engine may restart
 * underneath, and the offline stand-in of a second tab has no calls.
 */
import { type Accessor, createSignal } from "solid-js";
import type { ContactId } from "../engine/api.ts";
import type { CallControls, CallDevice, CallView } from "../engine/calls/types.ts";
import type { AppModel } from "./model.ts";

export interface CallModel {
  /** The call to show: in progress, or just ended (until dismissed). */
  readonly call: Accessor<CallView | undefined>;
  dismiss(): void;
  dispose(): void;
}

export function createCallModel(app: AppModel): CallModel {
  const [call, setCall] = createSignal<CallView | undefined>(undefined, { equals: false });
  const off = app.onEvent((e) => {
    if (e.type === "call") setCall(e.call);
  });
  return {
    call,
    dismiss: () => setCall((c) => (c?.phase === "ended" ? undefined : c)),
    dispose: off,
  };
}

const controls = (app: AppModel): CallControls | undefined => app.engine?.calls;

/** Why calling is not possible right now, or undefined when it is. */
export function cannotCall(app: AppModel): string | undefined {
  if (!app.engine) return "Loft is still starting. Try again in a moment.";
  // Another tab runs the engine, or it could not start: calls can't ring from here.
  const problem = app.engineProblem();
  if (problem) return `Calls can't start here: ${problem}`;
  if (!controls(app) || typeof RTCPeerConnection === "undefined")
    return "Calls are not available in this tab (Loft runs in another tab, or this browser has no WebRTC).";
  return undefined;
}

export function startCall(app: AppModel, contactId: ContactId, video: boolean): void {
  controls(app)?.start(contactId, { video });
}
export const acceptCall = (app: AppModel, id: string, video: boolean) => controls(app)?.accept(id, { video });
export const declineCall = (app: AppModel, id: string) => controls(app)?.decline(id);
export const hangUp = (app: AppModel, id: string) => controls(app)?.hangUp(id);
export const setMic = (app: AppModel, on: boolean) => controls(app)?.setMic(on);
export const setCamera = (app: AppModel, on: boolean) => controls(app)?.setCamera(on) ?? Promise.resolve();
export const shareScreen = (app: AppModel, on: boolean) =>
  controls(app)?.shareScreen(on) ?? Promise.resolve();
export const callStreams = (app: AppModel) => controls(app)?.streams() ?? {};
export const callDevices = (app: AppModel): Promise<CallDevice[]> =>
  controls(app)?.devices() ?? Promise.resolve([]);
export const useCallDevice = (app: AppModel, kind: "audioinput" | "videoinput", deviceId: string) =>
  controls(app)?.useDevice(kind, deviceId) ?? Promise.resolve();
