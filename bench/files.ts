/**
 * bench:files — file transfer between two Chromium pages, inside the test network namespace
 * (`npm run bench:files [-- --json] [-- --quick]`, which runs `scripts/e2e.mjs --bench`;
 * docs/protocol/files.md):
 *
 *  - files: a `FILE_MIB` MiB file sent by Alice's engine to Bob's over their live session —
 *    prepared (file hash; every chunk sealed with AES-256-GCM under the per-transfer key into
 *    Alice's sealed copy), offered inside the ratchet, accepted, read and sealed again (the
 *    copy's bytes) and sealed by the Noise session, stored sealed in IndexedDB, acknowledged, the file hash checked
 *    at the end. Timed from the accept to Bob's `done` (what a person waits for once they said
 *    yes). Measured on the first session (ChaChaPoly Noise suite), then again after a reconnect,
 *    whose session offers the AES-GCM suite (`files_aesgcm_vs_raw`).
 *  - baseline: the same number of bytes in 64 KiB messages over a raw data channel between the
 *    same two pages (WebRtcLink, the `drain()` flow control bench:chat uses), no encryption above
 *    DTLS, nothing stored.
 *  Rounds alternate (raw files, files raw, …); `files_vs_raw` is the median of the per-round
 *  ratios. `receiver_peak_mib`: the highest `performance.memory.usedJSHeapSize` of Bob's page
 *  sampled every 50 ms during the file rounds. `LOFT_BENCH_PROFILE=1` logs each page's CPU profile
 *  per file round (self time per function, bench/cpu-profile.ts; not with `--json`).
 *
 * The pages run a bench bundle built here with Vite from the real modules (web/src/engine,
 * web/src/net, web/src/storage, core/); nothing is mocked. Figures: bench/README.md, "bench:files".
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchChromium } from "../test/support/browser.ts";
import { startLoft } from "../test/support/loft-process.ts";
import { startProfile } from "./cpu-profile.ts";
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

const QUICK = process.argv.includes("--quick");
const FILE_MIB = Number(process.env.LOFT_BENCH_FILE_MIB ?? (QUICK ? 16 : 100));
const ROUNDS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 1 : 3));
const RAW_MESSAGE = 64 * 1024;
/** `LOFT_BENCH_PROFILE=1`: log where each page spent its CPU during the file rounds (CDP Profiler). */
const PROFILE = process.env.LOFT_BENCH_PROFILE === "1";

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { createChatEngineWith } from ${repoModule("web/src/chat-engine.ts")};
import { createUserIdentity, encodeIdentity, decodeIdentity } from ${repoModule("core/identity/identity.ts")};
import { toHex } from ${repoModule("core/bytes.ts")};
import { pageCrypto } from ${repoModule("web/src/crypto.ts")};
import { WebRtcLink } from ${repoModule("web/src/net/webrtc-link.ts")};

const s = { links: [], named: {}, files: new Map(), peakHeap: 0 };
const until = (cond) => new Promise((resolve) => {
  const tick = () => (cond() ? resolve() : setTimeout(tick, 2));
  tick();
});

