/**
 * At-rest sealing of message blocks on a worker thread (`--relay-seal-threads 1`), so the relay's
 * second core takes the two AES-256-GCM operations each SEND costs (docs/protocol/relay.md
 * §At rest: the blob under a fresh data key, the data key wrapped under the epoch key; ~16 µs of
 * the event loop per message, bench/README-relay.md). What moves is only the cipher work, a pure
 * function of bytes: the data key and both IVs are drawn on the event loop (the store's
 * `keySource`, as inline), and the bytes out are exactly those of at-rest.ts `sealBlob` and
 * `wrapDataKey` (seal-pool.test.ts compares them).
 *
 * Order: a worker answers its batches in order and jobs resolve in submission order, so the
 * store's writes — enqueued when a seal resolves — keep the order of the SENDs (one queue's
 * messages commit in seq order, their OKs leave in order). A worker that fails or exits has its
 * unanswered batches sealed on the event loop, in order, and every later job is sealed there too
 * (resolved through a promise all the same, so it cannot overtake one resolved before it).
 *
 * Watchdog: a worker that neither answers nor dies (a hang) would hold every SEND forever. The
 * oldest batch out has `batchTimeoutMs` to come back; past that the worker is failed over exactly
 * like one that crashed (terminated; what it held and everything after sealed on the event loop)
 * and `onFailover` is told why — the store logs it and counts it
 * (`loft_relay_seal_failovers_total`, docs/operations-relay.md §Metrics). A late answer or exit
 * from the terminated worker is ignored: its jobs were already sealed here, with the same keys
 * and IVs. A new worker replaces it after a back-off (batch-watchdog.ts `RespawnBackoff`: 1 s,
 * doubling while it keeps failing, at most a minute), told to `onRespawn` and counted
 * (`loft_relay_worker_respawns_total{pool="seal"}`); jobs go to it from then on.
 *
 * Jobs submitted during one event-loop turn leave together; while a batch is out, new jobs gather
 * into the next, posted when it is answered (batches grow with the load, like group commits). The
 * batch buffer holds plaintext and keys: the worker zeroes its copy once sealed, the event loop
 * its own once answered.
 * Like verify-pool.ts, the worker is plain JavaScript in a string (`eval`): node:crypto only.
 */
import { Worker } from "node:worker_threads";
import { BatchWatchdog, RespawnBackoff } from "../batch-watchdog.ts";
import { AT_REST_IV_LENGTH, AT_REST_KEY_LENGTH } from "../node-crypto.ts";
import { KEY_RECORD_LENGTH, sealBlob, wrapDataKey } from "./at-rest.ts";

/**
 * A batch: jobs `u32 epoch ‖ epoch key(32) ‖ data key(32) ‖ blob iv(12) ‖ wrap iv(12) ‖
 * u8 key-key length ‖ key-key ‖ u32 block length ‖ block`; the answer, per job in order,
 * `key record(64) ‖ sealed blob(12 + block length + 16)`.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createCipheriv } = require("node:crypto");
const WRAP_AAD = Buffer.from("loft-relay/1 dk", "latin1");
// Tests only (SealPool.countAnswersForTest): answers posted so far, readable by a blocked event loop.
let answers;
parentPort.on("message", (ab) => {
  // Tests only (SealPool.hangForTest): a worker stuck in a loop, for the watchdog.
  if (ab === "hang") for (;;) {}
  if (ab instanceof SharedArrayBuffer) {
    answers = new Int32Array(ab);
    return;
  }
  const b = Buffer.from(ab);
  const jobs = [];
  let at = 0;
  let total = 0;
  while (at + 97 <= b.length) {
    const kk = b[at + 92];
    const len = b.readUInt32BE(at + 93 + kk);
    jobs.push(at);
    total += 64 + 12 + len + 16;
    at += 97 + kk + len;
  }
  const out = Buffer.alloc(total);
  let o = 0;
  for (const j of jobs) {
    const epoch = b.subarray(j, j + 4);
    const epochKey = b.subarray(j + 4, j + 36);
    const dataKey = b.subarray(j + 36, j + 68);
    const iv1 = b.subarray(j + 68, j + 80);
    const iv2 = b.subarray(j + 80, j + 92);
    const kk = b[j + 92];
    const keyKey = b.subarray(j + 93, j + 93 + kk);
    const len = b.readUInt32BE(j + 93 + kk);
    const block = b.subarray(j + 97 + kk, j + 97 + kk + len);
    epoch.copy(out, o);
    iv2.copy(out, o + 4);
    const w = createCipheriv("aes-256-gcm", epochKey, iv2);
    w.setAAD(Buffer.concat([WRAP_AAD, epoch, keyKey]));
    w.update(dataKey).copy(out, o + 16);
    w.final();
    w.getAuthTag().copy(out, o + 48);
    o += 64;
    iv1.copy(out, o);
    const c = createCipheriv("aes-256-gcm", dataKey, iv1);
    c.setAAD(keyKey);
    c.update(block).copy(out, o + 12);
    c.final();
    c.getAuthTag().copy(out, o + 12 + len);
    o += 12 + len + 16;
  }
  b.fill(0);
  parentPort.postMessage(out.buffer, [out.buffer]);
  if (answers) {
    Atomics.add(answers, 0, 1);
    Atomics.notify(answers, 0);
  }
});
`;

/** One seal: the key record and the sealed blob (at-rest.ts formats). */
export interface Sealed {
  keyRecord: Buffer;
  sealed: Buffer;
}

