/**
 * `npm run bench:relay-store [-- --json] [--queues 4] [--messages 4000] [--size 1024]
 *   [--outstanding 32] [--rounds 4] [--baseline DIR]`
 *
 * The relay's LMDB store alone (relay-ws/store/lmdb.ts, durable commits, at-rest sealing), in
 * this process, without sockets, framing or clients: what the store costs per stored, delivered
 * and acknowledged message — the part of bench:relay's server CPU that the store's layout decides
 * (docs/decisions.md (Relay), "One record per message"). Per queue, `outstanding` appends go in
 * together (one group commit, as SENDs of one turn do in the relay), then each is taken as a
 * push is (`next`, `readBucket`, `markDelivered`) and acknowledged, all of them together.
 *
 * `--baseline DIR`: another checkout of Loft (with relay-ws/store/lmdb.ts, e.g.
 * `git archive <commit> | tar -x -C DIR`) whose store runs as the subject "baseline" in the same
 * process, alternating slices with this checkout's: a before/after in one run. DIR/node_modules
 * must be a symlink to this checkout's (one lmdb-js in the process, bench/baseline-dir.ts); the
 * bench refuses any other DIR before it starts (exit code 2). The CPU per message is the
 * process's (user + system, every thread: lmdb-js commits on its own thread); the better slice of
 * each subject is kept. Temp dirs only; nothing on the network.
 *
 * `--gc [--gc-messages 1000000] [--gc-queues 10000] [--rounds 4] [--baseline DIR]`: the GC pause
 * on a large store instead (docs/operations-relay.md §Storage). One temp store is
 * filled once (16-byte bodies, expiring in 7 days, written without fsync to fill fast), then each
 * subject in turn opens it, runs `gc` with nothing due (what almost every 5-minute run of a healthy
 * relay finds) and closes it, slices alternating; measured: the longest the event loop went
 * without a turn during the run (a `setImmediate` ticker: the pause every connection sees), the
 * run's wall time, and the open's. JSON `gc_pause_ms`, `baseline_gc_pause_ms`,
 * `gc_pause_vs_baseline`, `gc_ms`, `open_ms`, … (best slice of each).
 *
 * `--gone [--gone-max 262144] [--rounds 4] [--baseline DIR]`: the gone list alone
 * (relay-ws/store/gone-sends.ts, the send ids of acknowledged messages) at full size instead. Each
 * slice fills a list of `gone-max` ids expiring in roughly the order they were added, times
 * `gone-max`/4 more adds at full (each evicts the oldest: what an ACK costs the list; CPU time), then GC's
 * prune with nothing due, with 1, with 0.1 % and with 1 % of the list due (each prune runs to the
 * end in one turn: its time is the pause every connection sees; the short ones are timed many in a
 * row, `PRUNE_REPEATS`). JSON `gone_add_us`, `gone_prune_ms` (by how many were due: ms of one
 * prune, never under 1 ns), the baseline's, and `gone_prune_vs_baseline` (always finite).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomQueue } from "../relay-ws/store/testing.ts";
import { inProcessBaselineProblem } from "./baseline-dir.ts";
import { numberFlag, rotatingRounds, stringFlag } from "./relay-cli.ts";

const JSON_OUT = process.argv.includes("--json");
const QUEUES = numberFlag("queues", 4);
const MESSAGES = numberFlag("messages", 4000);
const SIZE = numberFlag("size", 1024);
const OUTSTANDING = Math.max(1, numberFlag("outstanding", 32));
const ROUNDS = numberFlag("rounds", 4);
const BASELINE_DIR = stringFlag("baseline");
const GC = process.argv.includes("--gc");
const GC_MESSAGES = numberFlag("gc-messages", 1_000_000);
const GC_QUEUES = Math.max(1, numberFlag("gc-queues", 10_000));
const GONE = process.argv.includes("--gone");
/**
 * A multiple of 8 (rounded down): a quarter of it is added at full and an eighth bounds the short
 * prunes' repeats (`PRUNE_REPEATS`), each an index into the ids held — a fraction was a list the
 * prunes' `now`s did not match ("gone: 117 pruned, 129 due" at 1025).
 */
