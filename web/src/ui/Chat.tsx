/**
 * Chat with one contact: history from IndexedDB (survives reloads), kept live with engine
 * events; message states in words; a composer blocked while the contact is Rejected or has a
 * pending identity change.
 */
import { createEffect, createResource, createSignal, For, on, onCleanup, onMount, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { EngineRefusal, type StoredMessage } from "../engine/api.ts";
import { presenceLabel, STATE_LABEL, TRUST_LABEL, timeLabel } from "./format.ts";
import { Back } from "./Home.tsx";

const HISTORY_LIMIT = 500;

export function Chat(props: { app: AppModel; id: string }) {
  const app = props.app;
  const view = () => app.contact(props.id);
  const [messages, { refetch }] = createResource(
    () => props.id,
    (id) => app.storage.listMessages(id, HISTORY_LIMIT),
    { initialValue: [] as StoredMessage[] },
  );
  const [text, setText] = createSignal("");
  const [error, setError] = createSignal<string>();
  let list!: HTMLOListElement;

  onMount(() => {
    const off = app.onEvent((e) => {
      if (
        (e.type === "message" && e.message.contactId === props.id) ||
        (e.type === "message-state" && e.contactId === props.id)
      )
        void refetch();
    });
    onCleanup(off);
    app.engine?.connect(props.id);
  });
  createEffect(
    on(messages, () => {
      queueMicrotask(() => list?.lastElementChild?.scrollIntoView({ block: "end" }));
    }),
  );

  const blocked = () => {
    const v = view();
    if (!v) return "This contact no longer exists.";
    if (v.record.trust === "rejected")
      return `You blocked ${v.record.username}. Unblock them to send messages.`;
    if (v.record.pending) return `${v.record.username}'s identity changed. Review the change before sending.`;
    if (v.record.request)
      return `${v.record.username} wants to talk to you. Accept the request on the home screen to reply.`;
    return undefined;
  };

  const send = async (e: Event) => {
    e.preventDefault();
    const t = text().trim();
    if (!t || blocked() || !app.engine) return;
    setError(undefined);
    try {
      await app.engine.send(props.id, t);
      setText("");
      await refetch();
    } catch (x) {
      setError(x instanceof EngineRefusal ? x.reason.message : `Could not send: ${(x as Error).message}`);
    }
  };

  const retry = async (id: string) => {
    try {
      await app.engine?.retry(id);
      await refetch();
    } catch (x) {
      setError((x as Error).message);
    }
  };

  return (
    <main class="screen chat" data-testid="chat">
      <header class="bar">
        <Back app={app} />
        <Show when={view()}>
          <button
            type="button"
            class="title"
            data-testid="chat-contact"
            onClick={() => app.go({ name: "contact", id: props.id })}
          >
            <strong>{view()!.record.username}</strong>
            <span class="sub">
              <span data-testid="chat-presence">{presenceLabel(app.presenceOf(props.id))}</span> ·{" "}
              <span class={`trust ${view()!.record.trust}`}>{TRUST_LABEL[view()!.record.trust]}</span>
            </span>
          </button>
        </Show>
      </header>
      <Show when={app.presenceOf(props.id).status !== "online" && app.presenceOf(props.id).lastError}>
        {(e) => (
          <p class="status" role="status" data-testid="chat-problem" data-kind={e().kind}>
            {e().message}
          </p>
        )}
      </Show>
      <ol class="messages" data-testid="message-list" ref={list} aria-live="polite">
        <For each={messages()}>
          {(m) => (
            <li
              class={`msg ${m.direction}`}
              data-testid="message"
              data-direction={m.direction}
              data-state={m.state}
            >
              <p class="text" data-testid="message-text">
                {m.text}
              </p>
              <p class="meta">
                <time>{timeLabel(m.at)}</time>
                <Show when={m.direction === "out"}>
                  {" · "}
                  <span data-testid="message-state">{STATE_LABEL[m.state]}</span>
                  <Show when={m.state === "failed"}>
                    <span class="error"> — {m.failure?.message}</span>{" "}
                    <button type="button" class="link" data-testid="retry-button" onClick={() => retry(m.id)}>
                      Retry
                    </button>
                  </Show>
                </Show>
              </p>
            </li>
          )}
        </For>
      </ol>
      <Show when={blocked()}>
        <p class="card warning" role="alert" data-testid="send-blocked">
          {blocked()}{" "}
          <button type="button" class="link" onClick={() => app.go({ name: "contact", id: props.id })}>
            Open contact
          </button>
        </p>
      </Show>
      <Show when={error()}>
        <p class="error" role="alert" data-testid="send-error">
          {error()}
        </p>
      </Show>
      <form class="composer" onSubmit={send}>
        <label for="composer" class="sr-only">
          Message
        </label>
        <textarea
          id="composer"
          rows={2}
          data-testid="composer-input"
          value={text()}
          disabled={!!blocked()}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              e.currentTarget.form?.requestSubmit();
            }
          }}
          placeholder="Write a message"
        />
        <button
          type="submit"
          class="primary"
          data-testid="send-button"
          disabled={!!blocked() || !text().trim()}
        >
          Send
        </button>
      </form>
    </main>
  );
}