interface Job {
  epoch: number;
  epochKey: Uint8Array;
  dataKey: Buffer;
  iv1: Buffer;
  iv2: Buffer;
  keyKey: Buffer;
  block: Uint8Array;
  resolve: (s: Sealed) => void;
}

/** Fixed bytes of a job before its key-key and block. */
const JOB_HEAD = 4 + 32 + AT_REST_KEY_LENGTH + 2 * AT_REST_IV_LENGTH + 1;
/**
 * One batch out, not two: against two, the relay carried more msg/s to 1.3 clients in 16 of 21
 * paired rounds, with a lower p99 in 14 and less CPU per message in 15; to 1.1 clients no
 * difference (3 of 7) (bench/README-relay.md, "session 23"; a loaded machine). Each post wakes the worker, which on two busy cores takes the
 * loop's core (216 µs of wall time per post measured in the relay); why one out wins is not
 * established — it did not post fewer batches.
 */
const MAX_BATCHES_OUT = 1;
/**
 * How long the oldest batch out may take (default). A batch is at most a few MiB of AES-GCM,
 * about a millisecond per MiB on the worker: a second means the worker is stuck, not busy.
 */
export const SEAL_BATCH_TIMEOUT_MS = 1_000;

/**
 * Why the pool stopped using its worker (or seals on the event loop still): it stopped answering,
 * failed or exited; or (`start`) its replacement could not be started.
 */
export type SealFailover = "timeout" | "error" | "exit" | "start";

export interface SealPoolOptions {
  /** How long the oldest batch out may take before the worker is failed over (ms). */
  batchTimeoutMs?: number;
  /** Told when the worker is failed over (not at close). */
  onFailover?: (reason: SealFailover, detail: { jobs: number; error?: unknown }) => void;
  /** Told when a new worker replaces a failed one (after `delayMs` of back-off). */
  onRespawn?: (detail: { delayMs: number; respawns: number }) => void;
  /** First back-off before a failed worker is replaced (ms; doubles while it keeps failing). */
  respawnBaseMs?: number;
  /** Longest back-off (ms). */
  respawnMaxMs?: number;
}

/** The same bytes on the event loop (a failed worker's jobs, and every job after it). */
function sealHere(j: Job): Sealed {
  return {
    keyRecord: wrapDataKey(j.epoch, j.epochKey, j.dataKey, j.keyKey, j.iv2),
    sealed: sealBlob(j.dataKey, j.block, j.keyKey, j.iv1),
  };
}

function settle(j: Job, s: Sealed): void {
  j.dataKey.fill(0);
  j.resolve(s);
}

