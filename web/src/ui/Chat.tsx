/**
 * Chat with one contact (docs/user-guide.md "Chatting"). History is read from IndexedDB a page at
 * a time (more as the reader scrolls up) into a keyed store (chat/timeline.ts) that engine events
 * update one message at a time — history is never re-read. A message appears the moment it is
 * handed over (`ChatEngine.handOver`), with its final id; the view follows new messages only when
 * the reader is at the bottom, otherwise a "New messages ↓" pill offers the way down. The composer
 * is blocked while the contact is Rejected, has a pending identity change or an open request.
 */
import { createSignal, onCleanup, onMount, Show } from "solid-js";
import { statusOf } from "../app/contact-status.ts";
import {
  connectTo,
  handOver,
  historyPage,
  retryMessage,
  sendProblem,
  storedMessage,
} from "../app/conversation.ts";
import { sendFiles } from "../app/files.ts";
import type { AppModel } from "../app/model.ts";
import {
  type FileTransfer,
  type HandedOver,
  type MessageId,
  SaveDeferred,
  type StoredMessage,
} from "../engine/api.ts";
import { refusalFor } from "../engine/outgoing.ts";
import { Back } from "./Back.tsx";
import { CallButtons } from "./call/CallButtons.tsx";
import { offerEndedSlot } from "./call/ended-slot.ts";
import { AttachFile } from "./chat/AttachFile.tsx";
import { Composer, type ComposerHandle } from "./chat/Composer.tsx";
import { createFiles } from "./chat/Files.tsx";
import { followBottom, isAtBottom, keepPosition, scrollToBottom, scrollTop } from "./chat/follow.ts";
import { MessageList } from "./chat/MessageList.tsx";
import { createTimeline } from "./chat/timeline.ts";
import { TRUST_LABEL } from "./format.ts";

/** Messages read per page of history. */
export const PAGE_SIZE = 60;
/** Load the previous page when the reader is this close to the top (pixels). */
const PAGE_AHEAD_PX = 800;
/** At most this many pages are read at once to fill a tall screen. */
const MAX_FILL_PAGES = 10;
/** What the live region reads of a new message. */
const ANNOUNCE_CHARS = 300;

