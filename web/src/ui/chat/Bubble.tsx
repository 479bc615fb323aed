/**
 * One message: its text (links as `<a>` nodes built from linkify.ts parts, never HTML), a "Read
 * more" fold for very long texts, and the meta line (time; for own messages the state in words
 * and, when not sent, the reason and Retry).
 */
import { createMemo, createSignal, For, Show } from "solid-js";
import type { MessageId } from "../../engine/api.ts";
import { clockLabel, outgoingStateLabel } from "../format.ts";
import { linkify } from "./linkify.ts";
import type { Entry } from "./timeline.ts";

/** Texts longer than this (characters or lines) are folded behind "Read more". */
export const FOLD_CHARS = 1200;
export const FOLD_LINES = 18;
/** What a folded text shows: about this many characters, cut at a word or line break. */
const EXCERPT_CHARS = 700;
const EXCERPT_LINES = 10;

export function isLong(text: string): boolean {
  if (text.length > FOLD_CHARS) return true;
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1 && lines <= FOLD_LINES; i = text.indexOf("\n", i + 1)) lines++;
  return lines > FOLD_LINES;
}

/** The start of a long text, cut at a line break or space near the excerpt length. */
export function excerpt(text: string): string {
  let end = Math.min(text.length, EXCERPT_CHARS);
  let nl = -1;
  for (let i = 0; i < EXCERPT_LINES; i++) {
    nl = text.indexOf("\n", nl + 1);
    if (nl === -1 || nl >= end) break;
    if (i === EXCERPT_LINES - 1) end = nl;
  }
  const space = text.lastIndexOf(" ", end);
  if (end < text.length && space > end * 0.6) end = space;
  return `${text.slice(0, end).trimEnd()}…`;
}

export function Bubble(props: { m: Entry; contactOnline: () => boolean; onRetry: (id: MessageId) => void }) {
  const [open, setOpen] = createSignal(false);
  const long = createMemo(() => isLong(props.m.text));
  const parts = createMemo(() => linkify(long() && !open() ? excerpt(props.m.text) : props.m.text));
  const out = () => props.m.direction === "out";
  return (
    // biome-ignore lint/a11y/useSemanticElements: a listitem inside a chunk <div> (MessageList.tsx), not an <li>
    <div
      role="listitem"
      class={`msg ${props.m.direction}`}
      data-testid="message"
      data-direction={props.m.direction}
      data-state={props.m.stored ? props.m.state : "sending"}
      data-id={props.m.id}
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
        <Show when={out()}>
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
