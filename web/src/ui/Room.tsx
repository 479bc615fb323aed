/**
 * Rooms (docs/user-guide.md "Rooms"): the list on Home with unread counts, "New room" (its link
 * as text, QR code and a copy button), and a room's screen — who is here and connected, refused
 * attempts, the chat with per-member delivery, Leave. Screens read app/rooms.ts and never touch
 * the engine or storage.
 */
import { createComputed, createEffect, createResource, createSignal, For, onCleanup, Show } from "solid-js";
import { createStore, reconcile } from "solid-js/store";
import { fromHex } from "../../../core/bytes.ts";
import { suiteLabel } from "../app/contact-status.ts";
import { sendFilesToRoom } from "../app/files.ts";
import type { AppModel } from "../app/model.ts";
import { problemText } from "../app/problems.ts";
import { ELSEWHERE, MAX_ROOM_NAME_CHARS, roomsOf } from "../app/rooms.ts";
import type { FileTransfer } from "../engine/api.ts";
import type { RoomMemberView, RoomMessageView, RoomView } from "../engine/rooms/api.ts";
import { safetyCode } from "../identity.ts";
import { Back } from "./Back.tsx";
import { ConfirmCard } from "./ConfirmCard.tsx";
import { RoomCallPanel } from "./call/RoomCallPanel.tsx";
import { AttachFile } from "./chat/AttachFile.tsx";
import { Composer } from "./chat/Composer.tsx";
import { Files } from "./chat/Files.tsx";
import { inlineConfirm } from "./confirm.ts";
import { refusedWords, timeLabel, whoIsBehind } from "./format.ts";
import { LiveRegion } from "./LiveRegion.tsx";
import { NoMessagePreview } from "./NoMessagePreview.tsx";
import { Qr } from "./Qr.tsx";
import { LinkButtons } from "./ShareButton.tsx";

/** A room's id as people see it: the id is random, so its first 8 hex digits tell rooms apart. */
export const roomIdLabel = (r: Pick<RoomView, "id">) => `Room ${r.id.slice(0, 8)}`;

/** A room's name in the app: the one the person gave it on this device, else its id label. */
export const roomLabel = (r: Pick<RoomView, "id" | "name">) => r.name ?? roomIdLabel(r);

const short = (key: string) => `${key.slice(0, 4)}…${key.slice(-4)}`;

/** The rooms block on Home: each room with its unread count, and "New room". */
export function RoomsOnHome(props: { app: AppModel }) {
  const rooms = roomsOf(props.app);
  return (
    <section class="rooms-home" aria-labelledby="rooms-heading">
      <div class="row spread">
        <h2 id="rooms-heading">Rooms</h2>
        <button type="button" data-testid="nav-new-room" onClick={() => props.app.go({ name: "new-room" })}>
          New room
        </button>
      </div>
      <Show
        when={rooms.rooms().length > 0}
        fallback={
          <p class="empty" data-testid="empty-rooms">
            No rooms yet. Start one, or open a room link someone sent you.
          </p>
        }
      >
        <ul class="contacts" data-testid="room-list" aria-label="Rooms">
          <For each={rooms.rooms()}>
            {(r) => (
              <li>
                <button
                  type="button"
                  class={`contact ${r.unread > 0 ? "unread" : ""}`}
                  data-testid="room-item"
                  data-room-id={r.id}
                  data-unread={r.unread}
                  onClick={() => props.app.go({ name: "room", room: r.id })}
                >
                  <span
                    class={`dot ${r.members.some((m) => m.state === "online") ? "online" : "offline"}`}
                    aria-hidden="true"
                  />
                  <span class="name">
                    {roomLabel(r)}
                    <Show when={r.name}>
                      <span class="muted" data-testid="room-item-id">
                        {" "}
                        ({r.id.slice(0, 8)})
                      </span>
                    </Show>
                  </span>
                  <span class="preview" data-testid="room-preview">
                    <Show when={r.last} fallback={<NoMessagePreview app={props.app} room={r.id} />}>
                      {(t) => t()}
                    </Show>
                  </span>
                  <Show when={r.unread > 0}>
                    <span class="badge" data-testid="room-unread">
                      {r.unread > 99 ? "99+" : r.unread}
                      <span class="sr-only"> unread</span>
                    </span>
                  </Show>
                  <span class="presence">{presentLabel(r)}</span>
                </button>
              </li>
            )}
          </For>
        </ul>
      </Show>
    </section>
  );
}

