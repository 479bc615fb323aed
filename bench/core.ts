/**
 * `npm run bench:core` — core/ speed next to the best peers doing the same work, in the same
 * process and run. Subjects of one comparison are measured in alternating slices (harness.ts
 * `alternate`: A B, B A, …), and each ratio is the median of the per-round ratios, so load from
 * other work on the machine falls on both sides of it:
 *
 *   - transport, 16 KiB messages sealed + opened: Loft's Noise CipherStates (default AEAD backend,
 *     and the optional node:crypto one) vs @chainsafe/libp2p-noise's, vs raw node:crypto
 *     chacha20-poly1305 (`transport_vs_libp2p`, `transport_vs_nodecrypto`);
 *   - handshakes/s: Loft XX and XXhfs+ML-KEM-768 state machines vs libp2p-noise's XX state
 *     machine (`xx_hs_vs_libp2p`, `xxhfs_hs_vs_libp2p`), and XXhfs with the dialler's ephemeral
 *     keys made before the clock starts, its critical path (`xxhfs_prepared_hs_vs_libp2p`);
 *   - session setup/s: a whole Loft session (version headers, XXhfs, signed identities verified,
 *     ratchets bootstrapped) vs libp2p-noise's whole secureOutbound/secureInbound
 *     (`session_setup_per_s`, `session_setup_vs_libp2p`);
 *   - Double Ratchet, 1 KiB, direction flipping every 10 messages: Loft vs
 *     @signalapp/libsignal-client (`ratchet_vs_libsignal`), and next to one raw AEAD seal.
 *
 * `--json`: the last line is one JSON object (figures, baselines, ratios); `--quick`: short
 * slices (smoke test only). `--backend noble|webcrypto|node|all` picks the crypto provider of the
 * Loft subjects (core/crypto; default noble, the figures recorded so far); `all` measures the
 * headline subjects with noble and adds each other backend as a subject of the same alternation,
 * under keys suffixed `_webcrypto` / `_node`. Method and recorded figures: bench/README.md.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../core/crypto/webcrypto.ts";
import { XX, XX_AESGCM, XX_HFS } from "../core/noise/index.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import {
  ALTERNATION,
  alternate,
  log,
  QUICK,
  type Row,
  rateOf,
  report,
  type SliceRate,
  type Subject,
} from "./harness.ts";
import {
  loftHandshake,
  loftHandshakePrepared,
  loftRatchet,
  loftSessionSetup,
  loftTransport,
} from "./loft-subjects.ts";
import { libp2pNoise } from "./peers/libp2p-noise.ts";
import { libsignalRatchet } from "./peers/libsignal.ts";
import { ratioRow } from "./support/ratio-row.ts";

const TRANSPORT_BYTES = 16 * 1024;
const RATCHET_BYTES = 1024;
const REPLY_EVERY = 10;

// Crypto providers (core/crypto): each Loft subject carries its own, so backends can run side by
// side in one alternation.
const BACKENDS = ["noble", "webcrypto", "node"] as const;
type Backend = (typeof BACKENDS)[number];
const backendFlag = process.argv.indexOf("--backend");
const backendArg = backendFlag > 0 ? (process.argv[backendFlag + 1] ?? "") : "noble";
if (backendArg !== "all" && !(BACKENDS as readonly string[]).includes(backendArg)) {
  console.error(`--backend: one of ${BACKENDS.join(", ")}, all`);
  process.exit(2);
}
const providers: Record<Backend, CryptoProvider> = {
  noble: nobleCrypto,
  webcrypto: await createWebCryptoProvider(),
  node: await createNodeCryptoProvider(),
};
/** The backend of the headline Loft subjects, and the others measured beside them (`all`). */
const HEADLINE: Backend = backendArg === "all" ? "noble" : (backendArg as Backend);
const EXTRA: Backend[] = backendArg === "all" ? ["webcrypto", "node"] : [];
const headline = providers[HEADLINE];

const devDependencies = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    devDependencies: Record<string, string>;
  }
).devDependencies;
const version = (name: string) => `${name} ${devDependencies[name] ?? "?"}`;

const libp2p = await libp2pNoise();