const GONE_MAX = Math.max(1024, Math.floor(numberFlag("gone-max", 262_144) / 8) * 8);

type MaybePromise<T> = T | Promise<T>;

/** The part of RelayStore (and LmdbStore's constructor) this bench drives, in any checkout. */
interface Store {
  createQueue(q: unknown): Promise<void>;
  append(rid: Uint8Array, m: unknown, quota: number): Promise<string>;
  // A value at once in checkouts since "fewer objects per message" (bench/README-relay.md), a
  // promise before: awaited either way, as the relay's pump does only when it must.
  next(
    rid: Uint8Array,
    after: number,
  ): MaybePromise<{ seq: number; msgId: Uint8Array; deliveries: number } | undefined>;
  readBucket(rid: Uint8Array, seq: number): MaybePromise<Uint8Array | undefined>;
  markDelivered(rid: Uint8Array, seq: number): MaybePromise<number>;
  ack(rid: Uint8Array, seq: number, msgId: Uint8Array): Promise<boolean>;
  appendBatch(rid: Uint8Array, ms: unknown[], quota: number): Promise<string[]>;
  gc(now: number): Promise<{ expiredMessages: number }>;
  stats(): { messages: number };
  close(): Promise<void>;
}
type StoreClass = new (o: { path: string; masterKey: Uint8Array; sync?: boolean }) => Store;

const CHECKOUT = fileURLToPath(new URL("..", import.meta.url));

async function load(dir: string): Promise<StoreClass> {
  const url = pathToFileURL(join(resolve(dir), "relay-ws/store/lmdb.ts")).href;
  return ((await import(url)) as { LmdbStore: StoreClass }).LmdbStore;
}

interface Subject {
  name: string;
  store: StoreClass;
}

/** This checkout's store ("store"), and DIR's with --baseline ("baseline"). */
async function loadSubjects(): Promise<Subject[]> {
  const subjects: Subject[] = [{ name: "store", store: await load(CHECKOUT) }];
  if (BASELINE_DIR) subjects.push({ name: "baseline", store: await load(BASELINE_DIR) });
  return subjects;
}

/** `run` on each subject, ROUNDS rotating rounds (relay-cli.ts); every slice printed (`line`). */
const alternateSlices = <T>(
  subjects: Subject[],
  run: (store: StoreClass) => Promise<T>,
  line: (r: T) => string,
): Promise<Map<string, T[]>> =>
  rotatingRounds(
    subjects,
    ROUNDS,
    (s) => run(s.store),
    (s, round, r) => say(`  round ${round + 1} ${s.name.padEnd(8)} ${line(r)}`),
  );

interface Slice {
  msgsPerSecond: number;
  cpuUs: number;
}

const say = (s: string) => {
  if (!JSON_OUT) console.log(s);
};

