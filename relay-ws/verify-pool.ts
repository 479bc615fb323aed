/**
 * Ed25519 verifications (RFC 8032) on worker threads, so that the relay's commands use more than
 * one core: a verification costs ~140 µs on OpenSSL here, two per stored-and-forwarded message
 * (SEND and ACK), and was ~30 % of the event loop's time (bench/README-relay.md, profile).
 *
 * Only the OpenSSL call moves: the key cache, the dummy key and the work counters stay with
 * relay-ws/verifier.ts on the event loop, so the equal-work rule (one parse and one verification on
 * every failure path) holds unchanged. A batch travels as one transferred buffer of raw keys,
 * signatures and messages (cloning KeyObjects through postMessage cost the event loop more than
 * the verification saved); each worker keeps the keys that verified parsed.
 *
 * Watchdog: the oldest batch out has `batchTimeoutMs` (1 s) to come back once the thread runs; a
 * stuck thread is terminated and treated as a dead one — its jobs verified on the event loop,
 * counted in `failures` (`loft_relay_verify_thread_failures_total`), told to `onFailure` — so a
 * hang cannot hold commands forever (as seal-pool.ts does for the seal thread). The thread is
 * replaced after a back-off (batch-watchdog.ts `RespawnBackoff`: 1 s, doubling while threads keep
 * failing, at most a minute; `loft_relay_worker_respawns_total{pool="verify"}`, `onRespawn`), so
 * a thread that fails at once is not restarted in a tight loop; meanwhile the other threads, or
 * the event loop, verify.
 *
 * Jobs submitted during one event-loop turn leave together (one message per worker), and each
 * worker takes at most `maxQueued` jobs: beyond that `submit` answers undefined and the caller
 * verifies on the event loop itself — the event loop is the overflow verifier, and a flood cannot
 * queue unbounded work (or memory) behind the workers. A worker that fails hands its jobs back to
 * the event loop and is replaced.
 *
 * The worker is plain JavaScript in a string (`eval`): it needs node:crypto only, and runs the same
 * under tsx, vitest and a bundled build without a loader.
 */
import type { KeyObject } from "node:crypto";
import { Worker } from "node:worker_threads";
import { ed25519Verify } from "../host/node-ed25519.ts";
import { BatchWatchdog, RespawnBackoff } from "./batch-watchdog.ts";

/**
 * The worker: a batch is one transferred buffer of jobs `key(32) ‖ signature(64) ‖ u32be length ‖
 * message`; the answer, one byte per job (1: valid). Keys that verified are kept parsed (a bounded
 * map, oldest dropped first), so a queue's key is imported once per worker.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const MAX_KEYS = 4096;
const keys = new Map();
// Tests only (VerifyPool.countAnswersForTest): answers posted so far, readable by a blocked event loop.
let answers;
function parse(raw) {
  try {
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  } catch {
    return undefined;
  }
}
parentPort.on("message", (ab) => {
  // Tests only (VerifyPool.hangWorkerForTest): a thread stuck in a loop, for the watchdog.
  if (ab === "hang") for (;;) {}
  if (ab instanceof SharedArrayBuffer) {
    answers = new Int32Array(ab);
    return;
  }
  const b = Buffer.from(ab);
  const out = [];
  let at = 0;
  while (at + 100 <= b.length) {
    const raw = b.subarray(at, at + 32);
    const sig = b.subarray(at + 32, at + 96);
    const len = b.readUInt32BE(at + 96);
    const msg = b.subarray(at + 100, at + 100 + len);
    at += 100 + len;
    const id = raw.toString("latin1");
    let key = keys.get(id);
    const cached = key !== undefined;
    if (!cached) key = parse(raw);
    let good = false;
    try {
      good = key !== undefined && verify(null, msg, key, sig);
    } catch {}
    if (good && !cached) {
      if (keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value);
      keys.set(id, key);
    }
    out.push(good ? 1 : 0);
  }
  const verdicts = Uint8Array.from(out);
  parentPort.postMessage(verdicts, [verdicts.buffer]);
  if (answers) {
    Atomics.add(answers, 0, 1);
    Atomics.notify(answers, 0);
  }
});
`;

interface Job {
  /** The raw public key verified against (the dummy key's bytes when there is none). */
  key: Uint8Array;
  /** The KeyObject of the same key, for verifying here if the worker fails. */
  keyObject: KeyObject;
  m: Uint8Array;
  s: Uint8Array;
}

interface Pending {
  jobs: Job[];
  bytes: number;
  resolves: ((good: boolean) => void)[];
}

/** Jobs queued on one worker before the event loop verifies the next one itself. */
export const DEFAULT_MAX_QUEUED = 128;
/**
 * Batches a worker holds at once. Each `postMessage` wakes a thread (tens to hundreds of µs on a
 * loaded machine): while two batches are out, new jobs gather into the next one, so batches grow
 * with the load the way group commits do.
 */
