/**
 * bench:chat — the direct chat path in real Chromium, inside the test network namespace
 * (`npm run bench:chat [-- --json] [-- --quick]`, which runs `scripts/e2e.mjs --bench`):
 *
 *  (a) first_message_ms: ms from accepting a contact link (the contact stored, the engine told)
 *      to the first decrypted message from that contact — signaling presence, WebRTC (ICE, DTLS,
 *      SCTP), the Noise XXhfs+ML-KEM-768 handshake, HELLO, ratchet bootstrap, the peer's outbox
 *      flush, decryption and storage. Median of several fresh identity pairs.
 *  (b) E2EE throughput over a data channel (Noise session + one Double Ratchet message per 16 KiB
 *      payload) next to raw throughput of the same payloads over a second data channel between
 *      the same two pages, open at the same time, batches alternating (raw E2EE, E2EE raw, …):
 *      `e2ee_vs_raw`, the median of the per-round ratios. Plus whole-engine chat messages per second
 *      (every message stored, its ratchet state persisted, a receipt returned).
 *      Each subject's CPU per MiB moved, per Chromium process and thread (bench/browser-cpu.ts, as
 *      bench:files reads it): `cpu_ms_per_mib`, `cpu_threads_ms_per_mib`, `cpu_e2ee_vs_raw` — on a
 *      machine whose cores the raw channel already fills, the rate follows the CPU per byte.
 *  (c) signaling: registrations held by one signaling process and its RSS per registered peer
 *      (bench/signaling-registrations.ts `measureRegistrations`).
 *
 * The pages run a bench bundle built here with Vite from the real modules (web/src/engine,
 * web/src/net, web/src/storage, core/); nothing is mocked. Figures: bench/README-chat.md.
 */
import type { Page } from "playwright-core";
import { BrowserCpu, CpuAccounts } from "./browser-cpu.ts";
import { type CpuProfile, startProfile, topSelf } from "./cpu-profile.ts";
import {
  alternate,
  log,
  median,
  rateOf,
  report,
  type SliceRate,
  type Subject,
  sliceRatio,
} from "./harness.ts";
import { callPage, repoModule } from "./page-bundle.ts";
import { measureRegistrations } from "./signaling-registrations.ts";
import { runBench, startPageBench } from "./support/page-bench.ts";

const QUICK = process.argv.includes("--quick");
const PAYLOAD_BYTES = 16 * 1024;
const PAYLOADS = QUICK ? 200 : 500;
const REPEATS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 2 : 5));
const ENGINE_MESSAGES = QUICK ? 50 : 300;
/** `LOFT_BENCH_REGISTRATIONS=0` skips (c), e.g. for throughput A/B runs on a loaded machine. */
const REGISTRATIONS = Number(process.env.LOFT_BENCH_REGISTRATIONS ?? (QUICK ? 300 : 2_000));
/** `--profile`: one more batch of each E2EE path under the Chromium CPU profiler, both pages. */
const PROFILE = process.argv.includes("--profile");
/** `--first-only`: only the first-message runs (`LOFT_BENCH_FIRST_RUNS` of them), no throughput. */
const FIRST_ONLY = process.argv.includes("--first-only");
/** `--engine-only`: one first-message run for the pair, then `LOFT_BENCH_ENGINE_RUNS` engine bursts. */
const ENGINE_ONLY = process.argv.includes("--engine-only");
/**
 * `--ratchet-cpu`: only the ratchet's CPU per message in one page, no data channel (`ratchetLoop`:
 * the ratchet work of `e2ee_single` both ways, of `e2ee` (`bundled`, per payload), its KDF_CK in
 * JavaScript, and AES-GCM alone),
 * alternating, the whole browser's CPU per MiB each (`ratchet_cpu_ms_per_mib`).
 */
const RATCHET_CPU = process.argv.includes("--ratchet-cpu");
/** Messages per `--ratchet-cpu` run: enough CPU for the kernel's 10 ms ticks to resolve a few per cent. */
const RATCHET_MESSAGES = QUICK ? 500 : 2_000;
/**
 * `LOFT_BENCH_WARMUP=0`: the engines run without their crypto warm-up (web/src/engine/warm-up.ts),
 * for A/B runs of the cold first message; by default each page's engine runs it, as in the app.
 */
const WARMUP = process.env.LOFT_BENCH_WARMUP !== "0";
const FIRST_MESSAGE_RUNS = ENGINE_ONLY ? 1 : Number(process.env.LOFT_BENCH_FIRST_RUNS ?? (QUICK ? 2 : 5));
const ENGINE_RUNS = ENGINE_ONLY ? Number(process.env.LOFT_BENCH_ENGINE_RUNS ?? 3) : 1;

/** What a page's engine warm-up ran (web/src/engine/warm-up.ts `WarmUp`). */
interface WarmUpRun {
  protocol: string;
  ms: number;
}

interface FirstMessage {
  ms: number;
  connecting: number | null;
  online: number | null;
  suite?: string;
  /** When Alice accepted, ms since 1970 (both pages' logs are read from there). */
  acceptedEpoch: number;
}

