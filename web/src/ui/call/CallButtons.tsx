/**
 * Voice and video call buttons in the chat header (docs/user-guide.md, "Calls"). Calling is
 * refused here, in words, when it cannot work (a blocked contact, no engine in this tab); whether
 * the contact can take it is the engine's answer, on the call screen.
 */
import { createSignal, Show } from "solid-js";
import { cannotCall, startCall } from "../../app/calls.ts";
import type { AppModel } from "../../app/model.ts";
import { VoiceNoteButton } from "./VoiceNote.tsx";

export function CallButtons(props: { app: AppModel; id: string; name: string; blocked: boolean }) {
  const [problem, setProblem] = createSignal<string>();
  const call = (video: boolean) => {
    const why = props.blocked ? `You can't call ${props.name} now.` : cannotCall(props.app);
    setProblem(why);
    if (!why) startCall(props.app, props.id, video);
  };
  return (
    <div class="call-buttons">
      <button
        type="button"
        class="icon"
        data-testid="call-voice"
        aria-label={`Voice call ${props.name}`}
        title="Voice call"
        onClick={() => call(false)}
      >
        📞
      </button>
      <button
        type="button"
        class="icon"
        data-testid="call-video"
        aria-label={`Video call ${props.name}`}
        title="Video call"
        onClick={() => call(true)}
      >
        🎥
      </button>
      <VoiceNoteButton app={props.app} id={props.id} name={props.name} />
      <Show when={problem()}>
        <span class="call-problem" role="alert" data-testid="call-problem">
          {problem()}
        </span>
      </Show>
    </div>
  );
}
