/**
 * One contact: trust state, a changed-key warning that blocks sending until decided, the safety
 * code screen, verify / block / delete.
 */
import { createSignal, For, Match, Show, Switch } from "solid-js";
import { encryptionLabel, statusOf } from "../app/contact-status.ts";
import type { AppModel, ContactView } from "../app/model.ts";
import { problemText } from "../app/problems.ts";
import type { IdentityChangeKind } from "../engine/api.ts";
import { safetyCode } from "../identity.ts";
import { Back } from "./Back.tsx";
import { ConfirmCard } from "./ConfirmCard.tsx";
import { inlineConfirm } from "./confirm.ts";
import { TRUST_LABEL, timeLabel } from "./format.ts";
import { Qr } from "./Qr.tsx";

const CHANGE_TEXT: Record<IdentityChangeKind, (n: string) => string> = {
  "noise-key-rotated": (n) =>
    `${n}'s encryption key changed. This happens when they reinstall or move to a new device — or when someone is trying to intercept your messages. Sending is paused until you decide.`,
  "username-collision": (n) =>
    `A different identity key claims the name ${n}. It may be ${n} with a new identity, or someone pretending to be them. Sending to ${n} is paused until you decide.`,
  "rename-collision": (n) =>
    `${n} wants to change their name to one another of your contacts already uses. It may be an honest rename — or ${n} trying to pass as that contact. Sending to ${n} is paused until you decide.`,
  conflict: (n) =>
    `Someone presented an identity for ${n} that contradicts the one you have, signed with ${n}'s key. ${n}'s key may be compromised. Sending is paused until you dismiss this.`,
  downgrade: (n) =>
    `Someone presented an older identity for ${n} than the one you have — what a replayed, outdated identity looks like. Sending is paused until you dismiss this.`,
};

function PendingWarning(props: { app: AppModel; view: ContactView }) {
  const app = props.app;
  const pending = () => props.view.record.pending!;
  const name = () => props.view.record.username;
  const decide = async (d: "accept" | "keep") => {
    const show = await app.resolvePending(props.view.record.id, d);
    app.go({ name: "contact", id: show });
  };
  return (
    <section class="card warning" role="alert" data-testid="identity-warning" data-kind={pending().kind}>
      <h2>⚠ Identity changed</h2>
      <p>{CHANGE_TEXT[pending().kind](name())}</p>
      <p class="help">
        Seen {timeLabel(pending().seenAt)}{" "}
        {pending().source === "link" ? "in a contact link" : "while connecting"}. Compare safety codes with{" "}
        {name()} in person or on a call before accepting.
      </p>
      <div class="row">
        <Switch>
          <Match when={pending().kind === "noise-key-rotated"}>
            <button
              type="button"
              class="danger"
              data-testid="accept-new-key"
              onClick={() => decide("accept")}
            >
              Accept the new key
            </button>
            <button type="button" data-testid="keep-old-key" onClick={() => decide("keep")}>
              Keep the old key
            </button>
          </Match>
          <Match when={pending().kind === "username-collision"}>
            <button
              type="button"
              class="danger"
              data-testid="accept-new-key"
              onClick={() => decide("accept")}
            >
              Add the new key as a separate contact
            </button>
            <button type="button" data-testid="keep-old-key" onClick={() => decide("keep")}>
              Block the new key
            </button>
          </Match>
          <Match when={pending().kind === "rename-collision"}>
            <button
              type="button"
              class="danger"
              data-testid="accept-new-key"
              onClick={() => decide("accept")}
            >
              Accept the new name {props.view.pendingIdentity?.verified.username}
            </button>
            <button type="button" data-testid="keep-old-key" onClick={() => decide("keep")}>
              Keep the name {name()}
            </button>
          </Match>
          <Match when={pending().kind === "conflict" || pending().kind === "downgrade"}>
            <button type="button" data-testid="keep-old-key" onClick={() => decide("keep")}>
              Keep the current identity
            </button>
          </Match>
        </Switch>
      </div>
    </section>
  );
}

