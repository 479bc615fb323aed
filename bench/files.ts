/**
 * bench:files — file transfer between two Chromium pages, inside the test network namespace
 * (`npm run bench:files [-- --json] [-- --quick]`, which runs `scripts/e2e.mjs --bench`;
 * docs/protocol/files.md):
 *
 *  - files: a `FILE_MIB` MiB file sent by Alice's engine to Bob's over their live session —
 *    prepared (file hash; every chunk sealed with AES-256-GCM under the per-transfer key into
 *    Alice's sealed copy), offered inside the ratchet, accepted, read back from that copy (chunks
 *    in OPFS; with `LOFT_BENCH_FILE_STORE=idb`, read from the file and sealed again — the copy's
 *    bytes) and sent on the link's bulk lane beside the Noise session (one AEAD pass per
 *    byte: docs/protocol/files.md §2, "The bulk lane"), stored sealed (OPFS; IndexedDB with
 *    `LOFT_BENCH_FILE_STORE=idb`), acknowledged
 *    inside the session, the file hash checked at the end. Timed from the accept to Bob's `done`
 *    (what a person waits for once they said yes). Measured on the first session, then again
 *    after a reconnect (`files_aesgcm_vs_raw`). Both sessions run the AES-GCM Noise suite, as
 *    the app's do (a first dial offers it: web/src/engine/noise-suites.ts; the suites are in the
 *    JSON, `first_session_suite` and `next_session_suite`) — the chunks are on the lane either
 *    way, only the session's own frames (ACKs, `file.*`) ride the suite. The pages wait for the
 *    engine's `file` events, not on timers, so the file subject pays for no polling.
 *  - baseline: the same number of bytes in 64 KiB messages over a raw data channel between the
 *    same two pages, no encryption above DTLS, nothing stored — twice, alternating with the
 *    rest: on a raw WebRtcLink's bulk lane (the channel settings the chunks use: 4 MiB
 *    `bufferedAmountLowThreshold`) and on its session channel (`drain()` at 1 MiB, as bench:chat).
 *    The ratios take the faster of the two (`raw_lane_mb_s`, `raw_session_mb_s`): the best raw
 *    use of a channel. (64 KiB messages: 128 and 255 KiB ones were no faster, bench/README.md.)
 *  - peerjs: the same bytes sent with PeerJS (the `peerjs` npm package in the same two pages,
 *    with its own `peer` server started here on loopback as the broker), with its defaults — one
 *    `DataConnection.send` of the file's ArrayBuffer (its `binary` serialization: BinaryPack,
 *    cut into 16 300-byte chunks, its own buffering), timed on Alice's page from the send to Bob's
 *    one-byte answer after his `data` event. `files_vs_peerjs` = files / peerjs (higher: Loft faster).
 *  Rounds alternate (raw files peerjs, peerjs files raw, …); each ratio is the median of the
 *  per-round ratios. `receiver_peak_mib` (`peerjs_receiver_peak_mib`): the highest memory of Bob's
 *  page — JS heap plus ArrayBuffer backing stores (CDP `Runtime.getHeapUsage`), sampled every
 *  50 ms, garbage collected before each round — during the file (PeerJS) rounds. `raw_vs_peerjs`
 *  is the ceiling of `files_vs_peerjs` on the machine. `LOFT_BENCH_PROFILE=1` logs each page's CPU
 *  profile per file round (self time per function, bench/cpu-profile.ts; not with `--json`).
 *  CPU per MiB moved (`cpu_ms_per_mib`, `cpu_files_vs_raw`, `cpu_files_aesgcm_vs_raw`,
 *  `cpu_threads_ms_per_mib`): each round's CPU time per Chromium process — the two pages'
 *  renderers (`sender`, `receiver`), the browser process, the network service — and thread
 *  (bench/browser-cpu.ts), per subject; the file subject's split at Bob's accept into
 *  `files-prepare` (the hash and the sealed copy, untimed) and `files` (the timed part). What
 *  decides the rate when the cores are full, and steadier under load than MB/s. The two sessions'
 *  CPU ratios divide totals of stretches of the run minutes apart; round by round
 *  (`cpu_files_vs_raw_rounds`, `cpu_files_aesgcm_vs_raw_rounds`: each round's file run over the raw
 *  run beside it, and their medians, `…_median`; `cpu_rounds_ms_per_mib`) shows what one round
 *  moves, which is larger than the gap between them (bench/README.md, bench:files, session 22).
 *  `LOFT_BENCH_PEERJS=0` leaves PeerJS out.
 *
 *  - room fan-out: one `LOFT_BENCH_FAN_MIB` MiB file (8 by default) sent to a room of 2, then 4
 *    members (`LOFT_BENCH_ROOM_SIZES`, e.g. `2,4,8`), every member accepting at once: timed on the
 *    sender's page from `sendFileToRoom` (the file read, hashed and sealed once) to every member's
 *    transfer `done` there (each member's `file.done` came back). Baseline: the room of 2.
 *
 * `--sizes` (`npm run bench:files -- --sizes [--json]`): the raw channel only, 64, 128 and 255 KiB
 * messages, on a bulk lane (4 MiB low threshold) and a session channel (1 MiB), alternating —
 * what message size and threshold the chunks should use; and the channel used other ways, on plain
 * RTCPeerConnections between the same pages (no Loft code, each opened once before the rounds):
 * 64 KiB messages over 1, 2 and 4 channels at once, one unordered channel, 16 KiB (PeerJS's size)
 * and 255 KiB messages — MB/s and CPU per MiB each (`cpu_ms_per_mib`), whether any use carries
 * more than the raw baseline's one 64 KiB stream (bench/README.md, bench:files, session 17).
 *
 * `--store` (`npm run bench:files -- --store [--json]`): the file path's per-byte steps alone, by
 * CPU per MiB, alternating — the receiver's IndexedDB writes (and, to compare, OPFS through a sync
 * access handle in a worker and through a writable), the sender's `File` reads, the seal, the open
 * and digest — what the file path adds to the raw channel, step by step.
 *
 * `--disk` (with any of the above but `--big`, which has profiles on disk already): both pages in
 * one Chromium with a profile on disk, storage as on a device — the default pages are off the
 * record, their IndexedDB in memory and their OPFS behind the browser process, which favours
 * IndexedDB (bench/README.md, session 15). `LOFT_BENCH_FILE_STORE=idb`: the chunks in IndexedDB.
 *
 * `--big` (`npm run bench:files -- --big [--json]`): one 1 GiB file (`LOFT_BENCH_FILE_MIB`), files
 * only, one round: `receiver_peak_mib` during it is the "memory flat" figure (the memory of
 * the receiving page, which stores chunks sealed as they come and never holds the file).
 *
 * The pages run a bench bundle built here with Vite from the real modules (web/src/engine,
 * web/src/net, web/src/storage, core/); nothing is mocked. Figures: bench/README.md, "bench:files".
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { PeerServer } from "peer";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  launchChromium,
  launchPersistentChromium,
} from "../test/support/browser.ts";
import { closeBrowser } from "../test/support/teardown.ts";
import { BrowserCpu, CpuAccounts } from "./browser-cpu.ts";
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
import { callPage, repoModule } from "./page-bundle.ts";
import { runBench, startPageBench } from "./support/page-bench.ts";

const QUICK = process.argv.includes("--quick");
/** Raw channel MB/s by message size and low threshold only (which size the chunks should be). */
const SIZES = process.argv.includes("--sizes");
/**
 * Where received chunks could go, by CPU per MiB: the same sealed chunks written into IndexedDB
 * (the store the receiver uses), into the origin-private file system through a sync access handle
 * in a dedicated worker, and through a writable stream from the page; one page, alternating.
 */
