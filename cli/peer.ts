/**
 * A headless Loft peer (docs/user-guide.md "The command line"): the browser's chat engine
 * (web/src/engine/engine.ts — sessions, ratchets, relay mailboxes, first contacts, signaling)
 * composed for Node, the way web/src/chat-engine.ts composes it for a page:
 *
 *   crypto        node:crypto (host/crypto-node.ts), checked against noble at startup
 *   storage       one sealed state file (state-file.ts)
 *   WebSockets    the `ws` package (Node 20 has no global WebSocket)
 *   direct links  none (no-direct.ts): live sessions go through the relay, the mailbox as always
 *   relays        the browser's pool (web/src/net/relay-pool.ts): protocol 1.2, each delivery in its
 *                 size bucket, 1.1 with a relay from before it (`config.relayDelivery: "block"`
 *                 forces 1.1; docs/decisions.md (Relay), "The app speaks relay protocol 1.2")
 *
 * Nothing of the engine is changed for Node: the same steps decide, the same codecs run.
 */
import WebSocket from "ws";
import { toHex } from "../core/bytes.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { type ContactLink, contactLinkUrl, parseContactLinkUrl } from "../core/identity/contact-link.ts";
import { decodeIdentity, encodeIdentity, type UserIdentity } from "../core/identity/identity.ts";
import type { WebSocketLike as RelayWebSocketLike } from "../core/relay/ws-link.ts";
import type { WebSocketLike } from "../core/signaling/client.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import type {
  ContactEndpoints,
  ContactId,
  ContactRecord,
  EngineEvent,
  EngineSettings,
  MessageId,
  MessageState,
} from "../web/src/engine/api.ts";
import { Engine, type EngineConfig } from "../web/src/engine/engine.ts";
import { contactIdOf, type KnownContact, tofuDecide } from "../web/src/identity.ts";
import { RelayLiveTransport } from "../web/src/net/relay-live.ts";
import { createRelayPool } from "../web/src/net/relay-pool.ts";
import { noDirectTransport } from "./no-direct.ts";
import type { Lookup } from "./resolve.ts";
import type { StateFile } from "./state-file.ts";

/** A day: "try direct again" never finds a path in Node, so it is tried as rarely as a timer allows. */
const NEVER_MS = 24 * 60 * 60 * 1000;

/** Something the person asked for that cannot be done (an unknown contact, a bad link): exit 1. */
export class PeerError extends Error {
  override name = "PeerError";
}

export interface PeerOptions {
  user: UserIdentity;
  storage: StateFile;
  /** Engine timings or hooks over the CLI's (tests). */
  config?: Partial<EngineConfig>;
  /** A provider to use instead of node:crypto's (tests share one). */
  crypto?: CryptoProvider;
  log?: (line: string) => void;
  /** How host names are resolved (resolve.ts `fixedLookup`); absent: the system's resolver. */
  lookup?: Lookup;
}

/** The signaling and relay URLs of a Loft server (`https://host` → `wss://host/signal`, `/relay`). */
export function settingsForServer(server: string): EngineSettings {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new PeerError(`not a server address: ${server}`);
  }
  if (
    (url.protocol !== "https:" && url.protocol !== "http:") ||
    url.pathname !== "/" ||
    url.search ||
    url.hash
  )
    throw new PeerError(`--server takes a server's origin, like https://loft.example (got ${server})`);
  const ws = `${url.protocol === "https:" ? "wss" : "ws"}://${url.host}`;
  return { signalingUrl: `${ws}/signal`, relayUrls: [`${ws}/relay`] };
}

/** The server's web origin back from its signaling URL (`wss://host/signal` → `https://host`). */
export function originOf(settings: EngineSettings): string | undefined {
  const m = /^(wss?):\/\/([^/]+)\//.exec(settings.signalingUrl);
  return m ? `${m[1] === "wss" ? "https" : "http"}://${m[2]}` : undefined;
}

export class HeadlessPeer {
  readonly user: UserIdentity;
  readonly storage: StateFile;
  readonly id: ContactId;
  readonly engine: Engine;
  readonly crypto: CryptoProvider;