// ---- the page side (plain JS, bundled by Vite from the real modules) ----------------------------

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { createChatEngineWith } from ${repoModule("web/src/chat-engine.ts")};
import { createUserIdentityWith, encodeIdentity, decodeIdentity } from ${repoModule("core/identity/identity.ts")};
import { toHex } from ${repoModule("core/bytes.ts")};
import { pageCrypto } from ${repoModule("web/src/crypto.ts")};
import { nobleCrypto } from ${repoModule("core/crypto/noble.ts")};
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { WebRtcLink } from ${repoModule("web/src/net/webrtc-link.ts")};
import { establishSession } from ${repoModule("core/session/index.ts")};
import { bootstrapChatRatchet, freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from ${repoModule("web/src/engine/ratchet-store.ts")};
import { ratchetEncryptParts, ratchetDecrypt, ratchetEncryptBatch, ratchetDecryptBatch, ratchetFromSecret, generateRatchetKeyPair } from ${repoModule("core/ratchet/index.ts")};
import { FLUSH_BATCH } from ${repoModule("web/src/engine/messages.ts")};
import { RATCHET_FRAME_TYPE, decodeSessionFrame, encodeBundle, MAX_BUNDLE_BYTES, MAX_BUNDLE_MESSAGES } from ${repoModule("web/src/engine/wire.ts")};

const s = { links: [], named: {}, sessions: {} };
// Payloads per bundle (wire.ts appPlaintexts's rule: 00 ‖ count ‖ one bucket byte each ‖ the buckets).
const perBundle = (size) => Math.min(MAX_BUNDLE_MESSAGES, Math.floor((MAX_BUNDLE_BYTES - 2) / (1 + size)));
// One flush's plaintexts of k copies of \`payload\`: bundled, in bundles of perBundle (a lone one
// as itself), as the engine sends them; else one each. Shared by the e2ee subjects and ratchetLoop.
const plaintextsOf = (payload, k, bundled) => {
  const per = perBundle(payload.length);
  if (!bundled || per < 2) return new Array(k).fill(payload);
  const out = [];
  for (let j = 0; j < k; j += per) {
    const m = Math.min(per, k - j);
    out.push(m === 1 ? payload : encodeBundle(new Array(m).fill(payload)));
  }
  return out;
};
const until = (cond) => new Promise((resolve) => {
  const tick = () => (cond() ? resolve() : setTimeout(tick, 2));
  tick();
});

window.loftBench = {
  async init(name, signalingUrl) {
    s.user = await createUserIdentityWith(pageCrypto, { username: name, now: Date.now() });
    s.storage = await LoftStorage.open("bench-" + name);
    await s.storage.setSettingsRecord({ signalingUrl });
    s.events = { firstMessageAt: undefined, connectingAt: undefined, onlineAt: undefined, suite: undefined, delivered: 0, service: "" };
    return { identity: Array.from(encodeIdentity(s.user.identity)), id: toHex(s.user.identity.verified.identity_key) };
  },
  async startEngine(warmUp) {
    if (s.engine) await s.engine.stop();
    s.logs = [];
    s.engine = createChatEngineWith({ user: s.user, storage: s.storage },
      { ...(warmUp ? {} : { warmUp: undefined }), log: (m) => s.logs.length < 400 && s.logs.push([performance.timeOrigin + performance.now(), m]) });
    s.engine.subscribe((e) => {
      if (e.type === "message" && s.events.firstMessageAt === undefined) s.events.firstMessageAt = performance.now();
      if (e.type === "presence" && e.presence.status === "connecting" && s.events.connectingAt === undefined)
        s.events.connectingAt = performance.now();
      if (e.type === "presence" && e.presence.status === "online" && s.events.onlineAt === undefined) {
        s.events.onlineAt = performance.now();
        s.events.suite = e.presence.suite;
      }
      if (e.type === "message-state" && e.state === "delivered") s.events.delivered++;
      if (e.type === "service") s.events.service = e.status.signaling;
    });
    await s.engine.start();
    await until(() => s.events.service === "connected");
    // The engine's crypto warm-up (web/src/engine/warm-up.ts) done, as it is by the time a user
    // has read a contact link and pressed Accept: run 1 then measures a fresh page, not one
    // still compiling beside the first contact.
    const w = await s.engine.warmedUp;
    if (warmUp && !w) throw new Error("the engine's crypto warm-up did not run (its log says why)");
    return w ? { protocol: w.protocol, ms: w.ms } : null;
  },
  async addContact(identity) {
    const bytes = new Uint8Array(identity);
    const decoded = await decodeIdentity(pageCrypto, bytes);
    if (!decoded.ok) throw new Error("bad identity");
    const id = toHex(decoded.value.verified.identity_key);
    s.acceptedAt = performance.now();
    s.acceptedEpoch = performance.timeOrigin + s.acceptedAt;
    await s.storage.putContact({ id, identity: bytes, username: decoded.value.verified.username,
      trust: "unknown", firstSeen: Date.now(), lastSeen: Date.now() });
    s.engine.contactChanged(id);
    return id;
  },
  async send(contactId, text) { return s.engine.send(contactId, text); },
  async firstMessageMs() {
    await until(() => s.events.firstMessageAt !== undefined);
    const at = (t) => (t === undefined ? null : t - s.acceptedAt);
    return { ms: s.events.firstMessageAt - s.acceptedAt, connecting: at(s.events.connectingAt),
      online: at(s.events.onlineAt), suite: s.events.suite, acceptedEpoch: s.acceptedEpoch };
  },
  // The engine's log lines since "epoch" (ms since 1970, shared by both pages' clocks): "ms line".
  logsSince(epoch) {
    return s.logs.filter(([t]) => t >= epoch).map(([t, m]) => (t - epoch).toFixed(1) + " " + m);
  },
  online(contactId) { return s.engine.presence(contactId).status === "online"; },
  async engineBurst(contactId, n) {
    await until(() => s.engine.presence(contactId).status === "online");
    const start = performance.now();
    const base = s.events.delivered;
    for (let i = 0; i < n; i++) await s.engine.send(contactId, "message " + i + " " + "x".repeat(100));
    await until(() => s.events.delivered - base >= n);
    return performance.now() - start;
  },
  async stopEngine() { await s.engine?.stop(); s.engine = undefined; },

  // -- raw and E2EE data channels between the two pages, both open at once so that their
  // batches alternate; each link's signals are relayed by Node under its name -----------------
  newLink(name, initiator) {
    const link = new WebRtcLink({ initiator, onSignal: (sig) => window.loftRelay(name, JSON.stringify(sig)) });
    s.links.push(link);
    s.named[name] = link;
  },
  signal(name, json) { s.named[name].signal(JSON.parse(json)); },
  async linkOpen(name) { await s.named[name].opened; },
  async rawSend(n, size) {
    const link = s.named.raw;
    const payload = crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    for (let i = 0; i < n; i++) { link.send(payload); await link.drain(); }
    await link.receive(); // the receiver's "done"
    return performance.now() - start;
  },
  async rawReceive(n) {
    const link = s.named.raw;
    for (let i = 0; i < n; i++) await link.receive();
    link.send(new Uint8Array([1]));
  },
  // name "rawBundled": the raw channel with as many payloads per data channel message as the e2ee
  // subject puts in a bundle (three of 16 KiB): what fewer, longer link messages save on their own.
  async rawBundledSend(name, n, size) {
    const link = s.named[name];
    const per = perBundle(size);
    // getRandomValues fills at most 65 536 bytes a call; a bundle's worth can be more.
    const payload = new Uint8Array(size * per);
    for (let at = 0; at < payload.length; at += 65536) crypto.getRandomValues(payload.subarray(at, at + 65536));
    const start = performance.now();
    for (let i = 0; i < n; i += per) { link.send(payload.subarray(0, size * Math.min(per, n - i))); await link.drain(); }
    await link.receive(); // the receiver's "done"
    return performance.now() - start;
  },
  async rawBundledReceive(name, n, size) {
    const link = s.named[name];
    for (let i = 0; i < n; ) i += (await link.receive()).length / size;
    link.send(new Uint8Array([1]));
  },
  // name "e2ee": what the engine runs (the page's provider: WebCrypto where native; the AES-GCM
  // Noise suite offered, as to a contact known to answer offers; ratchet message version 0x03
  // (AES-256-GCM header and body), as to a peer whose ratchet.v2 lists it; messages encrypted FLUSH_BATCH at a time, as the
  // engine's outbox flush does, and decrypted in runs of what has arrived: ratchetEncryptBatch /
  // ratchetDecryptBatch; since session 15 each body detached from its Noise frame, as the engine
  // sends to a peer that announced session.detached: one AEAD pass per byte; since session 22 each
  // flush batch's payloads in bundles — wire.ts encodeBundle, as many whole 16 KiB payloads (a
  // 2^14 bucket each) as fit MAX_BUNDLE_BYTES, three — as the engine sends chat messages to a peer
  // that listed chat.bundle); name "single": the e2ee path with one payload per ratchet message
  // (the engine's path before session 22, and to a peer without chat.bundle); name "twopass": the
  // same batches with the whole ratchet message inside the Noise frame — since session 16 on
  // ratchet version 0x03 like "e2ee" (the engine's path to a peer listing 03 without
  // session.detached), no longer the engine's path before session 15, which wrote 0x02: so
  // e2ee_vs_twopass from session 16 on is not comparable with session 15's (bench/README-chat.md);
  // name "v2": the e2ee path with ratchet
  // version 0x02 (XChaCha20-Poly1305 header in JavaScript, the path before session 16, and to a
  // peer whose ratchet.v2 lists 01 02); name "serial": one message at a time
  // (the path before session 14, whole messages in Noise frames); name "v1": one at a time with
  // ratchet version 0x01 (XChaCha20-Poly1305 body), the path before ratchet v2; name "noble": the
  // path before issue #10 (noble for everything, ChaChaPoly_BLAKE2s). The last five kept as
  // same-run references.
  // Returns the handshake's ms (over the already open data channel) and the protocol name.
  async e2eeSession(name, initiator) {
    const link = s.named[name];
    const engine = name !== "noble";
    const opts = engine ? { crypto: pageCrypto } : {};
    const detachedFrames = name === "e2ee" || name === "single" || name === "v2";
    const start = performance.now();
    let session;
    let r;
    if (initiator) {
      session = await establishSession({ link, role: "initiator", kind: "direct", self: s.user, ...opts,
        detachedFrames, ...(engine ? { suites: ["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"] } : {}) });
      r = await bootstrapChatRatchet(session, s.user.identity.verified.identity_key, undefined, opts.crypto);
    } else {
      const kp = await freshRatchetKeyPair(opts.crypto);
      session = await establishSession({ link, role: "responder", kind: "direct", self: s.user, ...opts,
        detachedFrames, extensions: { [RATCHET_KEY_EXTENSION]: kp.publicKey } });
      r = await bootstrapChatRatchet(session, s.user.identity.verified.identity_key, kp, opts.crypto);
    }
    if (!r.ok) throw r.error;
    const messageVersion = { e2ee: 3, single: 3, twopass: 3, v2: 2, serial: 2 }[name];
    const ratchetOpts = messageVersion ? { ...opts, messageVersion } : opts;
    if (session.detachedFrames !== detachedFrames) throw new Error(name + ": session.detached not as asked");
    s.sessions[name] = { session, ratchet: r.value.state, opts: ratchetOpts,
      batched: name === "e2ee" || name === "single" || name === "twopass" || name === "v2",
      bundled: name === "e2ee" };
    return { ms: performance.now() - start, protocol: session.protocolName };
  },
  // One Double Ratchet message per payload inside a Noise transport frame (a chat message's path,
  // peer-ratchet.ts sendApps: sent in parts, the body copied once, into the Noise frame).
  async e2eeSend(name, n, size) {
    const link = s.named[name];
    const e = s.sessions[name];
    const payload = crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    if (e.batched) {
      for (let i = 0; i < n; i += FLUSH_BATCH) {
        const k = Math.min(FLUSH_BATCH, n - i);
        const batch = await ratchetEncryptBatch(e.ratchet, plaintextsOf(payload, k, e.bundled), Date.now(), e.opts);
        e.ratchet = batch.state;
        // peer-ratchet.ts sendApps: sendDetached (sendParts in a session without detached frames).
        for (const m of batch.messages) e.session.sendDetached([RATCHET_FRAME_TYPE, m.prefix], m.body);
        await link.drain();
      }
    } else {
      for (let i = 0; i < n; i++) {
        const { state, prefix, body } = await ratchetEncryptParts(e.ratchet, payload, Date.now(), e.opts);
        e.ratchet = state;
        e.session.sendParts([RATCHET_FRAME_TYPE, prefix, body]);
        await link.drain();
      }
    }
    await e.session.receive(); // "done"
    return performance.now() - start;
  },
  async e2eeReceive(name, n, size) {
    const e = s.sessions[name];
    const message = (frame) => {
      const f = decodeSessionFrame(frame);
      if (!f.ok || f.value.type !== "ratchet") throw new Error("unexpected frame");
      return f.value.message;
    };
    for (let i = 0; i < n; ) {
      if (e.batched) {
        const frames = await e.session.receiveMany(Math.min(4 * FLUSH_BATCH, n - i));
        const r = await ratchetDecryptBatch(e.ratchet, frames.map(message), Date.now(), e.opts);
        e.ratchet = r.state;
        if (r.thrown) throw r.thrown; // messages from r.results.length on were not read
        for (const x of r.results) {
          if (!x.ok) throw x.error;
          // A bundle carries its count in its second byte; the payloads are random bytes, not
          // application messages, so neither path decodes them. Told apart by length, not by the
          // first byte: a lone payload's is random, 00 one time in 256, and its second byte then
          // counted it as 0–255 payloads (the batch ended early and the run failed on "unexpected
          // frame", or never ended).
          const p = x.value;
          i += e.bundled && p.length !== size ? p[1] : 1;
        }
      } else {
        const r = await ratchetDecrypt(e.ratchet, message(await e.session.receive()), Date.now(), e.opts);
        if (!r.ok) throw r.error;
        e.ratchet = r.value.state;
        i++;
      }
    }
    e.session.send(new Uint8Array([1]));
  },
  // Bulk keyed once per stream: each payload is one Noise transport frame only, one AEAD pass per
  // byte (how proxy bodies travel; issue #10's "carried by the transport only").
  async streamSend(name, n, size) {
    const link = s.named[name];
    const session = s.sessions[name].session;
    const payload = crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      session.send(payload);
      await link.drain();
    }
    await session.receive(); // "done"
    return performance.now() - start;
  },
  async streamReceive(name, n) {
    const session = s.sessions[name].session;
    for (let i = 0; i < n; i++) await session.receive();
    session.send(new Uint8Array([1]));
  },
  // --ratchet-cpu: one page's ratchet alone, no link — n payloads sealed FLUSH_BATCH at a time
  // (ratchetEncryptBatch) by one state and opened in runs of 64 (ratchetDecryptBatch) by its peer,
  // as the e2ee subject's two pages do ("bundled": in bundles, three 16 KiB payloads to a ratchet
  // message, since session 22); "aes": the body's AES-GCM alone under one imported key (the
  // per-byte floor both ways, what a stream frame costs). The whole browser's CPU is read around it.
  async ratchetLoop(variant, n, size) {
    // "kdfjs": KDF_CK's HMACs from noble (session 15's size rule, tried again by CPU); "kdfjs-keyed":
    // the same with the chain key's padded hash states made once for its two HMACs (RFC 2104).
    let keyedFor;
    const keyedNoble = async (key, ...parts) => {
      if (keyedFor?.key !== key) keyedFor = { key, h: hmac.create(sha256, key) };
      const h = keyedFor.h.clone();
      for (const p of parts) h.update(p);
      return h.digest();
    };
    const provider =
      variant === "kdfjs" ? { ...pageCrypto, hmacSha256: nobleCrypto.hmacSha256 }
      : variant === "kdfjs-keyed" ? { ...pageCrypto, hmacSha256: keyedNoble }
      : pageCrypto;
    const payload = globalThis.crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    if (variant === "aes") {
      const keyed = await pageCrypto.aes256gcm.withKey(globalThis.crypto.getRandomValues(new Uint8Array(32)));
      const ad = new Uint8Array(8);
      for (let i = 0; i < n; i += FLUSH_BATCH) {
        const k = Math.min(FLUSH_BATCH, n - i);
        const nonces = Array.from({ length: k }, () => globalThis.crypto.getRandomValues(new Uint8Array(12)));
        const sealed = await Promise.all(nonces.map((iv) => keyed.seal(iv, ad, payload)));
        const opened = await Promise.all(sealed.map((c, j) => keyed.open(nonces[j], ad, c)));
        if (opened.some((x) => x === undefined)) throw new Error("aes: did not open");
      }
      return performance.now() - start;
    }
    const opts = { crypto: provider, messageVersion: 3 };
    const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const ad = new Uint8Array(64);
    const kp = await generateRatchetKeyPair(undefined, pageCrypto);
    const a = await ratchetFromSecret({ role: "alice", secret: secret.slice(), bobRatchetPublic: kp.publicKey, ad, crypto: pageCrypto });
    const b = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: kp, ad, crypto: pageCrypto });
    if (!a.ok || !b.ok) throw new Error("ratchet pair");
    let sa = a.value;
    let sb = b.value;
    const queued = [];
    // "bundled": each batch's payloads in bundles, as the e2ee subject and the engine send them.
    for (let i = 0; i < n; i += FLUSH_BATCH) {
      const k = Math.min(FLUSH_BATCH, n - i);
      const batch = await ratchetEncryptBatch(sa, plaintextsOf(payload, k, variant === "bundled"), Date.now(), opts);
      sa = batch.state;
      for (const m of batch.messages) {
        const whole = new Uint8Array(m.prefix.length + m.body.length);
        whole.set(m.prefix);
        whole.set(m.body, m.prefix.length);
        queued.push(whole);
      }
      if (queued.length >= 4 * FLUSH_BATCH || i + k >= n) {
        const r = await ratchetDecryptBatch(sb, queued.splice(0), Date.now(), opts);
        sb = r.state;
        if (r.thrown) throw r.thrown;
        for (const x of r.results) if (!x.ok) throw x.error;
      }
    }
    return performance.now() - start;
  },
  closeLinks() { for (const l of s.links) l.close("bench-done"); s.links = []; s.named = {}; s.sessions = {}; },
};
`;

/**
 * One batch of each subject with the V8 CPU profiler running in both pages (Chrome DevTools
 * Protocol `Profiler`, 100 µs sampling): the functions with the most self time, per page, as a
 * share of that page's samples (idle excluded) — where the time of a path goes.
 */
async function profileBatches(a: Page, b: Page, subjects: Subject[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const sessions = [await a.context().newCDPSession(a), await b.context().newCDPSession(b)];
  for (const cdp of sessions) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
  }
  for (const subject of subjects) {
    for (const cdp of sessions) await cdp.send("Profiler.start");
    await subject.run();
    const [pa, pb] = await Promise.all(sessions.map((cdp) => cdp.send("Profiler.stop")));
    out[subject.name] = {
      sender_busy_pct: busyPct(pa!.profile),
      receiver_busy_pct: busyPct(pb!.profile),
      sender: topSelf(pa!.profile),
      receiver: topSelf(pb!.profile),
    };
    log(`  profile ${subject.name}: sender ${JSON.stringify(out[subject.name])}`);
  }
  for (const cdp of sessions) await cdp.detach();
  return out;
}

/** The share of a page's main-thread samples that were not idle (what the path costs that thread). */
function busyPct(profile: CpuProfile): number {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame.functionName]));
  const samples = profile.samples ?? [];
  const idle = samples.filter((id) => byId.get(id) === "(idle)").length;
  return Math.round((1000 * (samples.length - idle)) / Math.max(1, samples.length)) / 10;
}

async function main() {
  const bench = await startPageBench("chat", PAGE_SOURCE);
  const { browser, signalingUrl } = bench;
  try {
    const a = await bench.newPage();
    const b = await bench.newPage();
    await a.exposeFunction("loftRelay", (name: string, json: string) => callPage(b, "signal", name, json));
    await b.exposeFunction("loftRelay", (name: string, json: string) => callPage(a, "signal", name, json));
    await bench.load(a);
    await bench.load(b);

    if (RATCHET_CPU) {
      const cpu = await BrowserCpu.open(browser);
      await cpu.namePages({ page: a, idle: b });
      const accounts = new CpuAccounts(cpu, RATCHET_MESSAGES * PAYLOAD_BYTES);
      const loops = ["ratchet", "bundled", "kdfjs", "kdfjs-keyed", "aes"].map(
        (variant): Subject => ({
          name: variant,
          run: async () => {
            const ms = await callPage<number>(a, "ratchetLoop", variant, RATCHET_MESSAGES, PAYLOAD_BYTES);
            return { ops: RATCHET_MESSAGES, seconds: ms / 1000 };
          },
        }),
      );
      await alternate(
        loops.map((x) => accounts.accounted(x)),
        { rounds: REPEATS, sliceSeconds: 0, warmupSeconds: 0 },
      );
      accounts.log(8);
      // `--profile`: one more run of each under the V8 profiler — where the page's time goes.
      const profiles: Record<string, unknown> = {};
      if (PROFILE)
        for (const x of loops) {
          const stop = await startProfile(a, { intervalUs: 100, top: 30 });
          await x.run();
          profiles[x.name] = await stop();
        }
      const chromium = browser.version();
      const perMsg = (name: string) =>
        Math.round((accounts.total(name) * 1000 * PAYLOAD_BYTES) / (1024 * 1024));
      report(
        `bench:chat --ratchet-cpu (Chromium ${chromium})`,
        loops.map((x) => ({
          name: `${x.name}: CPU of the whole browser per 16 KiB message, sealed and opened`,
          value: perMsg(x.name),
          unit: "µs",
          baseline: { name: "aes", value: perMsg("aes") },
          ratio: accounts.total(x.name) / accounts.total("aes"),
        })),
        {
          bench: "chat-ratchet-cpu",
          ratchet_cpu_ms_per_mib: accounts.perMib(),
          ratchet_cpu_threads_ms_per_mib: Object.fromEntries(
            loops.map((x) => [x.name, accounts.threads(x.name)]),
          ),
          ratchet_cpu_us_per_msg: Object.fromEntries(loops.map((x) => [x.name, perMsg(x.name)])),
          ...(PROFILE ? { profiles } : {}),
          payload_bytes: PAYLOAD_BYTES,
          payloads: RATCHET_MESSAGES,
          chromium,
        },
      );
      return;
    }

    // (a) accepting a contact link → first decrypted message
    const firsts: number[] = [];
    const phases: FirstMessage[] = [];
    /** The engines' warm-ups before run 1 (Alice's, Bob's): null when off. */
    const warmUps: (WarmUpRun | null)[] = [];
    let alice: { identity: number[]; id: string } | undefined;
    let bob: { identity: number[]; id: string } | undefined;
    for (let i = 0; i < FIRST_MESSAGE_RUNS; i++) {
      alice = await callPage(a, "init", `alice${i}`, signalingUrl);
      bob = await callPage(b, "init", `bob${i}`, signalingUrl);
      const warmA = await callPage<WarmUpRun | null>(a, "startEngine", WARMUP);
      const warmB = await callPage<WarmUpRun | null>(b, "startEngine", WARMUP);
      if (i === 0) warmUps.push(warmA, warmB);
      // Bob already has Alice and writes first; Alice's device refuses him until she accepts.
      const aliceAtBob = await callPage<string>(b, "addContact", alice!.identity);
      await callPage(b, "send", aliceAtBob, "hello from Bob");
      await callPage(a, "addContact", bob!.identity);
      const first = await callPage<FirstMessage>(a, "firstMessageMs");
      firsts.push(first.ms);
      phases.push(first);
      if (PROFILE) {
        // Both engines' log lines from Alice's acceptance on, in time order ("A"/"B", ms).
        const lines = [
          ...(await callPage<string[]>(a, "logsSince", first.acceptedEpoch)).map((l) => `A ${l}`),
          ...(await callPage<string[]>(b, "logsSince", first.acceptedEpoch)).map((l) => `B ${l}`),
        ];
        const ms = (l: string) => Number(l.split(" ")[1]);
        for (const line of lines.sort((x, y) => ms(x) - ms(y))) log(`    ${line}`);
      }
      log(
        `  first message, run ${i + 1}: ${first.ms.toFixed(0)} ms (connecting at ${first.connecting?.toFixed(0)}, online at ${first.online?.toFixed(0)}, ${first.suite})`,
      );
    }
    // The first run is the pages' first contact, session and message: cold JIT for the engine and
    // the handshake code (bench/README-chat.md, session 20: 25–40 ms of it). Later runs use fresh
    // identities on the same, warm pages — what a running app does for every contact after its
    // first. Both are reported beside the median of all runs (`first_message_ms`, as before).
    const warm = firsts.slice(1);
    const phasesOf = () => ({
      first_message_ms: Math.round(median(firsts)),
      first_message_cold_ms: Math.round(firsts[0]!),
      ...(warm.length > 0 ? { first_message_warm_ms: Math.round(median(warm)) } : {}),
      first_message_runs_ms: firsts.map((x) => Math.round(x)),
      first_message_phases_ms: phases.map((p) => ({
        connecting: p.connecting === null ? null : Math.round(p.connecting),
        online: p.online === null ? null : Math.round(p.online),
        message: Math.round(p.ms),
      })),
      first_message_suites: [...new Set(phases.map((p) => p.suite ?? "?"))],
      // ms each page's engine took for its warm-up before run 1 (cold code: its own compile time).
      warm_up_ms: warmUps.map((w) => (w ? Math.round(w.ms) : null)),
    });
    const firstRows = () => [
      { name: "contact link accepted → first decrypted message", value: median(firsts), unit: "ms" },
      { name: "  the same, first run (cold pages)", value: firsts[0]!, unit: "ms" },
      ...(warm.length > 0
        ? [{ name: "  the same, later runs (warm pages)", value: median(warm), unit: "ms" }]
        : []),
    ];
    if (FIRST_ONLY) {
      const chromium = browser.version();
      report(`bench:chat --first-only (Chromium ${chromium})`, firstRows(), {
        bench: "chat",
        ...phasesOf(),
        chromium,
      });
      return;
    }

    // whole-engine message rate on the last pair (stored, persisted, receipted)
    const engineRates: number[] = [];
    for (let i = 0; i < ENGINE_RUNS; i++) {
      const engineMs = await callPage<number>(b, "engineBurst", alice!.id, ENGINE_MESSAGES);
      engineRates.push(ENGINE_MESSAGES / (engineMs / 1000));
      log(`  engine: ${ENGINE_MESSAGES} messages delivered in ${engineMs.toFixed(0)} ms`);
    }
    const engineRate = median(engineRates);
    if (ENGINE_ONLY) {
      const chromium = browser.version();
      report(
        `bench:chat --engine-only (Chromium ${chromium})`,
        [{ name: "engine: chat messages stored+receipted", value: engineRate, unit: "msg/s" }],
        {
          bench: "chat",
          engine_msgs_per_s: Math.round(engineRate),
          engine_runs_msgs_per_s: engineRates.map((r) => Math.round(r)),
          chromium,
        },
      );
      return;
    }
    await callPage(a, "stopEngine");
    await callPage(b, "stopEngine");

    // (b) raw vs E2EE over two data channels between the same pages, open at the same time;
    // batches alternate (raw E2EE, E2EE raw, …: harness.ts `alternate`) so both paths share the
    // machine's load, after one untimed warm-up batch each (JIT, SCTP congestion window). A
    // batch is timed inside the sending page (first send → the receiver's "done").
    const open = async (name: string) => {
      await callPage(a, "newLink", name, true);
      await callPage(b, "newLink", name, false);
      await Promise.all([callPage(a, "linkOpen", name), callPage(b, "linkOpen", name)]);
    };
    // Every subject once (the session-21 reread found them listed twice): its JSON key, its name
    // in the log, the page calls of a batch and the link it runs on (raw's is "raw").
    const path = (key: string, name: string, send: string, receive: string, link?: string) => ({
      key,
      link: link ?? "raw",
      name,
      run: async () => {
        const pre = link === undefined ? [] : [link];
        const [ms] = await Promise.all([
          callPage<number>(a, send, ...pre, PAYLOADS, PAYLOAD_BYTES),
          callPage(b, receive, ...pre, PAYLOADS, PAYLOAD_BYTES),
        ]);
        log(`  ${name} batch: ${((PAYLOADS * PAYLOAD_BYTES) / 1e3 / ms).toFixed(1)} MB/s`);
        return { ops: PAYLOADS, seconds: ms / 1000 };
      },
    });
    const raw = path("raw", "raw", "rawSend", "rawReceive");
    const rawBundled = path(
      "raw_bundled",
      "raw, three payloads a message",
      "rawBundledSend",
      "rawBundledReceive",
      "rawBundled",
    );
    const e2ee = path("e2ee", "E2EE", "e2eeSend", "e2eeReceive", "e2ee");
    const single = path(
      "e2ee_single",
      "E2EE one payload per ratchet message",
      "e2eeSend",
      "e2eeReceive",
      "single",
    );
    const v2 = path("v2", "E2EE ratchet 0x02", "e2eeSend", "e2eeReceive", "v2");
    const twopass = path("twopass", "E2EE two passes", "e2eeSend", "e2eeReceive", "twopass");
    const stream = path("stream", "stream", "streamSend", "streamReceive", "e2ee");
    const serial = path("serial", "E2EE one by one", "e2eeSend", "e2eeReceive", "serial");
    const v1 = path("v1", "E2EE ratchet 0x01", "e2eeSend", "e2eeReceive", "v1");
    const noble = path("noble", "E2EE noble", "e2eeSend", "e2eeReceive", "noble");
    const subjects = [raw, rawBundled, e2ee, single, v2, twopass, serial, v1, stream, noble];
    // The JSON keys of the subjects' CPU figures.
    const keys = new Map(subjects.map((x) => [x.name, x.key]));
    const names = [...new Set(subjects.map((x) => x.link))];
    for (const name of names) await open(name);
    const sessionUp = async (name: string) => {
      // Both sides' outcomes: when one side's handshake fails it closes its link, and the other
      // only sees the link closed — the cause is in the first side's error.
      const [ra, rb] = await Promise.allSettled([
        callPage<{ ms: number; protocol: string }>(a, "e2eeSession", name, true),
        callPage<{ ms: number; protocol: string }>(b, "e2eeSession", name, false),
      ]);
      if (ra.status === "rejected" || rb.status === "rejected") {
        const why = (r: PromiseSettledResult<unknown>) =>
          r.status === "rejected" ? String((r.reason as Error)?.message ?? r.reason) : "ok";
        throw new Error(`${name} session failed: initiator: ${why(ra)}; responder: ${why(rb)}`);
      }
      const ia = ra.value;
      log(`  ${name} session: ${ia.protocol}, handshake + ratchet ${ia.ms.toFixed(0)} ms`);
      return { ms: ia.ms, protocol: ia.protocol };
    };
    // The handshake alone over an open data channel, the engine's configuration: a few, median.
    const handshakes: number[] = [];
    for (let i = 0; i < (QUICK ? 1 : 3); i++) {
      if (i > 0) {
        await callPage(a, "closeLinks");
        await callPage(b, "closeLinks");
        for (const name of names) await open(name);
      }
      handshakes.push((await sessionUp("e2ee")).ms);
    }
    for (const name of names) if (!name.startsWith("raw") && name !== "e2ee") await sessionUp(name);
    // CPU per MiB moved of each subject, per Chromium process (the two pages' renderers by role,
    // the rest by Chromium's type) and thread, over its timed batches (bench/browser-cpu.ts):
    // where the E2EE path spends what the raw channel does not. The profiled batches are not counted.
    const cpu = await BrowserCpu.open(browser);
    await cpu.namePages({ sender: a, receiver: b });
    const accounts = new CpuAccounts(cpu, PAYLOADS * PAYLOAD_BYTES);
    const paths = await alternate(
      subjects.map((x) => accounts.accounted(x)),
      { rounds: REPEATS, sliceSeconds: 0, warmupSeconds: 0 },
    );
    accounts.log(10);
    const profiles = PROFILE ? await profileBatches(a, b, [raw, e2ee, single, stream]) : undefined;
    await callPage(a, "closeLinks");
    await callPage(b, "closeLinks");
    // Medians of the batches (single batches on a shared 2-core machine vary a lot), and the
    // median of the per-round ratios.
    const mbPerSecond = (r: SliceRate) => (median(r.slices) * PAYLOAD_BYTES) / 1e6;
    const rawRate = mbPerSecond(rateOf(paths, raw.name));
    const e2eeRate = mbPerSecond(rateOf(paths, e2ee.name));
    const e2eeVsRaw = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, raw.name));
    const singleRate = mbPerSecond(rateOf(paths, single.name));
    const singleVsRaw = sliceRatio(rateOf(paths, single.name), rateOf(paths, raw.name));
    const e2eeVsSingle = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, single.name));
    const rawBundledRate = mbPerSecond(rateOf(paths, rawBundled.name));
    const e2eeVsRawBundled = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, rawBundled.name));
    const v2Rate = mbPerSecond(rateOf(paths, v2.name));
    const v2VsRaw = sliceRatio(rateOf(paths, v2.name), rateOf(paths, raw.name));
    const e2eeVsV2 = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, v2.name));
    const twopassRate = mbPerSecond(rateOf(paths, twopass.name));
    const twopassVsRaw = sliceRatio(rateOf(paths, twopass.name), rateOf(paths, raw.name));
    const e2eeVsTwopass = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, twopass.name));
    const streamRate = mbPerSecond(rateOf(paths, stream.name));
    const streamVsRaw = sliceRatio(rateOf(paths, stream.name), rateOf(paths, raw.name));
    const serialRate = mbPerSecond(rateOf(paths, serial.name));
    const serialVsRaw = sliceRatio(rateOf(paths, serial.name), rateOf(paths, raw.name));
    const e2eeVsSerial = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, serial.name));
    const v1Rate = mbPerSecond(rateOf(paths, v1.name));
    const v1VsRaw = sliceRatio(rateOf(paths, v1.name), rateOf(paths, raw.name));
    const e2eeVsV1 = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, v1.name));
    const nobleRate = mbPerSecond(rateOf(paths, noble.name));
    const nobleVsRaw = sliceRatio(rateOf(paths, noble.name), rateOf(paths, raw.name));
    const e2eeVsNoble = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, noble.name));

    const cpuE2eeVsRaw = accounts.total(e2ee.name) / accounts.total(raw.name);
    const messagesPerMib = (1024 * 1024) / PAYLOAD_BYTES;
    const cpuExtraUs = ((accounts.total(e2ee.name) - accounts.total(raw.name)) * 1000) / messagesPerMib;
    const cpuSingleVsRaw = accounts.total(single.name) / accounts.total(raw.name);
    const cpuSingleExtraUs =
      ((accounts.total(single.name) - accounts.total(raw.name)) * 1000) / messagesPerMib;

    // (c) signaling registrations and memory per registered peer
    log(`  registering ${REGISTRATIONS} peers on a fresh signaling process…`);
    const reg =
      REGISTRATIONS > 0 ? await measureRegistrations(REGISTRATIONS) : { peers: 0, rss_per_peer_kib: 0 };
    const chromium = browser.version();

    report(
      `bench:chat (Chromium ${chromium})`,
      [
        ...firstRows(),
        {
          name: "E2EE over data channel, 16 KiB (Noise AES-GCM + ratchet 0x03, page provider)",
          value: e2eeRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: e2eeVsRaw,
        },
        {
          name: "E2EE one payload per ratchet message (before session 22's bundles)",
          value: singleRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: singleVsRaw,
        },
        {
          name: "E2EE with ratchet 0x02 (XChaCha20-Poly1305 header, before session 16)",
          value: v2Rate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: v2VsRaw,
        },
        {
          name: "E2EE 0x03, the whole ratchet message inside the Noise frame (two passes)",
          value: twopassRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: twopassVsRaw,
        },
        {
          name: "E2EE one message at a time (before session 14's batches)",
          value: serialRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: serialVsRaw,
        },
        {
          name: "E2EE with ratchet 0x01 (XChaCha20-Poly1305 body, before ratchet v2)",
          value: v1Rate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: v1VsRaw,
        },
        {
          name: "stream over data channel, 16 KiB (Noise AES-GCM frames only)",
          value: streamRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: streamVsRaw,
        },
        {
          name: "E2EE before issue #10 (noble, ChaChaPoly + ratchet)",
          value: nobleRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: nobleVsRaw,
        },
        {
          name: "CPU of the whole browser per MiB moved, E2EE (lower is better)",
          value: accounts.total(e2ee.name),
          unit: "ms/MiB",
          baseline: { name: "raw data channel", value: accounts.total(raw.name) },
          ratio: cpuE2eeVsRaw,
        },
        {
          name: "CPU of the whole browser per MiB moved, E2EE one payload per ratchet message",
          value: accounts.total(single.name),
          unit: "ms/MiB",
          baseline: { name: "raw data channel", value: accounts.total(raw.name) },
          ratio: cpuSingleVsRaw,
        },
        {
          name: "CPU of the whole browser per MiB moved, stream (lower is better)",
          value: accounts.total(stream.name),
          unit: "ms/MiB",
          baseline: { name: "raw data channel", value: accounts.total(raw.name) },
          ratio: accounts.total(stream.name) / accounts.total(raw.name),
        },
        {
          name: "XXhfs handshake + ratchet bootstrap over an open channel",
          value: median(handshakes),
          unit: "ms",
        },
        { name: "engine: chat messages stored+receipted", value: engineRate, unit: "msg/s" },
        { name: "signaling: registrations held", value: reg.peers, unit: "peers" },
        { name: "signaling: RSS per registered peer", value: reg.rss_per_peer_kib, unit: "KiB" },
      ],
      {
        bench: "chat",
        ...phasesOf(),
        e2ee_mb_s: Math.round(e2eeRate * 10) / 10,
        raw_mb_s: Math.round(rawRate * 10) / 10,
        e2ee_vs_raw: Math.round(e2eeVsRaw * 1000) / 1000,
        raw_bundled_mb_s: Math.round(rawBundledRate * 10) / 10,
        e2ee_vs_raw_bundled: Math.round(e2eeVsRawBundled * 1000) / 1000,
        cpu_e2ee_vs_raw_bundled:
          Math.round((accounts.total(e2ee.name) / accounts.total(rawBundled.name)) * 1000) / 1000,
        e2ee_single_mb_s: Math.round(singleRate * 10) / 10,
        e2ee_single_vs_raw: Math.round(singleVsRaw * 1000) / 1000,
        e2ee_vs_single: Math.round(e2eeVsSingle * 1000) / 1000,
        e2ee_v2_mb_s: Math.round(v2Rate * 10) / 10,
        e2ee_v2_vs_raw: Math.round(v2VsRaw * 1000) / 1000,
        e2ee_vs_v2: Math.round(e2eeVsV2 * 1000) / 1000,
        e2ee_twopass_mb_s: Math.round(twopassRate * 10) / 10,
        e2ee_twopass_vs_raw: Math.round(twopassVsRaw * 1000) / 1000,
        e2ee_vs_twopass: Math.round(e2eeVsTwopass * 1000) / 1000,
        e2ee_serial_mb_s: Math.round(serialRate * 10) / 10,
        e2ee_serial_vs_raw: Math.round(serialVsRaw * 1000) / 1000,
        e2ee_vs_serial: Math.round(e2eeVsSerial * 1000) / 1000,
        e2ee_v1_mb_s: Math.round(v1Rate * 10) / 10,
        e2ee_v1_vs_raw: Math.round(v1VsRaw * 1000) / 1000,
        e2ee_vs_v1: Math.round(e2eeVsV1 * 1000) / 1000,
        stream_mb_s: Math.round(streamRate * 10) / 10,
        stream_vs_raw: Math.round(streamVsRaw * 1000) / 1000,
        e2ee_noble_mb_s: Math.round(nobleRate * 10) / 10,
        e2ee_noble_vs_raw: Math.round(nobleVsRaw * 1000) / 1000,
        e2ee_vs_noble: Math.round(e2eeVsNoble * 1000) / 1000,
        // CPU ms per MiB moved, per subject: per process role and `total` (the whole browser), and
        // the busiest threads of raw, e2ee and stream; the E2EE path's CPU per byte against raw's, and
        // what it adds per 16 KiB message (µs of CPU, both pages and the browser together).
        cpu_ms_per_mib: Object.fromEntries(
          subjects.map((x) => [keys.get(x.name), accounts.tallies.get(x.name)?.msPerMib()]),
        ),
        cpu_threads_ms_per_mib: {
          raw: accounts.threads(raw.name),
          e2ee: accounts.threads(e2ee.name),
          e2ee_single: accounts.threads(single.name),
          stream: accounts.threads(stream.name),
        },
        cpu_e2ee_vs_raw: Math.round(cpuE2eeVsRaw * 1000) / 1000,
        cpu_stream_vs_raw: Math.round((accounts.total(stream.name) / accounts.total(raw.name)) * 1000) / 1000,
        cpu_e2ee_extra_us_per_msg: Math.round(cpuExtraUs),
        cpu_e2ee_single_vs_raw: Math.round(cpuSingleVsRaw * 1000) / 1000,
        cpu_e2ee_single_extra_us_per_msg: Math.round(cpuSingleExtraUs),
        handshake_ms: Math.round(median(handshakes)),
        ...(profiles ? { profiles } : {}),
        engine_msgs_per_s: Math.round(engineRate),
        signaling_registrations: reg.peers,
        signaling_rss_per_peer_kib: reg.rss_per_peer_kib,
        payload_bytes: PAYLOAD_BYTES,
        payloads: PAYLOADS,
        chromium,
      },
    );
  } finally {
    await bench.close();
  }
}

runBench(main);
