/**
 * A room's voice call on the room screen (docs/user-guide.md, "Calls in rooms"): who is in it,
 * each one's microphone, the active speaker highlighted, Join / Mute / Leave, and — beyond the
 * mesh's size — why one cannot join. The members' audio plays through hidden audio elements.
 */
import { For, Show } from "solid-js";
import type { AppModel } from "../../app/model.ts";
import {
  joinRoomCall,
  leaveRoomCall,
  roomCallOf,
  roomCallStreams,
  setRoomCallMic,
} from "../../app/room-calls.ts";
import { LiveRegion } from "../LiveRegion.tsx";

export function RoomCallPanel(props: { app: AppModel; roomId: string; nameOf: (key: string) => string }) {
  const view = roomCallOf(props.app, () => props.roomId);
  const full = () => {
    const v = view();
    return v !== undefined && !v.joined && v.members.length + 1 > v.limit;
  };
  const streams = () => (view()?.joined ? roomCallStreams(props.app, props.roomId) : []);
  return (
    <Show when={view()}>
      {(v) => (
        <section
          class="room-call card"
          aria-labelledby="room-call-heading"
          data-testid="room-call"
          data-joined={v().joined}
        >
          <h2 id="room-call-heading">Voice call</h2>
          <Show when={v().joined || v().members.length > 0}>
            <ul class="room-call-members" aria-label="In the call">
              <Show when={v().joined}>
                <li
                  class={`room-call-member me ${v().speaking ? "speaking" : ""}`}
                  data-testid="room-call-member"
                  data-key="self"
                  data-mic={v().micOn}
                  data-speaking={v().speaking}
                >
                  You{v().micOn ? "" : " (muted)"}
                  <Show when={v().speaking}>
                    <span class="sr-only"> (speaking)</span>
                  </Show>
                </li>
              </Show>
              <For each={v().members}>
                {(m) => (
                  <li
                    class={`room-call-member ${m.speaking ? "speaking" : ""}`}
                    data-testid="room-call-member"
                    data-key={m.key}
                    data-mic={m.micOn}
                    data-connected={m.connected}
                    data-speaking={m.speaking}
                  >
                    {props.nameOf(m.key)}
                    {m.micOn ? "" : " (muted)"}
                    <Show when={v().joined && !m.connected}>
                      <span class="muted"> connecting…</span>
                    </Show>
                    <Show when={m.speaking}>
                      <span class="sr-only"> (speaking)</span>
                    </Show>
                  </li>
                )}
              </For>
            </ul>
          </Show>
          {/* Drawn with the panel, empty: what comes into it is announced (LiveRegion.tsx). */}
          <LiveRegion testid="room-call-news">
            <Show when={full()}>
              <p class="warning" data-testid="room-call-full">
                This call is full: {v().members.length} people are in it, and a room call holds at most{" "}
                {v().limit}, because everyone sends their voice to everyone. Try again when someone leaves.
              </p>
            </Show>
            <Show when={v().note}>
              <p class="warning" data-testid="room-call-note">
                {v().note}
              </p>
            </Show>
          </LiveRegion>
          <div class="row">
            <Show
              when={v().joined}
              fallback={
                <button
                  type="button"
                  class="primary"
                  data-testid="room-call-join"
                  disabled={full()}
                  onClick={() => joinRoomCall(props.app, props.roomId)}
                >
                  {v().members.length > 0
                    ? `Join the call (${v().members.length} in it)`
                    : "Start a voice call"}
                </button>
              }
            >
              <button
                type="button"
                data-testid="room-call-mute"
                aria-pressed={!v().micOn}
                onClick={() => setRoomCallMic(props.app, props.roomId, !v().micOn)}
              >
                {v().micOn ? "Mute" : "Unmute"}
              </button>
              <button
                type="button"
                class="danger"
                data-testid="room-call-leave"
                onClick={() => leaveRoomCall(props.app, props.roomId)}
              >
                Leave call
              </button>
            </Show>
          </div>
          <For each={streams()}>
            {(s) => (
              // biome-ignore lint/a11y/useMediaCaption: a live call has no caption track to give
              <audio
                autoplay
                data-key={s.key}
                ref={(el) => {
                  el.srcObject = s.stream;
                }}
              />
            )}
          </For>
        </section>
      )}
    </Show>
  );
}