// --- Transport, 16 KiB messages ---
function nodeChachaSubject(): Subject {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const plaintext = randomBytes(TRANSPORT_BYTES);
  let counter = 0n;
  return {
    name: "node:crypto chacha20-poly1305",
    run: async () => {
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
    },
  };
}
log("transport, 16 KiB sealed + opened");
const transportSubjects = {
  loft: await loftTransport(`Loft transport (${HEADLINE})`, TRANSPORT_BYTES, XX, headline),
  loftNode: await loftTransport("Loft transport (node:crypto AEAD)", TRANSPORT_BYTES, XX, providers.node),
  // The suites side by side as a browser runs them: WebCrypto has AES-GCM, not ChaChaPoly (noble).
  chachaWeb: await loftTransport(
    "Loft transport ChaChaPoly_BLAKE2s (webcrypto provider)",
    TRANSPORT_BYTES,
    XX,
    providers.webcrypto,
  ),
  aesWeb: await loftTransport(
    "Loft transport AESGCM_SHA256 (webcrypto provider)",
    TRANSPORT_BYTES,
    XX_AESGCM,
    providers.webcrypto,
  ),
  aesNode: await loftTransport(
    "Loft transport AESGCM_SHA256 (node:crypto)",
    TRANSPORT_BYTES,
    XX_AESGCM,
    providers.node,
  ),
  libp2p: libp2p.transport(TRANSPORT_BYTES),
  openssl: nodeChachaSubject(),
};
const transport = await alternate(Object.values(transportSubjects));
const t = (k: keyof typeof transportSubjects) => rateOf(transport, transportSubjects[k].name);
const mbps = (rate: SliceRate) => (rate.perSecond * TRANSPORT_BYTES) / 1e6;

// --- Handshakes ---
log("handshakes");
const handshakeSubjects: Record<string, Subject> = {
  xx: loftHandshake("Loft XX", XX, headline),
  xxhfs: loftHandshake("Loft XXhfs+ML-KEM-768", XX_HFS, headline),
  // The initiator's ephemeral keys made before the clock starts, as a dialler makes them while its
  // link opens: the handshake's critical path (self-timed).
  xxhfsPrepared: loftHandshakePrepared(
    "Loft XXhfs+ML-KEM-768, dialler's keys made beforehand",
    XX_HFS,
    headline,
  ),
  libp2p: libp2p.xxStateMachine,
};
for (const b of EXTRA) {
  handshakeSubjects[`xx_${b}`] = loftHandshake(`Loft XX [${b}]`, XX, providers[b]);
  handshakeSubjects[`xxhfs_${b}`] = loftHandshake(`Loft XXhfs+ML-KEM-768 [${b}]`, XX_HFS, providers[b]);
}
const handshakes = await alternate(Object.values(handshakeSubjects));
const h = (k: string) => rateOf(handshakes, handshakeSubjects[k]!.name);

// --- Whole session setup ---
log("session setup");
const sessionSubjects: Record<string, Subject> = {
  loft: await loftSessionSetup(headline),
  libp2p: libp2p.fullHandshake,
};
for (const b of EXTRA) sessionSubjects[`loft_${b}`] = await loftSessionSetup(providers[b], ` [${b}]`);
const sessions = await alternate(Object.values(sessionSubjects));
const s = (k: string) => rateOf(sessions, sessionSubjects[k]!.name);

// --- Double Ratchet, 1 KiB, reply every 10 ---
log("double ratchet, 1 KiB, direction flips every 10 messages");
function rawSealSubject(): Subject {
  const key = randomBytes(32);
  const text = randomBytes(RATCHET_BYTES);
  return {
    name: "one node:crypto AEAD seal (1 KiB)",
    run: async () => {
      const enc = createCipheriv("chacha20-poly1305", key, randomBytes(12), { authTagLength: 16 });
      enc.update(text);
      enc.final();
      return 1;
    },
  };
}
const ratchetSubjects: Record<string, Subject> = {
  loft: await loftRatchet(RATCHET_BYTES, REPLY_EVERY, headline),
  libsignal: await libsignalRatchet(RATCHET_BYTES, REPLY_EVERY),
  rawSeal: rawSealSubject(),
};
for (const b of EXTRA)
  ratchetSubjects[`loft_${b}`] = await loftRatchet(RATCHET_BYTES, REPLY_EVERY, providers[b], ` [${b}]`);