async function slice(Lmdb: StoreClass): Promise<Slice> {
  const dir = mkdtempSync(join(tmpdir(), "loft-bench-relay-store-"));
  const store = new Lmdb({ path: dir, masterKey: randomBytes(32) });
  try {
    const queues = Array.from({ length: QUEUES }, randomQueue);
    for (const q of queues) await store.createQueue(q);
    const body = new Uint8Array(randomBytes(SIZE));
    const cursors = queues.map(() => -1);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let done = 0;
    for (let guard = 0; done < MESSAGES * QUEUES && guard < MESSAGES + 1; guard++) {
      const n = Math.min(OUTSTANDING, MESSAGES - done / QUEUES);
      const now = Date.now();
      const appended = await Promise.all(
        queues.flatMap((q) =>
          Array.from({ length: n }, () =>
            store.append(
              q.recipientId,
              {
                msgId: new Uint8Array(randomBytes(24)),
                sendId: new Uint8Array(randomBytes(16)),
                timestamp: Math.floor(now / 1000),
                expiresAt: now + 86_400_000,
                body,
              },
              1_000_000,
            ),
          ),
        ),
      );
      if (appended.some((r) => r !== "ok")) throw new Error(`append: ${appended.find((r) => r !== "ok")}`);
      const acks: Promise<boolean>[] = [];
      for (const [i, q] of queues.entries()) {
        for (let k = 0; k < n; k++) {
          const m = await store.next(q.recipientId, cursors[i]!);
          if (!m) throw new Error("next: nothing");
          cursors[i] = m.seq;
          const block = await store.readBucket(q.recipientId, m.seq);
          if (!block) throw new Error("readBucket: nothing");
          block.fill(0);
          void store.markDelivered(q.recipientId, m.seq);
          acks.push(store.ack(q.recipientId, m.seq, m.msgId));
        }
      }
      if ((await Promise.all(acks)).some((ok) => !ok)) throw new Error("ack refused");
      done += n * QUEUES;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { msgsPerSecond: done / seconds, cpuUs: (cpu.user + cpu.system) / done };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A store of GC_MESSAGES messages in GC_QUEUES queues (this checkout's store writes it). */
async function fillForGc(Lmdb: StoreClass, dir: string, masterKey: Uint8Array): Promise<void> {
  const store = new Lmdb({ path: dir, masterKey, sync: false });
  try {
    const perQueue = Math.ceil(GC_MESSAGES / GC_QUEUES);
    const body = new Uint8Array(randomBytes(16));
    const now = Date.now();
    const t0 = performance.now();
    let written = 0;
    // Queues in groups, each group's batches in one group commit.
    for (let q0 = 0; q0 < GC_QUEUES && written < GC_MESSAGES; q0 += 64) {
      const group = Array.from({ length: Math.min(64, GC_QUEUES - q0) }, randomQueue);
      await Promise.all(group.map((q) => store.createQueue(q)));
      const batches: Promise<string[]>[] = [];
      for (const q of group)
        for (let at = 0; at < perQueue && written < GC_MESSAGES; at += 32) {
          const n = Math.min(32, perQueue - at, GC_MESSAGES - written);
          written += n;
          batches.push(
            store.appendBatch(
              q.recipientId,
              Array.from({ length: n }, () => ({
                msgId: new Uint8Array(randomBytes(24)),
                sendId: new Uint8Array(randomBytes(16)),
                timestamp: Math.floor(now / 1000),
                expiresAt: now + 7 * 86_400_000,
                body,
              })),
              1_000_000,
            ),
          );
        }
      for (const r of await Promise.all(batches))
        if (r.some((x) => x !== "ok")) throw new Error(`fill: ${r.find((x) => x !== "ok")}`);
      if (!JSON_OUT && q0 % 1024 === 0)
        process.stdout.write(
          `\r  filling: ${written} messages, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
    }
    say(
      `\r  filled: ${store.stats().messages} messages in ${GC_QUEUES} queues, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
  } finally {
    await store.close();
  }
}

interface GcSlice {
  pauseMs: number;
  gcMs: number;
  openMs: number;
}

/** Open the filled store, run one GC with nothing due while a ticker measures the loop's gaps. */
async function gcSlice(Lmdb: StoreClass, dir: string, masterKey: Uint8Array): Promise<GcSlice> {
  const o0 = performance.now();
  const store = new Lmdb({ path: dir, masterKey, sync: false });
  const openMs = performance.now() - o0;
  try {
    let running = true;
    let last = performance.now();
    let pauseMs = 0;
    const tick = () => {
      const t = performance.now();
      if (t - last > pauseMs) pauseMs = t - last;
      last = t;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    last = t0;
    const r = await store.gc(Date.now());
    const gcMs = performance.now() - t0;
    running = false;
    tick();
    if (r.expiredMessages !== 0) throw new Error("gc: something was due");
    return { pauseMs, gcMs, openMs };
  } finally {
    await store.close();
  }
}

async function mainGc() {
  const subjects = await loadSubjects();
  say(`relay store GC bench: ${GC_MESSAGES} messages in ${GC_QUEUES} queues, nothing due, ${ROUNDS} rounds`);
  const dir = mkdtempSync(join(tmpdir(), "loft-bench-relay-gc-"));
  const masterKey = new Uint8Array(randomBytes(32));
  try {
    await fillForGc(subjects[0]!.store, dir, masterKey);
    const runs = await alternateSlices(
      subjects,
      (store) => gcSlice(store, dir, masterKey),
      (r) =>
        `GC pause ${r.pauseMs.toFixed(1).padStart(8)} ms  GC ${r.gcMs.toFixed(1).padStart(8)} ms  open ${r.openMs.toFixed(0).padStart(6)} ms`,
    );
    // Load from elsewhere only lengthens a slice: the best of each is kept.
    const best = (name: string) => {
      const all = runs.get(name);
      if (!all || all.length === 0) return undefined;
      return {
        pauseMs: Math.min(...all.map((r) => r.pauseMs)),
        gcMs: Math.min(...all.map((r) => r.gcMs)),
        openMs: Math.min(...all.map((r) => r.openMs)),
      };
    };
    const mine = best("store")!;
    const base = best("baseline");
    say(
      `store: GC pause ${mine.pauseMs.toFixed(1)} ms, GC ${mine.gcMs.toFixed(1)} ms, open ${mine.openMs.toFixed(0)} ms`,
    );
    if (base)
      say(
        `baseline: GC pause ${base.pauseMs.toFixed(1)} ms, GC ${base.gcMs.toFixed(1)} ms, open ${base.openMs.toFixed(0)} ms; pause ${(base.pauseMs / mine.pauseMs).toFixed(0)}× shorter`,
      );
    if (JSON_OUT)
      console.log(
        JSON.stringify({
          gc_pause_ms: mine.pauseMs,
          gc_ms: mine.gcMs,
          open_ms: mine.openMs,
          baseline_gc_pause_ms: base?.pauseMs ?? null,
          baseline_gc_ms: base?.gcMs ?? null,
          baseline_open_ms: base?.openMs ?? null,
          gc_pause_vs_baseline: base ? base.pauseMs / mine.pauseMs : null,
          rounds: Object.fromEntries(
            [...runs].map(([k, v]) => [k, v.map((r) => Math.round(r.pauseMs * 10) / 10)]),
          ),
          messages: GC_MESSAGES,
          queues: GC_QUEUES,
        }),
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The gone list's part of its API both checkouts share (gone-sends.ts). */
interface GoneList {
  add(rid: Uint8Array, sendId: Uint8Array, at: number, expiresAt: number): void;
  prune(nowMs: number): number;
  readonly size: number;
}
type GoneClass = new (max: number, random: (n: number) => Uint8Array) => GoneList;

interface GoneSlice {
  addUs: number;
  /** By how many were due: ms of one prune (the mean of `PRUNE_REPEATS` where it is that short). */
  pruneMs: Map<number, number>;
}

/**
 * Prunes of nothing or of 1 due can take well under a microsecond (the heap's root is read, or one
 * entry popped): one alone measured 0.00 ms, and a ratio against it was Infinity. Those are timed
 * in a row — each with its own due: nothing, or the next one — until `PRUNE_TIMED_MS` have passed
 * or this many ran, and each is their mean. (A baseline whose prune reads the whole list stops
 * after one: it takes longer than that alone.)
 */
const PRUNE_REPEATS = Math.min(1000, GONE_MAX / 8);
const PRUNE_TIMED_MS = 5;
/** A mean is never taken as under this (1 ns): a ratio against it stays finite. */
const PRUNE_FLOOR_MS = 1e-6;

/** One gone list of GONE_MAX filled, GONE_MAX/4 adds at full timed, then prunes of growing dues. */
function goneSlice(Gone: GoneClass, ids: Buffer, rid: Buffer): GoneSlice {
  const gone = new Gone(GONE_MAX, randomBytes);
  const t0 = 1_000_000_000_000;
  // The i-th id added expires at about t0 + i ms (ACKs come roughly in expiry order, not exactly).
  // (No two equal: each prune below takes exactly the number due.)
  const expiry = (i: number) => t0 + 1.001 * i + ((i * 7919) % 1000);
  for (let i = 0; i < GONE_MAX; i++) gone.add(rid, ids, 16 * i, expiry(i));
  const extra = GONE_MAX / 4;
  // CPU time, not wall: the adds are short, and a loaded machine's descheduling would swamp them.
  const a0 = process.cpuUsage();
  for (let i = GONE_MAX; i < GONE_MAX + extra; i++) gone.add(rid, ids, 16 * i, expiry(i));
  const a = process.cpuUsage(a0);
  const addUs = (a.user + a.system) / extra;
  // Each prune's `now`: the expiry of the `due`-th earliest held after the prunes before it.
  const held = Float64Array.from({ length: GONE_MAX }, (_, i) => expiry(extra + i)).sort();
  const pruneMs = new Map<number, number>();
  let done = 0;
  for (const due of [0, 1, Math.round(GONE_MAX / 1000), Math.round(GONE_MAX / 100)]) {
    const most = due <= 1 ? PRUNE_REPEATS : 1;
    // Each prune's `now`, chosen before the clock starts.
    const nows = Array.from({ length: most }, (_, r) =>
      due === 0 ? held[done]! - 1 : held[done + (r + 1) * due - 1]!,
    );
    let n = 0;
    let ran = 0;
    const p0 = performance.now();
    let elapsed = 0;
    // In batches doubling in size: the clock read between prunes would weigh on one this short.
    for (let batch = 1; ran < most && (ran === 0 || elapsed < PRUNE_TIMED_MS); batch *= 2) {
      const end = Math.min(most, ran + batch);
      while (ran < end) n += gone.prune(nows[ran++]!);
      elapsed = performance.now() - p0;
    }
    pruneMs.set(due, Math.max(PRUNE_FLOOR_MS, elapsed / ran));
    if (n !== due * ran) throw new Error(`gone: ${n} pruned, ${due * ran} due`);
    done += n;
  }
  if (gone.size + done !== GONE_MAX) throw new Error(`gone: ${gone.size} held, ${done} pruned`);
  return { addUs, pruneMs };
}

async function mainGone() {
  const subjects = [
    { name: "store", gone: await loadGone(CHECKOUT) },
    ...(BASELINE_DIR ? [{ name: "baseline", gone: await loadGone(BASELINE_DIR) }] : []),
  ];
  say(`gone list bench: ${GONE_MAX} ids, ${GONE_MAX / 4} adds at full, prunes of 0, 1, 0.1 % and 1 % due`);
  const ids = randomBytes(16 * (GONE_MAX + GONE_MAX / 4));
  const rid = randomBytes(24);
  // Warm-up (JIT), not counted.
  for (const s of subjects) goneSlice(s.gone, ids, rid);
  // Microseconds: a prune of nothing due is a fraction of one.
  const fmt = (r: GoneSlice) =>
    `add ${r.addUs.toFixed(3)} µs  prune ${[...r.pruneMs].map(([d, ms]) => `${d} due ${(ms * 1000).toFixed(3)} µs`).join(", ")}`;
  const runs = await rotatingRounds(
    subjects,
    ROUNDS,
    async (s) => goneSlice(s.gone, ids, rid),
    (s, round, r) => say(`  round ${round + 1} ${s.name.padEnd(8)} ${fmt(r)}`),
  );
  const best = (name: string): GoneSlice | undefined => {
    const all = runs.get(name);
    if (!all || all.length === 0) return undefined;
    return {
      addUs: Math.min(...all.map((r) => r.addUs)),
      pruneMs: new Map(
        [...all[0]!.pruneMs.keys()].map((d) => [d, Math.min(...all.map((r) => r.pruneMs.get(d)!))]),
      ),
    };
  };
  const mine = best("store")!;
  const base = best("baseline");
  say(`store (best): ${fmt(mine)}`);
  if (base) say(`baseline (best): ${fmt(base)}`);
  if (JSON_OUT)
    console.log(
      JSON.stringify({
        gone_max: GONE_MAX,
        gone_add_us: mine.addUs,
        gone_prune_ms: Object.fromEntries(mine.pruneMs),
        baseline_gone_add_us: base?.addUs ?? null,
        baseline_gone_prune_ms: base ? Object.fromEntries(base.pruneMs) : null,
        gone_prune_vs_baseline: base
          ? Object.fromEntries([...mine.pruneMs].map(([d, ms]) => [d, base.pruneMs.get(d)! / ms]))
          : null,
        rounds: Object.fromEntries(
          [...runs].map(([k, v]) => [
            k,
            v.map((r) => ({ add_us: r.addUs, prune_ms: Object.fromEntries(r.pruneMs) })),
          ]),
        ),
      }),
    );
}

async function loadGone(dir: string): Promise<GoneClass> {
  const url = pathToFileURL(join(resolve(dir), "relay-ws/store/gone-sends.ts")).href;
  return ((await import(url)) as { GoneSends: GoneClass }).GoneSends;
}

async function main() {
  const subjects = await loadSubjects();
  say(
    `relay store bench: ${QUEUES} queues × ${MESSAGES} messages of ${SIZE} B, ${OUTSTANDING} appends per queue per commit, ${ROUNDS} rounds`,
  );
  // Warm-up (module compile, JIT), not counted.
  for (const s of subjects) await slice(s.store);
  const runs = await alternateSlices(
    subjects,
    slice,
    (r) => `${r.msgsPerSecond.toFixed(0).padStart(6)} msgs/s  ${r.cpuUs.toFixed(1)} µs CPU/msg`,
  );
  // Other work on the machine only ever slows a slice down: the best slice of each subject is
  // kept, by CPU per message and by rate separately.
  const best = (name: string) => {
    const all = runs.get(name);
    if (!all || all.length === 0) return undefined;
    return {
      cpuUs: Math.min(...all.map((r) => r.cpuUs)),
      msgsPerSecond: Math.max(...all.map((r) => r.msgsPerSecond)),
    };
  };
  const mine = best("store")!;
  const base = best("baseline");
  say(
    `store: ${mine.msgsPerSecond.toFixed(0)} msgs/s, ${mine.cpuUs.toFixed(1)} µs CPU per message (best slices)`,
  );
  if (base) {
    say(`baseline: ${base.msgsPerSecond.toFixed(0)} msgs/s, ${base.cpuUs.toFixed(1)} µs CPU per message`);
    say(`store / baseline: ${(base.cpuUs / mine.cpuUs).toFixed(2)}× less CPU per message`);
  }
  if (JSON_OUT)
    console.log(
      JSON.stringify({
        store_msgs_per_s: mine.msgsPerSecond,
        store_cpu_us_per_msg: mine.cpuUs,
        baseline_msgs_per_s: base?.msgsPerSecond ?? null,
        baseline_cpu_us_per_msg: base?.cpuUs ?? null,
        store_cpu_vs_baseline: base ? base.cpuUs / mine.cpuUs : null,
        store_vs_baseline: base ? mine.msgsPerSecond / base.msgsPerSecond : null,
        rounds: Object.fromEntries(
          [...runs].map(([k, v]) => [k, v.map((r) => Math.round(r.cpuUs * 10) / 10)]),
        ),
        queues: QUEUES,
        messages: MESSAGES,
        size: SIZE,
        outstanding: OUTSTANDING,
      }),
    );
}

// Refused before anything is loaded: a second lmdb-js fails only later, with a misleading error.
const problem = BASELINE_DIR === undefined ? undefined : inProcessBaselineProblem(BASELINE_DIR, CHECKOUT);
if (problem) {
  console.error(problem);
  process.exitCode = 2;
} else await (GONE ? mainGone() : GC ? mainGc() : main());
