/**
 * What the Settings screen changes, as app actions (docs/design.md, "Layers"): the screens never
 * touch storage themselves. Each action either completes or throws an error whose message is
 * for the person (problems.ts), and leaves what was stored as it was when it fails, so the
 * screen can keep what the person typed and say why.
 */
import { MAX_LINK_URL_CHARS, MAX_LINK_URLS } from "../../../core/identity/contact-link.ts";
import type { EngineSettings, IceServerConfig, IceTransportPolicy } from "../engine/api.ts";
import type { SettingsRecord } from "../storage/db.ts";
import { defaultSettings } from "../storage/storage.ts";
import type { AppModel } from "./model.ts";
import type { NotificationMode } from "./notifications.ts";
import { ActionFailed, attempt } from "./problems.ts";

/** The server fields as stored (absent: this site's own servers, `defaultServers`). */
export type ServerSettings = Pick<
  SettingsRecord,
  "signalingUrl" | "signalingUrls" | "relayUrls" | "iceServers" | "iceTransportPolicy" | "mailboxServer"
>;

/** The signaling servers as stored, in order (a record from before lists only `signalingUrl`). */
export function storedSignalingUrls(s: ServerSettings | undefined): string[] {
  if (s?.signalingUrls?.length) return s.signalingUrls;
  return s?.signalingUrl ? [s.signalingUrl] : [];
}

/**
 * Why a list of servers typed in Settings can't be saved, in words for the person, or undefined:
 * each must be a ws:/wss: URL, and a contact link carries at most MAX_LINK_URLS of each kind of
 * at most MAX_LINK_URL_CHARS characters (core/identity/contact-link.ts), so more could not be shared.
 */
export function serverListProblem(kind: "signaling" | "relay", urls: readonly string[]): string | undefined {
  const what = kind === "signaling" ? "signaling" : "relay";
  for (const u of urls) {
    let ws = false;
    try {
      const p = new URL(u).protocol;
      ws = p === "ws:" || p === "wss:";
    } catch {}
    if (!ws) return `Each ${what} address must start with ws:// or wss://.`;
    if (u.length > MAX_LINK_URL_CHARS)
      return `A ${what} address can have at most ${MAX_LINK_URL_CHARS} characters.`;
  }
  if (new Set(urls).size > MAX_LINK_URLS)
    return `At most ${MAX_LINK_URLS} ${what === "signaling" ? "signaling servers" : "relays"}: your contact link carries no more.`;
  return undefined;
}

/** The servers this site provides, used where a field is left empty. */
export function defaultServers(): EngineSettings {
  return defaultSettings();
}

/**
 * Settings are not changed while a restore runs in this tab (app/model.ts `restoring`; the forms
 * are busy then, this refuses one submitted past them): a change asked for during the import waits
 * for it and lands after it, in the restored device — a new name would write the replaced
 * identity, renamed, over the restored one.
 */
async function unlessRestoring<T>(app: AppModel, what: string, change: () => Promise<T>): Promise<T> {
  if (app.restoring())
    throw new ActionFailed(
      `Could not ${what}: a backup is being restored in this tab. Try again once it has ended.`,
      undefined,
    );
  return attempt(what, change);
}

export function loadServerSettings(app: AppModel): Promise<ServerSettings> {
  return attempt("read the settings", () => app.storage.getSettingsRecord(), false);
}

/**
 * Store the server fields (an empty list or string means the default); the other settings stay.
 * The engine takes them at its next start.
 */
export async function saveServers(
  app: AppModel,
  servers: {
    /** In order; the first is also stored as `signalingUrl` (what earlier versions read). */
    signalingUrls: string[];
    relayUrls: string[];
    iceServers: IceServerConfig[];
    iceTransportPolicy?: IceTransportPolicy;
    /** An `smp://` server address; empty: the first relay keeps the mailboxes. */
    mailboxServer?: string;
  },
): Promise<void> {
  await unlessRestoring(app, "save the servers", () =>
    app.storage.updateSettingsRecord({
      signalingUrl: servers.signalingUrls[0] || undefined,
      signalingUrls: servers.signalingUrls.length > 1 ? servers.signalingUrls : undefined,
      relayUrls: servers.relayUrls.length ? servers.relayUrls : undefined,
      iceServers: servers.iceServers.length ? servers.iceServers : undefined,
      iceTransportPolicy: servers.iceTransportPolicy === "relay" ? "relay" : undefined,
      mailboxServer: servers.mailboxServer || undefined,
    }),
  );
}

/** A new username: a new signed identity version, stored before the engine restarts with it. */
export function saveUsername(app: AppModel, username: string): Promise<void> {
  return unlessRestoring(app, "save your name", () => app.changeUsername(username));
}

export function saveNotificationMode(app: AppModel, mode: NotificationMode): Promise<void> {
  return unlessRestoring(app, "save the notification choice", () => app.setNotificationMode(mode));
}

/** Whether this device asks for a passphrase at start. */
export function hasPassphrase(app: AppModel): boolean {
  return app.storage.hasPassphrase;
}

/**
 * Set (a string) or remove (`null`) the passphrase. Every sealed record is re-sealed in one
 * transaction, so a failure leaves the old passphrase (or none) in place.
 */
export function changePassphrase(app: AppModel, to: string | null): Promise<void> {
  const what = to === null ? "remove" : hasPassphrase(app) ? "change" : "set";
  return unlessRestoring(app, `${what} the passphrase`, () => app.storage.setPassphrase(to));
}