const ratchets = await alternate(Object.values(ratchetSubjects));
const r = (k: string) => rateOf(ratchets, ratchetSubjects[k]!.name);

const LIBP2P = version("@chainsafe/libp2p-noise");
const LIBSIGNAL = version("@signalapp/libsignal-client");

/** Every ratio (median of per-round ratios) with its per-round range, under its JSON key. */
const ratios: Record<string, number> = {};
const ratioRanges: Record<string, [number, number]> = {};
const cpuRatios: Record<string, number> = {};
function compare(
  key: string,
  name: string,
  unit: string,
  a: SliceRate,
  b: { name: string; rate: SliceRate },
  scale = 1,
): Row {
  const row = ratioRow(name, unit, a, b, scale);
  ratios[key] = row.ratio;
  ratioRanges[key] = row.ratioRange;
  if (row.cpuRatio !== undefined) cpuRatios[key] = row.cpuRatio;
  return row;
}
const MB = TRANSPORT_BYTES / 1e6;
const rows: Row[] = [
  compare(
    "transport_vs_libp2p",
    "Noise transport 16 KiB enc+dec",
    "MB/s",
    t("loft"),
    { name: "libp2p-noise", rate: t("libp2p") },
    MB,
  ),
  compare(
    "transport_nodebackend_vs_libp2p",
    "Noise transport, node:crypto AEAD backend",
    "MB/s",
    t("loftNode"),
    { name: "libp2p-noise", rate: t("libp2p") },
    MB,
  ),
  compare(
    "transport_vs_nodecrypto",
    "Noise transport 16 KiB enc+dec",
    "MB/s",
    t("loft"),
    { name: "node:crypto chacha20-poly1305", rate: t("openssl") },
    MB,
  ),
  compare(
    "transport_nodebackend_vs_nodecrypto",
    "Noise transport, node:crypto AEAD backend",
    "MB/s",
    t("loftNode"),
    { name: "node:crypto chacha20-poly1305", rate: t("openssl") },
    MB,
  ),
  compare(
    "transport_aesgcm_vs_chachapoly_webcrypto",
    "Noise transport AESGCM_SHA256, webcrypto provider",
    "MB/s",
    t("aesWeb"),
    { name: "the same with ChaChaPoly_BLAKE2s", rate: t("chachaWeb") },
    MB,
  ),
  compare(
    "transport_aesgcm_node_vs_libp2p",
    "Noise transport AESGCM_SHA256, node:crypto",
    "MB/s",
    t("aesNode"),
    { name: "libp2p-noise", rate: t("libp2p") },
    MB,
  ),
  compare("xx_hs_vs_libp2p", "XX handshakes", "hs/s", h("xx"), {
    name: "libp2p-noise XX",
    rate: h("libp2p"),
  }),
  compare("xxhfs_hs_vs_libp2p", "XXhfs+ML-KEM-768 handshakes", "hs/s", h("xxhfs"), {
    name: "libp2p-noise XX",
    rate: h("libp2p"),
  }),
  compare(
    "xxhfs_prepared_hs_vs_libp2p",
    "XXhfs+ML-KEM-768 handshakes, dialler's keys made beforehand (critical path)",
    "hs/s",
    h("xxhfsPrepared"),
    { name: "libp2p-noise XX", rate: h("libp2p") },
  ),
  compare("xxhfs_vs_xx", "XXhfs+ML-KEM-768 handshakes", "hs/s", h("xxhfs"), {
    name: "Loft plain XX",
    rate: h("xx"),
  }),
  compare("session_setup_vs_libp2p", "session setup (XXhfs + identities + ratchet)", "/s", s("loft"), {
    name: "libp2p-noise secure*",
    rate: s("libp2p"),
  }),
  compare("ratchet_vs_libsignal", "Double Ratchet 1 KiB enc+dec", "msg/s", r("loft"), {
    name: "libsignal-client",
    rate: r("libsignal"),
  }),
  compare("ratchet_vs_raw_aead", "Double Ratchet 1 KiB enc+dec", "msg/s", r("loft"), {
    name: "one node:crypto AEAD seal (1 KiB)",
    rate: r("rawSeal"),
  }),
];