export class SealPool {
  #worker: Worker | undefined;
  /** Batches sent and not answered, oldest first. */
  readonly #sent: Job[][] = [];
  #forming: Job[] | undefined;
  #dead = false;
  #closed = false;
  /** Batches the worker answered (tests, diagnostics). */
  batches = 0;
  /** Times a worker was failed over. */
  failovers = 0;
  /** Times a new worker replaced a failed one. */
  respawns = 0;
  readonly #onFailover: SealPoolOptions["onFailover"];
  readonly #onRespawn: SealPoolOptions["onRespawn"];
  /** Fails the worker over when its oldest batch out goes unanswered (relay-ws/batch-watchdog.ts). */
  readonly #watchdog: BatchWatchdog;
  readonly #backoff: RespawnBackoff;
  #respawnTimer: ReturnType<typeof setTimeout> | undefined;
  /** Worker starts left to fail (failSpawnsForTest). */
  #spawnFailuresForTest = 0;

  constructor(options: SealPoolOptions = {}) {
    this.#onFailover = options.onFailover;
    this.#onRespawn = options.onRespawn;
    this.#backoff = new RespawnBackoff(options.respawnBaseMs, options.respawnMaxMs);
    this.#watchdog = new BatchWatchdog(
      options.batchTimeoutMs ?? SEAL_BATCH_TIMEOUT_MS,
      () => (this.#dead ? undefined : this.#sent[0]),
      () => this.#fail("timeout"),
    );
    this.#worker = this.#spawn();
  }

