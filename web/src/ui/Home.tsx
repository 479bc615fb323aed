/** Home: contacts with presence and trust, and the ways to add one or share your own link. */

import { createResource, createSignal, For, Show } from "solid-js";
import { statusOf } from "../app/contact-status.ts";
import { deviceStatusLabel } from "../app/devices.ts";
import type { AppModel, ContactView } from "../app/model.ts";
import { myLinkParts } from "../app/my-link.ts";
import { notificationPermission, requestNotificationPermission } from "../app/notifications.ts";
import type { IdentityChangeKind } from "../engine/api.ts";
import { type ContactLink, makeContactLink, parseContactLink } from "../identity.ts";
import { Back } from "./Back.tsx";
import { focusScreen } from "./focus.ts";
import { previewText, TRUST_LABEL, timeLabel } from "./format.ts";
import { NoMessagePreview } from "./NoMessagePreview.tsx";
import { Qr } from "./Qr.tsx";
import { RestoreResult } from "./RestoreResult.tsx";
import { RoomsOnHome } from "./Room.tsx";
import { LinkButtons } from "./ShareButton.tsx";
import { SharedWaiting } from "./SharedWaiting.tsx";

export function Home(props: { app: AppModel }) {
  const app = props.app;
  /** Contacts (not requests), the latest conversation first, then by name. */
  const contacts = () => {
    const latest = (c: ContactView) => app.activity.byContact[c.record.id]?.last?.at ?? c.record.firstSeen;
    return app
      .contacts()
      .filter((c) => !c.record.request)
      .sort((x, y) => latest(y) - latest(x) || x.record.username.localeCompare(y.record.username));
  };
  return (
    <main class="screen home" data-testid="home">
      <header class="bar">
        <h1>
          Loft{" "}
          <span class="me" data-testid="my-username">
            {app.user()?.identity.verified.username}
          </span>
        </h1>
        <nav class="actions" aria-label="Main">
          <button type="button" data-testid="nav-my-link" onClick={() => app.go({ name: "my-link" })}>
            My contact link
          </button>
          <button type="button" data-testid="nav-add-contact" onClick={() => app.go({ name: "add" })}>
            Add contact
          </button>
          <button type="button" data-testid="nav-pair-device" onClick={() => app.go({ name: "pair-device" })}>
            Pair a device
          </button>
          <button type="button" data-testid="nav-settings" onClick={() => app.go({ name: "settings" })}>
            Settings
          </button>
        </nav>
      </header>
      <Show when={app.engineProblem()}>
        <p class="status" data-testid="engine-status">
          {app.engineProblem()}
        </p>
      </Show>
      <RestoreResult />
      {/* A person waiting comes before the offer of notifications: on a phone the offer pushed the
          request below the fold with nothing at the top to say it was there. */}
      <Requests app={app} />
      <NotificationOffer app={app} />
      <SharedWaiting app={app} />
      <Show
        when={contacts().length > 0}
        fallback={
          <p class="empty" data-testid="empty-contacts">
            No contacts yet. Share your contact link, or open one someone sent you.
          </p>
        }
      >
        <ul class="contacts" data-testid="contact-list" aria-label="Contacts">
          <For each={contacts()}>{(c) => <ContactItem app={app} view={c} />}</For>
        </ul>
      </Show>
      <RoomsOnHome app={app} />
    </main>
  );
}