/**
 * Naming a room on this device (docs/user-guide.md "Rooms"): a field with Save and Cancel; Enter
 * saves, Escape cancels, an empty name goes back to the id label. `onDone(undefined)` is Cancel.
 */
function RenameRoom(props: { current: string; onDone: (name: string | undefined) => void }) {
  let input!: HTMLInputElement;
  return (
    <form
      class="card rename-room"
      data-testid="rename-room-form"
      onSubmit={(e) => {
        e.preventDefault();
        props.onDone(input.value);
      }}
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          props.onDone(undefined);
        }
      }}
    >
      <label for="room-name">Room name</label>
      <input
        id="room-name"
        data-testid="room-name-input"
        ref={(el) => {
          input = el;
          // Set once, not bound: a room event while typing must not put the old name back.
          el.value = props.current;
          queueMicrotask(() => el.focus());
        }}
        maxLength={MAX_ROOM_NAME_CHARS}
        autocomplete="off"
        aria-describedby="room-name-hint"
      />
      <p id="room-name-hint" class="muted">
        Only you see this name, on this device; the others are not told. Leave it empty to show the room's id
        instead.
      </p>
      <div class="row">
        <button type="submit" class="primary" data-testid="save-room-name">
          Save name
        </button>
        <button type="button" data-testid="cancel-room-name" onClick={() => props.onDone(undefined)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function presentLabel(r: RoomView): string {
  const n = r.members.length;
  return n === 0 ? "Nobody else here" : n === 1 ? "1 other member here" : `${n} other members here`;
}

/** "New room": makes the room, shows its link (text, QR, copy) and opens it. */
export function NewRoom(props: { app: AppModel }) {
  const app = props.app;
  const rooms = roomsOf(app);
  // The history entry remembers the room it made (HTML "Session history" state, kept across a
  // reload): coming back to this screen shows that room's link instead of making another room.
  const [room] = createResource(async () => {
    const st: unknown = history.state;
    const made = typeof st === "object" && st !== null ? (st as { newRoom?: unknown }).newRoom : undefined;
    const r = await rooms.createOnce(typeof made === "string" ? made : undefined);
    if (location.pathname === "/rooms/new") history.replaceState({ ...(st as object), newRoom: r.id }, "");
    return r;
  });
  const link = () => {
    const r = room();
    return r ? rooms.linkOf(r) : "";
  };
  return (
    <main class="screen" data-testid="new-room-screen">
      <div class="bar">
        <Back app={app} />
        <h1>New room</h1>
      </div>
      <Show when={room.error}>
        <p class="card warning" role="alert" data-testid="new-room-error">
          {(room.error as Error).message}
        </p>
      </Show>
      <Show when={room()}>
        {(r) => (
          <div class="card center">
            <p>
              Everyone who opens this link joins the room. The secret in it never reaches a server: share it
              only with the people you want in the room.
            </p>
            <Qr text={link()} label="QR code of the room link" testid="room-link-qr" />
            <label for="room-link-text" class="sr-only">
              Room link
            </label>
            <textarea
              id="room-link-text"
              class="link"
              data-testid="room-link"
              readOnly
              rows={4}
              value={link()}
            />
            <div class="row">
              <LinkButtons
                app={app}
                title="A Loft room"
                url={link}
                copyTestid="copy-room-link"
                shareTestid="share-room-link"
              />
              <button
                type="button"
                data-testid="open-room"
                onClick={() => app.go({ name: "room", room: r().id }, { replace: true })}
              >
                Open the room
              </button>
            </div>
          </div>
        )}
      </Show>
    </main>
  );
}

/** One room: members, refused attempts, the chat, Leave. */
export function RoomScreen(props: { app: AppModel; id: string }) {
  const app = props.app;
  const rooms = roomsOf(app);
  const room = () => rooms.room(props.id);
  /**
   * Why there is no room to show, once that is known: not a member here, or the engine runs in
   * another tab (an offline engine has no rooms: web/src/engine/api.ts). Reads the rooms' version
   * and the engine's start, which `available()` alone does not track.
   */
  const missing = (): "not-member" | "elsewhere" | undefined => {
    rooms.version();
    app.service();
    if (rooms.available()) return rooms.loaded() ? "not-member" : undefined;
    return app.engine ? "elsewhere" : undefined;
  };
  const messages = () => rooms.messages(props.id);
  const [error, setError] = createSignal<string>();
  const [showLink, setShowLink] = createSignal(false);
  const [renaming, setRenaming] = createSignal(false);
  const [openMember, setOpenMember] = createSignal<string>();
  /**
   * The members, one lasting record per member key: each room change (any room's message, receipt
   * or member state bumps the rooms' version) gives a new view with new member objects, and a list
   * over those drew every chip anew — the focus on a chip's "Safety code" button was lost, and a
   * test reading a chip met one just detached. Reconciled by key, a chip stays and its fields change.
   */
  const [members, setMembers] = createStore<RoomMemberView[]>([]);
  // Copies: reconcile writes into what it keeps, and the engine's view is not ours to change.
  createComputed(() =>
    setMembers(
      reconcile(
        (room()?.members ?? []).map((m) => ({ ...m })),
        { key: "key" },
      ),
    ),
  );
  /**
   * The messages, one lasting record per message (its writer and id: ids are the writer's, two
   * members may use the same): as for the members, each room change gave new message objects, and
   * the list over those drew every message anew at every message or receipt — a selection inside
   * a message was lost, and the cost grew with the history. Reconciled by key, a message's element
   * stays and only the fields that changed are written (its state, where each copy is). The views
   * go in as they come: new at each call and ours to keep (engine/rooms/api.ts `messages`), so no
   * copy of each message at each change.
   */
  const [rows, setRows] = createStore<RoomMessageView[]>([]);
  createComputed(() => setRows(reconcile(messages(), { key: "key" })));
  /** The members list: where the focus goes when the open member is removed (MemberPanel). */
  let membersList!: HTMLUListElement;
  const link = () => {
    const r = room();
    return r ? rooms.linkOf(r) : "";
  };
  let list!: HTMLOListElement;
  let renameButton: HTMLButtonElement | undefined;

  // Reading the room marks it read, and keeps the newest message in view: when one comes, not at
  // every receipt or member change (the reader scrolled up stays where it reads).
  let newest: string | undefined;
  createEffect(() => {
    const last = rows[rows.length - 1]?.key;
    if (room() && app.pageVisible()) rooms.markRead(props.id);
    if (last !== undefined && last !== newest)
      queueMicrotask(() => list?.lastElementChild?.scrollIntoView({ block: "end" }));
    newest = last;
  });
  const onVisible = () => rooms.markRead(props.id);
  window.addEventListener("focus", onVisible);
  onCleanup(() => window.removeEventListener("focus", onVisible));

  // Files to everyone here (docs/protocol/files.md §8): the button, a drop on the room, a pasted image.
  const canSend = () => room() !== undefined && room()?.status !== "removed";
  const attach = (files: readonly File[]) => {
    if (files.length === 0 || !canSend()) return;
    void sendFilesToRoom(app, props.id, files).then((problem) => setError(problem));
  };
  const [dropping, setDropping] = createSignal(false);
  const onPaste = (e: ClipboardEvent) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    attach(files);
  };
  window.addEventListener("paste", onPaste);
  onCleanup(() => window.removeEventListener("paste", onPaste));
  const memberName = (t: FileTransfer | undefined) =>
    t?.member === undefined
      ? ""
      : (room()?.members.find((m) => m.key === t.member)?.name ?? t.memberName ?? short(t.member));

  /** Leave asks first, inline (ui/confirm.ts): the browser's confirm() blocks the page and reads badly. */
  const [confirmLeave, setConfirmLeave] = createSignal(false);
  const leaveDialog = inlineConfirm(() => setConfirmLeave(false));
  const leave = async () => {
    setConfirmLeave(false);
    try {
      await rooms.leave(props.id);
      app.go({ name: "home" }, { replace: true });
    } catch (e) {
      // Refused (a full disk): still in the room, nobody told (engine/rooms/mesh.ts `leave`). The
      // focus, lost with the question's buttons, goes back to Leave (WCAG 2.4.3), as on a cancel.
      leaveDialog.cancel();
      setError(`${problemText(e, "leave the room")} You are still in the room.`);
    }
  };

  return (
    <main
      class="screen chat room"
      classList={{ dropping: dropping() }}
      data-testid="room-screen"
      data-room-id={props.id}
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
      <div class="bar">
        <Back app={app} />
        <div class="who">
          <h1 data-testid="room-title">{room() ? roomLabel(room()!) : "Room"}</h1>
          {/* A named room still shows its id: two rooms given the same name stay told apart. */}
          <Show when={room()?.name}>
            <span class="muted" data-testid="room-id">
              {roomIdLabel(room()!)}
            </span>
          </Show>
          <span class="muted" data-testid="room-status" data-status={room()?.status}>
            {statusLabel(room())}
          </span>
        </div>
        {/* Only for a room this device is in: without one, Invite has no link and Leave nothing to leave. */}
        <Show when={room()}>
          <div class="actions">
            <button
              type="button"
              data-testid="rename-room"
              aria-expanded={renaming()}
              ref={renameButton}
              onClick={() => setRenaming(!renaming())}
            >
              Rename
            </button>
            <button
              type="button"
              data-testid="room-show-link"
              aria-expanded={showLink()}
              onClick={() => setShowLink(!showLink())}
            >
              Invite
            </button>
            <button
              type="button"
              data-testid="leave-room"
              ref={leaveDialog.opener}
              aria-expanded={confirmLeave()}
              onClick={() => setConfirmLeave(true)}
            >
              Leave
            </button>
          </div>
        </Show>
      </div>
      <Show when={room() && confirmLeave()}>
        <ConfirmCard
          label="Leave room"
          dialog={leaveDialog}
          kind="danger"
          testid="confirm-leave-room"
          confirm="Leave"
          onConfirm={() => void leave()}
        >
          Leave this room? Its history on this device is deleted.
        </ConfirmCard>
      </Show>
      <Show when={!room()}>
        <Show
          when={missing()}
          fallback={
            <p class="status" role="status" data-testid="room-opening">
              Opening the room…
            </p>
          }
        >
          <p class="card warning" role="alert" data-testid="room-missing">
            {missing() === "not-member"
              ? "You are not in this room on this device — you may have left it. To join, open the room's link here."
              : ELSEWHERE}
          </p>
        </Show>
      </Show>
      <Show when={room()}>
        {(r) => (
          <>
            <Show when={renaming()}>
              <RenameRoom
                current={r().name ?? ""}
                onDone={async (name) => {
                  if (name !== undefined) {
                    try {
                      await rooms.rename(props.id, name);
                    } catch (e) {
                      // A storage failure in words (full, say), not IndexedDB's own.
                      setError(problemText(e, "rename the room"));
                      return;
                    }
                  }
                  setRenaming(false);
                  renameButton?.focus();
                }}
              />
            </Show>
            <Show when={showLink() && r().status !== "removed"}>
              <div class="card center" data-testid="room-invite">
                <Qr text={link()} label="QR code of the room link" />
                <label for="room-invite-text" class="sr-only">
                  Room link
                </label>
                <textarea id="room-invite-text" class="link" readOnly rows={4} value={link()} />
                <div class="row">
                  <LinkButtons
                    app={app}
                    title="A Loft room"
                    url={link}
                    copyTestid="copy-invite-link"
                    shareTestid="share-invite-link"
                  />
                </div>
              </div>
            </Show>
            {/* Drawn with the room, empty: what comes into it is announced (LiveRegion.tsx). */}
            <LiveRegion when={r().hostAway} testid="room-host-away-news">
              <p class="status" data-testid="room-host-away">
                The host is away. You can still chat here; removing members and handing over the host role
                wait until the host is back.
              </p>
            </LiveRegion>
            <Show when={r().unsaved}>
              {(why) => (
                <p class="card warning" role="alert" data-testid="room-unsaved">
                  New messages in this room could not be saved on this device: {why()}. They are not confirmed
                  to their writers and come again once there is space — free some, then reopen Loft.
                </p>
              )}
            </Show>
            <Show when={r().status === "full"}>
              <p class="card warning" role="alert" data-testid="room-full">
                This room is full: it has as many members as a room can have. Try again when someone leaves.
              </p>
            </Show>
            <Show when={r().status === "too-many"}>
              <p class="card warning" role="alert" data-testid="room-too-many">
                The server takes no more rooms from this device now: you are in as many rooms as it allows at
                once. Leave a room you no longer use, then open this room's link again.
              </p>
            </Show>
            <Show when={r().status === "removed"}>
              <p class="card warning" role="alert" data-testid="room-removed-us">
                The host removed you from this room. You no longer get its messages, and its link no longer
                lets you in. Leave it to delete its history from this device.
              </p>
            </Show>
            <Show when={r().status === "refused"}>
              <p class="card warning" role="alert" data-testid="room-refused-us">
                <Show
                  when={r().wasMember}
                  fallback={
                    <>
                      The members of this room did not let you in: this link's secret is not the room's. Ask
                      for the link again.
                    </>
                  }
                >
                  <Show
                    when={whoIsBehind(r()) === "us"}
                    fallback={
                      <>
                        This member did not let you in: your link to the room and theirs differ. The room's
                        link changes when the host removes people, and one of you missed more of those changes
                        than a device can catch up on. If it was you, ask a member for the room's new link and
                        open it here.
                      </>
                    }
                  >
                    The room's link changed while you were away (the host removed people), more often than
                    this device can catch up on. Ask a member for the room's new link and open it here.
                  </Show>
                </Show>
              </p>
            </Show>
            <section aria-labelledby="members-heading" class="members">
              <h2 id="members-heading" class="sr-only">
                Members
              </h2>
              <ul data-testid="room-members" aria-label="Members here" tabindex="-1" ref={membersList}>
                {/* Each chip reads name, role badge, actions (styles.css "Room member chips"). */}
                <li class="member self" data-testid="room-me" data-host={r().host}>
                  <span class="member-name">You</span>
                  <Show when={r().host}>
                    <span class="badge" data-testid="room-host-badge">
                      host
                    </span>
                  </Show>
                </li>
                <For each={members}>
                  {(m) => (
                    <li
                      class="member"
                      data-testid="room-member"
                      data-key={m.key}
                      data-state={m.state}
                      data-host={m.host}
                      data-verified={m.verified}
                      data-suite={m.suite}
                      data-path={m.path}
                    >
                      <span class={`dot ${m.state === "online" ? "online" : "offline"}`} aria-hidden="true" />
                      <span class="member-name">{m.name ?? short(m.key)}</span>
                      <Show when={m.state === "online"}>
                        <span class="sr-only"> (connected)</span>
                      </Show>
                      {/* Not linked yet, or its link failed: dialed again until it opens while the
                          member is here (rooms.md §3), so this stays true until it does. */}
                      <Show when={m.state === "connecting"}>
                        <span class="muted" data-testid="room-member-connecting">
                          connecting…
                        </span>
                      </Show>
                      <Show when={m.state === "refused"}>
                        <span class="muted" data-testid="room-member-refused">
                          {refusedWords(r())}
                        </span>
                      </Show>
                      {/* No direct path opened: the relay carries this member's session (rooms.md §3). */}
                      <Show when={m.path === "relay"}>
                        <span class="muted" data-testid="room-member-path">
                          via relay
                        </span>
                      </Show>
                      <Show when={m.host}>
                        <span class="badge" data-testid="room-host-badge">
                          host
                        </span>
                      </Show>
                      <Show when={m.verified}>
                        <span class="ok" title="Verified">
                          ✓<span class="sr-only"> verified</span>
                        </span>
                      </Show>
                      <button
                        type="button"
                        class="link"
                        data-testid="room-member-open"
                        aria-expanded={openMember() === m.key}
                        onClick={() => setOpenMember(openMember() === m.key ? undefined : m.key)}
                      >
                        Safety code
                        <span class="sr-only"> of {m.name ?? short(m.key)}</span>
                      </button>
                    </li>
                  )}
                </For>
              </ul>
            </section>
            <Show when={r().members.find((m) => m.key === openMember())}>
              {(m) => (
                <MemberPanel
                  app={app}
                  room={r()}
                  member={m()}
                  onError={setError}
                  onClose={() => {
                    setOpenMember(undefined);
                    // The panel, and the focus in it, is gone with the member removed: to the list.
                    membersList.focus();
                  }}
                />
              )}
            </Show>
            <RoomCallPanel
              app={app}
              roomId={props.id}
              nameOf={(k) => r().members.find((m) => m.key === k)?.name ?? short(k)}
            />
            <LiveRegion testid="room-refused-news">
              <For each={r().refused.slice(-3)}>
                {(x) => (
                  <p class="status" data-testid="room-refused-attempt">
                    Someone without this room's secret ({short(x.key)}) tried to join and was refused.
                  </p>
                )}
              </For>
            </LiveRegion>
          </>
        )}
      </Show>
      <div role="log" aria-label="Room messages">
        <ol class="messages" data-testid="room-messages" ref={list}>
          <For each={rows}>{(m) => <RoomBubble m={m} />}</For>
        </ol>
      </div>
      <Show when={room()}>
        {(r) => (
          <Files
            app={app}
            roomId={props.id}
            name={memberName}
            label={`Files in ${roomLabel(r())}`}
            onError={setError}
          />
        )}
      </Show>
      <Show when={error()}>
        <p class="error" role="alert" data-testid="room-error">
          {error()}
        </p>
      </Show>
      <Show when={room()}>
        <AttachFile
          disabled={!canSend()}
          title="Send a file to everyone here (or drop one on the room, or paste an image)"
          onFiles={attach}
        />
        <Composer
          disabled={!canSend()}
          onSend={(text) => rooms.send(props.id, text)}
          draftKey={`room:${props.id}`}
          error={undefined}
          onClearError={() => setError(undefined)}
        />
      </Show>
    </main>
  );
}

