/**
 * A hostile signaling server — a test double of ours for test/e2e/tamper.e2e.ts. It is a real
 * WebSocket server speaking our signaling protocol (docs/protocol/signaling.md): each browser
 * connection is relayed frame by frame to the real service (`upstream`), decoded with the real
 * codecs (core/wire/signaling.ts) and, depending on `mode`, rewritten on the way:
 *
 *  - "pass": nothing changes (the control: chat works through the proxy).
 *  - "rewrite-fingerprint": every ANSWER delivered to a browser gets a different DTLS fingerprint
 *    in its SDP — what a server would do to put itself between the two DTLS endpoints. It cannot
 *    re-sign the envelope (it holds no identity key), so the signature no longer verifies.
 *  - "substitute": the worst case, a server that *can* sign for some identities (it holds the keys
 *    of two puppets registered upstream: `target`, a contact the victim dials, and `front`, a
 *    contact of a third party). Whatever the victim sends to `target` is re-sent, signed by
 *    `front`, to `thirdParty`; whatever `thirdParty` sends to `front` comes back signed by
 *    `target`. The victim's data channel then really opens — to the third party's browser — and
 *    only the Noise handshake, bound to `target`'s identity key, can tell.
 *    `front` is shown offline to everyone so that the third party only answers.
 *
 * In every mode it also records the offers it delivers to each browser, and can replay them
 * later (`replayOffers`) — what a server that keeps traffic would do after the recipient
 * reloads its page — and counts the answers each browser sends (`answersTo`).
 */
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { equalBytes, toHex } from "../../core/bytes.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { decodeIdentity, type UserIdentity } from "../../core/identity/identity.ts";
import { SignalingClient } from "../../core/signaling/client.ts";
import {
  clientCodec,
  type ServerMessage,
  type SignalEnvelope,
  serverCodec,
} from "../../core/wire/signaling.ts";
import { wsFactory } from "../../signaling/testing.ts";
import { decodeSignalPayload, encodeSignalPayload } from "../../web/src/net/signal-payload.ts";

export type TamperMode =
  | { kind: "pass" }
  | { kind: "rewrite-fingerprint" }
  | { kind: "substitute"; target: UserIdentity; front: UserIdentity; thirdParty: Uint8Array };

export interface TamperStats {
  /** Answers whose fingerprint was rewritten. */
  rewritten: number;
  /** Envelopes re-signed by a puppet and sent to someone other than the addressee. */
  substituted: number;
}

export interface TamperingSignaling {
  /** `ws://127.0.0.1:PORT/signal` — put it in the PWA's settings. */
  readonly url: string;
  readonly stats: TamperStats;
  /** Change the behaviour; for "substitute", registers the two puppets upstream first. */
  setMode(mode: TamperMode): Promise<void>;
  /** Offers delivered to `to` so far (recorded in every mode). */
  offersTo(to: Uint8Array): number;
  /**
   * ANSWER envelopes `from` has sent to any of `offers` (matched by the connection attempt id
   * both carry, docs/protocol/signaling.md "Payloads"): an answer to another offer — one the
   * browser never saw before — is not counted.
   */
  answersTo(from: Uint8Array, offers: readonly SignalEnvelope[]): number;
  /** The offers delivered to `to` so far (the last 16), for `replayOffers`. */
  recordedOffers(to: Uint8Array): SignalEnvelope[];
  /**
   * Push `offers` again to every current connection of their recipient; returns how many
   * envelopes went down (offers × connections).
   */
  replayOffers(offers: readonly SignalEnvelope[]): number;
  /** REGISTER requests seen from browsers registering as `key` (first ones and renewals). */
  registrationsOf(key: Uint8Array): number;
  close(): Promise<void>;
}

/** Replace the hex of every `a=fingerprint:` line with other bytes of the same length. */
export function rewriteFingerprints(sdp: string): string {
  return sdp.replace(/a=fingerprint:(\S+) ([0-9A-Fa-f:]+)/g, (_m, alg: string, hex: string) => {
    const flipped = hex.replace(/[0-9A-Fa-f]/g, (c) =>
      ((Number.parseInt(c, 16) + 7) % 16).toString(16).toUpperCase(),
    );
    return `a=fingerprint:${alg} ${flipped}`;
  });
}