  private constructor(user: UserIdentity, storage: StateFile, engine: Engine, crypto: CryptoProvider) {
    this.crypto = crypto;
    this.user = user;
    this.storage = storage;
    this.engine = engine;
    this.id = toHex(user.identity.verified.identity_key);
  }

  static async create(options: PeerOptions): Promise<HeadlessPeer> {
    const crypto = options.crypto ?? (await createNodeCryptoProvider());
    const log = options.log ?? (() => {});
    const lookup = options.lookup;
    // No compression, as in the browser (ciphertext does not compress; it only costs CPU).
    const socket = (url: string) =>
      new WebSocket(url, { perMessageDeflate: false, ...(lookup ? { lookup } : {}) });
    const config: Partial<EngineConfig> & Pick<EngineConfig, "transport" | "relayConnections"> = {
      crypto,
      transport: noDirectTransport,
      relayTransport: (deps) => new RelayLiveTransport(deps),
      relayConnections: createRelayPool,
      webSocket: (url) => socket(url) as unknown as WebSocketLike,
      relayWebSocket: (url) => socket(url) as unknown as RelayWebSocketLike,
      directRetryMs: NEVER_MS,
      directRetryMaxMs: NEVER_MS,
      log,
      ...options.config,
    };
    const engine = new Engine({ user: options.user, storage: options.storage }, config);
    return new HeadlessPeer(options.user, options.storage, engine, crypto);
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  async stop(): Promise<void> {
    await this.engine.stop();
    await this.storage.flushed();
  }

  subscribe(listener: (e: EngineEvent) => void): () => void {
    return this.engine.subscribe(listener);
  }

  // ---- contacts -------------------------------------------------------------------------------

  /**
   * A contact by id, a unique id prefix (8+ hex digits) or a unique name; a clear error otherwise.
   */
  async contact(which: string): Promise<ContactRecord> {
    const all = await this.storage.listContacts();
    const lower = which.toLowerCase();
    const byId = /^[0-9a-f]{8,64}$/.test(lower) ? all.filter((c) => c.id.startsWith(lower)) : [];
    const found = byId.length > 0 ? byId : all.filter((c) => c.username === which);
    if (found.length === 1) return found[0]!;
    if (found.length === 0) throw new PeerError(`no contact "${which}" (see \`loft contacts\`)`);
    throw new PeerError(`"${which}" names ${found.length} contacts: use the contact's id`);
  }

  /**
   * Add the contact a link names (or refresh it), with the app's TOFU rules (web/src/app/model.ts
   * `acceptLink`): a new contact is added Unknown, a newer identity with the same keys is stored,
   * anything that needs a person's judgement (a rotated noise key, a name another key uses, a
   * downgrade, a blocked contact) is refused with what it is — the CLI never decides it silently.
   */
  async acceptLink(url: string): Promise<{ id: ContactId; name: string; added: boolean }> {
    const parsed = await parseContactLinkUrl(this.crypto, url.trim());
    if (!parsed.ok) throw new PeerError(`not a Loft contact link: ${parsed.error.message}`);
    const link: ContactLink = parsed.value;
    const id = contactIdOf(link.identity);
    if (id === this.id) throw new PeerError("that is this identity's own contact link");
    const contacts = await this.storage.listContacts();
    const known: KnownContact[] = [];
    for (const c of contacts) {
      const identity = await this.#identityOf(c);
      if (identity)
        known.push({ id: c.id, identity, trust: c.trust, firstSeen: c.firstSeen, lastSeen: c.lastSeen });
    }
    const { decision } = tofuDecide(known, link.identity);
    const endpoints: ContactEndpoints = { signaling: link.signaling, relay: link.relay };
    if (link.refs) endpoints.refs = link.refs;
    const name = link.identity.verified.username;
    const now = Date.now();
    switch (decision.kind) {
      case "new-contact":
        await this.engine.changeContact(id, {
          kind: "add",
          contact: {
            id,
            identity: encodeIdentity(link.identity),
            username: name,
            trust: "unknown",
            firstSeen: now,
            lastSeen: now,
            endpoints,
          },
        });
        return { id, name, added: true };
      case "unchanged":
        await this.engine.changeContact(id, { kind: "endpoints", endpoints });
        return { id, name, added: false };
      case "updated":
        await this.engine.changeContact(
          id,
          { kind: "identity", identity: encodeIdentity(link.identity), username: name },
          { kind: "endpoints", endpoints },
        );
        return { id, name, added: false };
      case "rejected":
        throw new PeerError(`${name} is blocked here; nothing changed`);
      default:
        throw new PeerError(
          `this link's identity needs a decision (${decision.kind}): compare safety codes in the app; nothing changed`,
        );
    }
  }

  /** Accept a first-contact request (someone who had our link wrote first). */
  async acceptRequest(which: string): Promise<ContactRecord> {
    const c = await this.contact(which);
    if (!c.request) throw new PeerError(`${c.username} is already a contact (no request to accept)`);
    await this.engine.changeContact(c.id, { kind: "accept-request" });
    return c;
  }

  async #identityOf(c: ContactRecord) {
    const r = await decodeIdentity(this.crypto, c.identity);
    return r.ok ? r.value : undefined;
  }