const MAX_BATCHES_OUT = 2;
/** How long the oldest batch out may take: a batch is ~128 verifications, ~20 ms; 1 s is stuck. */
export const VERIFY_BATCH_TIMEOUT_MS = 1_000;

class VerifyWorker {
  readonly #worker: Worker;
  /** Batches sent and not answered, oldest first (a worker answers in order). */
  readonly #sent: Pending[] = [];
  #forming: Pending | undefined;
  queued = 0;
  #dead = false;
  /** Fails the worker over when its oldest batch out goes unanswered (relay-ws/batch-watchdog.ts). */
  readonly #watchdog: BatchWatchdog;

  constructor(
    private readonly onDead: (w: VerifyWorker, orphans: Pending[]) => void,
    timeoutMs: number,
  ) {
    this.#watchdog = new BatchWatchdog(
      timeoutMs,
      () => (this.#dead ? undefined : this.#sent[0]),
      () => {
        this.#fail();
        void this.#worker.terminate();
      },
    );
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, name: "relay-verify" });
    this.#worker.unref();
    this.#worker.on("message", (verdicts: Uint8Array) => this.#answered(verdicts));
    this.#worker.on("error", () => this.#fail());
    this.#worker.on("exit", () => this.#fail());
    this.#watchdog.watch(this.#worker);
  }

  add(job: Job): Promise<boolean> {
    if (!this.#forming) {
      this.#forming = { jobs: [], bytes: 0, resolves: [] };
      if (this.#sent.length < MAX_BATCHES_OUT) setImmediate(() => this.#flush());
    }
    const batch = this.#forming;
    this.queued++;
    batch.jobs.push(job);
    batch.bytes += 100 + job.m.length;
    return new Promise<boolean>((resolve) => batch.resolves.push(resolve));
  }

  #flush(): void {
    const batch = this.#forming;
    this.#forming = undefined;
    if (!batch || this.#dead) return;
    this.#sent.push(batch);
    // One buffer for the whole batch, moved (not copied) to the thread.
    const out = new ArrayBuffer(batch.bytes);
    const bytes = new Uint8Array(out);
    const view = new DataView(out);
    let at = 0;
    for (const j of batch.jobs) {
      bytes.set(j.key, at);
      bytes.set(j.s, at + 32);
      view.setUint32(at + 96, j.m.length);
      bytes.set(j.m, at + 100);
      at += 100 + j.m.length;
    }
    this.#worker.postMessage(out, [out]);
    if (this.#sent.length === 1) this.#watchdog.arm();
  }

  #answered(verdicts: Uint8Array): void {
    if (this.#dead) return; // failed over: its jobs were verified on the event loop already
    const batch = this.#sent.shift();
    if (!batch) return;
    this.#watchdog.arm();
    this.queued -= batch.jobs.length;
    // What gathered while the thread was busy leaves now, as one batch.
    if (this.#forming && this.#sent.length < MAX_BATCHES_OUT) this.#flush();
    for (let i = 0; i < batch.resolves.length; i++) batch.resolves[i]!(verdicts[i] === 1);
  }

  #fail(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#watchdog.stop();
    const orphans = [...this.#sent.splice(0)];
    if (this.#forming) orphans.push(this.#forming);
    this.#forming = undefined;
    this.queued = 0;
    this.onDead(this, orphans);
  }

  /** Stop the thread; whatever it still held is handed back through `onDead` (and verified inline). */
  terminate(): Promise<number> {
    return this.#worker.terminate();
  }

  /** Tests: make the thread loop forever, as a stuck one would. */
  hang(): void {
    this.#worker.postMessage("hang");
  }

  /** Tests: see `VerifyPool.countAnswersForTest`. */
  countAnswers(): Int32Array {
    const answers = new Int32Array(new SharedArrayBuffer(4));
    this.#worker.postMessage(answers.buffer);
    return answers;
  }
}

export interface VerifyPoolEvents {
  /**
   * A thread died, was failed over by its watchdog, or could not be started (`jobs`: what it held,
   * verified inline; 0 for a start).
   */
  onFailure?: (detail: { jobs: number; respawnInMs: number }) => void;
  /** A new thread replaced a failed one. */
  onRespawn?: (detail: { respawns: number }) => void;
  /** First back-off before a failed thread is replaced (ms; doubles while threads keep failing). */
  respawnBaseMs?: number;
  /** Longest back-off (ms). */
  respawnMaxMs?: number;
}

export class VerifyPool {
  readonly #workers: VerifyWorker[] = [];
  readonly #maxQueued: number;
  #closed = false;
  /** Worker failures so far (metrics, tests). */
  failures = 0;
  /** Threads started in place of failed ones (metrics, tests). */
  respawns = 0;
  /** Jobs handed to a thread so far (metrics). */
  submitted = 0;

  readonly #timeoutMs: number;
  readonly #events: VerifyPoolEvents;
  readonly #backoff: RespawnBackoff;
  readonly #respawnTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Thread starts left to fail (failSpawnsForTest). */
  #spawnFailuresForTest = 0;

  constructor(
    threads: number,
    maxQueued = DEFAULT_MAX_QUEUED,
    batchTimeoutMs = VERIFY_BATCH_TIMEOUT_MS,
    events: VerifyPoolEvents = {},
  ) {
    this.#maxQueued = maxQueued;
    this.#timeoutMs = batchTimeoutMs;
    this.#events = events;
    this.#backoff = new RespawnBackoff(events.respawnBaseMs, events.respawnMaxMs);
    for (let i = 0; i < threads; i++) this.#workers.push(this.#spawn());
  }

  /**
   * A new thread after the back-off; returns the wait. `new Worker` throws when no thread can be
   * made now (ERR_WORKER_INIT_FAILED: too many threads, no memory) — in a timer that would be an
   * uncaught exception and end the relay — so a start that throws counts as a failure and is
   * tried again after the next back-off, the event loop verifying meanwhile (as seal-pool.ts).
   */
  #scheduleRespawn(): number {
    const delay = this.#backoff.next();
    const timer = setTimeout(() => {
      this.#respawnTimers.delete(timer);
      if (this.#closed) return;
      let worker: VerifyWorker;
      try {
        worker = this.#spawn();
      } catch {
        this.failures++;
        const respawnInMs = this.#scheduleRespawn();
        this.#events.onFailure?.({ jobs: 0, respawnInMs });
        return;
      }
      this.#workers.push(worker);
      this.respawns++;
      this.#events.onRespawn?.({ respawns: this.respawns });
    }, delay);
    timer.unref();
    this.#respawnTimers.add(timer);
    return delay;
  }

  get threads(): number {
    return this.#workers.length;
  }

  #spawn(): VerifyWorker {
    if (this.#spawnFailuresForTest > 0) {
      this.#spawnFailuresForTest--;
      throw new Error("ERR_WORKER_INIT_FAILED (failSpawnsForTest)");
    }
    return new VerifyWorker((dead, orphans) => {
      const at = this.#workers.indexOf(dead);
      if (at >= 0) this.#workers.splice(at, 1);
      // A thread stopped by `close` did not fail.
      if (!this.#closed) {
        this.failures++;
        // Scheduled apart from the optional call: `?.` would skip its arguments with no listener.
        const respawnInMs = this.#scheduleRespawn();
        let jobs = 0;
        for (const b of orphans) jobs += b.jobs.length;
        this.#events.onFailure?.({ jobs, respawnInMs });
      }
      // Whatever the dead worker held is verified here, in order.
      for (const batch of orphans)
        for (let i = 0; i < batch.jobs.length; i++) {
          const j = batch.jobs[i]!;
          batch.resolves[i]!(ed25519Verify(j.keyObject, j.m, j.s));
        }
    }, this.#timeoutMs);
  }

  /**
   * Verify `signature` (64 bytes) over `message` by the Ed25519 key `raw` (32 bytes; `keyObject` is
   * the same key parsed, used only if the worker fails) on the least busy worker; undefined when
   * every worker already holds `maxQueued` jobs (or the pool is closed): the caller verifies inline.
   */
  submit(
    raw: Uint8Array,
    keyObject: KeyObject,
    message: Uint8Array,
    signature: Uint8Array,
  ): Promise<boolean> | undefined {
    if (this.#closed || raw.length !== 32 || signature.length !== 64) return undefined;
    let best: VerifyWorker | undefined;
    for (const w of this.#workers)
      if (w.queued < this.#maxQueued && (!best || w.queued < best.queued)) best = w;
    if (!best) return undefined;
    this.submitted++;
    return best.add({ key: raw, keyObject, m: message, s: signature });
  }

  /** For tests: make worker `i` loop forever, as a stuck one would (the watchdog fails it over). */
  hangWorkerForTest(i: number): void {
    this.#workers[i]?.hang();
  }

  /**
   * For tests: a counter worker `i` adds one to (and notifies) after each answer it posts — from
   * its own thread, so a test can block the event loop until an answer waits in the port
   * (`Atomics.wait`), however late the thread is scheduled. Counts answers posted from now on.
   */
  countAnswersForTest(i: number): Int32Array | undefined {
    return this.#workers[i]?.countAnswers();
  }

  /** For tests: the next `n` thread starts throw, as `new Worker` does when no thread can be made. */
  failSpawnsForTest(n: number): void {
    this.#spawnFailuresForTest = n;
  }

  /** For tests: stop worker `i` as a crash would (its jobs go back to the event loop). */
  async killWorkerForTest(i: number): Promise<void> {
    await this.#workers[i]?.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#respawnTimers) clearTimeout(t);
    this.#respawnTimers.clear();
    await Promise.all(this.#workers.splice(0).map((w) => w.terminate()));
  }
}
