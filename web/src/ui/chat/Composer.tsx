/**
 * The composer. Sending never races with typing: on Enter (or the Send button) the text is read
 * from the textarea, handed over and the textarea cleared in the same event handler — no `await`
 * in between — so a key typed right after Enter lands in the empty composer, and a message is
 * handed over exactly once. A character counter appears near the limit; the length error sits
 * next to the composer (docs/user-guide.md "Chatting").
 */
import { createSignal, onCleanup, Show } from "solid-js";
import { draftOf, keepDraft, loadDraft, onDraftReadBack } from "../../app/drafts.ts";
import type { DraftKey } from "../../engine/local-notes.ts";
import { MAX_TEXT_CHARS } from "../../engine/outgoing.ts";

/** The counter shows from this many characters on. */
export const COUNTER_FROM = Math.floor(MAX_TEXT_CHARS * 0.9);

const fmt = (n: number) => n.toLocaleString("en");

export interface ComposerHandle {
  focus(): void;
  /** Put back a text whose hand-over was refused later, before anything typed since. */
  restore(text: string): void;
}

export function Composer(props: {
  /** Why sending is impossible (blocked contact, …): the composer is disabled. */
  disabled: boolean;
  /** Hand the text over; returns an error to show (the text then stays), or undefined. */
  onSend: (text: string) => string | undefined;
  /** An error from outside (a refused hand-over, a failed retry). */
  error: string | undefined;
  onClearError: () => void;
  ref?: (handle: ComposerHandle) => void;
  /** The conversation this composer writes to: its unsent text survives leaving the screen and reloads (app/drafts.ts). */
  draftKey?: DraftKey;
}) {
  let area!: HTMLTextAreaElement;
  const [length, setLength] = createSignal(0);
  const [ownError, setOwnError] = createSignal<string>();
  const error = () => ownError() ?? props.error;

  const clearErrors = () => {
    if (ownError()) setOwnError(undefined);
    if (props.error) props.onClearError();
  };

  const submit = () => {
    // Read, hand over and clear in one synchronous step.
    const text = area.value.trim();
    if (!text || props.disabled) return;
    const refused = props.onSend(text);
    if (refused) {
      setOwnError(refused);
      return;
    }
    area.value = "";
    setLength(0);
    saveDraft();
    clearErrors();
    // Sent with the Send button (a tap, or Enter/Space on it): the button is disabled now that the
    // composer is empty, and a disabled button drops the focus to the page — the keyboard user
    // would start over from the top, the phone's keyboard would close. The next words go here.
    if (document.activeElement !== area) area.focus({ preventScroll: true });
  };
  const saveDraft = () => {
    if (props.draftKey) keepDraft(props.draftKey, area.value);
  };
  // The stored draft read back after a failed import (app/drafts.ts `readBack`), with what was
  // typed here meanwhile after it: shown, so the next keystroke keeps both.
  onCleanup(
    onDraftReadBack((key) => {
      if (key !== props.draftKey || !area) return;
      area.value = draftOf(key);
      setLength(area.value.length);
    }),
  );

  props.ref?.({
    focus: () => area.focus({ preventScroll: true }),
    restore: (text) => {
      area.value = area.value ? `${text}\n${area.value}` : text;
      setLength(area.value.length);
      saveDraft();
    },
  });

  const over = () => length() > MAX_TEXT_CHARS;
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label for="composer" class="sr-only">
        Message
      </label>
      <div class="field">
        <textarea
          id="composer"
          ref={(el) => {
            area = el;
            // The draft left here earlier (app/drafts.ts), before the first input event; after a
            // reload memory is empty and the stored one comes a moment later — unless the person
            // has typed meanwhile (what they typed wins).
            const key = props.draftKey;
            if (key) {
              el.value = draftOf(key);
              setLength(el.value.length);
              void loadDraft(key).then((text) => {
                if (text && el.value === "" && el.isConnected) {
                  el.value = text;
                  setLength(text.length);
                }
              });
            }
          }}
          rows={2}
          data-testid="composer-input"
          disabled={props.disabled}
          aria-describedby="composer-counter composer-error"
          aria-invalid={over() || undefined}
          onInput={(e) => {
            setLength(e.currentTarget.value.length);
            saveDraft();
            if (ownError() && e.currentTarget.value.length <= MAX_TEXT_CHARS) setOwnError(undefined);
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              submit();
            }
          }}
          placeholder="Write a message"
        />
        <p id="composer-counter" class="counter" classList={{ over: over() }} data-testid="char-counter">
          <Show when={length() >= COUNTER_FROM}>
            {fmt(length())} / {fmt(MAX_TEXT_CHARS)}
            <Show when={over()}> — {fmt(length() - MAX_TEXT_CHARS)} too many</Show>
          </Show>
        </p>
      </div>
      <button
        type="submit"
        class="primary"
        data-testid="send-button"
        disabled={props.disabled || length() === 0}
      >
        Send
      </button>
      <p id="composer-error" class="error" role="alert" data-testid="send-error" hidden={!error()}>
        {error()}
      </p>
    </form>
  );
}
