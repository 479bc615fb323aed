/**
 * One message: its text (links as `<a>` nodes built from linkify.ts parts, never HTML), a "Read
 * more" fold for very long texts, and the meta line (time; for own messages the state in words
 * and, when not sent, the reason and Retry).
 */
import { createMemo, createSignal, For, Show } from "solid-js";
import type { MessageId } from "../../engine/api.ts";
import { clockLabel, outgoingStateLabel } from "../format.ts";
import { excerpt, isLong } from "./fold.ts";
import { linkify } from "./linkify.ts";
import type { Entry } from "./timeline.ts";

export function Bubble(props: { m: Entry; contactOnline: () => boolean; onRetry: (id: MessageId) => void }) {
  const [open, setOpen] = createSignal(false);
  const long = createMemo(() => isLong(props.m.text));
  const parts = createMemo(() => linkify(long() && !open() ? excerpt(props.m.text) : props.m.text));
  const out = () => props.m.direction === "out";
  return (
    // biome-ignore lint/a11y/useSemanticElements: a listitem inside a chunk <div> (MessageList.tsx), not an <li>
    <div
      role="listitem"
      class={`msg ${props.m.direction}${props.m.call ? " call" : ""}`}
      data-testid="message"
      data-direction={props.m.direction}
      data-state={props.m.stored ? props.m.state : "sending"}
      data-id={props.m.id}
      data-call={props.m.call?.outcome}
    >
      <p class="text" data-testid="message-text">
        <For each={parts()}>
          {(p) =>
            "href" in p ? (
              <a href={p.href} target="_blank" rel="noopener noreferrer">
                {p.text}
              </a>
            ) : (
              p.text
            )
          }
        </For>
      </p>
      <Show when={long()}>
        <button
          type="button"
          class="link more"
          aria-expanded={open()}
          data-testid="read-more"
          onClick={() => setOpen(!open())}
        >
          {open() ? "Show less" : "Read more"}
        </button>
      </Show>
      <p class="meta">
        <time datetime={new Date(props.m.at).toISOString()}>{clockLabel(props.m.at)}</time>
        {/* A call in the history has no delivery state (calls/words.ts says how it went). */}
        <Show when={out() && !props.m.call}>
          {" · "}
          <span data-testid="message-state">
            {outgoingStateLabel(props.m.state, props.m.stored, props.contactOnline())}
          </span>
          <Show when={props.m.state === "failed"}>
            <span class="failure"> — {props.m.failure?.message}</span>{" "}
            <button
              type="button"
              class="link"
              data-testid="retry-button"
              onClick={() => props.onRetry(props.m.id)}
            >
              Retry
            </button>
          </Show>
        </Show>
      </p>
    </div>
  );
}