  /** A worker whose events count only while it is the pool's current one. */
  #spawn(): Worker {
    if (this.#spawnFailuresForTest > 0) {
      this.#spawnFailuresForTest--;
      throw new Error("ERR_WORKER_INIT_FAILED (failSpawnsForTest)");
    }
    const w = new Worker(WORKER_SOURCE, { eval: true, name: "relay-seal" });
    w.unref();
    w.on("message", (ab: ArrayBuffer) => {
      if (this.#worker === w) this.#answered(Buffer.from(ab));
    });
    this.#watchdog.watch(w);
    w.on("error", (error) => {
      if (this.#worker === w) this.#fail("error", error);
    });
    w.on("exit", () => {
      if (this.#worker === w) this.#fail("exit");
    });
    return w;
  }

  /** The back-off is over: a new worker takes the jobs submitted from now on. */
  #respawn(delayMs: number): void {
    this.#respawnTimer = undefined;
    if (this.#closed || !this.#dead) return;
    try {
      this.#worker = this.#spawn();
    } catch (error) {
      // No thread now (out of memory, too many threads): stay on the event loop, try again later
      // (scheduled before the listener is told: whatever it does, the pool tries again).
      this.failovers++;
      this.#scheduleRespawn();
      this.#onFailover?.("start", { jobs: 0, error });
      return;
    }
    this.#dead = false;
    this.respawns++;
    this.#onRespawn?.({ delayMs, respawns: this.respawns });
  }

  #scheduleRespawn(): void {
    if (this.#closed || this.#respawnTimer) return;
    const delay = this.#backoff.next();
    this.#respawnTimer = setTimeout(() => this.#respawn(delay), delay);
    this.#respawnTimer.unref();
  }

  /** Whether jobs are sealed on a worker (false from a failover until its replacement runs). */
  get alive(): boolean {
    return !this.#dead;
  }

  /**
   * Seal `block` under `dataKey` (wiped once sealed) and wrap `dataKey` under the epoch key; the
   * IVs are given (drawn by the caller). Resolves in submission order.
   */
  seal(
    epoch: number,
    epochKey: Uint8Array,
    dataKey: Buffer,
    keyKey: Buffer,
    block: Uint8Array,
    iv1: Buffer,
    iv2: Buffer,
  ): Promise<Sealed> {
    return new Promise<Sealed>((resolve) => {
      const job: Job = { epoch, epochKey, dataKey, iv1, iv2, keyKey, block, resolve };
      if (this.#dead) {
        settle(job, sealHere(job));
        return;
      }
      if (!this.#forming) {
        this.#forming = [];
        if (this.#sent.length < MAX_BATCHES_OUT) setImmediate(() => this.#flushOrFail());
      }
      this.#forming.push(job);
    });
  }

  #flush(): void {
    const jobs = this.#forming;
    if (!jobs || this.#dead || this.#sent.length >= MAX_BATCHES_OUT) return;
    this.#forming = undefined;
    // Out from here on: if the batch cannot be built or posted, #fail seals these jobs here.
    this.#sent.push(jobs);
    let bytes = 0;
    for (const j of jobs) bytes += JOB_HEAD + j.keyKey.length + 4 + j.block.length;
    const b = Buffer.alloc(bytes);
    let at = 0;
    for (const j of jobs) {
      b.writeUInt32BE(j.epoch >>> 0, at);
      b.set(j.epochKey, at + 4);
      b.set(j.dataKey, at + 36);
      b.set(j.iv1, at + 68);
      b.set(j.iv2, at + 80);
      b[at + 92] = j.keyKey.length;
      b.set(j.keyKey, at + 93);
      b.writeUInt32BE(j.block.length, at + 93 + j.keyKey.length);
      b.set(j.block, at + 97 + j.keyKey.length);
      at += JOB_HEAD + j.keyKey.length + 4 + j.block.length;
    }
    // Transferred: the only copy of these keys and blocks that leaves is the worker's.
    this.#worker!.postMessage(b.buffer, [b.buffer]);
    // The oldest batch's clock: started when it is the only one out, restarted on each answer.
    if (this.#sent.length === 1) this.#watchdog.arm();
  }

  #answered(out: Buffer): void {
    if (this.#dead) return; // failed over: its jobs were sealed here already
    const jobs = this.#sent.shift();
    if (!jobs) return;
    this.batches++;
    this.#watchdog.arm();
    let o = 0;
    for (const j of jobs) {
      const keyRecord = out.subarray(o, o + KEY_RECORD_LENGTH);
      o += KEY_RECORD_LENGTH;
      const n = AT_REST_IV_LENGTH + j.block.length + 16;
      settle(j, { keyRecord, sealed: out.subarray(o, o + n) });
      o += n;
    }
    if (this.#forming && !this.#dead) this.#flushOrFail();
  }

  /** A batch that cannot be posted fails the worker over: its jobs are sealed here, never lost. */
  #flushOrFail(): void {
    try {
      this.#flush();
    } catch (error) {
      this.#fail("error", error);
    }
  }

  /**
   * The worker is gone or stuck: what it held is sealed here, in order, and so is everything
   * after; the worker is terminated (a stuck one too: it may never answer).
   */
  #fail(reason: SealFailover, error?: unknown): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#watchdog.stop();
    const pending = [...this.#sent.splice(0).flat(), ...(this.#forming ?? [])];
    this.#forming = undefined;
    if (!this.#closed) {
      this.failovers++;
      this.#onFailover?.(
        reason,
        error === undefined ? { jobs: pending.length } : { jobs: pending.length, error },
      );
    }
    for (const j of pending) settle(j, sealHere(j));
    if (!this.#closed) {
      const w = this.#worker;
      this.#worker = undefined;
      void w?.terminate();
      this.#scheduleRespawn();
    }
  }

  /** End the worker as a crash would (tests): what it holds is sealed here, in order. */
  async kill(): Promise<void> {
    await this.#worker?.terminate();
  }

  /** Make the worker loop forever, as a hung one would (tests: the watchdog fails it over). */
  hangForTest(): void {
    this.#worker?.postMessage("hang");
  }

  /** Tests: the next `n` worker starts throw, as `new Worker` does when no thread can be made. */
  failSpawnsForTest(n: number): void {
    this.#spawnFailuresForTest = n;
  }

  /**
   * Tests: a counter the worker adds one to (and notifies) after each answer it posts — from its
   * own thread, so a test can block the event loop until an answer waits in the port
   * (`Atomics.wait`), however late the thread is scheduled. Counts answers posted from now on.
   */
  countAnswersForTest(): Int32Array {
    const answers = new Int32Array(new SharedArrayBuffer(4));
    this.#worker?.postMessage(answers.buffer);
    return answers;
  }

  /** Stop the worker; jobs still out are sealed here first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#respawnTimer) clearTimeout(this.#respawnTimer);
    this.#respawnTimer = undefined;
    // Let what is out come back (bounded: a worker that does not answer is failed over).
    for (let i = 0; i < 200 && (this.#sent.length > 0 || this.#forming) && !this.#dead; i++)
      await new Promise((r) => setTimeout(r, 5));
    this.#fail("exit");
    await this.#worker?.terminate();
    this.#worker = undefined;
  }
}
