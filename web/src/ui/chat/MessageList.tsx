/**
 * The list of messages of one chat, rendered from a Timeline (timeline.ts) chunk by chunk: one
 * row per id, a date separator above the first message of each day. A `role="list"` of
 * `listitem`s, with a plain `div` per chunk in between (generic, ignored by assistive tech). Not a live region — new incoming messages are
 * announced by the screen's own polite status (Chat.tsx), so a screen reader hears each new
 * message once and never the whole list again.
 */
import { For, type JSX, Show } from "solid-js";
import type { MessageId } from "../../engine/api.ts";
import { dayLabel, isoDay } from "../format.ts";
import { Bubble } from "./Bubble.tsx";
import type { Timeline } from "./timeline.ts";

export function MessageList(props: {
  timeline: Timeline;
  label: string;
  contactOnline: () => boolean;
  onRetry: (id: MessageId) => void;
  /** The row of a file transfer placed in the timeline (`Entry.file`): a `listitem`. */
  file?: (key: string) => JSX.Element;
  ref?: (el: HTMLDivElement) => void;
}) {
  const tl = props.timeline;
  return (
    // biome-ignore lint/a11y/useSemanticElements: <ol>/<li> can't have the chunk <div>s (timeline.ts) between them
    <div role="list" class="messages" data-testid="message-list" aria-label={props.label} ref={props.ref}>
      <For each={tl.chunks()}>
        {(chunk) => (
          <div class="chunk">
            <For each={chunk.ids()}>
              {(id) => {
                const m = tl.byId[id]!;
                return (
                  <>
                    <Show when={m.dayStart}>
                      {/* biome-ignore lint/a11y/useSemanticElements: inside a chunk <div>, see above */}
                      <div role="listitem" class="day" data-testid="day-separator">
                        <time datetime={isoDay(m.at)}>{dayLabel(m.at)}</time>
                      </div>
                    </Show>
                    <Show
                      when={m.file}
                      fallback={<Bubble m={m} contactOnline={props.contactOnline} onRetry={props.onRetry} />}
                    >
                      {(key) => props.file?.(key())}
                    </Show>
                  </>
                );
              }}
            </For>
          </div>
        )}
      </For>
    </div>
  );
}