window.loftBench = {
  async init(name, signalingUrl) {
    s.user = await createUserIdentity({ username: name, now: Date.now() });
    s.storage = await LoftStorage.open("bench-" + name);
    await s.storage.setSettingsRecord({ signalingUrl });
    s.engine = createChatEngineWith({ user: s.user, storage: s.storage }, { log: () => {} });
    s.service = "";
    s.engine.subscribe((e) => {
      if (e.type === "service") s.service = e.status.signaling;
      if (e.type === "file") {
        s.files.set(e.transfer.key, e.transfer);
        // Bob accepts every offer at once and notes when.
        if (e.transfer.direction === "in" && e.transfer.state === "offered") {
          s.acceptedAt = performance.now();
          void s.engine.acceptFile(e.transfer.key);
        }
        if (e.transfer.direction === "in" && e.transfer.state === "done") s.doneAt = performance.now();
      }
    });
    await s.engine.start();
    await until(() => s.service === "connected");
    return { identity: Array.from(encodeIdentity(s.user.identity)), id: toHex(s.user.identity.verified.identity_key) };
  },
  async addContact(identity) {
    const bytes = new Uint8Array(identity);
    const decoded = await decodeIdentity(pageCrypto, bytes);
    if (!decoded.ok) throw new Error("bad identity");
    const id = toHex(decoded.value.verified.identity_key);
    await s.storage.putContact({ id, identity: bytes, username: decoded.value.verified.username,
      trust: "unknown", firstSeen: Date.now(), lastSeen: Date.now() });
    s.engine.contactChanged(id);
    s.peer = id;
    return id;
  },
  async reconnect() {
    s.engine.disconnect(s.peer);
    await until(() => s.engine.presence(s.peer).status !== "online");
    s.engine.connect(s.peer);
    await until(() => s.engine.presence(s.peer).status === "online");
  },
  async online() {
    s.engine.connect(s.peer);
    await until(() => s.engine.presence(s.peer).status === "online");
  },
  makeFile(mib) {
    const parts = [];
    const block = new Uint8Array(1024 * 1024);
    for (let i = 0; i < mib; i++) {
      for (let at = 0; at < block.length; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
      parts.push(block.slice());
    }
    s.file = new Blob(parts, { type: "application/octet-stream" });
  },
  async sendFile() {
    const t = await s.engine.sendFile(s.peer, s.file, "bench.bin");
    await until(() => s.files.get(t.key)?.state === "done");
  },
  async receiveFile() {
    s.doneAt = undefined;
    s.sampling = setInterval(() => {
      const used = performance.memory?.usedJSHeapSize ?? 0;
      if (used > s.peakHeap) s.peakHeap = used;
    }, 50);
    await until(() => s.doneAt !== undefined);
    clearInterval(s.sampling);
    return s.doneAt - s.acceptedAt;
  },
  peakHeapMib() { return s.peakHeap / (1024 * 1024); },
  async stop() { await s.engine?.stop(); },

  newLink(name, initiator) {
    const link = new WebRtcLink({ initiator, onSignal: (sig) => window.loftRelay(name, JSON.stringify(sig)) });
    s.links.push(link);
    s.named[name] = link;
  },
  signal(name, json) { s.named[name].signal(JSON.parse(json)); },
  async linkOpen(name) { await s.named[name].opened; },
  async rawSend(total, size) {
    const link = s.named.raw;
    const payload = crypto.getRandomValues(new Uint8Array(size));
    const start = performance.now();
    for (let sent = 0; sent < total; sent += size) { link.send(payload); await link.drain(); }
    await link.receive(); // the receiver's "done"
    return performance.now() - start;
  },
  async rawReceive(total) {
    const link = s.named.raw;
    for (let got = 0; got < total; ) got += (await link.receive()).length;
    link.send(new Uint8Array([1]));
  },
  closeLinks() { for (const l of s.links) l.close("bench-done"); s.links = []; s.named = {}; },
};
`;

async function main() {
  const outDir = join(tmpdir(), `loft-bench-files-${process.pid}`);
  log("building the bench page…");
  await buildPage(PAGE_SOURCE, outDir);
  const site = await servePage(outDir);
  const loft = await startLoft();
  const browser = await launchChromium(["--enable-precise-memory-info"]);
  const signalingUrl = `ws://127.0.0.1:${loft.port}/signal`;
  const bytes = FILE_MIB * 1024 * 1024;
  try {
    const a = await (await browser.newContext()).newPage();
    const b = await (await browser.newContext()).newPage();
    await a.exposeFunction("loftRelay", (name: string, json: string) => callPage(b, "signal", name, json));
    await b.exposeFunction("loftRelay", (name: string, json: string) => callPage(a, "signal", name, json));
    for (const p of [a, b]) {
      await p.goto(site.url);
      await p.waitForFunction(() => "loftBench" in window);
    }
    const alice = await callPage<{ identity: number[] }>(a, "init", "alice", signalingUrl);
    const bob = await callPage<{ identity: number[] }>(b, "init", "bob", signalingUrl);
    await callPage(b, "addContact", alice.identity);
    await callPage(a, "addContact", bob.identity);
    await callPage(a, "online");
    await callPage(a, "makeFile", FILE_MIB);
    await callPage(a, "newLink", "raw", true);
    await callPage(b, "newLink", "raw", false);
    await Promise.all([callPage(a, "linkOpen", "raw"), callPage(b, "linkOpen", "raw")]);

    const filesSubject = (name: string): Subject => ({
      name,
      run: async () => {
        const profiling = PROFILE ? await Promise.all([startProfile(a), startProfile(b)]) : [];
        const [, ms] = await Promise.all([callPage(a, "sendFile"), callPage<number>(b, "receiveFile")]);
        for (const [who, p] of profiling.entries()) {
          const lines = (await p()).map(({ fn, pct }) => `    ${pct.toFixed(1).padStart(5)}%  ${fn}`);
          log(`  ${who === 0 ? "sender" : "receiver"} CPU:\n${lines.join("\n")}`);
        }
        log(
          `  file round: ${FILE_MIB} MiB in ${ms.toFixed(0)} ms, ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`,
        );
        return { ops: bytes, seconds: ms / 1000 };
      },
    });
    const files = filesSubject("files");
    const raw: Subject = {
      name: "raw",
      run: async () => {
        const [ms] = await Promise.all([
          callPage<number>(a, "rawSend", bytes, RAW_MESSAGE),
          callPage(b, "rawReceive", bytes),
        ]);
        log(
          `  raw round: ${FILE_MIB} MiB in ${ms.toFixed(0)} ms, ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`,
        );
        return { ops: bytes, seconds: ms / 1000 };
      },
    };
    const rates = await alternate([raw, files], { rounds: ROUNDS, sliceSeconds: 0, warmupSeconds: 0 });
    const mbs = (r: SliceRate) => median(r.slices) / 1e6;
    const rawRate = mbs(rateOf(rates, raw.name));
    const fileRate = mbs(rateOf(rates, files.name));
    const ratio = sliceRatio(rateOf(rates, files.name), rateOf(rates, raw.name));
    // A new session with a contact seen before negotiates the AES-GCM Noise suite (native
    // WebCrypto; engine/noise-suites.ts): the same rounds again over it.
    log("reconnecting: the next session offers AESGCM_SHA256…");
    await callPage(a, "reconnect");
    const filesAes = filesSubject("files-aesgcm");
    const ratesAes = await alternate([raw, filesAes], { rounds: ROUNDS, sliceSeconds: 0, warmupSeconds: 0 });
    const rawRateAes = mbs(rateOf(ratesAes, raw.name));
    const fileRateAes = mbs(rateOf(ratesAes, filesAes.name));
    const ratioAes = sliceRatio(rateOf(ratesAes, filesAes.name), rateOf(ratesAes, raw.name));
    const peak = await callPage<number>(b, "peakHeapMib");
    await callPage(a, "closeLinks");
    await callPage(b, "closeLinks");
    await callPage(a, "stop");
    await callPage(b, "stop");
    const chromium = browser.version();
    report(
      `bench:files (Chromium ${chromium}, ${FILE_MIB} MiB)`,
      [
        {
          name: `file transfer, ${FILE_MIB} MiB (AES-GCM chunks in Noise, stored, hash checked)`,
          value: fileRate,
          unit: "MB/s",
          baseline: { name: "raw data channel, 64 KiB messages", value: rawRate },
          ratio,
        },
        {
          name: `file transfer, ${FILE_MIB} MiB, next session (AES-GCM Noise suite)`,
          value: fileRateAes,
          unit: "MB/s",
          baseline: { name: "raw data channel, 64 KiB messages", value: rawRateAes },
          ratio: ratioAes,
        },
        { name: "receiving page: peak JS heap during the file rounds", value: peak, unit: "MiB" },
      ],
      {
        bench: "files",
        file_mib: FILE_MIB,
        files_mb_s: Math.round(fileRate * 10) / 10,
        raw_mb_s: Math.round(rawRate * 10) / 10,
        files_vs_raw: Math.round(ratio * 1000) / 1000,
        files_aesgcm_mb_s: Math.round(fileRateAes * 10) / 10,
        files_aesgcm_vs_raw: Math.round(ratioAes * 1000) / 1000,
        receiver_peak_mib: Math.round(peak),
        rounds: ROUNDS,
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
