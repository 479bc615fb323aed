/**
 * `npm run bench:core` — core/ speed, each figure next to a baseline from the same run:
 *   - Noise transport (ChaChaPoly, 16 KiB messages) MB/s vs node:crypto chacha20-poly1305
 *     (OpenSSL) on the same messages: `transport_vs_nodecrypto`;
 *   - XX and XXhfs(+ML-KEM-768) full handshakes per second (XXhfs next to XX: the price of PQ);
 *   - Double Ratchet encrypt+decrypt messages per second (1 KiB), next to the raw AEAD it uses.
 * `--json`: the last line is one JSON object; `--quick`: short runs (smoke test only).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { generateKeyPair, HandshakeState, type NoiseTransport, XX, XX_HFS } from "../core/noise/index.ts";
import type { HandshakePattern } from "../core/noise/patterns.ts";
import {
  generateRatchetKeyPair,
  type RatchetState,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
} from "../core/ratchet/index.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { measure, measureAsync, report } from "./harness.ts";

const MSG = 16 * 1024;
const EMPTY = new Uint8Array(0);

function unwrap<T>(r: { ok: true; value: T } | { ok: false; error: Error }): T {
  if (!r.ok) throw r.error;
  return r.value;
}

async function handshake(
  pattern: HandshakePattern,
  crypto: CryptoProvider = nobleCrypto,
): Promise<[NoiseTransport, NoiseTransport]> {
  const prologue = new Uint8Array([1]);
  const i = await HandshakeState.create({
    pattern,
    role: "initiator",
    prologue,
    staticKeyPair: await generateKeyPair(crypto),
    crypto,
  });
  const r = await HandshakeState.create({
    pattern,
    role: "responder",
    prologue,
    staticKeyPair: await generateKeyPair(crypto),
    crypto,
  });
  unwrap(await r.readMessage(unwrap(await i.writeMessage())));
  unwrap(await i.readMessage(unwrap(await r.writeMessage())));
  unwrap(await r.readMessage(unwrap(await i.writeMessage())));
  return [unwrap(await i.finish()), unwrap(await r.finish())];
}

// --- Noise transport vs node:crypto (same message size, same AEAD, encrypt + decrypt) ---
const [ti, tr] = await handshake(XX);
const plaintext = randomBytes(MSG);
const sealed = new Uint8Array(MSG + 16);
const opened = new Uint8Array(MSG);
const noise = await measureAsync(async () => {
  const ct = unwrap(await ti.send.encryptWithAd(EMPTY, plaintext, sealed));
  unwrap(await tr.receive.decryptWithAd(EMPTY, ct, opened));
  return 1;
});
const key = randomBytes(32);
const nonce = Buffer.alloc(12);
let counter = 0n;
const openssl = measure(() => {
  nonce.writeBigUInt64LE(counter++, 4);
  const enc = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  const ct = enc.update(plaintext);
  enc.final();
  const tag = enc.getAuthTag();
  const dec = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  dec.setAuthTag(tag);
  dec.update(ct);
  dec.final();
  return 1;
});
const mbps = (r: { perSecond: number }) => (r.perSecond * MSG) / 1e6;

// The same transport with the node:crypto provider (host/crypto-node.ts; Node hosts only).
const nodeProvider = await createNodeCryptoProvider();
const [oi, or] = await handshake(XX, nodeProvider);
const noiseOpenssl = await measureAsync(async () => {
  const ct = unwrap(await oi.send.encryptWithAd(EMPTY, plaintext, sealed));
  unwrap(await or.receive.decryptWithAd(EMPTY, ct, opened));
  return 1;
});

// --- Handshakes per second ---
const oneHandshake = (pattern: HandshakePattern) => async () => {
  await handshake(pattern);
  return 1;
};
const xx = await measureAsync(oneHandshake(XX));
const xxhfs = await measureAsync(oneHandshake(XX_HFS));

// --- Ratchet: one encrypt + one decrypt per op, alternating directions every 10 messages ---
async function ratchetPair(): Promise<[RatchetState, RatchetState]> {
  const exported = randomBytes(32);
  const ad = ratchetAssociatedData(randomBytes(32), randomBytes(32));
  const bobKeys = await generateRatchetKeyPair();
  const a = unwrap(
    await ratchetFromHandshake({
      role: "initiator",
      exported,
      ad,
      responderRatchetPublic: bobKeys.publicKey,
    }),
  );
  const b = unwrap(await ratchetFromHandshake({ role: "responder", exported, ad, ratchetKeyPair: bobKeys }));
  return [a, b];
}
let [alice, bob] = await ratchetPair();
const text = randomBytes(1024);
let sent = 0;
const ratchet = await measureAsync(async () => {
  const now = Date.now();
  if (Math.floor(sent / 10) % 2 === 0) {
    const e = await ratchetEncrypt(alice, text, now);
    alice = e.state;
    bob = unwrap(await ratchetDecrypt(bob, e.message, now)).state;
  } else {
    const e = await ratchetEncrypt(bob, text, now);
    bob = e.state;
    alice = unwrap(await ratchetDecrypt(alice, e.message, now)).state;
  }
  sent++;
  return 1;
});
const aeadKey = randomBytes(32);
const rawAead = measure(() => {
  const enc = createCipheriv("chacha20-poly1305", aeadKey, randomBytes(12), { authTagLength: 16 });
  enc.update(text);
  enc.final();
  return 1;
});

const transportRatio = mbps(noise) / mbps(openssl);
report(
  "bench:core",
  [
    {
      name: "Noise transport 16 KiB enc+dec",
      value: mbps(noise),
      unit: "MB/s",
      baseline: { name: "node:crypto chacha20-poly1305", value: mbps(openssl) },
    },
    {
      name: "Noise transport, node:crypto AEAD backend",
      value: mbps(noiseOpenssl),
      unit: "MB/s",
      baseline: { name: "node:crypto chacha20-poly1305", value: mbps(openssl) },
    },
    {
      name: "XXhfs+ML-KEM-768 handshakes",
      value: xxhfs.perSecond,
      unit: "hs/s",
      baseline: { name: "plain XX", value: xx.perSecond },
    },
    { name: "XX handshakes", value: xx.perSecond, unit: "hs/s" },
    {
      name: "Double Ratchet 1 KiB enc+dec",
      value: ratchet.perSecond,
      unit: "msg/s",
      baseline: { name: "one node:crypto AEAD seal (1 KiB)", value: rawAead.perSecond },
    },
  ],
  {
    bench: "core",
    transport_mb_s: mbps(noise),
    nodecrypto_mb_s: mbps(openssl),
    transport_vs_nodecrypto: transportRatio,
    transport_nodebackend_mb_s: mbps(noiseOpenssl),
    transport_nodebackend_vs_nodecrypto: mbps(noiseOpenssl) / mbps(openssl),
    xx_hs_per_s: xx.perSecond,
    xxhfs_hs_per_s: xxhfs.perSecond,
    xxhfs_vs_xx: xxhfs.perSecond / xx.perSecond,
    ratchet_msgs_per_s: ratchet.perSecond,
    raw_aead_seal_per_s: rawAead.perSecond,
    ratchet_vs_raw_aead: ratchet.perSecond / rawAead.perSecond,
  },
);