/** One conversation on Home: presence, name, time and preview of the last message, unread count, trust. */
function ContactItem(props: { app: AppModel; view: ContactView }) {
  const app = props.app;
  const c = () => props.view;
  const p = () => app.presenceOf(c().record.id);
  // A device is not a person: no signaling presence, but attached / through the relay (devices.ts).
  const deviceStatus = () =>
    // Read again once the relay's state changes (the engine has loaded the device's queue by then).
    app.service().relay && c().record.device
      ? deviceStatusLabel(c().record.id, app.deviceRelay()?.isLinked(c().record.id) === true)
      : undefined;
  const activity = () => app.activity.byContact[c().record.id];
  const unread = () => activity()?.unread ?? 0;
  const last = () => activity()?.last;
  return (
    <li>
      <button
        type="button"
        class={`contact ${unread() > 0 ? "unread" : ""}`}
        data-testid="contact-item"
        data-contact-id={c().record.id}
        data-username={c().record.username}
        data-unread={unread()}
        onClick={() =>
          app.go(
            c().record.device
              ? { name: "device", id: c().record.id }
              : c().record.pending || c().record.trust === "rejected"
                ? { name: "contact", id: c().record.id }
                : { name: "chat", id: c().record.id },
          )
        }
      >
        <span
          class={`dot ${deviceStatus()?.attached ? "online" : deviceStatus() ? "offline" : p().status}`}
          aria-hidden="true"
        />
        <span class="name">{c().record.username}</span>
        <Show when={last()}>
          {(m) => (
            <span class="when">
              <time datetime={new Date(m().at).toISOString()}>{timeLabel(m().at)}</time>
            </span>
          )}
        </Show>
        <span class="preview" data-testid="contact-preview">
          <Show
            when={last()}
            fallback={
              <Show when={!c().record.device} fallback={<span class="muted">Device paired over USB</span>}>
                <NoMessagePreview app={app} contact={c().record.id} />
              </Show>
            }
          >
            {(m) => (
              <>
                <Show when={m().direction === "out"}>
                  <span class="muted">You: </span>
                </Show>
                {previewText(m().text)}
              </>
            )}
          </Show>
        </span>
        <Show when={unread() > 0}>
          <span class="badge" data-testid="contact-unread">
            {unread() > 99 ? "99+" : unread()}
            <span class="sr-only"> unread</span>
          </span>
        </Show>
        <span class="presence" data-testid="contact-presence">
          {deviceStatus()?.label ?? statusOf(app, c().record.id).label}
        </span>
        <span
          class={`trust ${c().record.trust}`}
          data-testid="contact-trust"
          data-pending={c().record.pending?.kind}
        >
          {c().record.pending ? PENDING_LABEL[c().record.pending!.kind] : TRUST_LABEL[c().record.trust]}
        </span>
      </button>
    </li>
  );
}

/**
 * What a contact with a pending identity change shows on Home instead of its trust, one short label
 * per kind (engine/api.ts `IdentityChangeKind`; the full warnings are OUTCOME_TEXT below and the
 * contact screen's): a rename onto another contact's name is not a key change.
 */
export const PENDING_LABEL: Record<IdentityChangeKind, string> = {
  "noise-key-rotated": "⚠ Key changed",
  "username-collision": "⚠ Same name, different key",
  "rename-collision": "⚠ Took another contact's name",
  conflict: "⚠ Conflicting identity",
  downgrade: "⚠ Older identity offered",
};

/**
 * The offer to turn notifications on, once there is someone to hear from (a contact or a
 * request) and the browser has not been asked yet. The permission prompt comes only from the
 * button (browsers require a click, and a prompt on first load is refused by most people).
 */
function NotificationOffer(props: { app: AppModel }) {
  const app = props.app;
  const [permission, setPermission] = createSignal(notificationPermission());
  const show = () =>
    permission() === "default" &&
    app.contacts().length > 0 &&
    !app.notificationOfferDismissed() &&
    app.notificationMode() !== "off" &&
    // Its "Not now" is a setting: not offered while a restore runs here (AppModel
    // `dismissNotificationOffer`), it comes back if the restore fails.
    !app.restoring();
  const turnOn = async () => {
    const p = await requestNotificationPermission();
    setPermission(p);
    if (p === "denied") app.setNotice("Notifications are blocked for Loft in this browser's site settings.");
    else if (p === "granted") app.setNotice("Notifications are on. Change them in Settings.");
  };
  return (
    <Show when={show()}>
      <section class="card" data-testid="notification-offer" aria-labelledby="notification-offer-title">
        <h2 id="notification-offer-title">Know when a message arrives</h2>
        <p>
          Loft can notify you of new messages while it is in the background. You choose in Settings whether a
          notification shows the message or only who wrote.
        </p>
        <div class="row">
          <button type="button" class="primary" data-testid="enable-notifications" onClick={turnOn}>
            Turn on notifications
          </button>
          <button
            type="button"
            data-testid="dismiss-notifications"
            onClick={() => void app.dismissNotificationOffer()}
          >
            Not now
          </button>
        </div>
      </section>
    </Show>
  );
}