export async function startTamperingSignaling(upstream: string): Promise<TamperingSignaling> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/signal" });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const port = (wss.address() as AddressInfo).port;
  const stats: TamperStats = { rewritten: 0, substituted: 0 };
  let mode: TamperMode = { kind: "pass" };
  const puppets: SignalingClient[] = [];
  let targetClient: SignalingClient | undefined;
  let frontClient: SignalingClient | undefined;
  /** Who last wrote to `target` (the victim), to send the third party's answers back to. */
  let victim: Uint8Array | undefined;
  /** Offers delivered, by recipient key (hex). */
  const offers = new Map<string, SignalEnvelope[]>();
  /** The connection attempt ids (hex) each sender's answers carried, by sender key (hex). */
  const answerConns = new Map<string, string[]>();
  const connOf = (e: SignalEnvelope): string | undefined => {
    const p = decodeSignalPayload(e.kind, e.payload);
    return p.ok && "conn" in p.value ? toHex(p.value.conn) : undefined;
  };
  /** Browser connections by the identity they registered (hex). */
  const registered = new Map<string, Set<(bytes: Uint8Array) => void>>();
  const registrations = new Map<string, number>();

  const puppet = async (user: UserIdentity): Promise<SignalingClient> => {
    const c = new SignalingClient({ url: upstream, user, connect: wsFactory(), reconnect: false });
    await c.start();
    puppets.push(c);
    return c;
  };

  wss.on("connection", (down, req) => {
    // The browser dialled us: upstream sees the Host it addressed, as behind any reverse proxy,
    // so the REGISTER audience (this proxy's URL) is the service's own. The per-connection
    // CHALLENGE passes through untouched: a live relay of frames, not a replay.
    const up = new WebSocket(upstream, { headers: { host: req.headers.host ?? "" } });
    const early: Buffer[] = [];
    let downFirst = true;
    let upFirst = true;
    const sendDown = (bytes: Uint8Array) => {
      if (down.readyState === WebSocket.OPEN) down.send(bytes);
    };
    const sendUp = (bytes: Uint8Array) => {
      if (up.readyState === WebSocket.OPEN) up.send(bytes);
      else early.push(Buffer.from(bytes));
    };
    up.on("open", () => {
      for (const b of early.splice(0)) up.send(b);
    });
    up.on("error", () => down.close());
    down.on("error", () => up.close());
    up.on("close", (code) => down.close(code === 1005 || code === 1006 ? 1000 : code));
    down.on("close", () => up.close());

    // browser → server, one frame at a time in arrival order (checking a REGISTER is async)
    let downChain: Promise<unknown> = Promise.resolve();
    down.on("message", (data: Buffer) => {
      downChain = downChain.then(() => fromBrowser(data)).catch(() => down.close());
    });
    const fromBrowser = async (data: Buffer) => {
      const bytes = new Uint8Array(data);
      if (downFirst) {
        downFirst = false; // VERSION_HEADER
        return sendUp(bytes);
      }
      const decoded = clientCodec.decode(bytes);
      if (decoded.ok && decoded.value.t === "REGISTER_REQUEST") {
        const identity = await decodeIdentity(nobleCrypto, decoded.value.identity);
        if (identity.ok) {
          const key = toHex(identity.value.verified.identity_key);
          registrations.set(key, (registrations.get(key) ?? 0) + 1);
          const set = registered.get(key) ?? new Set();
          if (!set.has(sendDown)) down.once("close", () => set.delete(sendDown));
          set.add(sendDown);
          registered.set(key, set);
        }
      }
      if (decoded.ok && decoded.value.t === "SIGNAL" && decoded.value.envelope.kind === "answer") {
        const from = toHex(decoded.value.envelope.from);
        const conn = connOf(decoded.value.envelope);
        if (conn) answerConns.set(from, [...(answerConns.get(from) ?? []), conn]);
      }
      if (!decoded.ok || decoded.value.t !== "SIGNAL" || mode.kind !== "substitute") return sendUp(bytes);
      const { envelope } = decoded.value;
      const ack = (m: { id?: number }) =>
        sendDown(serverCodec.encode({ t: "SIGNAL_ACK", ...(m.id === undefined ? {} : { id: m.id }) }));
      const targetKey = mode.target.identity.verified.identity_key;
      const frontKey = mode.front.identity.verified.identity_key;
      if (equalBytes(envelope.to, targetKey) && frontClient) {
        victim = envelope.from.slice();
        stats.substituted++;
        void frontClient.signal(mode.thirdParty, envelope.kind, envelope.payload).catch(() => {});
        return ack(decoded.value);
      }
      if (
        equalBytes(envelope.to, frontKey) &&
        equalBytes(envelope.from, mode.thirdParty) &&
        targetClient &&
        victim
      ) {
        stats.substituted++;
        void targetClient.signal(victim, envelope.kind, envelope.payload).catch(() => {});
        return ack(decoded.value);
      }
      sendUp(bytes);
    };

    // server → browser
    up.on("message", (data: Buffer) => {
      const bytes = new Uint8Array(data);
      if (upFirst) {
        upFirst = false; // VERSION_HEADER
        return sendDown(bytes);
      }
      const decoded = serverCodec.decode(bytes);
      if (!decoded.ok) return sendDown(bytes);
      const m = decoded.value;
      // Recorded only when it really goes down: an offer the browser never received would be
      // news to it, not a replay.
      if (m.t === "SIGNAL" && m.envelope.kind === "offer" && down.readyState === WebSocket.OPEN) {
        const to = toHex(m.envelope.to);
        offers.set(to, [...(offers.get(to) ?? []), m.envelope].slice(-16));
      }
      const rewritten = rewrite(m);
      sendDown(rewritten ? serverCodec.encode(rewritten) : bytes);
    });
  });

  function rewrite(m: ServerMessage): ServerMessage | undefined {
    if (mode.kind === "rewrite-fingerprint" && m.t === "SIGNAL" && m.envelope.kind === "answer") {
      const p = decodeSignalPayload("answer", m.envelope.payload);
      if (!p.ok || p.value.kind !== "answer") return undefined;
      const sdp = rewriteFingerprints(p.value.sdp);
      stats.rewritten++;
      // The signature stays as it was: the server has no key to sign the new payload with.
      const payload = encodeSignalPayload({ kind: "answer", conn: p.value.conn, sdp });
      return { ...m, envelope: { ...m.envelope, payload: payload as Uint8Array<ArrayBuffer> } };
    }
    if (mode.kind === "substitute" && m.t === "PRESENCE") {
      const front = mode.front.identity.verified.identity_key;
      return { ...m, peers: m.peers.map((p) => (equalBytes(p.key, front) ? { ...p, online: false } : p)) };
    }
    return undefined;
  }

  return {
    url: `ws://127.0.0.1:${port}/signal`,
    stats,
    async setMode(next) {
      mode = next;
      if (next.kind === "substitute") {
        // `front` first: once `target` is online upstream the victim dials it at once.
        frontClient = await puppet(next.front);
        targetClient = await puppet(next.target);
      }
    },
    offersTo: (to) => offers.get(toHex(to))?.length ?? 0,
    answersTo(from, to) {
      const conns = new Set(to.map(connOf));
      return (answerConns.get(toHex(from)) ?? []).filter((c) => conns.has(c)).length;
    },
    recordedOffers: (to) => [...(offers.get(toHex(to)) ?? [])],
    registrationsOf: (key) => registrations.get(toHex(key)) ?? 0,
    replayOffers(recorded) {
      let sent = 0;
      for (const envelope of recorded)
        for (const send of registered.get(toHex(envelope.to)) ?? []) {
          send(serverCodec.encode({ t: "SIGNAL", envelope }));
          sent++;
        }
      return sent;
    },
    async close() {
      for (const p of puppets) p.close();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