const STORE = process.argv.includes("--store");
/** The full memory run: a 1 GiB file, files only (the short form is the default run's peak). */
const BIG = process.argv.includes("--big");
/**
 * `--disk` (or `LOFT_BENCH_DISK=1`): the pages in one Chromium with a profile on disk — IndexedDB
 * and the origin-private file system on disk, as on a device — instead of off-the-record
 * contexts, whose storage is in memory (where IndexedDB costs less and OPFS more than on a
 * device). Alice's page on 127.0.0.1 and Bob's on localhost: two origins, two renderers, two
 * storages, as two devices have.
 */
const DISK = process.argv.includes("--disk") || process.env.LOFT_BENCH_DISK === "1";
/**
 * `LOFT_BENCH_FILE_STORE`: `opfs` (the default, as the app: records in IndexedDB, chunks in one
 * OPFS file per transfer — web/src/engine/files/opfs-store.ts) or `idb` (chunks in IndexedDB
 * too, as before session 15 and where a browser has no sync access handles).
 */
const FILE_STORE = process.env.LOFT_BENCH_FILE_STORE === "idb" ? "idb" : "opfs";
const FILE_MIB = Number(process.env.LOFT_BENCH_FILE_MIB ?? (BIG ? 1024 : QUICK ? 16 : 100));
const ROUNDS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 1 : 3));
const FAN_MIB = Number(process.env.LOFT_BENCH_FAN_MIB ?? (QUICK ? 4 : 8));
const ROOM_SIZES = (process.env.LOFT_BENCH_ROOM_SIZES ?? "2,4")
  .split(",")
  .map(Number)
  .filter((n) => Number.isInteger(n) && n >= 2)
  .sort((x, y) => x - y);
const RAW_MESSAGE = 64 * 1024;
/** `LOFT_BENCH_PROFILE=1`: log where each page spent its CPU during the file rounds (CDP Profiler). */
const PROFILE = process.env.LOFT_BENCH_PROFILE === "1";
/** `LOFT_BENCH_PEERJS=0`: no PeerJS rounds (a diagnostic: the first phase without its garbage). */
const WITH_PEERJS = process.env.LOFT_BENCH_PEERJS !== "0";

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { createChatEngineWith } from ${repoModule("web/src/chat-engine.ts")};
import { createUserIdentity, encodeIdentity, decodeIdentity } from ${repoModule("core/identity/identity.ts")};
import { toHex } from ${repoModule("core/bytes.ts")};
import { pageCrypto } from ${repoModule("web/src/crypto.ts")};
import { WebRtcLink } from ${repoModule("web/src/net/webrtc-link.ts")};
import { IdbFileStore } from ${repoModule("web/src/engine/files/idb-store.ts")};
import { OpfsFileStore } from ${repoModule("web/src/engine/files/opfs-store.ts")};
import { Peer } from "peerjs";

const s = { links: [], named: {}, files: new Map(), fileWaiters: [], pjInbox: [], pjWaiter: undefined, logs: [] };
const until = (cond, every = 2) => new Promise((resolve) => {
  const tick = () => (cond() ? resolve() : setTimeout(tick, every));
  tick();
});
/** Resolves once \`cond\` holds, checked at each \`file\` event of the engine (no timer). */
const whenFile = (cond) => new Promise((resolve) => {
  const check = () => (cond() ? resolve() : s.fileWaiters.push(check));
  check();
});
/** The next PeerJS \`data\` event (queued: it may come before it is asked for). */
const pjNext = () => s.pjInbox.length > 0
  ? Promise.resolve(s.pjInbox.shift())
  : new Promise((resolve) => { s.pjWaiter = resolve; });
const pjListen = (conn) => {
  s.pjConn = conn;
  conn.on("data", (d) => {
    const w = s.pjWaiter;
    s.pjWaiter = undefined;
    if (w) w(d); else s.pjInbox.push(d);
  });
};