function RoomBubble(props: { m: RoomMessageView }) {
  const m = () => props.m;
  const ours = () => m().from === undefined;
  return (
    <li
      // The chat's bubble (styles.css `.msg`): own words on the right, the others' on the left.
      class={`msg ${ours() ? "out" : "in"}`}
      data-testid="room-message"
      data-direction={ours() ? "out" : "in"}
      data-state={m().state}
    >
      <Show when={!ours()}>
        <span class="sender" data-testid="room-message-sender">
          {m().name ?? short(m().from ?? "")}
        </span>
      </Show>
      <span class="text" data-testid="room-message-text">
        {m().text}
      </span>
      {/* When it was said, as in the chat (Bubble.tsx); a room has no day separators, so other days show their date. */}
      <span class="meta">
        <time datetime={new Date(m().at).toISOString()}>{timeLabel(m().at)}</time>
        <Show when={ours()}>
          {" · "}
          <span data-testid="room-message-state">
            {m().state === "alone"
              ? "Nobody else was here"
              : m().state === "delivered"
                ? m().recipients === 1
                  ? "Delivered"
                  : `Delivered to all ${m().recipients}`
                : `Delivered to ${m().delivered} of ${m().recipients}`}
          </span>
        </Show>
      </span>
      <Show when={ours()}>
        {/* Until everyone has it: where each member's copy is (docs/user-guide.md "Rooms"). */}
        <Show when={m().state === "sent"}>
          <ul class="recipients muted" data-testid="room-message-recipients" aria-label="Where each copy is">
            <For each={m().to}>
              {(t) => (
                <li data-testid="room-message-recipient" data-key={t.key} data-state={t.state}>
                  {`${t.name ?? short(t.key)}: ${RECIPIENT_STATE[t.state]}`}
                </li>
              )}
            </For>
          </ul>
        </Show>
      </Show>
    </li>
  );
}

