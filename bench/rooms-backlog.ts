/**
 * `npm run bench:rooms-backlog` (`-- --json`, `-- --quick`) — the storage work of reading a room
 * backlog from a relay mailbox (docs/protocol/rooms.md §9, "Reading"), on real IndexedDB in
 * Chromium (scripts/e2e.mjs --bench): the vault's sealing and the object store of
 * web/src/storage/storage.ts, the room history of web/src/engine/rooms/store.ts.
 *
 * A read brings n = 16 messages (the engine's SUB window). Two subjects, alternating in each round,
 * in one page and one database, on a history of h entries already stored (h = 0, 500, 2 000 =
 * MAX_LOG):
 *
 *   per message  what a read did before: each message into the history, the whole history written
 *                (sealed) and awaited, then the pair ratchet's state written — n times
 *   per read     what rooms/mailbox.ts `#settle` does now: the n messages into the history, their n
 *                history writes asked at once (rooms/store.ts coalesces them into one), then the
 *                ratchet's state once
 *
 * The ratchet record is a stand-in of its size (a sealed secret like it, `room-dr/…`); the
 * decryption, the same in both, is left out. `ratio` = per read / per message, per round, median.
 */
import { log, median, QUICK, type Row, report } from "./harness.ts";
import { callPage, repoModule } from "./page-bundle.ts";
import { runBench, startPageBench } from "./support/page-bench.ts";

const HISTORY = [0, 500, 2_000] as const;
const BACKLOG = 16;
const ROUNDS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 3 : 9));

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { RoomStore } from ${repoModule("web/src/engine/rooms/store.ts")};

const s = {};
const entry = (i) => ({
  id: "m" + i + "-" + Math.random().toString(36).slice(2, 10),
  from: "ab".repeat(32),
  name: "Bea",
  at: Date.now(),
  text: "a room message of about a hundred characters, as people write them in a chat, more or less ok " + i,
});
const ratchet = () => crypto.getRandomValues(new Uint8Array(700));

window.loftBench = {
  async init() {
    s.storage = await LoftStorage.open("bench-rooms-backlog");
    s.store = new RoomStore(s.storage);
  },
  /** One read of n messages onto a stored history of h, the subject's way: ms. */
  async read(subject, h, n, round) {
    const room = String(h).padStart(32, "0");
    const log = Array.from({ length: h }, (_, i) => entry(i));
    await s.store.saveLog(room, () => log);
    const start = performance.now();
    if (subject === "per-message") {
      for (let i = 0; i < n; i++) {
        log.push(entry(h + i));
        await s.store.saveLog(room, () => log);
        await s.storage.saveSecret("room-dr/" + room + "/" + round, ratchet());
      }
    } else {
      for (let i = 0; i < n; i++) log.push(entry(h + i));
      await Promise.all(Array.from({ length: n }, () => s.store.saveLog(room, () => log)));
      await s.storage.saveSecret("room-dr/" + room + "/" + round, ratchet());
    }
    const ms = performance.now() - start;
    const stored = await s.store.log(room);
    if (stored.length !== Math.min(h + n, 2000)) throw new Error("history not stored: " + stored.length);
    return ms;
  },
};
`;

async function main(): Promise<void> {
  const bench = await startPageBench("rooms-backlog", PAGE_SOURCE);
  try {
    const page = await bench.openPage();
    await callPage(page, "init");
    const per = new Map<string, number[]>();
    const ratios = new Map<number, number[]>();
    const subjects = ["per-message", "per-read"] as const;
    for (let round = 0; round < ROUNDS; round++) {
      for (const h of HISTORY) {
        const order = round % 2 === 0 ? subjects : ([...subjects].reverse() as (typeof subjects)[number][]);
        const ms: Record<string, number> = {};
        for (const subject of order)
          ms[subject] = await callPage<number>(page, "read", subject, h, BACKLOG, round);
        for (const subject of subjects)
          per.set(`${subject}/${h}`, [...(per.get(`${subject}/${h}`) ?? []), ms[subject]!]);
        ratios.set(h, [...(ratios.get(h) ?? []), ms["per-read"]! / ms["per-message"]!]);
      }
      log(`round ${round + 1}/${ROUNDS}`);
    }
    const rows: Row[] = [];
    const summary: Record<string, unknown> = { bench: "rooms-backlog", backlog: BACKLOG, rounds: ROUNDS };
    for (const h of HISTORY) {
      const before = median(per.get(`per-message/${h}`) ?? []);
      const now = median(per.get(`per-read/${h}`) ?? []);
      const r = ratios.get(h) ?? [];
      rows.push({
        name: `a backlog of ${BACKLOG} on a history of ${h}`,
        value: now,
        unit: "ms",
        baseline: { name: "per message", value: before },
        ratio: median(r),
        ratioRange: [Math.min(...r), Math.max(...r)],
      });
      summary[`h${h}`] = { per_message_ms: before, per_read_ms: now, ratio: median(r) };
    }
    report(
      "room backlog from a mailbox: storage work per read vs per message (real IndexedDB)",
      rows,
      summary,
    );
  } finally {
    await bench.close();
  }
}

runBench(main);