/** \`mib\` MiB of random bytes, 64 MiB per Blob part (never the whole file as arrays: --big). */
function randomBlob(mib) {
  let blob = new Blob([], { type: "application/octet-stream" });
  let parts = [];
  const block = new Uint8Array(1024 * 1024);
  for (let i = 0; i < mib; i++) {
    for (let at = 0; at < block.length; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
    parts.push(block.slice());
    if (parts.length === 64) {
      blob = new Blob([blob, ...parts], { type: blob.type });
      parts = [];
    }
  }
  return new Blob([blob, ...parts], { type: blob.type });
}

window.loftBench = {
  async init(name, signalingUrl, fileStore) {
    s.user = await createUserIdentity({ username: name, now: Date.now() });
    s.storage = await LoftStorage.open("bench-" + name);
    await s.storage.setSettingsRecord({ signalingUrl });
    // Each page's own file store (the app's is one per origin): chunks in OPFS, or in IndexedDB.
    s.fileStore = fileStore === "idb"
      ? new IdbFileStore("bench-files-" + name)
      : new OpfsFileStore("bench-files-" + name, "bench-chunks-" + name);
    s.engine = createChatEngineWith({ user: s.user, storage: s.storage }, {
      fileStore: s.fileStore,
      // The engine's log, kept short: said when a transfer fails.
      log: (m) => {
        s.logs.push(m);
        if (s.logs.length > 20) s.logs.shift();
      },
    });
    s.service = "";
    s.engine.subscribe((e) => {
      if (e.type === "service") s.service = e.status.signaling;
      if (e.type === "file") {
        s.files.set(e.transfer.key, e.transfer);
        // A room member accepts a room file at once; Bob notes a contact's offer, and the bench
        // has him accept it (\`accept\`) once the CPU spent preparing it is noted.
        if (e.transfer.direction === "in" && e.transfer.state === "offered") {
          if (e.transfer.room !== undefined) void s.engine.acceptFile(e.transfer.key);
          else s.offered = e.transfer.key;
        }
        if (e.transfer.direction === "in" && e.transfer.state === "done") s.doneAt = performance.now();
        if (e.transfer.direction === "in" && e.transfer.state === "failed") s.failed = e.transfer.reason;
        // The file subject's waits end on the engine's own events (\`whenFile\`), not by polling:
        // a 2 ms timer on both pages during the timed part was CPU the raw subject did not pay.
        for (const w of s.fileWaiters.splice(0)) w();
      }
    });
    await s.engine.start();
    await until(() => s.service === "connected");
    return { identity: Array.from(encodeIdentity(s.user.identity)), id: toHex(s.user.identity.verified.identity_key) };
  },
  usesOpfs() { return s.fileStore.usesOpfs?.() ?? false; },
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
  /** The live session's Noise suite (the ACKs and \`file.*\` messages ride it; the chunks do not). */
  suite() { return s.engine.presence(s.peer).suite ?? "none"; },
  /** \`onDisk\`: written 1 MiB at a time into the origin-private file system and read back as a
   *  \`File\` on disk, as a picked file is (--big: a 1 GiB Blob made in memory does not stay readable). */
  async makeFile(mib, onDisk) {
    if (!onDisk) {
      s.file = randomBlob(mib);
      return;
    }
    const root = await navigator.storage.getDirectory();
    const handle = await root.getFileHandle("bench-source.bin", { create: true });
    const writer = await handle.createWritable();
    const block = new Uint8Array(1024 * 1024);
    for (let i = 0; i < mib; i++) {
      for (let at = 0; at < block.length; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
      await writer.write(block);
    }
    await writer.close();
    s.file = await handle.getFile();
  },
  /** Prepare the file (hash, sealed copy) and offer it; resolves once the offer went. */
  async offerFile() {
    const t = await s.engine.sendFile(s.peer, s.file, "bench.bin");
    s.sending = t.key;
  },
  /** Bob: the offer is here (the transfer's key). */
  async offered() {
    await whenFile(() => s.offered !== undefined);
  },
  /** Bob accepts the offer, noting when (the timed part starts). */
  async accept() {
    s.doneAt = undefined;
    s.failed = undefined;
    const key = s.offered;
    s.offered = undefined;
    s.acceptedAt = performance.now();
    await s.engine.acceptFile(key);
  },
  async sendFile() {
    const t = { key: s.sending };
    const ended = () => ["done", "failed", "cancelled", "declined"].includes(s.files.get(t.key)?.state);
    await whenFile(ended);
    const end = s.files.get(t.key);
    if (end.state !== "done")
      throw new Error("the file ended " + end.state + ": " + end.reason + "\\n" + s.logs.join("\\n"));
    // Which carrier the chunks took (the engine logs it: on the bulk lane, or inside the session),
    // and in what chunk size (the offer's \`cs\`, docs/protocol/files.md §2; absent: 65 024).
    const carrier = s.logs.filter((l) => l.startsWith("files: sending")).pop();
    return carrier + " in " + (end.cs ?? 65024) + "-byte chunks";
  },
  async receiveFile() {
    await whenFile(() => s.doneAt !== undefined || s.failed !== undefined);
    if (s.failed !== undefined) throw new Error("receiving failed: " + s.failed + "\\n" + s.logs.join("\\n"));
    return s.doneAt - s.acceptedAt;
  },

  // PeerJS with its own server (\`peer\`), its defaults but for the ICE servers: none (the test
  // namespace reaches nothing outside, and neither should a bench).
  async peerjsOpen(me, port) {
    s.pj = new Peer(me, { host: "127.0.0.1", port, path: "/", secure: false, debug: 0, config: { iceServers: [] } });
    await new Promise((resolve, reject) => { s.pj.on("open", resolve); s.pj.on("error", reject); });
    s.pj.on("connection", (conn) => pjListen(conn));
  },
  async peerjsConnect(other) {
    const conn = s.pj.connect(other);
    await new Promise((resolve, reject) => { conn.on("open", resolve); conn.on("error", reject); });
    pjListen(conn);
  },
  async peerjsReady() { await until(() => s.pjConn?.open === true, 20); },
  async peerjsSend() {
    const start = performance.now();
    s.pjConn.send(await s.file.arrayBuffer());
    await pjNext(); // Bob's answer: he has it all
    return performance.now() - start;
  },
  async peerjsReceive(total) {
    const d = await pjNext();
    const n = d?.byteLength ?? -1;
    if (n !== total) throw new Error("peerjs delivered " + n + " bytes, not " + total);
    s.pjConn.send(new Uint8Array([1]));
  },
  peerjsClose() { s.pj?.destroy(); },

  // Rooms (engine.rooms): one room grown member by member; every member accepts files at once.
  async roomCreate() { const r = await s.engine.rooms.create(); s.room = r.id; return r.fragment; },
  async roomJoin(fragment) { const r = await s.engine.rooms.join(fragment); s.room = r.id; },
  async roomReady(others) {
    await until(() => (s.engine.rooms.room(s.room)?.members ?? []).filter((m) => m.state === "online").length >= others, 20);
  },
  async roomSend(mib) {
    const blob = randomBlob(mib);
    const start = performance.now();
    const sent = await s.engine.sendFileToRoom(s.room, blob, "fan-out.bin");
    const ended = (t) => ["done", "failed", "cancelled", "declined"].includes(s.files.get(t.key)?.state);
    await whenFile(() => sent.every(ended));
    const bad = sent.find((t) => s.files.get(t.key)?.state !== "done");
    if (bad) throw new Error("a member's file ended " + s.files.get(bad.key).state + ": " + s.files.get(bad.key).reason);
    return { ms: performance.now() - start, members: sent.length };
  },
  async stop() { await s.engine?.stop(); },

  newLink(name, initiator) {
    const link = new WebRtcLink({ initiator, onSignal: (sig) => window.loftRelay(name, JSON.stringify(sig)) });
    s.links.push(link);
    s.named[name] = link;
  },
  signal(name, json) { s.named[name].signal(JSON.parse(json)); },
  async linkOpen(name) { await s.named[name].opened; },
  /** Both ends claim the raw link's bulk lane (the \`loft-bulk\` channel: 4 MiB low threshold). */
  async rawLane(sender) {
    const lane = s.named.raw.bulk;
    lane.claim();
    if (sender) await until(() => lane.ready, 10);
  },
  /** \`onLane\`: on the raw link's bulk lane, else on its session channel (1 MiB low threshold). */
  async rawSend(total, size, onLane) {
    const link = onLane ? s.named.raw.bulk : s.named.raw;
    const payload = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(payload.subarray(at, at + 65536));
    payload[0] = 0x10; // never a lane control message (00)
    const start = performance.now();
    for (let sent = 0; sent < total; sent += size) { link.send(payload); await link.drain(); }
    await link.receive(); // the receiver's "done"
    return performance.now() - start;
  },
  async rawReceive(total, onLane) {
    const link = onLane ? s.named.raw.bulk : s.named.raw;
    for (let got = 0; got < total; ) got += (await link.receive()).length;
    link.send(new Uint8Array([1]));
  },
  // --store: \`mib\` MiB of 65 040-byte sealed-size chunks, 16 per batch as the receiver stores them.
  async storeIdb(mib) {
    const store = (s.idb ??= new IdbFileStore("bench-store"));
    const n = Math.ceil((mib * 1048576) / 65040);
    const chunk = new Uint8Array(65040);
    crypto.getRandomValues(chunk.subarray(0, 65536 > 65040 ? 65040 : 65536));
    for (let i = 0; i < n; i += 16) {
      const batch = Array.from({ length: Math.min(16, n - i) }, () => chunk.slice());
      await store.putChunks("k", i, batch);
    }
    await store.deleteChunks("k");
  },
  async storeOpfsWorker(mib) {
    if (!s.worker) {
      const code = "let h; onmessage = async (e) => {" +
        " if (e.data.open) { const root = await navigator.storage.getDirectory();" +
        "  const f = await root.getFileHandle('bench-store.bin', { create: true }); h = await f.createSyncAccessHandle(); postMessage(0); return; }" +
        " if (e.data.reset) { h.truncate(0); h.flush(); postMessage(0); return; }" +
        " for (const [at, b] of e.data.batch) h.write(new Uint8Array(b), { at });" +
        " h.flush(); postMessage(0); };";
      s.worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
      s.ask = (m, t) => new Promise((resolve) => { s.worker.onmessage = resolve; s.worker.postMessage(m, t ?? []); });
      await s.ask({ open: true });
    }
    const n = Math.ceil((mib * 1048576) / 65040);
    const chunk = new Uint8Array(65040);
    crypto.getRandomValues(chunk.subarray(0, 65536 > 65040 ? 65040 : 65536));
    for (let i = 0; i < n; i += 16) {
      const batch = Array.from({ length: Math.min(16, n - i) }, (_, k) => [(i + k) * 65040, chunk.slice().buffer]);
      await s.ask({ batch }, batch.map((b) => b[1]));
    }
    await s.ask({ reset: true });
  },
  /** --store: the sender's reads, the \`File\` 16 chunks (one slice) at a time. */
  async readFile() {
    const step = 16 * 65024;
    for (let at = 0; at < s.file.size; at += step) new Uint8Array(await s.file.slice(at, at + step).arrayBuffer())[0];
  },
  /** --store: AES-256-GCM seal of every chunk (WebCrypto, 16 at once), as the sender does. */
  async sealChunks(mib) {
    const key = await crypto.subtle.importKey("raw", new Uint8Array(32), "AES-GCM", false, ["encrypt", "decrypt"]);
    const n = Math.ceil((mib * 1048576) / 65024);
    const plain = new Uint8Array(65024);
    for (let i = 0; i < n; i += 16)
      await Promise.all(Array.from({ length: Math.min(16, n - i) }, (_, k) => {
        const iv = new Uint8Array(12);
        new DataView(iv.buffer).setUint32(8, i + k);
        return crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: iv }, key, plain);
      }));
  },
  /** --store: open and digest every chunk (WebCrypto, 16 at once), as the receiver does. */
  async openChunks(mib) {
    const key = await crypto.subtle.importKey("raw", new Uint8Array(32), "AES-GCM", false, ["encrypt", "decrypt"]);
    const iv = new Uint8Array(12);
    const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: iv }, key, new Uint8Array(65024)));
    const n = Math.ceil((mib * 1048576) / 65024);
    for (let i = 0; i < n; i += 16)
      await Promise.all(Array.from({ length: Math.min(16, n - i) }, async () => {
        const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: iv }, key, sealed);
        await crypto.subtle.digest("SHA-256", plain);
      }));
  },
  async storeOpfsWritable(mib) {
    const root = await navigator.storage.getDirectory();
    const f = await root.getFileHandle("bench-store-w.bin", { create: true });
    const w = await f.createWritable();
    const n = Math.ceil((mib * 1048576) / 65040);
    const chunk = new Uint8Array(65040);
    crypto.getRandomValues(chunk.subarray(0, 65536 > 65040 ? 65040 : 65536));
    for (let i = 0; i < n; i++) await w.write(chunk.slice());
    await w.close();
    await root.removeEntry("bench-store-w.bin");
  },
  closeLinks() { for (const l of s.links) l.close("bench-done"); s.links = []; s.named = {}; },

  // --sizes: a plain RTCPeerConnection between the two pages (no Loft code), \`n\` negotiated data
  // channels: the channel used other ways than the raw baseline's one 64 KiB stream — several
  // channels at once, unordered, other message sizes. Signals go through Node (\`loftRtc\`).
  // One connection per variant (\`name\`), opened once and kept for every round (warm, as the lane is).
  rtcOpen(name, initiator, n, ordered) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const r = { pc, channels: [], early: [] };
    (s.rtc ??= {})[name] = r;
    for (let k = 0; k < n; k++) {
      const ch = pc.createDataChannel("raw" + k, { negotiated: true, id: 10 + k, ordered });
      ch.binaryType = "arraybuffer";
      ch.bufferedAmountLowThreshold = 4 * 1024 * 1024;
      r.channels.push(ch);
    }
    pc.onicecandidate = (e) => { if (e.candidate) void window.loftRtc(name, JSON.stringify({ candidate: e.candidate })); };
    if (initiator)
      void pc.createOffer().then((o) => pc.setLocalDescription(o)).then(() =>
        window.loftRtc(name, JSON.stringify({ sdp: pc.localDescription })));
  },
  async rtcSignal(name, json) {
    const m = JSON.parse(json);
    const r = s.rtc[name];
    if (m.candidate) {
      // A candidate before the description it belongs to waits for it.
      if (r.pc.remoteDescription) await r.pc.addIceCandidate(m.candidate);
      else r.early.push(m.candidate);
      return;
    }
    await r.pc.setRemoteDescription(m.sdp);
    for (const c of r.early.splice(0)) await r.pc.addIceCandidate(c);
    if (m.sdp.type === "offer") {
      await r.pc.setLocalDescription(await r.pc.createAnswer());
      await window.loftRtc(name, JSON.stringify({ sdp: r.pc.localDescription }));
    }
  },
  async rtcReady(name) { await until(() => s.rtc[name].channels.every((c) => c.readyState === "open"), 10); },
  /** The receiver counts what comes on every channel; armed before the sender starts. */
  rtcArm(name, total) {
    const chs = s.rtc[name].channels;
    s.rtc[name].done = new Promise((resolve) => {
      let got = 0;
      for (const ch of chs)
        ch.onmessage = (e) => {
          got += e.data.byteLength;
          if (got < total) return;
          for (const c of chs) c.onmessage = null;
          chs[0].send(new Uint8Array([1]));
          resolve();
        };
    });
  },
  async rtcDone(name) { await s.rtc[name].done; },
  /** \`total\` bytes in \`size\`-byte messages, round robin over the channels, each kept under its threshold. */
  async rtcSend(name, total, size) {
    const chs = s.rtc[name].channels;
    const payload = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(payload.subarray(at, Math.min(size, at + 65536)));
    const answered = new Promise((resolve) => { chs[0].onmessage = () => { chs[0].onmessage = null; resolve(); }; });
    const start = performance.now();
    let k = 0;
    for (let sent = 0; sent < total; sent += size) {
      const ch = chs[k++ % chs.length];
      if (ch.bufferedAmount > ch.bufferedAmountLowThreshold)
        await new Promise((resolve) => ch.addEventListener("bufferedamountlow", resolve, { once: true }));
      ch.send(payload);
    }
    await answered;
    return performance.now() - start;
  },
  rtcClose() { for (const r of Object.values(s.rtc ?? {})) r.pc.close(); s.rtc = undefined; },
};
`;

/**
 * --disk: Chromium with a profile on disk in `dir`, driven over CDP — a `Browser` (so the CPU per
 * process can be read: bench/browser-cpu.ts) whose default context keeps storage on disk, which
 * neither `launch()` (off-the-record contexts) nor `launchPersistentContext()` (no `Browser`) gives.
 */
async function launchOnDisk(dir: string): Promise<{ browser: Browser; stop: () => Promise<void> }> {
  const child = spawn(
    CHROMIUM_PATH,
    [...CHROMIUM_ARGS, "--headless", `--user-data-dir=${dir}`, "--remote-debugging-port=0", "about:blank"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  // Gone before its profile is removed (it writes there until it exits); bounded.
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  };
  try {
    const ws = await new Promise<string>((resolve, reject) => {
      let said = "";
      const timer = setTimeout(() => reject(new Error("Chromium did not start within 30 s")), 30_000);
      child.stderr.on("data", (d: Buffer) => {
        said += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(said);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`Chromium exited (${code}): ${said.slice(-500)}`));
      });
    });
    return { browser: await chromium.connectOverCDP(ws), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** `renderersRss` scans every process again once per this many reads (one a second in --big). */
const RESCAN_EVERY = 30;

/**
 * --big: the renderers of the Chromium whose profile is `profileDir` (Linux /proc) — the
 * receiving page and its store's worker are one renderer process. Found by a scan of every process
 * of the machine, so not at every read (`renderersRss`: once per RESCAN_EVERY reads).
 */
async function rendererPids(profileDir: string): Promise<number[]> {
  const procs = new Map<number, { ppid: number; cmd: string }>();
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      procs.set(pid, { ppid, cmd: (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ") });
    } catch {
      // gone meanwhile
    }
  }
  const root = [...procs].find(
    ([, p]) => p.cmd.includes(`--user-data-dir=${profileDir}`) && !p.cmd.includes("--type="),
  )?.[0];
  if (root === undefined) return [];
  const under = (pid: number): boolean => {
    for (let p = procs.get(pid), hops = 0; p && hops < 8; p = procs.get(p.ppid), hops++)
      if (p.ppid === root) return true;
    return false;
  };
  return [...procs].filter(([pid, p]) => p.cmd.includes("--type=renderer") && under(pid)).map(([pid]) => pid);
}

/**
 * --big: the resident memory (VmRSS, bytes) of those renderers — it counts the store's worker,
 * which `Runtime.getHeapUsage` on the page leaves out. `pids` found once (`rendererPids`), and
 * again every RESCAN_EVERY reads (a renderer started since) or when one has gone; NaN when there
 * is none.
 */
async function renderersRss(profileDir: string, pids: { known: number[]; reads: number }): Promise<number> {
  const rescan = pids.reads++ % RESCAN_EVERY === 0;
  for (let scan = 0; scan < 2; scan++) {
    if (pids.known.length === 0 || scan === 1 || rescan) pids.known = await rendererPids(profileDir);
    if (pids.known.length === 0) return Number.NaN;
    let rss = 0;
    let gone = false;
    for (const pid of pids.known) {
      const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined);
      if (status === undefined) gone = true;
      else rss += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    }
    if (!gone) return rss;
  }
  return Number.NaN;
}

/** PeerJS's own signaling server (the `peer` package) on loopback, on a free port. */
async function startPeerServer(): Promise<{ port: number; close: () => void }> {
  const server = await new Promise<Server>((resolve) => {
    PeerServer({ host: "127.0.0.1", port: 0, path: "/" }, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

async function main() {
  // --disk: the browser is a Chromium with its profile in the bench's folder, stopped once closed.
  let onDisk: { browser: Browser; stop: () => Promise<void> } | undefined;
  const bench = await startPageBench("files", PAGE_SOURCE, {
    launch: async (outDir) => {
      onDisk = DISK ? await launchOnDisk(join(outDir, "profile")) : undefined;
      return onDisk?.browser ?? launchChromium();
    },
  });
  const { browser, signalingUrl, site, outDir } = bench;
  const bytes = FILE_MIB * 1024 * 1024;
  /** A page in a context of its own; with --disk, in the browser's one context on disk. */
  const pageOf = async (): Promise<Page> =>
    onDisk ? (browser.contexts()[0] ?? (await browser.newContext())).newPage() : bench.newPage();
  const newPage = async (): Promise<Page> => bench.load(await pageOf());
  let peerServer: Awaited<ReturnType<typeof startPeerServer>> | undefined;
  let own: BrowserContext[] = [];
  try {
    peerServer = await startPeerServer();
    // --big: Alice and Bob each in a Chromium of their own with a profile on disk — a context of
    // `browser` keeps IndexedDB and Blobs in memory (off the record), where 1 GiB sealed copy,
    // 1 GiB of received chunks and the 1 GiB file do not fit the browser's blob memory.
    if (BIG)
      own = await Promise.all(
        ["alice", "bob"].map((who) => launchPersistentChromium(join(outDir, `profile-${who}`))),
      );
    const a = own[0] ? await own[0].newPage() : await pageOf();
    const b = own[1] ? await own[1].newPage() : await pageOf();
    await a.exposeFunction("loftRelay", (name: string, json: string) => callPage(b, "signal", name, json));
    await b.exposeFunction("loftRelay", (name: string, json: string) => callPage(a, "signal", name, json));
    await a.exposeFunction("loftRtc", (name: string, json: string) => callPage(b, "rtcSignal", name, json));
    await b.exposeFunction("loftRtc", (name: string, json: string) => callPage(a, "rtcSignal", name, json));
    // --disk: Bob on another origin (localhost), so each page has its own storage and renderer.
    for (const p of [a, b])
      await bench.load(p, DISK && p === b ? site.url.replace("127.0.0.1", "localhost") : undefined);
    const alice = await callPage<{ identity: number[] }>(a, "init", "alice", signalingUrl, FILE_STORE);
    const bob = await callPage<{ identity: number[] }>(b, "init", "bob", signalingUrl, FILE_STORE);
    const stores = await Promise.all([a, b].map((p) => callPage<boolean>(p, "usesOpfs")));
    log(
      `storage ${DISK ? "on disk" : "off the record (in memory)"}; file chunks in ${stores.map((o) => (o ? "OPFS" : "IndexedDB")).join(" / ")} (sender / receiver)`,
    );
    await callPage(b, "addContact", alice.identity);
    await callPage(a, "addContact", bob.identity);
    await callPage(a, "online");
    // The first session's Noise suite as the app gets it: a contact's first dial offers AES-GCM
    // where AES is native (web/src/engine/noise-suites.ts), so it is no longer ChaChaPoly.
    const firstSuite = await callPage<string>(a, "suite");
    log(`first session: ${firstSuite}`);
    await callPage(a, "makeFile", FILE_MIB, BIG);
    // CPU per MiB moved, per Chromium process (and thread) and per subject: where the file path
    // spends what the raw channel does not (bench/browser-cpu.ts). Not in --big (one browser per page).
    const cpu = BIG ? undefined : await BrowserCpu.open(browser);
    await cpu?.namePages({ sender: a, receiver: b });
    const accounts = new CpuAccounts(cpu, bytes);

    // Bob's memory (CDP Runtime.getHeapUsage: the JS heap and the ArrayBuffers' backing stores,
    // which the heap size alone leaves out) sampled every 50 ms per subject; collected before each
    // round, so one subject's garbage (PeerJS leaves whole files of it) is not counted in another's.
    const bobCdp = await b.context().newCDPSession(b);
    const collect = () => bobCdp.send("HeapProfiler.collectGarbage");
    const peaks = new Map<string, number>();
    const sampled = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
      let on = true;
      const sampler = (async () => {
        while (on) {
          const u = await bobCdp.send("Runtime.getHeapUsage");
          const used = u.usedSize + (u.backingStorageSize ?? 0);
          if (used > (peaks.get(name) ?? 0)) peaks.set(name, used);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      try {
        return await f();
      } finally {
        on = false;
        await sampler;
      }
    };
    const peakMib = (name: string) => (peaks.get(name) ?? 0) / (1024 * 1024);
    if (STORE && cpu) {
      // The file path's per-byte steps alone, alternating, CPU of the whole browser: Bob's page
      // writes the same chunks each way and opens them; Alice's reads the file and seals it.
      const ways = [
        "storeIdb",
        "storeOpfsWorker",
        "storeOpfsWritable",
        "readFile",
        "sealChunks",
        "openChunks",
      ].map(
        (fn): Subject => ({
          name: fn,
          run: async () => {
            const t0 = performance.now();
            // The stores on Bob's page (the receiver's), the read and the seal on Alice's (the file's).
            await callPage(fn === "readFile" || fn === "sealChunks" ? a : b, fn, FILE_MIB);
            return { ops: bytes, seconds: (performance.now() - t0) / 1000 };
          },
        }),
      );
      const storeRates = await alternate(
        ways.map((w) => accounts.accounted(w)),
        {
          rounds: ROUNDS,
          sliceSeconds: 0,
          warmupSeconds: 0,
        },
      );
      accounts.log(8);
      report(
        `bench:files --store (Chromium ${browser.version()}, ${FILE_MIB} MiB of 65 040-byte chunks)`,
        ways.map((w) => ({
          name: `${w.name}: CPU of the whole browser per MiB written`,
          value: accounts.total(w.name),
          unit: "ms/MiB",
          baseline: { name: "storeIdb", value: accounts.total("storeIdb") },
          ratio: accounts.total(w.name) / accounts.total("storeIdb"),
        })),
        {
          bench: "files-store",
          file_mib: FILE_MIB,
          cpu_ms_per_mib: accounts.perMib(),
          ...Object.fromEntries(
            ways.map((w) => [
              `${w.name}_mb_s`,
              Math.round((median(rateOf(storeRates, w.name).slices) / 1e6) * 10) / 10,
            ]),
          ),
          rounds: ROUNDS,
        },
      );
      return;
    }
    /** The chunk sizes the file rounds went in (one, unless a round found the lane not ready). */
    const chunkBytes = new Set<number>();
    const filesSubject = (name: string): Subject => ({
      name,
      run: async () => {
        await collect();
        const profiling = PROFILE ? await Promise.all([startProfile(a), startProfile(b)]) : [];
        // Preparing (the file hash and the sealed copy) is before the offer, untimed: its CPU is
        // noted apart (\`files-prepare\`), and the timed part's from Bob's accept to his done.
        await callPage(a, "offerFile");
        await callPage(b, "offered");
        await accounts.note();
        await callPage(b, "accept");
        const [carrier, ms] = await sampled("files", () =>
          Promise.all([callPage<string>(a, "sendFile"), callPage<number>(b, "receiveFile")]),
        );
        chunkBytes.add(Number(/ in (\d+)-byte chunks$/.exec(carrier)?.[1]));
        for (const [who, p] of profiling.entries()) {
          const lines = (await p()).map(({ fn, pct }) => `    ${pct.toFixed(1).padStart(5)}%  ${fn}`);
          log(`  ${who === 0 ? "sender" : "receiver"} CPU:\n${lines.join("\n")}`);
        }
        log(
          `  file round: ${FILE_MIB} MiB in ${ms.toFixed(0)} ms, ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s (${carrier})`,
        );
        return { ops: bytes, seconds: ms / 1000 };
      },
    });
    const files = filesSubject("files");
    const mbs = (r: SliceRate) => median(r.slices) / 1e6;
    const chromium = browser.version();

    if (BIG) {
      // The memory run: one large file (no warm-up round), nothing else in the pages meanwhile.
      // Beside the page's heap, the resident memory of Bob's renderer (the page and its store's
      // worker) every second: "flat" is its peak in the transfer's last half no higher than in
      // its first (`receiver_rss_halves_mib`).
      const rss: { at: number; bytes: number }[] = [];
      let sampling = true;
      const bobProfile = join(outDir, "profile-bob");
      const bobRenderers = { known: [] as number[], reads: 0 };
      const rssSampler = (async () => {
        while (sampling) {
          rss.push({ at: performance.now(), bytes: await renderersRss(bobProfile, bobRenderers) });
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      })();
      const from = performance.now();
      const once = (await files.run()) as { ops: number; seconds: number };
      sampling = false;
      await rssSampler;
      // The timed part is the last `seconds` of the round (from Bob's accept): its halves.
      const end = performance.now();
      const start = Math.max(from, end - once.seconds * 1000);
      const mid = (start + end) / 2;
      const peakOf = (a: number, b: number) =>
        Math.max(0, ...rss.filter((x) => x.at >= a && x.at < b).map((x) => x.bytes)) / (1024 * 1024);
      const halves = [Math.round(peakOf(start, mid)), Math.round(peakOf(mid, end + 1))];
      log(
        `Bob's renderer RSS, MiB, each second of the round: ${rss.map((x) => Math.round(x.bytes / 1048576)).join(" ")}`,
      );
      const peak = peakMib("files");
      const fileRate = once.ops / once.seconds / 1e6;
      await callPage(a, "stop");
      await callPage(b, "stop");
      report(
        `bench:files --big (Chromium ${chromium}, ${FILE_MIB} MiB)`,
        [
          { name: `file transfer, ${FILE_MIB} MiB`, value: fileRate, unit: "MB/s" },
          {
            name: `receiving page: peak JS heap + ArrayBuffers while ${FILE_MIB} MiB arrive`,
            value: peak,
            unit: "MiB",
          },
        ],
        {
          bench: "files-big",
          file_mib: FILE_MIB,
          files_mb_s: Math.round(fileRate * 10) / 10,
          receiver_peak_mib: Math.round(peak),
          receiver_rss_halves_mib: halves,
          rounds: 1,
          chromium,
        },
      );
      return;
    }

    await callPage(a, "newLink", "raw", true);
    await callPage(b, "newLink", "raw", false);
    await Promise.all([callPage(a, "linkOpen", "raw"), callPage(b, "linkOpen", "raw")]);
    await callPage(b, "rawLane", false);
    await callPage(a, "rawLane", true);
    await callPage(b, "peerjsOpen", "bob", peerServer.port);
    await callPage(a, "peerjsOpen", "alice", peerServer.port);
    await callPage(a, "peerjsConnect", "bob");
    await callPage(b, "peerjsReady");

    // Two raw baselines, the same bytes in RAW_MESSAGE messages, nothing above DTLS: on the raw
    // link's bulk lane (the channel settings the file chunks use: 4 MiB low threshold), and on
    // its session channel (WebRtcLink.drain, 1 MiB). The ratios take the faster one: the
    // baseline is the best raw use of a data channel, not a handicapped one.
    const rawSubject = (name: string, onLane: boolean): Subject => ({
      name,
      run: async () => {
        const [ms] = await Promise.all([
          callPage<number>(a, "rawSend", bytes, RAW_MESSAGE, onLane),
          callPage(b, "rawReceive", bytes, onLane),
        ]);
        log(
          `  ${name} round: ${FILE_MIB} MiB in ${ms.toFixed(0)} ms, ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`,
        );
        return { ops: bytes, seconds: ms / 1000 };
      },
    });
    const rawLane = rawSubject("raw", true);
    const rawSession = rawSubject("raw-session-channel", false);
    if (SIZES) {
      // 64, 128 and 255 KiB messages (Chromium's SCTP message limit is 256 KiB) on the lane
      // (4 MiB low threshold) and on the session channel (1 MiB), alternating.
      const sized = [64, 128, 255].flatMap((kib) =>
        ([true, false] as const).map((onLane): Subject => {
          const name = `raw_${kib}k_${onLane ? "lane" : "session"}`;
          return {
            name,
            run: async () => {
              const ms = (
                await Promise.all([
                  callPage<number>(a, "rawSend", bytes, kib * 1024, onLane),
                  callPage(b, "rawReceive", bytes, onLane),
                ])
              )[0];
              return { ops: bytes, seconds: ms / 1000 };
            },
          };
        }),
      );
      // The channel used other ways, each on a plain RTCPeerConnection of its own (no Loft code;
      // 4 MiB low threshold per channel), opened before the rounds and kept: 1, 2 and 4 channels
      // at once, 64 KiB messages round robin; one unordered channel; 16 KiB messages (PeerJS's
      // size) and 255 KiB ones.
      const variants = [
        ["pc_64k_x1", 64, 1, true],
        ["pc_64k_x2", 64, 2, true],
        ["pc_64k_x4", 64, 4, true],
        ["pc_64k_unordered", 64, 1, false],
        ["pc_16k_x1", 16, 1, true],
        ["pc_255k_x1", 255, 1, true],
      ] as const;
      for (const [name, , n, ordered] of variants) {
        await callPage(b, "rtcOpen", name, false, n, ordered);
        await callPage(a, "rtcOpen", name, true, n, ordered);
        await Promise.all([callPage(a, "rtcReady", name), callPage(b, "rtcReady", name)]);
      }
      const plain = variants.map(
        ([name, kib]): Subject => ({
          name,
          run: async () => {
            await callPage(b, "rtcArm", name, bytes);
            const [ms] = await Promise.all([
              callPage<number>(a, "rtcSend", name, bytes, kib * 1024),
              callPage(b, "rtcDone", name),
            ]);
            log(`  ${name} round: ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`);
            return { ops: bytes, seconds: ms / 1000 };
          },
        }),
      );
      const all = [...sized, ...plain];
      const sizeRates = await alternate(
        all.map((sub) => accounts.accounted(sub)),
        {
          rounds: ROUNDS,
          sliceSeconds: 0,
          warmupSeconds: 0,
        },
      );
      await Promise.all([callPage(a, "rtcClose"), callPage(b, "rtcClose")]);
      const base = sized[0] as Subject;
      for (const sub of all)
        log(`CPU per MiB, ${sub.name}: ${JSON.stringify(accounts.tallies.get(sub.name)?.msPerMib())}`);
      report(
        `bench:files --sizes (Chromium ${chromium}, ${FILE_MIB} MiB)`,
        all.map((sub) => ({
          name: sub.name,
          value: mbs(rateOf(sizeRates, sub.name)),
          unit: "MB/s",
          baseline: { name: base.name, value: mbs(rateOf(sizeRates, base.name)) },
          ratio: sliceRatio(rateOf(sizeRates, sub.name), rateOf(sizeRates, base.name)),
        })),
        {
          bench: "files-sizes",
          file_mib: FILE_MIB,
          ...Object.fromEntries(
            all.map((sub) => [`${sub.name}_mb_s`, Math.round(mbs(rateOf(sizeRates, sub.name)) * 10) / 10]),
          ),
          // Each subject's rate against the 64 KiB lane's, the median of the per-round ratios.
          ...Object.fromEntries(
            all.map((sub) => [
              `${sub.name}_vs_lane`,
              Math.round(sliceRatio(rateOf(sizeRates, sub.name), rateOf(sizeRates, base.name)) * 1000) / 1000,
            ]),
          ),
          cpu_ms_per_mib: Object.fromEntries(
            all.map((sub) => [sub.name, Math.round(accounts.total(sub.name) * 10) / 10]),
          ),
          rounds: ROUNDS,
          chromium,
        },
      );
      return;
    }
    const peerjs: Subject = {
      name: "peerjs",
      run: async () => {
        await collect();
        const [ms] = await sampled("peerjs", () =>
          Promise.all([callPage<number>(a, "peerjsSend"), callPage(b, "peerjsReceive", bytes)]),
        );
        log(
          `  peerjs round: ${FILE_MIB} MiB in ${ms.toFixed(0)} ms, ${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`,
        );
        return { ops: bytes, seconds: ms / 1000 };
      },
    };
    const rates = await alternate(
      [rawLane, files, ...(WITH_PEERJS ? [peerjs] : []), rawSession].map((sub) => accounts.accounted(sub)),
      {
        rounds: ROUNDS,
        sliceSeconds: 0,
        warmupSeconds: 0,
      },
    );
    const rawLaneRate = mbs(rateOf(rates, rawLane.name));
    const rawSessionRate = mbs(rateOf(rates, rawSession.name));
    const raw = rawLaneRate >= rawSessionRate ? rawLane : rawSession;
    const rawRate = mbs(rateOf(rates, raw.name));
    const fileRate = mbs(rateOf(rates, files.name));
    const peerjsRate = WITH_PEERJS ? mbs(rateOf(rates, peerjs.name)) : Number.NaN;
    const ratio = sliceRatio(rateOf(rates, files.name), rateOf(rates, raw.name));
    const vsPeerjs = WITH_PEERJS
      ? sliceRatio(rateOf(rates, files.name), rateOf(rates, peerjs.name))
      : Number.NaN;
    const rawVsPeerjs = WITH_PEERJS
      ? sliceRatio(rateOf(rates, raw.name), rateOf(rates, peerjs.name))
      : Number.NaN;
    await callPage(a, "peerjsClose");
    await callPage(b, "peerjsClose");
    // A new session with a contact seen before negotiates the AES-GCM Noise suite (native
    // WebCrypto; engine/noise-suites.ts): the same rounds again over it.
    log("reconnecting: the next session offers AESGCM_SHA256…");
    await callPage(a, "reconnect");
    const nextSuite = await callPage<string>(a, "suite");
    log(`next session: ${nextSuite}`);
    const filesAes = filesSubject("files-aesgcm");
    // The same raw subject, under its own name: its rate and CPU in this phase are reported apart
    // (`raw_next_mb_s`), to compare with the first phase's.
    const rawNext: Subject = { name: "raw-next", run: raw.run };
    const ratesAes = await alternate(
      [rawNext, filesAes].map((sub) => accounts.accounted(sub)),
      {
        rounds: ROUNDS,
        sliceSeconds: 0,
        warmupSeconds: 0,
      },
    );
    const rawRateAes = mbs(rateOf(ratesAes, rawNext.name));
    const fileRateAes = mbs(rateOf(ratesAes, filesAes.name));
    const ratioAes = sliceRatio(rateOf(ratesAes, filesAes.name), rateOf(ratesAes, rawNext.name));
    const peak = peakMib("files");
    const peerjsPeak = peakMib("peerjs");
    await callPage(a, "closeLinks");
    await callPage(b, "closeLinks");

    // Room fan-out: one room, grown to each size in turn; the median of ROUNDS files per size.
    log(`room fan-out: ${FAN_MIB} MiB to rooms of ${ROOM_SIZES.join(", ")}…`);
    const fanout = new Map<number, number>();
    const members: Page[] = [a];
    const fragment = await callPage<string>(a, "roomCreate");
    for (const size of ROOM_SIZES) {
      while (members.length < size) {
        // Bob first (his page is up), then a new page per member.
        const p = members.length === 1 ? b : await newPage();
        if (p !== b) await callPage(p, "init", `member${members.length}`, signalingUrl, FILE_STORE);
        await callPage(p, "roomJoin", fragment);
        members.push(p);
      }
      await callPage(a, "roomReady", size - 1);
      const times: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const r = await callPage<{ ms: number; members: number }>(a, "roomSend", FAN_MIB);
        if (r.members !== size - 1) throw new Error(`room of ${size}: sent to ${r.members} members`);
        log(`  room of ${size}: ${FAN_MIB} MiB to ${r.members} members in ${r.ms.toFixed(0)} ms`);
        times.push(r.ms);
      }
      fanout.set(size, median(times));
    }
    for (const p of members) await callPage(p, "stop");
    const [smallest = 2] = ROOM_SIZES;
    const base = fanout.get(smallest) ?? 0;
    // CPU milliseconds per MiB moved, per process role (the pages' renderers by what they do,
    // the rest by Chromium's process type) and the busiest threads: what each subject costs.
    const cpuPerMib = accounts.perMib();
    accounts.log();
    const cpuFilesVsRaw = accounts.total(files.name) / accounts.total(raw.name);
    const cpuAesVsRaw = accounts.total("files-aesgcm") / accounts.total("raw-next");
    // The same ratios round by round (each file run against the raw run of its round, back to
    // back): the two above divide totals, and the two sessions' stretches of the run are minutes
    // apart — a load that moves between them moves one ratio and not the other (bench/README.md,
    // bench:files, session 22). Their spread is what one round can be trusted to.
    const cpuRounds = (a: string, b: string) =>
      accounts.roundRatios(a, b).map((r) => Math.round(r * 1000) / 1000);
    const cpuMedian = (a: string, b: string) => {
      const rs = accounts.roundRatios(a, b);
      return rs.length > 0 ? Math.round(median(rs) * 1000) / 1000 : Number.NaN;
    };
    const cpuRange = (a: string, b: string): [number, number] | undefined => {
      const rs = accounts.roundRatios(a, b);
      return rs.length > 0 ? [Math.min(...rs), Math.max(...rs)] : undefined;
    };
    const cpuSubjects = [files.name, raw.name, filesAes.name, rawNext.name];
    report(
      `bench:files (Chromium ${chromium}, ${FILE_MIB} MiB)`,
      [
        {
          name: `file transfer, ${FILE_MIB} MiB (AES-GCM chunks on the bulk lane, stored, hash checked)`,
          value: fileRate,
          unit: "MB/s",
          baseline: { name: `raw data channel, 64 KiB messages (${raw.name})`, value: rawRate },
          ratio,
        },
        {
          name: `file transfer, ${FILE_MIB} MiB, against PeerJS (its defaults, its own server)`,
          value: fileRate,
          unit: "MB/s",
          baseline: { name: "PeerJS DataConnection.send of the file", value: peerjsRate },
          ratio: vsPeerjs,
        },
        {
          name: `file transfer, ${FILE_MIB} MiB, next session (AES-GCM Noise suite)`,
          value: fileRateAes,
          unit: "MB/s",
          baseline: { name: "raw data channel, 64 KiB messages", value: rawRateAes },
          ratio: ratioAes,
        },
        {
          name: "CPU of the whole browser per MiB moved, file transfer (lower is better)",
          value: accounts.total(files.name),
          unit: "ms/MiB",
          baseline: { name: `raw data channel (${raw.name})`, value: accounts.total(raw.name) },
          ratio: cpuFilesVsRaw,
          ratioRange: cpuRange(files.name, raw.name),
        },
        {
          name: "CPU of the whole browser per MiB moved, file transfer, next session (lower is better)",
          value: accounts.total(filesAes.name),
          unit: "ms/MiB",
          baseline: { name: "raw data channel", value: accounts.total(rawNext.name) },
          ratio: cpuAesVsRaw,
          ratioRange: cpuRange(filesAes.name, rawNext.name),
        },
        {
          name: "receiving page: peak JS heap + ArrayBuffers during the file rounds",
          value: peak,
          unit: "MiB",
        },
        {
          name: "receiving page: peak JS heap + ArrayBuffers during the PeerJS rounds",
          value: peerjsPeak,
          unit: "MiB",
        },
        ...[...fanout].map(([size, ms]) => ({
          name: `room of ${size}: ${FAN_MIB} MiB file until every member has it`,
          value: ms,
          unit: "ms",
          ...(size !== smallest
            ? { baseline: { name: `room of ${smallest}`, value: base }, ratio: ms / base }
            : {}),
        })),
      ],
      {
        bench: "files",
        file_mib: FILE_MIB,
        files_mb_s: Math.round(fileRate * 10) / 10,
        raw_mb_s: Math.round(rawRate * 10) / 10,
        raw_lane_mb_s: Math.round(rawLaneRate * 10) / 10,
        raw_session_mb_s: Math.round(rawSessionRate * 10) / 10,
        files_vs_raw: Math.round(ratio * 1000) / 1000,
        peerjs_mb_s: Math.round(peerjsRate * 10) / 10,
        files_vs_peerjs: Math.round(vsPeerjs * 1000) / 1000,
        // The ceiling of files_vs_peerjs on this machine: the bare channel against PeerJS.
        raw_vs_peerjs: Math.round(rawVsPeerjs * 1000) / 1000,
        first_session_suite: firstSuite,
        next_session_suite: nextSuite,
        raw_next_mb_s: Math.round(rawRateAes * 10) / 10,
        files_aesgcm_mb_s: Math.round(fileRateAes * 10) / 10,
        files_aesgcm_vs_raw: Math.round(ratioAes * 1000) / 1000,
        file_chunk_bytes: [...chunkBytes],
        receiver_peak_mib: Math.round(peak),
        // CPU ms per MiB by process role and subject; files' CPU per byte against the raw channel's.
        cpu_ms_per_mib: cpuPerMib,
        cpu_files_vs_raw: Math.round(cpuFilesVsRaw * 1000) / 1000,
        cpu_files_aesgcm_vs_raw: Math.round(cpuAesVsRaw * 1000) / 1000,
        // Round by round: each round's file run over its raw run, their median (one disturbed
        // round moves the totals' ratio, not this), and each run's ms/MiB.
        cpu_files_vs_raw_median: cpuMedian(files.name, raw.name),
        cpu_files_aesgcm_vs_raw_median: cpuMedian(filesAes.name, rawNext.name),
        cpu_files_vs_raw_rounds: cpuRounds(files.name, raw.name),
        cpu_files_aesgcm_vs_raw_rounds: cpuRounds(filesAes.name, rawNext.name),
        cpu_rounds_ms_per_mib: Object.fromEntries(cpuSubjects.map((n) => [n, accounts.rounds(n)])),
        cpu_threads_ms_per_mib: Object.fromEntries(
          cpuSubjects.map((n) => [n === raw.name ? "raw" : n, accounts.threads(n)]),
        ),
        peerjs_receiver_peak_mib: Math.round(peerjsPeak),
        fan_mib: FAN_MIB,
        ...Object.fromEntries([...fanout].map(([size, ms]) => [`room_${size}_ms`, Math.round(ms)])),
        rounds: ROUNDS,
        chromium,
      },
    );
  } finally {
    // Each Chromium closed before its profile goes with the folder; PeerJS's server with ours.
    await bench.close(
      ...own.map((c) => () => closeBrowser(c)),
      () => onDisk?.stop(),
      () => peerServer?.close(),
    );
  }
}

// The PeerJS server keeps interval timers of its own (expiry, heartbeats): runBench exits.
runBench(main);
