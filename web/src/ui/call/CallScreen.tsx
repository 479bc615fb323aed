/**
 * The call screens (docs/user-guide.md, "Calls"), over whatever screen is open: the incoming call
 * (Accept / Decline), the call in progress (the contact's video or name, our preview, and the
 * controls: microphone, camera, screen, devices, hang up), and why a call ended. The call's state
 * comes from the engine's `call` events (app/calls.ts); the keyboard focus moves to each new
 * screen's main button, and phases are announced.
 */
import { createEffect, createSignal, For, Match, on, onCleanup, Show, Switch } from "solid-js";
import { Portal } from "solid-js/web";
import {
  acceptCall,
  callDevices,
  callStreams,
  createCallModel,
  declineCall,
  hangUp,
  setCamera,
  setMic,
  shareScreen,
  useCallDevice,
} from "../../app/calls.ts";
import type { AppModel } from "../../app/model.ts";
import { offerVoiceNote } from "../../app/voice-notes.ts";
import type { CallDevice, CallView } from "../../engine/calls/types.ts";
import { durationLabel } from "../../engine/calls/words.ts";
import { endedSlot } from "./ended-slot.ts";

const PHASE_LABEL: Record<CallView["phase"], string> = {
  calling: "Calling…",
  ringing: "Ringing…",
  incoming: "Incoming call",
  connecting: "Connecting…",
  active: "Connected",
  reconnecting: "Reconnecting… the network dropped; the call resumes when it is back.",
  ended: "Call ended",
};

export function CallScreen(props: { app: AppModel }) {
  const app = props.app;
  const model = createCallModel(app);
  onCleanup(model.dispose);
  const name = (c: CallView) => app.contact(c.contactId)?.record.username ?? "Your contact";
  const call = () => model.call() as CallView;
  const phase = () => model.call()?.phase;
  return (
    <Switch>
      <Match when={phase() === "ended"}>
        {/* Under the chat header when the chat with this contact is open (ui/call/ended-slot.ts). */}
        <Show
          when={endedSlot()?.contactId === call().contactId && endedSlot()}
          fallback={<Ended app={app} call={call()} name={name(call())} onClose={model.dismiss} />}
        >
          {(slot) => (
            <Portal mount={slot().el}>
              <Ended app={app} call={call()} name={name(call())} onClose={model.dismiss} />
            </Portal>
          )}
        </Show>
      </Match>
      <Match when={phase() === "incoming"}>
        <Incoming app={app} call={call()} name={name(call())} />
      </Match>
      <Match when={phase() !== undefined}>
        <InCall app={app} call={model.call} name={name(call())} />
      </Match>
    </Switch>
  );
}

function Incoming(props: { app: AppModel; call: CallView; name: string }) {
  let accept!: HTMLButtonElement;
  queueMicrotask(() => accept?.focus());
  const kind = () => (props.call.video ? "video call" : "voice call");
  return (
    <div
      class="call-screen incoming"
      role="alertdialog"
      aria-modal="true"
      aria-labelledby="call-title"
      aria-describedby="call-kind"
      data-testid="call-incoming"
    >
      <h2 id="call-title">{props.name} is calling</h2>
      <p id="call-kind">Incoming {kind()} · end-to-end encrypted</p>
      <div class="call-actions">
        <Show when={props.call.video}>
          <button
            type="button"
            class="primary"
            data-testid="call-accept-video"
            onClick={() => acceptCall(props.app, props.call.id, true)}
          >
            Accept with video
          </button>
        </Show>
        <button
          type="button"
          class={props.call.video ? "" : "primary"}
          data-testid="call-accept"
          ref={accept}
          onClick={() => acceptCall(props.app, props.call.id, false)}
        >
          {props.call.video ? "Accept, voice only" : "Accept"}
        </button>
        <button
          type="button"
          class="danger"
          data-testid="call-decline"
          onClick={() => declineCall(props.app, props.call.id)}
        >
          Decline
        </button>
      </div>
    </div>
  );
}