export function Chat(props: { app: AppModel; id: string }) {
  const app = props.app;
  const view = () => app.contact(props.id);
  const name = () => view()?.record.username ?? "this contact";
  const online = () => app.presenceOf(props.id).status === "online";
  const status = () => statusOf(app, props.id);
  const tl = createTimeline();
  const [error, setError] = createSignal<string>();
  const [unseen, setUnseen] = createSignal(0);
  const [announcement, setAnnouncement] = createSignal("");
  const [loadingOlder, setLoadingOlder] = createSignal(false);
  const [hasOlder, setHasOlder] = createSignal(true);
  let composer: ComposerHandle | undefined;
  let list!: HTMLDivElement;
  let disposed = false;

  /** Why the composer is closed: the engine's rule (`refusalFor`), in this screen's words. */
  const blocked = () => {
    const v = view();
    const refusal = refusalFor(v?.record);
    if (!v || !refusal) return refusal ? "This contact no longer exists." : undefined;
    const name = v.record.username;
    switch (refusal.kind) {
      case "contact-rejected":
        return `You blocked ${name}. Unblock them to send messages.`;
      case "identity-change-pending":
        return `${name}'s identity changed. Review the change before sending.`;
      case "contact-request":
        return `${name} wants to talk to you. Accept the request on the home screen to reply.`;
      default:
        return refusal.message;
    }
  };

  /** A message that is not on screen yet: from an event, or handed over here. */
  function showNew(m: StoredMessage, stored: boolean, own: boolean) {
    const follow = own || isAtBottom();
    if (!tl.insert(m, stored)) return;
    if (follow) scrollToBottom();
    else if (m.direction === "in") setUnseen((n) => n + 1);
    if (m.direction === "in")
      setAnnouncement(
        `${name()}: ${m.text.length > ANNOUNCE_CHARS ? `${m.text.slice(0, ANNOUNCE_CHARS)}…` : m.text}`,
      );
  }

  /**
   * File transfers sit in the timeline by their time, among the messages (chat/timeline.ts
   * `insertFile`), each placed once when first seen; its progress changes its row only (the files
   * model applies events once per animation frame). A file older than the oldest message loaded
   * waits until history reaches its time, so a page of older messages never lands below it.
   */
  const unplaced: FileTransfer[] = [];
  const fits = (t: FileTransfer) => !hasOlder() || t.at >= (tl.oldest()?.at ?? Number.POSITIVE_INFINITY);
  const placeFile = (t: FileTransfer) => {
    if (!fits(t)) return void unplaced.push(t);
    const follow = isAtBottom();
    if (tl.insertFile(t.key, t.at) && follow) scrollToBottom();
  };
  const placeWaiting = () => {
    for (let i = unplaced.length - 1; i >= 0; i--) {
      const t = unplaced[i]!;
      if (!fits(t)) continue;
      unplaced.splice(i, 1);
      tl.insertFile(t.key, t.at);
    }
  };
  const files = createFiles({ app, contactId: props.id, name, onError: setError }, placeFile);

  /** The previous page of history, keeping what the reader sees in place. */
  async function loadOlder(): Promise<void> {
    if (!hasOlder() || loadingOlder()) return;
    setLoadingOlder(true);
    try {
      const oldest = tl.oldest();
      let page = await historyPage(app, props.id, PAGE_SIZE, oldest?.at);
      let fresh = page.filter((m) => !tl.has(m.id));
      // A full page of messages we have (equal times at the boundary): step past that time.
      if (fresh.length === 0 && page.length === PAGE_SIZE && oldest) {
        page = await historyPage(app, props.id, PAGE_SIZE, oldest.at - 1);
        fresh = page.filter((m) => !tl.has(m.id));
      }
      if (disposed) return;
      if (page.length < PAGE_SIZE || fresh.length === 0) setHasOlder(false);
      const insert = () => {
        tl.insertMany(fresh);
        placeWaiting();
      };
      if (fresh.length === 0) return placeWaiting();
      if (tl.size() === 0) {
        insert();
        scrollToBottom();
      } else if (isAtBottom() && scrollTop() === 0) {
        insert(); // nothing to keep in place: a short history on a tall screen
      } else keepPosition(insert);
    } finally {
      setLoadingOlder(false);
    }
  }

  async function fillScreen() {
    for (let i = 0; i < MAX_FILL_PAGES && hasOlder() && !disposed; i++) {
      const s = document.scrollingElement as HTMLElement;
      if (i > 0 && s.scrollHeight > s.clientHeight + PAGE_AHEAD_PX) break;
      await loadOlder();
    }
    scrollToBottom();
  }

  /** A state change for a message we don't show (handed over elsewhere, or not loaded yet). */
  async function fetchUnknown(id: MessageId) {
    const m = await storedMessage(app, id);
    if (!m || m.contactId !== props.id || disposed) return;
    const oldest = tl.oldest();
    if (oldest && m.at < oldest.at) return; // in older history: read when paged in
    if (tl.has(id)) {
      tl.update(id, m.state, m.failure);
      return;
    }
    showNew(m, true, false);
  }

  /** The message whose deferred save the notice is about (`SaveDeferred`). */
  let deferredNotice: MessageId | undefined;
  const send = (text: string): string | undefined => {
    let handed: HandedOver;
    try {
      handed = handOver(app, props.id, text);
    } catch (x) {
      return sendProblem(x);
    }
    setError(undefined);
    showNew(handed.message, false, true);
    handed.stored.catch((x: unknown) => {
      // Not stored now but kept in the outbox journal and stored later (api.ts `SaveDeferred`):
      // the bubble stays and the words are not given back, or they would go twice. The notice
      // goes once the save lands (its state event, below).
      if (x instanceof SaveDeferred) {
        deferredNotice = handed.message.id;
        return setError(sendProblem(x));
      }
      // Refused before it was stored: nothing was sent. Take the bubble back, keep the words.
      tl.remove(handed.message.id);
      composer?.restore(text);
      setError(sendProblem(x));
    });
    return undefined;
  };

  /** Files from the attach button, a drop on the chat or a pasted image (docs/protocol/files.md). */
  const attach = (files: readonly File[]) => {
    if (files.length === 0 || blocked()) return;
    void sendFiles(app, props.id, files).then((problem) => setError(problem));
  };
  const [dropping, setDropping] = createSignal(false);

  const retry = (id: MessageId) => {
    retryMessage(app, id).catch((x: unknown) => setError(sendProblem(x)));
  };

  onMount(() => {
    const off = app.onEvent((e) => {
      // The deferred save landed (engine.ts `#storeDeferred`): the notice about it is done.
      if (e.type === "message-state" && e.id === deferredNotice) {
        deferredNotice = undefined;
        if (error() === sendProblem(new SaveDeferred(undefined))) setError(undefined);
      }
      if (e.type === "message" && e.message.contactId === props.id) showNew(e.message, true, false);
      else if (e.type === "message-state" && e.contactId === props.id && !tl.update(e.id, e.state, e.failure))
        void fetchUnknown(e.id);
    });
    // The follow state is also the read state: scrolled up, what arrives is unread (app/model.ts).
    app.setChatAtBottom(true);
    const stopFollowing = followBottom(list, (atBottom) => {
      if (atBottom) setUnseen(0);
      app.setChatAtBottom(atBottom);
    });
    const onScroll = () => {
      if (scrollTop() < PAGE_AHEAD_PX && hasOlder()) void loadOlder();
    };
    window.addEventListener("scroll", onScroll, { passive: true });
    const onPaste = (e: ClipboardEvent) => {
      const files = [...(e.clipboardData?.files ?? [])];
      if (files.length === 0) return;
      e.preventDefault();
      attach(files);
    };
    window.addEventListener("paste", onPaste);
    onCleanup(() => {
      window.removeEventListener("paste", onPaste);
      disposed = true;
      off();
      stopFollowing();
      app.setChatAtBottom(true);
      window.removeEventListener("scroll", onScroll);
    });
    connectTo(app, props.id);
    composer?.focus();
    void fillScreen();
  });

  return (
    <main
      class="screen chat"
      classList={{ dropping: dropping() }}
      data-testid="chat"
      data-history={hasOlder() ? "partial" : "complete"}
      onDragOver={(e) => {
        if (!e.dataTransfer?.types.includes("Files")) return;
        e.preventDefault();
        setDropping(true);
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(e) => {
        if (!e.dataTransfer?.files.length) return;
        e.preventDefault();
        setDropping(false);
        attach([...e.dataTransfer.files]);
      }}
    >
      <header class="chat-head">
        <div class="bar">
          <Back app={app} />
          <div class="who">
            <h1>
              <button
                type="button"
                class="title"
                data-testid="chat-contact"
                aria-label={`${name()}: contact details`}
                onClick={() => app.go({ name: "contact", id: props.id })}
              >
                {name()}
              </button>
            </h1>
            <Show when={view()}>
              {/* Status and badge wrap as two items (a flex row with a gap): no " ·" left dangling
                  at a line's end when the badge goes to the next line on a phone. */}
              <p class="sub">
                <span data-testid="chat-presence">{status().label}</span>
                <span class={`trust ${view()!.record.trust}`} data-testid="chat-trust">
                  {TRUST_LABEL[view()!.record.trust]}
                </span>
              </p>
            </Show>
          </div>
          <CallButtons app={app} id={props.id} name={name()} blocked={!!blocked()} />
        </div>
        <Show when={status().notice}>
          {(e) => (
            <p class="status" data-testid="chat-problem" data-kind={e().kind}>
              {e().message}
            </p>
          )}
        </Show>
        {/* A call with this contact that ended says so here, under the header (ui/call/ended-slot.ts). */}
        <div
          class="call-ended-slot"
          ref={(el) => {
            onCleanup(offerEndedSlot(props.id, el));
          }}
        />
      </header>
      <Show when={loadingOlder()}>
        <p class="history-note" data-testid="loading-older">
          Loading earlier messages…
        </p>
      </Show>
      <Show when={!hasOlder() && tl.chunks().length > 0}>
        <p class="history-note" data-testid="history-start">
          This is the beginning of your conversation with {name()}.
        </p>
      </Show>
      <MessageList
        timeline={tl}
        label={`Messages with ${name()}`}
        contactOnline={online}
        onRetry={retry}
        file={(key) => <Show when={files.files[key]}>{(t) => files.row(t())}</Show>}
        ref={(el) => {
          list = el;
        }}
      />
      <div class="chat-foot">
        <Show when={unseen() > 0}>
          <button
            type="button"
            class="new-pill"
            data-testid="new-messages-pill"
            onClick={() => {
              scrollToBottom();
              setUnseen(0);
            }}
          >
            {unseen() === 1 ? "1 new message" : `${unseen()} new messages`} ↓
          </button>
        </Show>
        <Show when={blocked()}>
          <p class="card warning" role="alert" data-testid="send-blocked">
            {blocked()}{" "}
            <button type="button" class="link" onClick={() => app.go({ name: "contact", id: props.id })}>
              Open contact
            </button>
          </p>
        </Show>
        <AttachFile
          disabled={!!blocked()}
          title="Send a file (or drop one on the chat, or paste an image)"
          onFiles={attach}
        />
        <Composer
          disabled={!!blocked()}
          onSend={send}
          draftKey={`chat:${props.id}`}
          error={error()}
          onClearError={() => setError(undefined)}
          ref={(h) => {
            composer = h;
          }}
        />
      </div>
      <div class="sr-only" role="status" data-testid="chat-announcer">
        {announcement()}
      </div>
    </main>
  );
}