/**
 * First-contact requests: people who have our link and wrote to us (docs/protocol/mailbox.md).
 * Worded by what happened — a request — not by a guess about whether we were online. Nothing goes
 * back to them (not even a delivery receipt) until the user accepts; declining blocks them.
 */
function Requests(props: { app: AppModel }) {
  const app = props.app;
  const requests = () => app.contacts().filter((c) => c.record.request);
  const [busy, setBusy] = createSignal(false);
  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    try {
      await f();
    } finally {
      setBusy(false);
    }
  };
  const sameName = (id: string, name: string) =>
    app.contacts().some((c) => c.record.id !== id && !c.record.request && c.record.username === name);
  return (
    <Show when={requests().length > 0}>
      <section class="card" data-testid="requests" aria-label="Contact requests">
        <h2>Contact requests</h2>
        <ul class="requests">
          <For each={requests()}>
            {(c) => (
              <li data-testid="request-item" data-contact-id={c.record.id} data-username={c.record.username}>
                <p>
                  <strong>{c.record.username}</strong> opened your contact link and sent you a contact request
                  with a message. Accept to read it and reply; they learn nothing from you until you do.
                </p>
                <Show when={sameName(c.record.id, c.record.username)}>
                  <p class="error" role="alert" data-testid="request-warning">
                    Warning: you already have a contact named {c.record.username} with a different identity
                    key. This may be someone pretending to be them.
                  </p>
                </Show>
                <div class="row">
                  <button
                    type="button"
                    class="primary"
                    data-testid="accept-request"
                    disabled={busy()}
                    onClick={() =>
                      act(async () => {
                        await app.acceptRequest(c.record.id);
                        app.go({ name: "chat", id: c.record.id });
                      })
                    }
                  >
                    Accept
                  </button>
                  <button
                    type="button"
                    class="danger"
                    data-testid="decline-request"
                    disabled={busy()}
                    onClick={() =>
                      void act(() => app.declineRequest(c.record.id)).then(() => {
                        // The request is gone with its buttons (disabled while it went, which had
                        // already dropped the focus to the page): to the next request, else to the
                        // screen's heading — never nowhere (docs/user-guide.md,
                        // "Writing to someone who is offline, and contact requests").
                        focusScreen(".requests button.primary");
                      })
                    }
                  >
                    Decline and block
                  </button>
                </div>
              </li>
            )}
          </For>
        </ul>
      </section>
    </Show>
  );
}

export function MyLink(props: { app: AppModel }) {
  const app = props.app;
  const [parts] = createResource(() => myLinkParts(app));
  const link = () => {
    const u = app.user();
    const p = parts();
    if (!u || !p) return "";
    const l: ContactLink = {
      identity: u.identity,
      signaling: p.settings.signalingUrls ?? [p.settings.signalingUrl],
      relay: p.settings.relayUrls,
    };
    if (p.refs && Object.keys(p.refs).length > 0) l.refs = p.refs;
    try {
      return makeContactLink(location.origin, l);
    } catch (e) {
      app.setNotice((e as Error).message);
      return "";
    }
  };
  return (
    <main class="screen" data-testid="my-link-screen">
      <Back app={app} />
      <h1>My contact link</h1>
      <p>
        Send this link to people you want to talk to, or let them scan the code. It contains your public
        identity only; the part after <code>#</code> never reaches any server.
      </p>
      <Show when={link()}>
        <div class="card center">
          <Qr text={link()} label="QR code of your contact link" testid="my-link-qr" />
          <label for="my-link-text" class="sr-only">
            Your contact link
          </label>
          <textarea
            id="my-link-text"
            readOnly
            class="link"
            rows={4}
            data-testid="my-link"
            onFocus={(e) => e.currentTarget.select()}
          >
            {link()}
          </textarea>
          <div class="row">
            <LinkButtons
              app={app}
              title="My Loft contact link"
              url={link}
              copyTestid="copy-link"
              shareTestid="share-link"
            />
          </div>
        </div>
      </Show>
    </main>
  );
}

