/**
 * Floods of /relay, run in the attacker process (test/abuse/flood-child.ts) by relay.abuse.ts.
 * Each source tries to hold more connections than the relay lets one source open
 * (`--relay-max-connections-per-source`, docs/operations-relay.md §Limits and abuse) and sends on
 * each a mix of PINGs, badly signed GETs on made-up queues (each costs the relay a key parse and
 * an Ed25519 verification) and validly signed NEWs (the costliest command: X25519, HKDF and a
 * store write). Signatures are made once per connection, when it opens, so the flood itself
 * costs the attacker almost nothing.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import WebSocket from "ws";
import { encodeVersionHeader } from "../../core/codec/version.ts";
import { authInput, decodeServerFrame, encodeClientFrame, encodeCommand } from "../../core/relay/protocol.ts";
import { ed25519Signer } from "../../host/node-ed25519.ts";
import { type FloodBounds, type FloodConn, type FloodSpec, floodBounds } from "./support.ts";

export interface RelayFloodParams extends FloodBounds {
  relayUrl: string;
}

/** An attacker's /relay connection: opened (HELLO seen), its frames made, refusals noted. */
export interface RelayConn extends FloodConn {
  readonly frames: readonly Uint8Array[];
  /** The relay answered ERR SOURCE_RATE or closed it with LOFT_ERR_RELAY_SOURCE_RATE. */
  sourceRate: boolean;
}

/** Ed25519 public key of a seed, by node:crypto (the attacker's own keys). */
function publicKeyOf(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  const x = createPublicKey(priv).export({ format: "jwk" }).x ?? "";
  return new Uint8Array(Buffer.from(x, "base64url"));
}

/** The attacker's queue key: one for the whole process (made once, it costs nothing to reuse). */
let attackerKey: { sign: (message: Uint8Array) => Uint8Array; rk: Uint8Array } | undefined;

/** Signed NEWs per connection: signatures bind the session, so each connection makes its own. */
const SIGNED_NEWS = 3;

/**
 * 10 × (PING, badly signed GET on a made-up queue, validly signed NEW) over this session. Only
 * three signatures per connection: with hundreds of connections opening at once, signing more
 * would spend the attacker's CPU on opening instead of flooding.
 */
function attackFrames(sessionId: Uint8Array): Uint8Array[] {
  if (!attackerKey) {
    const seed = new Uint8Array(randomBytes(32));
    attackerKey = { sign: ed25519Signer(seed), rk: publicKeyOf(seed) };
  }
  const { sign, rk } = attackerKey;
  const news = Array.from({ length: SIGNED_NEWS }, () => {
    const t = encodeCommand({ k: "NEW", i: 3, rk, dk: new Uint8Array(randomBytes(32)), sub: false });
    return encodeClientFrame(t, sign(authInput(sessionId, t)));
  });
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 10; i++) {
    frames.push(encodeClientFrame(encodeCommand({ k: "PING", i: 1 })));
    const get = encodeCommand({ k: "GET", i: 2, q: new Uint8Array(randomBytes(24)) });
    frames.push(encodeClientFrame(get, new Uint8Array(randomBytes(64))));
    frames.push(news[i % SIGNED_NEWS]!);
  }
  return frames;
}

/** Open /relay from `source`: version headers exchanged, HELLO read; throws when refused. */
export function openRelay(url: string, source: string): Promise<RelayConn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress: source, perMessageDeflate: false });
    let received = 0;
    let conn: RelayConn | undefined;
    ws.once("unexpected-response", (_req, res) => {
      reject(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.on("error", reject);
    ws.once("close", (code, reason) => {
      if (!conn) return reject(new Error("closed before HELLO"));
      if (code === 1008 && reason.toString() === "LOFT_ERR_RELAY_SOURCE_RATE") conn.sourceRate = true;
    });
    ws.on("open", () => ws.send(encodeVersionHeader()));
    ws.on("message", (data: Buffer) => {
      if (received++ === 0) return; // the relay's version header
      if (conn) {
        // Replies are otherwise ignored; decoded only until the first SOURCE_RATE.
        if (conn.sourceRate) return;
        const d = decodeServerFrame(new Uint8Array(data));
        if (d.ok && d.value.k === "ERR" && d.value.e === "SOURCE_RATE") conn.sourceRate = true;
        return;
      }
      const hello = decodeServerFrame(new Uint8Array(data));
      if (!hello.ok || hello.value.k !== "HELLO") return reject(new Error("no HELLO"));
      conn = { ws, frames: attackFrames(hello.value.s), sourceRate: false };
      resolve(conn);
    });
  });
}

/**
 * More connections per source than the relay allows (the excess is refused with HTTP 429 and
 * retried), each sending PINGs, badly signed GETs and validly signed NEWs in turn.
 */
export function mixedFlood(p: RelayFloodParams): FloodSpec<RelayConn> {
  return {
    ...floodBounds(p),
    open: (source) => openRelay(p.relayUrl, source),
    frame: (conn, n) => conn.frames[n % conn.frames.length]!,
    rateRefused: (conn) => conn.sourceRate,
  };
}
