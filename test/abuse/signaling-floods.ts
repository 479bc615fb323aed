/**
 * Floods of /signal, run in the attacker process (test/abuse/flood-child.ts) by
 * signaling.abuse.ts. Attackers make their identities once; the flood itself costs them almost
 * no CPU (random signatures, flipped bytes, native signing), while each frame asks the server
 * for the most work an unauthenticated client can ask for.
 */
import WebSocket from "ws";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { encodeVersionHeader, SIGNALING_VERSION } from "../../core/codec/version.ts";
import { encodeIdentity } from "../../core/identity/identity.ts";
import { SIGNATURE_CONTEXTS, signedBytes } from "../../core/identity/signature.ts";
import { clientCodec, serverCodec } from "../../core/wire/signaling.ts";
import { requestSignedPayload } from "../../core/wire/signed.ts";
import { ed25519Signer } from "../../host/node-ed25519.ts";
import { makeUser } from "../../signaling/testing.ts";
import { type FloodBounds, type FloodConn, type FloodSpec, floodBounds } from "./support.ts";

export interface SignalFloodParams extends FloodBounds {
  signalUrl: string;
}

/** An attacker's /signal connection: headers exchanged, CHALLENGE known, replies ignored. */
export interface SignalConn extends FloodConn {
  readonly challenge: Uint8Array<ArrayBuffer>;
  readonly base: number;
}

export function openSignal(url: string, source: string): Promise<SignalConn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress: source, perMessageDeflate: false });
    let frames = 0;
    ws.once("unexpected-response", (_req, res) => {
      reject(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.on("error", reject);
    ws.once("close", () => reject(new Error("closed before CHALLENGE")));
    ws.on("open", () => ws.send(encodeVersionHeader(SIGNALING_VERSION)));
    ws.on("message", (data: Buffer) => {
      if (frames++ !== 1) return; // frame 0: VERSION_HEADER; later: replies, ignored
      const m = serverCodec.decode(new Uint8Array(data));
      if (!m.ok || m.value.t !== "CHALLENGE") return reject(new Error("no CHALLENGE"));
      resolve({ ws, challenge: m.value.challenge, base: Date.now() });
    });
  });
}

/**
 * REGISTERs in thirds: a forged identity (its signature flipped: the server must verify the
 * identity to refuse it, every time), a valid identity with a random signature (identity cached,
 * one verification), a valid REGISTER (full work, then registration churn between connections).
 */
export function registerFlood(p: SignalFloodParams): FloodSpec<SignalConn> {
  const pool = Array.from({ length: 8 }, (_, i) => {
    const user = makeUser(`attacker${i}`);
    const bytes = encodeIdentity(user.identity) as Uint8Array<ArrayBuffer>;
    const forged = bytes.slice();
    forged[20]! ^= 0x55; // inside the identity's signature
    return { bytes, forged, sign: ed25519Signer(user.privateIdentityKey) };
  });
  return {
    ...floodBounds(p),
    open: (source) => openSignal(p.signalUrl, source),
    frame(conn, n) {
      const who = pool[n % pool.length]!;
      const unsigned = {
        t: "REGISTER_REQUEST" as const,
        identity: n % 3 === 0 ? who.forged : who.bytes,
        ttl_seconds: 60,
        timestamp: conn.base + n,
        nonce: conn.challenge,
        audience: p.signalUrl,
      };
      const signature =
        n % 3 === 2
          ? who.sign(
              signedBytes(SIGNATURE_CONTEXTS.registerRequest, requestSignedPayload(unsigned, "signature")),
            )
          : crypto.getRandomValues(new Uint8Array(64));
      return clientCodec.encode({ ...unsigned, id: n, signature: signature as Uint8Array<ArrayBuffer> });
    },
  };
}

/** Garbage, truncated REGISTERs, wrong shapes, deep nesting, unknown types, oversized and text. */
export function malformedFlood(p: SignalFloodParams): FloodSpec<SignalConn> {
  const user = makeUser("template");
  const valid = encodeCanonical({
    t: "REGISTER_REQUEST",
    identity: encodeIdentity(user.identity),
    ttl_seconds: 60,
    timestamp: Date.now(),
    nonce: new Uint8Array(16),
    audience: p.signalUrl,
    signature: new Uint8Array(64),
  });
  const junk: (Uint8Array | string)[] = [];
  for (let i = 0; i < 256; i++) {
    const kind = i % 8;
    if (kind === 0) junk.push(crypto.getRandomValues(new Uint8Array(1 + ((i * 37) % 2_000))));
    else if (kind === 1) junk.push(valid.slice(0, 1 + ((i * 13) % (valid.length - 1))));
    else if (kind === 2) junk.push(encodeCanonical({ t: "SIGNAL", id: i, envelope: { from: i } }));
    else if (kind === 3) junk.push(encodeCanonical({ t: "NOPE", id: i }));
    else if (kind === 4) junk.push(new Uint8Array(Array.from({ length: 200 }, () => 0x91)));
    else if (kind === 5) junk.push(i % 64 === 5 ? new Uint8Array(70_000) : new Uint8Array([0xc1]));
    else if (kind === 6) junk.push(i % 64 === 6 ? "text frames are refused" : new Uint8Array([0x80]));
    else junk.push(encodeCanonical({ t: "SUBSCRIBE", id: i, keys: [new Uint8Array(31)] }));
  }
  return {
    ...floodBounds(p),
    open: (source) => openSignal(p.signalUrl, source),
    frame: (_conn, n) => junk[n % junk.length]!,
  };
}