function InCall(props: { app: AppModel; call: () => CallView | undefined; name: string }) {
  const app = props.app;
  const c = () => props.call() as CallView;
  const [now, setNow] = createSignal(Date.now());
  const tick = setInterval(() => setNow(Date.now()), 1000);
  onCleanup(() => clearInterval(tick));
  let remote!: HTMLVideoElement;
  let local!: HTMLVideoElement;
  let hang!: HTMLButtonElement;
  queueMicrotask(() => hang?.focus());

  // The streams change as tracks arrive and devices switch: attach whatever the engine has now.
  createEffect(
    on(props.call, () => {
      const s = callStreams(app);
      if (remote && s.remote && remote.srcObject !== s.remote) remote.srcObject = s.remote;
      if (local && s.local && local.srcObject !== s.local) local.srcObject = s.local;
    }),
  );

  const status = () => {
    const call = c();
    if (call.phase === "active" && call.connectedAt) return durationLabel(now() - call.connectedAt);
    return PHASE_LABEL[call.phase];
  };
  const showVideo = () => c().remoteVideoOn;

  return (
    <div
      class="call-screen"
      role="dialog"
      aria-modal="true"
      aria-labelledby="call-title"
      data-testid="call-screen"
      data-phase={c().phase}
    >
      <h2 id="call-title">{props.name}</h2>
      <p class="call-status" role="status" data-testid="call-status">
        {status()}
      </p>
      <Show when={c().note}>
        <p class="call-note" data-testid="call-note">
          {c().note}
        </p>
      </Show>
      <div class="call-media">
        {/* biome-ignore lint/a11y/useMediaCaption: a live call has no caption track to give */}
        <video
          ref={remote}
          class="remote"
          classList={{ hidden: !showVideo() }}
          autoplay
          playsinline
          data-testid="call-remote"
          aria-label={`${props.name}'s video`}
        />
        <video
          ref={local}
          class="local"
          classList={{ hidden: !c().cameraOn && !c().sharingScreen }}
          autoplay
          playsinline
          muted
          data-testid="call-local"
          aria-label="Your video"
        />
      </div>
      <Show when={!c().remoteMicOn}>
        <p class="call-note" data-testid="call-remote-muted">
          {props.name} muted their microphone.
        </p>
      </Show>
      <div class="call-actions" role="toolbar" aria-label="Call controls">
        <button
          type="button"
          aria-pressed={!c().micOn}
          data-testid="call-mute"
          onClick={() => setMic(app, !c().micOn)}
        >
          {c().micOn ? "Mute" : "Unmute"}
        </button>
        <button
          type="button"
          aria-pressed={c().cameraOn}
          data-testid="call-camera"
          onClick={() => void setCamera(app, !c().cameraOn)}
        >
          {c().cameraOn ? "Camera off" : "Camera on"}
        </button>
        <Show when={typeof navigator !== "undefined" && "getDisplayMedia" in (navigator.mediaDevices ?? {})}>
          <button
            type="button"
            aria-pressed={c().sharingScreen}
            data-testid="call-share"
            onClick={() => void shareScreen(app, !c().sharingScreen)}
          >
            {c().sharingScreen ? "Stop sharing" : "Share screen"}
          </button>
        </Show>
        <button
          type="button"
          class="danger"
          ref={hang}
          data-testid="call-hangup"
          onClick={() => hangUp(app, c().id)}
        >
          {c().phase === "calling" || c().phase === "ringing" ? "Cancel" : "Hang up"}
        </button>
      </div>
      <Devices app={app} remote={() => remote} />
    </div>
  );
}

/** Microphone, camera and speaker choice; labels appear once a permission was given. */
function Devices(props: { app: AppModel; remote: () => HTMLVideoElement | undefined }) {
  const [list, setList] = createSignal<CallDevice[]>([]);
  const load = () => void callDevices(props.app).then(setList);
  const of = (kind: CallDevice["kind"]) => list().filter((d) => d.kind === kind);
  const speaker = (id: string) => {
    const el = props.remote() as
      | (HTMLVideoElement & { setSinkId?: (id: string) => Promise<void> })
      | undefined;
    void el?.setSinkId?.(id).catch(() => {});
  };
  return (
    <details class="call-devices" onToggle={load}>
      <summary>Devices</summary>
      <label>
        Microphone
        <select
          data-testid="call-mic-select"
          onChange={(e) => void useCallDevice(props.app, "audioinput", e.currentTarget.value)}
        >
          <For each={of("audioinput")}>{(d) => <option value={d.deviceId}>{d.label}</option>}</For>
        </select>
      </label>
      <label>
        Camera
        <select
          data-testid="call-camera-select"
          onChange={(e) => void useCallDevice(props.app, "videoinput", e.currentTarget.value)}
        >
          <For each={of("videoinput")}>{(d) => <option value={d.deviceId}>{d.label}</option>}</For>
        </select>
      </label>
      <Show when={of("audiooutput").length > 0}>
        <label>
          Speaker
          <select data-testid="call-speaker-select" onChange={(e) => speaker(e.currentTarget.value)}>
            <For each={of("audiooutput")}>{(d) => <option value={d.deviceId}>{d.label}</option>}</For>
          </select>
        </label>
      </Show>
    </details>
  );
}

function Ended(props: { app: AppModel; call: CallView; name: string; onClose: () => void }) {
  let close!: HTMLButtonElement;
  queueMicrotask(() => close?.focus());
  return (
    <div class="call-ended card" role="alert" data-testid="call-ended" data-kind={props.call.ended?.kind}>
      <span data-testid="call-ended-text">{props.call.ended?.message ?? "Call ended."}</span>{" "}
      <Show when={["busy", "offline", "no-answer", "unavailable"].includes(props.call.ended?.kind ?? "")}>
        <button
          type="button"
          class="primary"
          data-testid="call-voice-note"
          onClick={() => {
            offerVoiceNote(props.call.contactId);
            props.onClose();
          }}
        >
          Send a voice note
        </button>{" "}
      </Show>
      <button type="button" class="link" ref={close} data-testid="call-close" onClick={props.onClose}>
        Close
      </button>
    </div>
  );
}