const extraFigures: Record<string, number> = {};
for (const b of EXTRA) {
  rows.push(
    compare(`xx_hs_vs_libp2p_${b}`, `XX handshakes [${b}]`, "hs/s", h(`xx_${b}`), {
      name: "libp2p-noise XX",
      rate: h("libp2p"),
    }),
    compare(`xxhfs_hs_vs_libp2p_${b}`, `XXhfs+ML-KEM-768 handshakes [${b}]`, "hs/s", h(`xxhfs_${b}`), {
      name: "libp2p-noise XX",
      rate: h("libp2p"),
    }),
    compare(`session_setup_vs_libp2p_${b}`, `session setup [${b}]`, "/s", s(`loft_${b}`), {
      name: "libp2p-noise secure*",
      rate: s("libp2p"),
    }),
    compare(`ratchet_vs_libsignal_${b}`, `Double Ratchet 1 KiB enc+dec [${b}]`, "msg/s", r(`loft_${b}`), {
      name: "libsignal-client",
      rate: r("libsignal"),
    }),
  );
  extraFigures[`xx_hs_per_s_${b}`] = h(`xx_${b}`).perSecond;
  extraFigures[`xxhfs_hs_per_s_${b}`] = h(`xxhfs_${b}`).perSecond;
  extraFigures[`session_setup_per_s_${b}`] = s(`loft_${b}`).perSecond;
  extraFigures[`ratchet_msgs_per_s_${b}`] = r(`loft_${b}`).perSecond;
}

report("bench:core", rows, {
  // The crypto provider of the headline Loft subjects, and what serves each primitive in each.
  backend: HEADLINE,
  crypto_backends: Object.fromEntries(BACKENDS.map((b) => [b, providers[b].backends])),
  ...extraFigures,
  bench: "core",
  // Transport, 16 KiB messages, sealed + opened.
  transport_mb_s: mbps(t("loft")),
  transport_nodebackend_mb_s: mbps(t("loftNode")),
  libp2p_transport_mb_s: mbps(t("libp2p")),
  nodecrypto_mb_s: mbps(t("openssl")),
  transport_chachapoly_webcrypto_mb_s: mbps(t("chachaWeb")),
  transport_aesgcm_webcrypto_mb_s: mbps(t("aesWeb")),
  transport_aesgcm_node_mb_s: mbps(t("aesNode")),
  // Handshakes (state machines, both parties in one process).
  xx_hs_per_s: h("xx").perSecond,
  xxhfs_hs_per_s: h("xxhfs").perSecond,
  xxhfs_prepared_hs_per_s: h("xxhfsPrepared").perSecond,
  libp2p_xx_hs_per_s: h("libp2p").perSecond,
  // Whole session setup.
  session_setup_per_s: s("loft").perSecond,
  libp2p_full_handshake_per_s: s("libp2p").perSecond,
  // Double Ratchet, 1 KiB, direction flips every 10 messages.
  ratchet_msgs_per_s: r("loft").perSecond,
  libsignal_msgs_per_s: r("libsignal").perSecond,
  raw_aead_seal_per_s: r("rawSeal").perSecond,
  // Ratios: medians of the per-round ratios of wall-clock rates; ratio_ranges: their lowest and
  // highest round; cpu_ratios: the same medians per CPU-second of this process.
  ...ratios,
  ratio_ranges: ratioRanges,
  cpu_ratios: cpuRatios,
  baselines: {
    libp2p_noise: `${LIBP2P}, its default crypto in Node (node:crypto X25519 and SHA-256, noble HKDF; ChaCha20-Poly1305 from node:crypto at 1 200 bytes and more, AssemblyScript below)`,
    libsignal: `${LIBSIGNAL}, its prebuilt native library, in-memory stores`,
    nodecrypto: `node:crypto (OpenSSL ${process.versions.openssl}) chacha20-poly1305`,
  },
  method: {
    alternation:
      "subjects of a comparison run in alternating slices (A B, B A, …); ratios are medians of per-round ratios (wall clock; cpu_ratios per CPU-second)",
    rounds: ALTERNATION.rounds,
    slice_seconds: ALTERNATION.sliceSeconds,
    quick: QUICK,
    transport_bytes: TRANSPORT_BYTES,
    ratchet_bytes: RATCHET_BYTES,
    reply_every: REPLY_EVERY,
  },
});