  // ---- messages -------------------------------------------------------------------------------

  /**
   * Send `text` to a contact and wait until it has left this device: `sent` over a live session,
   * `relayed` into the contact's mailbox, or `delivered` (or until `until` is reached), or
   * `failed`. Resolves with the final state; at most `timeoutMs`.
   */
  async send(
    which: string,
    text: string,
    until: "left" | "delivered" = "left",
    timeoutMs = 60_000,
  ): Promise<{ id: MessageId; contact: ContactRecord; state: MessageState; reason?: string }> {
    const contact = await this.contact(which);
    const done = (s: MessageState) =>
      s === "failed" || s === "delivered" || (until === "left" && (s === "sent" || s === "relayed"));
    let resolveFinal!: (v: { state: MessageState; reason?: string }) => void;
    const final = new Promise<{ state: MessageState; reason?: string }>((r) => {
      resolveFinal = r;
    });
    let mine: MessageId | undefined;
    const early: EngineEvent[] = [];
    const onEvent = (e: EngineEvent) => {
      if (e.type !== "message-state" || e.contactId !== contact.id) return;
      if (mine === undefined) early.push(e);
      else if (e.id === mine && done(e.state))
        resolveFinal({ state: e.state, ...(e.failure ? { reason: e.failure.message } : {}) });
    };
    const off = this.engine.subscribe(onEvent);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const handed = this.engine.handOver(contact.id, text);
      mine = handed.message.id;
      for (const e of early.splice(0)) onEvent(e);
      await handed.stored;
      const stored = await this.storage.getMessage(mine);
      if (stored && done(stored.state)) return { id: mine, contact, state: stored.state };
      const timedOut = new Promise<{ state: MessageState; reason: string }>((r) => {
        timer = setTimeout(
          () => r({ state: "queued", reason: "not sent yet: it stays in the outbox for the next run" }),
          timeoutMs,
        );
      });
      return { id: mine, contact, ...(await Promise.race([final, timedOut])) };
    } finally {
      clearTimeout(timer);
      off();
    }
  }

  // ---- our link ---------------------------------------------------------------------------------

  /**
   * This identity's contact link for its server, with the engine's references (the contact
   * address at the relay, so a stranger's first message can reach us) once the engine has them,
   * waiting at most `waitMs` for them.
   */
  async link(waitMs = 10_000): Promise<{ url: string; refs: boolean }> {
    const settings = await this.storage.getSettings();
    const origin = originOf(settings);
    if (!origin) throw new PeerError("no server set: run with --server https://loft.example");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refs = await Promise.race([
      this.engine.contactLinkRefs().catch(() => undefined),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), waitMs);
      }),
    ]);
    clearTimeout(timer);
    const r = contactLinkUrl(origin, {
      identity: this.user.identity,
      signaling: [settings.signalingUrl],
      relay: settings.relayUrls,
      ...(refs ? { refs } : {}),
    });
    if (!r.ok) throw new PeerError(r.error.message);
    return { url: r.value, refs: refs !== undefined };
  }
}
