/**
 * The app side of room calls (docs/user-guide.md, "Calls in rooms"): one room's call as a Solid
 * signal kept live by the engine's room-call updates, re-attached whenever the engine restarts,
 * and the actions the room screen takes. Screens go through here, never to the engine directly.
 */
import { type Accessor, createEffect, createSignal, onCleanup } from "solid-js";
import type { RoomCallControls, RoomCallView } from "../engine/calls/types.ts";
import type { AppModel } from "./model.ts";

const controls = (app: AppModel): RoomCallControls | undefined => app.engine?.roomCalls;

/** The room's call, live (call it inside a component: it cleans up with it). */
export function roomCallOf(app: AppModel, roomId: () => string): Accessor<RoomCallView | undefined> {
  const [view, setView] = createSignal<RoomCallView | undefined>(undefined, { equals: false });
  createEffect(() => {
    app.service(); // a new engine: attach again
    const c = controls(app);
    const id = roomId();
    if (!c) return setView(undefined);
    setView(c.view(id));
    const off = c.subscribe((changed) => {
      if (changed === id) setView(c.view(id));
    });
    onCleanup(off);
  });
  return view;
}

export const joinRoomCall = (app: AppModel, roomId: string) => controls(app)?.join(roomId);
export const leaveRoomCall = (app: AppModel, roomId: string) => controls(app)?.leave(roomId);
export const setRoomCallMic = (app: AppModel, roomId: string, on: boolean) =>
  controls(app)?.setMic(roomId, on);
export const roomCallStreams = (app: AppModel, roomId: string) => controls(app)?.streams(roomId) ?? [];