const RECIPIENT_STATE = {
  sending: "sending",
  relayed: "sent to relay",
  delivered: "delivered",
} as const;

function statusLabel(r: RoomView | undefined): string {
  if (!r) return "";
  switch (r.status) {
    case "joining":
      return "Joining…";
    case "in":
      return r.hostAway ? `${presentLabel(r)} · host away` : presentLabel(r);
    case "full":
      return "Room is full";
    case "too-many":
      return "Too many rooms";
    case "offline":
      return "Not connected — waiting for the network";
    case "refused":
      return "Refused";
    case "removed":
      return "Removed by the host";
  }
}

/**
 * One member: the safety code with it (same digits and flow as for a contact, Contact.tsx), the
 * verified mark, and for the host: Remove, Make host.
 */
function MemberPanel(props: {
  app: AppModel;
  room: RoomView;
  member: RoomMemberView;
  onError: (message: string | undefined) => void;
  /** The member was removed: the panel closes (and the focus goes to the list). */
  onClose: () => void;
}) {
  const rooms = roomsOf(props.app);
  const name = () => props.member.name ?? short(props.member.key);
  const code = () => {
    const u = props.app.user();
    return u ? safetyCode(u.identity.verified.identity_key, fromHex(props.member.key)) : undefined;
  };
  const act = async (what: () => Promise<void>) => {
    props.onError(undefined);
    try {
      await what();
    } catch (e) {
      props.onError((e as Error).message);
    }
  };
  /**
   * Make host and Remove ask first, inline like Leave (ui/confirm.ts): the browser's confirm()
   * blocks the page, reads badly and is not styled like the rest. One question at a time.
   */
  const [asking, setAsking] = createSignal<"host" | "remove">();
  const hostDialog = inlineConfirm(() => setAsking(undefined));
  const removeDialog = inlineConfirm(() => setAsking(undefined));
  // A confirmed choice removes the focused button with its question (and Make host the host's
  // buttons): the focus goes to the panel's heading, not to the page's top (WCAG 2.4.3).
  let heading!: HTMLHeadingElement;
  return (
    <section class="card" data-testid="room-member-panel" aria-labelledby="room-member-heading">
      <h2 id="room-member-heading" tabindex="-1" ref={heading}>
        {name()}
      </h2>
      <Show when={props.member.suite}>
        {(s) => (
          <p class="muted" data-testid="room-member-encryption" data-suite={s()}>
            {suiteLabel(s())}
          </p>
        )}
      </Show>
      <Show when={code()}>
        {(c) => (
          <>
            <p>
              Compare these digits with {name()}, in person or on a call you trust. If every group matches on
              both screens, nobody is in the middle.
            </p>
            <p class="safety" data-testid="room-safety-code" data-digits={c().digits}>
              <For each={c().groups}>{(g) => <span>{g}</span>}</For>
            </p>
            <Qr text={c().qr} label={`QR code of the safety code with ${name()}`} />
          </>
        )}
      </Show>
      <div class="row">
        <Show
          when={!props.member.verified}
          fallback={
            <p class="ok" data-testid="room-member-verified">
              ✓ You verified {name()}.
            </p>
          }
        >
          <button
            type="button"
            class="primary"
            data-testid="room-mark-verified"
            onClick={() => rooms.verify(props.room.id, props.member.key, true)}
          >
            The codes match — mark as verified
          </button>
        </Show>
        <Show when={props.room.host}>
          <button
            type="button"
            data-testid="room-make-host"
            ref={hostDialog.opener}
            disabled={!props.member.canBeHost}
            aria-expanded={asking() === "host"}
            onClick={() => setAsking("host")}
          >
            Make host
          </button>
          <button
            type="button"
            class="danger"
            data-testid="room-remove-member"
            ref={removeDialog.opener}
            aria-expanded={asking() === "remove"}
            onClick={() => setAsking("remove")}
          >
            Remove from room
          </button>
        </Show>
      </div>
      <Show when={props.room.host && asking() === "host"}>
        <ConfirmCard
          label="Make host"
          dialog={hostDialog}
          kind="primary"
          testid="confirm-make-host"
          confirm="Make host"
          onConfirm={() => {
            setAsking(undefined);
            heading.focus();
            void act(() => rooms.handOver(props.room.id, props.member.key));
          }}
        >
          Make {name()} the host of this room? You can no longer remove members.
        </ConfirmCard>
      </Show>
      <Show when={props.room.host && asking() === "remove"}>
        <ConfirmCard
          label="Remove from room"
          dialog={removeDialog}
          kind="danger"
          testid="confirm-remove-member"
          confirm="Remove"
          onConfirm={() => {
            setAsking(undefined);
            heading.focus();
            void act(async () => {
              await rooms.remove(props.room.id, props.member.key);
              props.onClose();
            });
          }}
        >
          Remove {name()} from this room? The room gets a new link; the old one stops working.
        </ConfirmCard>
      </Show>
    </section>
  );
}
