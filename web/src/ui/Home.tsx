/** Home: contacts with presence and trust, and the ways to add one or share your own link. */
import { createResource, createSignal, For, Show } from "solid-js";
import type { AppModel } from "../app/model.ts";
import { type ContactLink, makeContactLink, parseContactLink } from "../identity.ts";
import { presenceLabel, TRUST_LABEL } from "./format.ts";
import { Qr } from "./Qr.tsx";

export function Home(props: { app: AppModel }) {
  const app = props.app;
  const contacts = () => app.contacts().filter((c) => !c.record.request);
  return (
    <main class="screen home" data-testid="home">
      <header class="bar">
        <h1>
          Loft{" "}
          <span class="me" data-testid="my-username">
            {app.user()?.identity.verified.username}
          </span>
        </h1>
        <nav class="actions">
          <button type="button" data-testid="nav-my-link" onClick={() => app.go({ name: "my-link" })}>
            My contact link
          </button>
          <button type="button" data-testid="nav-add-contact" onClick={() => app.go({ name: "add" })}>
            Add contact
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
      <Requests app={app} />
      <Show
        when={contacts().length > 0}
        fallback={
          <p class="empty" data-testid="empty-contacts">
            No contacts yet. Share your contact link, or open one someone sent you.
          </p>
        }
      >
        <ul class="contacts" data-testid="contact-list" aria-label="Contacts">
          <For each={contacts()}>
            {(c) => {
              const p = () => app.presenceOf(c.record.id);
              return (
                <li>
                  <button
                    type="button"
                    class="contact"
                    data-testid="contact-item"
                    data-contact-id={c.record.id}
                    data-username={c.record.username}
                    onClick={() =>
                      app.go(
                        c.record.pending || c.record.trust === "rejected"
                          ? { name: "contact", id: c.record.id }
                          : { name: "chat", id: c.record.id },
                      )
                    }
                  >
                    <span class={`dot ${p().status}`} aria-hidden="true" />
                    <span class="name">{c.record.username}</span>
                    <span class="presence" data-testid="contact-presence">
                      {presenceLabel(p())}
                    </span>
                    <span class={`trust ${c.record.trust}`} data-testid="contact-trust">
                      {c.record.pending ? "⚠ Key changed" : TRUST_LABEL[c.record.trust]}
                    </span>
                  </button>
                </li>
              );
            }}
          </For>
        </ul>
      </Show>
    </main>
  );
}

/**
 * First-contact requests: people who have our link and wrote while we were offline. Nothing goes
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
                  <strong>{c.record.username}</strong> opened your contact link and wrote to you while you
                  were offline. Accept to read and reply; they learn nothing from you until you do.
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
                    onClick={() => act(() => app.declineRequest(c.record.id))}
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

export function Back(props: { app: AppModel; to?: Parameters<AppModel["go"]>[0] }) {
  return (
    <button
      type="button"
      class="back"
      data-testid="back"
      onClick={() => props.app.go(props.to ?? { name: "home" })}
    >
      ← Back
    </button>
  );
}

export function MyLink(props: { app: AppModel }) {
  const app = props.app;
  const [copied, setCopied] = createSignal(false);
  const [parts] = createResource(async () => ({
    settings: await app.storage.getSettings(),
    refs: await app.engine?.contactLinkRefs?.().catch(() => undefined),
  }));
  const link = () => {
    const u = app.user();
    const p = parts();
    if (!u || !p) return "";
    const l: ContactLink = {
      identity: u.identity,
      signaling: [p.settings.signalingUrl],
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
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link());
      setCopied(true);
    } catch {
      app.setNotice("Copying is not allowed here: select the link and copy it yourself.");
    }
  };
  const share = async () => {
    await navigator.share?.({ title: "My Loft contact link", url: link() }).catch(() => undefined);
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
          <textarea
            readOnly
            class="link"
            rows={4}
            data-testid="my-link"
            onFocus={(e) => e.currentTarget.select()}
          >
            {link()}
          </textarea>
          <div class="row">
            <button type="button" class="primary" data-testid="copy-link" onClick={copy}>
              {copied() ? "Copied" : "Copy link"}
            </button>
            <Show when={"share" in navigator}>
              <button type="button" onClick={share}>
                Share…
              </button>
            </Show>
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
  const parsed = () => (text().trim() ? parseContactLink(text()) : undefined);
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