export function ContactScreen(props: { app: AppModel; id: string }) {
  const app = props.app;
  const view = () => app.contact(props.id);
  const [confirmDelete, setConfirmDelete] = createSignal(false);
  const deleteDialog = inlineConfirm(() => setConfirmDelete(false));
  // A deletion the storage refused (a full disk): the contact stays, the screen says why, and
  // Delete can be tried again (app/problems.ts; the words are for people, never a raw error).
  const [deleteError, setDeleteError] = createSignal<string>();
  let safetyButton: HTMLButtonElement | undefined;
  const deleteContact = async (id: string) => {
    try {
      await app.deleteContact(id);
      app.go({ name: "home" }, { replace: true });
    } catch (e) {
      deleteDialog.cancel();
      setDeleteError(problemText(e, "delete the contact"));
    }
  };
  return (
    <main class="screen" data-testid="contact-screen">
      <Back app={app} />
      <Show
        when={view()}
        fallback={
          <>
            <h1>Contact not found</h1>
            <p>This contact no longer exists.</p>
          </>
        }
      >
        {(v) => (
          <>
            <h1 data-testid="contact-username">{v().record.username}</h1>
            <p>
              <span
                class={`trust ${v().record.trust}`}
                data-testid="trust-state"
                data-trust={v().record.trust}
              >
                {TRUST_LABEL[v().record.trust]}
              </span>{" "}
              · <span data-testid="contact-presence">{statusOf(app, v().record.id).label}</span>
            </p>
            {/* The line is there before the session opens (one blank line held), so the buttons
                below do not move when it does: a click on Chat at that moment landed above it. */}
            <p class="muted" data-testid="contact-encryption-line">
              <Show
                when={encryptionLabel(app.presenceOf(v().record.id))}
                fallback={<span aria-hidden="true">{"\u00a0"}</span>}
              >
                {(label) => (
                  <span data-testid="contact-encryption" data-suite={app.presenceOf(v().record.id).suite}>
                    {label()}
                  </span>
                )}
              </Show>
            </p>
            <Show when={v().record.pending}>
              <PendingWarning app={app} view={v()} />
            </Show>
            <dl class="facts">
              <dt>Contact id</dt>
              <dd>
                <code data-testid="contact-id">{v().record.id}</code>
              </dd>
              <dt>First seen</dt>
              <dd>{timeLabel(v().record.firstSeen)}</dd>
              <dt>Identity version</dt>
              <dd>{v().identity.verified.version}</dd>
            </dl>
            <div class="row">
              <button
                type="button"
                class="primary"
                data-testid="open-chat"
                disabled={v().record.trust === "rejected"}
                onClick={() => app.go({ name: "chat", id: v().record.id })}
              >
                Chat
              </button>
              <button
                type="button"
                data-testid="open-safety"
                ref={safetyButton}
                onClick={() => app.go({ name: "safety", id: v().record.id })}
              >
                Safety code
              </button>
              {/* One button that says what a press does: two buttons swapped for each other took the
                  focus away with the one pressed, to the page's top. */}
              <button
                type="button"
                data-testid={v().record.trust === "rejected" ? "unblock-contact" : "block-contact"}
                onClick={() =>
                  app.setTrust(v().record.id, v().record.trust === "rejected" ? "unknown" : "rejected")
                }
              >
                {v().record.trust === "rejected" ? "Unblock" : "Block"}
              </button>
              <Show when={v().record.trust === "trusted"}>
                <button
                  type="button"
                  data-testid="mark-unverified"
                  onClick={async () => {
                    await app.setTrust(v().record.id, "unknown");
                    // Gone with the trust it undid: to Safety code, where it is verified again.
                    safetyButton?.focus();
                  }}
                >
                  Mark as not verified
                </button>
              </Show>
              <button
                type="button"
                class="danger"
                data-testid="delete-contact"
                ref={deleteDialog.opener}
                aria-expanded={confirmDelete()}
                onClick={() => {
                  setDeleteError(undefined);
                  setConfirmDelete(true);
                }}
              >
                Delete
              </button>
            </div>
            <Show when={confirmDelete()}>
              <ConfirmCard
                label="Delete contact"
                dialog={deleteDialog}
                kind="danger"
                testid="confirm-delete-contact"
                confirm="Delete"
                onConfirm={() => void deleteContact(v().record.id)}
              >
                Delete {v().record.username} and your whole conversation with them from this device?
              </ConfirmCard>
            </Show>
            <Show when={deleteError()}>
              {(message) => (
                <p class="card warning" role="alert" data-testid="delete-contact-error">
                  {message()}
                </p>
              )}
            </Show>
          </>
        )}
      </Show>
    </main>
  );
}

export function SafetyScreen(props: { app: AppModel; id: string }) {
  const app = props.app;
  const view = () => app.contact(props.id);
  let verifiedNote: HTMLParagraphElement | undefined;
  const code = () => {
    const u = app.user();
    const v = view();
    return u && v
      ? safetyCode(u.identity.verified.identity_key, v.identity.verified.identity_key)
      : undefined;
  };
  return (
    <main class="screen" data-testid="safety-screen">
      <Back app={app} to={{ name: "contact", id: props.id }} />
      <Show when={view() && code()}>
        <h1>Safety code with {view()!.record.username}</h1>
        <p>
          Compare these digits with {view()!.record.username}, in person or on a call you trust. If every
          group matches on both screens, nobody is in the middle.
        </p>
        <div class="card center">
          <h2 id="safety-code-label" class="sr-only">
            Safety code
          </h2>
          <p
            class="safety"
            data-testid="safety-code"
            data-digits={code()!.digits}
            aria-describedby="safety-code-label"
          >
            <For each={code()!.groups}>{(g) => <span data-testid="safety-group">{g}</span>}</For>
          </p>
          <Qr text={code()!.qr} label="QR code of the safety code" testid="safety-qr" />
        </div>
        <Show
          when={view()!.record.trust !== "trusted"}
          fallback={
            <p class="ok" data-testid="verified-note" tabIndex={-1} ref={verifiedNote}>
              ✓ You verified {view()!.record.username}.
            </p>
          }
        >
          <button
            type="button"
            class="primary"
            data-testid="mark-verified"
            disabled={view()!.record.trust === "rejected" || !!view()!.record.pending}
            onClick={async () => {
              await app.setTrust(props.id, "trusted");
              // The button gave way to the note: the focus goes there, read out, not to the page's top.
              verifiedNote?.focus();
            }}
          >
            The codes match — mark as verified
          </button>
        </Show>
      </Show>
    </main>
  );
}
