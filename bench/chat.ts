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
 *  (c) signaling: registrations held by one signaling process and its RSS per registered peer
 *      (bench/signaling-registrations.ts `measureRegistrations`).
 *
 * The pages run a bench bundle built here with Vite from the real modules (web/src/engine,
 * web/src/net, web/src/storage, core/); nothing is mocked. Figures: bench/README-chat.md.
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchChromium } from "../test/support/browser.ts";
import { startLoft } from "../test/support/loft-process.ts";
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
import { buildPage, callPage, repoModule, servePage } from "./page-bundle.ts";
import { measureRegistrations } from "./signaling-registrations.ts";

const QUICK = process.argv.includes("--quick");
const FIRST_MESSAGE_RUNS = QUICK ? 2 : 5;
const PAYLOAD_BYTES = 16 * 1024;
const PAYLOADS = QUICK ? 200 : 500;
const REPEATS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 2 : 5));
const ENGINE_MESSAGES = QUICK ? 50 : 300;
const REGISTRATIONS = QUICK ? 300 : 2_000;

// ---- the page side (plain JS, bundled by Vite from the real modules) ----------------------------

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { createChatEngineWith } from ${repoModule("web/src/chat-engine.ts")};
import { createUserIdentity, encodeIdentity, decodeIdentity } from ${repoModule("core/identity/identity.ts")};
import { toHex } from ${repoModule("core/bytes.ts")};
import { pageCrypto } from ${repoModule("web/src/crypto.ts")};
import { WebRtcLink } from ${repoModule("web/src/net/webrtc-link.ts")};
import { establishSession } from ${repoModule("core/session/index.ts")};
import { bootstrapChatRatchet, freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from ${repoModule("web/src/engine/ratchet-store.ts")};
import { ratchetEncrypt, ratchetDecrypt } from ${repoModule("core/ratchet/index.ts")};
import { encodeRatchetFrame, decodeSessionFrame } from ${repoModule("web/src/engine/wire.ts")};

const s = { links: [], named: {} };
const until = (cond) => new Promise((resolve) => {
  const tick = () => (cond() ? resolve() : setTimeout(tick, 2));
  tick();
});

window.loftBench = {
  async init(name, signalingUrl) {
    s.user = await createUserIdentity({ username: name, now: Date.now() });
    s.storage = await LoftStorage.open("bench-" + name);
    await s.storage.setSettingsRecord({ signalingUrl });
    s.events = { firstMessageAt: undefined, delivered: 0, service: "" };
    return { identity: Array.from(encodeIdentity(s.user.identity)), id: toHex(s.user.identity.verified.identity_key) };
  },
  async startEngine() {
    if (s.engine) await s.engine.stop();
    s.engine = createChatEngineWith({ user: s.user, storage: s.storage }, { log: () => {} });
    s.engine.subscribe((e) => {
      if (e.type === "message" && s.events.firstMessageAt === undefined) s.events.firstMessageAt = performance.now();
      if (e.type === "message-state" && e.state === "delivered") s.events.delivered++;
      if (e.type === "service") s.events.service = e.status.signaling;
    });
    await s.engine.start();
    await until(() => s.events.service === "connected");
  },
  async addContact(identity) {
    const bytes = new Uint8Array(identity);
    const decoded = await decodeIdentity(pageCrypto, bytes);
    if (!decoded.ok) throw new Error("bad identity");
    const id = toHex(decoded.value.verified.identity_key);
    s.acceptedAt = performance.now();
    await s.storage.putContact({ id, identity: bytes, username: decoded.value.verified.username,
      trust: "unknown", firstSeen: Date.now(), lastSeen: Date.now() });
    s.engine.contactChanged(id);
    return id;
  },
  async send(contactId, text) { return s.engine.send(contactId, text); },
  async firstMessageMs() {
    await until(() => s.events.firstMessageAt !== undefined);
    return s.events.firstMessageAt - s.acceptedAt;
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
  async e2eeSession(initiator) {
    const link = s.named.e2ee;
    if (initiator) {
      s.session = await establishSession({ link, role: "initiator", kind: "direct", self: s.user });
      const r = await bootstrapChatRatchet(s.session, s.user.identity.verified.identity_key, undefined);
      if (!r.ok) throw r.error;
      s.ratchet = r.value.state;
    } else {
      const kp = await freshRatchetKeyPair();
      s.session = await establishSession({ link, role: "responder", kind: "direct", self: s.user,
        extensions: { [RATCHET_KEY_EXTENSION]: kp.publicKey } });
      const r = await bootstrapChatRatchet(s.session, s.user.identity.verified.identity_key, kp);
      if (!r.ok) throw r.error;
      s.ratchet = r.value.state;
    }
  },
  async e2eeSend(n, size) {
    const link = s.named.e2ee;
    const session = s.session;
    const payload = crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const { state, message } = await ratchetEncrypt(s.ratchet, payload, Date.now());
      s.ratchet = state;
      session.send(encodeRatchetFrame(message));
      await link.drain();
    }
    await session.receive(); // "done"
    return performance.now() - start;
  },
  async e2eeReceive(n) {
    const session = s.session;
    for (let i = 0; i < n; i++) {
      const f = decodeSessionFrame(await session.receive());
      if (!f.ok || f.value.type !== "ratchet") throw new Error("unexpected frame");
      const r = await ratchetDecrypt(s.ratchet, f.value.message, Date.now());
      if (!r.ok) throw r.error;
      s.ratchet = r.value.state;
    }
    session.send(new Uint8Array([1]));
  },
  closeLinks() { for (const l of s.links) l.close("bench-done"); s.links = []; s.named = {}; s.session = undefined; },
};
`;

async function main() {
  const outDir = join(tmpdir(), `loft-bench-chat-${process.pid}`);
  log("building the bench page…");
  await buildPage(PAGE_SOURCE, outDir);
  const site = await servePage(outDir);
  const loft = await startLoft();
  const browser = await launchChromium();
  const signalingUrl = `ws://127.0.0.1:${loft.port}/signal`;
  try {
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    const a = await ctxA.newPage();
    const b = await ctxB.newPage();
    await a.exposeFunction("loftRelay", (name: string, json: string) => callPage(b, "signal", name, json));
    await b.exposeFunction("loftRelay", (name: string, json: string) => callPage(a, "signal", name, json));
    await a.goto(site.url);
    await b.goto(site.url);
    await a.waitForFunction(() => "loftBench" in window);
    await b.waitForFunction(() => "loftBench" in window);

    // (a) accepting a contact link → first decrypted message
    const firsts: number[] = [];
    let alice: { identity: number[]; id: string } | undefined;
    let bob: { identity: number[]; id: string } | undefined;
    for (let i = 0; i < FIRST_MESSAGE_RUNS; i++) {
      alice = await callPage(a, "init", `alice${i}`, signalingUrl);
      bob = await callPage(b, "init", `bob${i}`, signalingUrl);
      await callPage(a, "startEngine");
      await callPage(b, "startEngine");
      // Bob already has Alice and writes first; Alice's device refuses him until she accepts.
      const aliceAtBob = await callPage<string>(b, "addContact", alice!.identity);
      await callPage(b, "send", aliceAtBob, "hello from Bob");
      await callPage(a, "addContact", bob!.identity);
      const ms = await callPage<number>(a, "firstMessageMs");
      firsts.push(ms);
      log(`  first message, run ${i + 1}: ${ms.toFixed(0)} ms`);
    }

    // whole-engine message rate on the last pair (stored, persisted, receipted)
    const engineMs = await callPage<number>(b, "engineBurst", alice!.id, ENGINE_MESSAGES);
    const engineRate = ENGINE_MESSAGES / (engineMs / 1000);
    log(`  engine: ${ENGINE_MESSAGES} messages delivered in ${engineMs.toFixed(0)} ms`);
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
    await open("raw");
    await open("e2ee");
    await Promise.all([callPage(a, "e2eeSession", true), callPage(b, "e2eeSession", false)]);
    const path = (name: string, send: string, receive: string): Subject => ({
      name,
      run: async () => {
        const [ms] = await Promise.all([
          callPage<number>(a, send, PAYLOADS, PAYLOAD_BYTES),
          callPage(b, receive, PAYLOADS),
        ]);
        log(`  ${name} batch: ${((PAYLOADS * PAYLOAD_BYTES) / 1e3 / ms).toFixed(1)} MB/s`);
        return { ops: PAYLOADS, seconds: ms / 1000 };
      },
    });
    const raw = path("raw", "rawSend", "rawReceive");
    const e2ee = path("E2EE", "e2eeSend", "e2eeReceive");
    const paths = await alternate([raw, e2ee], { rounds: REPEATS, sliceSeconds: 0, warmupSeconds: 0 });
    await callPage(a, "closeLinks");
    await callPage(b, "closeLinks");
    // Medians of the batches (single batches on a shared 2-core machine vary a lot), and the
    // median of the per-round ratios.
    const mbPerSecond = (r: SliceRate) => (median(r.slices) * PAYLOAD_BYTES) / 1e6;
    const rawRate = mbPerSecond(rateOf(paths, raw.name));
    const e2eeRate = mbPerSecond(rateOf(paths, e2ee.name));
    const e2eeVsRaw = sliceRatio(rateOf(paths, e2ee.name), rateOf(paths, raw.name));

    // (c) signaling registrations and memory per registered peer
    log(`  registering ${REGISTRATIONS} peers on a fresh signaling process…`);
    const reg = await measureRegistrations(REGISTRATIONS);
    const chromium = browser.version();

    const firstMs = median(firsts);
    report(
      `bench:chat (Chromium ${chromium})`,
      [
        { name: "contact link accepted → first decrypted message", value: firstMs, unit: "ms" },
        {
          name: "E2EE over data channel, 16 KiB (Noise + ratchet)",
          value: e2eeRate,
          unit: "MB/s",
          baseline: { name: "raw data channel", value: rawRate },
          ratio: e2eeVsRaw,
        },
        { name: "engine: chat messages stored+receipted", value: engineRate, unit: "msg/s" },
        { name: "signaling: registrations held", value: reg.peers, unit: "peers" },
        { name: "signaling: RSS per registered peer", value: reg.rss_per_peer_kib, unit: "KiB" },
      ],
      {
        bench: "chat",
        first_message_ms: Math.round(firstMs),
        first_message_runs_ms: firsts.map((x) => Math.round(x)),
        e2ee_mb_s: Math.round(e2eeRate * 10) / 10,
        raw_mb_s: Math.round(rawRate * 10) / 10,
        e2ee_vs_raw: Math.round(e2eeVsRaw * 1000) / 1000,
        engine_msgs_per_s: Math.round(engineRate),
        signaling_registrations: reg.peers,
        signaling_rss_per_peer_kib: reg.rss_per_peer_kib,
        payload_bytes: PAYLOAD_BYTES,
        payloads: PAYLOADS,
        chromium,
      },
    );
  } finally {
    await browser.close();
    await loft.stop();
    site.close();
    await rm(outDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