const OUTCOME_TEXT: Record<string, (name: string) => string> = {
  self: () => "This is your own contact link.",
  "new-contact": (n) => `Add ${n} to your contacts?`,
  unchanged: (n) => `${n} is already in your contacts.`,
  updated: (n) => `${n} updated their profile. Save the update?`,
  rejected: (n) => `You blocked ${n}. Open the contact to unblock them.`,
  "noise-key-rotated": (n) =>
    `Warning: this link has a new encryption key for ${n}. It may be a new device — or someone intercepting your messages.`,
  downgrade: (n) =>
    `Warning: this link carries an older identity for ${n} than the one you have. Nothing will change.`,
  conflict: (n) =>
    `Warning: this link carries a different identity for ${n} with the same version as yours. ${n}'s key may be compromised.`,
  "username-collision": (n) =>
    `Warning: you already have a contact named ${n} with a different identity key. This link may be from someone pretending to be them.`,
  "rename-collision": (n) =>
    `Warning: one of your contacts now calls themselves ${n}, the name of another of your contacts. They may be trying to pass as them.`,
};

const WARNINGS = new Set([
  "noise-key-rotated",
  "downgrade",
  "conflict",
  "username-collision",
  "rename-collision",
]);

const BUTTON_TEXT: Record<string, string> = {
  "new-contact": "Add contact",
  unchanged: "Open contact",
  rejected: "Open contact",
  downgrade: "Open contact",
  updated: "Save update",
};

export function AddContact(props: { app: AppModel; text?: string }) {
  const app = props.app;
  const [text, setText] = createSignal(props.text ?? "");
  const [error, setError] = createSignal<string>();
  const [busy, setBusy] = createSignal(false);
  // Verifying the link's identity is async (the page's crypto provider); a result counts only
  // for the text it was made from, so a quick edit never shows or adds the previous link.
  const [checked] = createResource(
    () => ({ text: text().trim() }),
    async ({ text: t }) => ({ text: t, result: t ? await parseContactLink(t) : undefined }),
  );
  const parsed = () => {
    const c = checked.latest;
    return c && c.text === text().trim() ? c.result : undefined;
  };
  const link = () => {
    const p = parsed();
    return p?.ok ? p.link : undefined;
  };
  const kind = () => {
    const l = link();
    if (!l) return undefined;
    const o = app.assessLink(l);
    return "self" in o ? "self" : o.decision.kind;
  };
  const confirm = async () => {
    const l = link();
    if (!l) return;
    setBusy(true);
    try {
      const id = await app.acceptLink(l);
      app.go({ name: "contact", id });
    } catch (x) {
      setError((x as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const warning = () => WARNINGS.has(kind() ?? "");
  return (
    <main class="screen" data-testid="add-screen">
      <Back app={app} />
      <h1>Add a contact</h1>
      <label for="link-input">Paste a contact link</label>
      <textarea
        id="link-input"
        rows={4}
        data-testid="link-input"
        data-autofocus
        value={text()}
        onInput={(e) => {
          setText(e.currentTarget.value);
          setError(undefined);
        }}
        placeholder="https://…/#c=…"
      />
      <Show when={parsed() && !parsed()!.ok}>
        <p class="error" role="alert" data-testid="link-error">
          {(parsed() as { reason: string }).reason}
        </p>
      </Show>
      <Show when={link() && kind()}>
        {(k) => {
          const name = () => link()!.identity.verified.username;
          return (
            <div class={`card ${warning() ? "warning" : ""}`} role={warning() ? "alert" : undefined}>
              <p data-testid="add-outcome" data-outcome={k()}>
                {OUTCOME_TEXT[k()]?.(name())}
              </p>
              <p>
                Name in the link: <strong data-testid="confirm-username">{name()}</strong>
              </p>
              <div class="row">
                <Show when={k() !== "self"}>
                  <button
                    type="button"
                    class={warning() ? "danger" : "primary"}
                    data-testid="confirm-add"
                    disabled={busy()}
                    onClick={confirm}
                  >
                    {BUTTON_TEXT[k()] ?? "Review the change"}
                  </button>
                </Show>
                <button type="button" data-testid="cancel-add" onClick={() => app.go({ name: "home" })}>
                  Cancel
                </button>
              </div>
            </div>
          );
        }}
      </Show>
      <Show when={error()}>
        <p class="error" role="alert">
          {error()}
        </p>
      </Show>
    </main>
  );
}
