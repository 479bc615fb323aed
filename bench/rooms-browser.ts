/**
 * `npm run bench:rooms-browser` (`-- --json`, `-- --quick`) — room fan-out between real Chromium
 * pages (docs/protocol/rooms.md §6), inside the test network namespace (`scripts/e2e.mjs --bench`):
 * the time for one room message to reach every member of rooms of 2, 4, 8 and 16.
 *
 * Sixteen pages, each a whole engine (web/src/chat-engine.ts: storage, signaling, WebRTC data
 * channels, Noise sessions with the room binding) built from the real modules (bench/page-bundle.ts;
 * nothing mocked), with the real server's signaling. Page 0 makes four rooms and is in all of them;
 * pages 1..n−1 join the room of n, so every room is a full mesh of its own member links. Then page
 * 0 writes one message to each room in turn, the sizes alternating (2, 4, 8, 16, then 16 … 2), for
 * the rounds:
 *
 *   reach_ms[n]      from the send (page 0's `Date.now()`) to the last member's `room-changed` event
 *                    with it (each page's `Date.now()`: one machine, one clock), median of rounds
 *   confirmed_ms[n]  on page 0's clock alone, from the send until every member's receipt came back
 *                    (`delivered === recipients`), median of rounds
 *   reach_vs_pair[n], confirmed_vs_pair[n]   the ratio to the room of 2 (one member link), same run
 *
 * The member cap is raised to 16 for these pages (`roomMemberCap`; the app's default is 8, from
 * bench:rooms). No relay is configured: the member links are direct.
 */
import type { Page } from "playwright-core";
import { log, median, QUICK, type Row, report } from "./harness.ts";
import { callPage, repoModule } from "./page-bundle.ts";
import { runBench, startPageBench } from "./support/page-bench.ts";

const SIZES = [2, 4, 8, 16] as const;
const ROUNDS = Number(process.env.LOFT_BENCH_REPEATS ?? (QUICK ? 3 : 11));

const PAGE_SOURCE = `
import { LoftStorage } from ${repoModule("web/src/storage/storage.ts")};
import { createChatEngineWith } from ${repoModule("web/src/chat-engine.ts")};
import { createUserIdentity } from ${repoModule("core/identity/identity.ts")};

const s = { arrived: new Map() };
const until = (cond, every = 1) => new Promise((resolve) => {
  const tick = () => (cond() ? resolve() : setTimeout(tick, every));
  tick();
});
const online = (id) => (s.engine.rooms.room(id)?.members ?? []).filter((m) => m.state === "online").length;

window.loftBench = {
  async init(name, signalingUrl) {
    s.user = await createUserIdentity({ username: name, now: Date.now() });
    s.storage = await LoftStorage.open("bench-" + name);
    await s.storage.setSettingsRecord({ signalingUrl });
    s.logs = [];
    s.engine = createChatEngineWith({ user: s.user, storage: s.storage }, {
      roomMemberCap: 16,
      // The engine's room lines, kept short: shown when a room does not come together.
      log: (m) => {
        if (!m.includes("room")) return;
        s.logs.push(m);
        if (s.logs.length > 30) s.logs.shift();
      },
    });
    s.service = "";
    s.engine.subscribe((e) => {
      if (e.type === "service") s.service = e.status.signaling;
    });
    // When each member message first shows: the room's event, as the room screen hears it.
    s.engine.rooms.subscribe((e) => {
      if (e.type !== "room-changed") return;
      const now = Date.now();
      for (const m of s.engine.rooms.messages(e.roomId).slice(-4))
        if (m.from !== undefined && !s.arrived.has(m.text)) s.arrived.set(m.text, now);
    });
    await s.engine.start();
    await until(() => s.service === "connected", 5);
  },
  async roomCreate() {
    const r = await s.engine.rooms.create();
    return { id: r.id, fragment: r.fragment };
  },
  async roomJoin(fragment) {
    return (await s.engine.rooms.join(fragment)).id;
  },
  /** Until \`others\` members are online in room \`id\`, or \`ms\` passed: how many are. */
  async roomReady(id, others, ms) {
    const end = performance.now() + ms;
    await until(() => online(id) >= others || performance.now() > end, 10);
    return online(id);
  },
  logs() {
    return s.logs;
  },
  /** One message to room \`id\`: its send time (Date.now()) and ms until every member confirmed it. */
  async send(id, text) {
    const at = Date.now();
    const start = performance.now();
    const sent = s.engine.rooms.send(id, text);
    await until(() => {
      const m = s.engine.rooms.messages(id).find((x) => x.id === sent.id);
      return m !== undefined && m.recipients > 0 && m.delivered === m.recipients;
    });
    return { at, confirmedMs: performance.now() - start, recipients: sent.recipients };
  },
  async arrival(text) {
    await until(() => s.arrived.has(text));
    return s.arrived.get(text);
  },
};
`;

async function main(): Promise<void> {
  const bench = await startPageBench("rooms", PAGE_SOURCE);
  const { browser, signalingUrl } = bench;
  try {
    const pages: Page[] = [];
    for (let i = 0; i < 16; i++) {
      const p = await bench.openPage();
      await callPage(p, "init", `member${i}`, signalingUrl);
      pages.push(p);
    }
    const [host] = pages as [Page, ...Page[]];
    const rooms = new Map<number, string>();
    for (const n of SIZES) {
      const { id, fragment } = await callPage<{ id: string; fragment: string }>(host, "roomCreate");
      rooms.set(n, id);
      for (const p of pages.slice(1, n)) await callPage(p, "roomJoin", fragment);
      // A mesh on a loaded machine can take minutes (every member dials each newcomer, §3): said
      // every half minute, and what each page still waits for is shown if it never comes.
      for (let waited = 0; ; waited++) {
        const counts = await Promise.all(
          pages.slice(0, n).map((p) => callPage<number>(p, "roomReady", id, n - 1, 30_000)),
        );
        if (counts.every((c) => c >= n - 1)) break;
        log(`room of ${n}: members online per page ${counts.join(" ")} (want ${n - 1})`);
        if (waited === 10) {
          for (const [i, p] of pages.slice(0, n).entries())
            if ((counts[i] ?? 0) < n - 1)
              log(`page ${i}: ${(await callPage<string[]>(p, "logs")).join(" | ")}`);
          throw new Error(`room of ${n}: the mesh did not come together`);
        }
      }
      log(`room of ${n}: a full mesh of ${(n * (n - 1)) / 2} member links`);
    }
    const reach = new Map<number, number[]>();
    const confirmed = new Map<number, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? SIZES : [...SIZES].reverse();
      for (const n of order) {
        const id = rooms.get(n) as string;
        const text = `fan-out ${n} round ${round}`;
        const r = await callPage<{ at: number; confirmedMs: number; recipients: number }>(
          host,
          "send",
          id,
          text,
        );
        if (r.recipients !== n - 1) throw new Error(`room of ${n}: sent to ${r.recipients} members`);
        const arrivals = await Promise.all(
          pages.slice(1, n).map((p) => callPage<number>(p, "arrival", text)),
        );
        reach.set(n, [...(reach.get(n) ?? []), Math.max(...arrivals) - r.at]);
        confirmed.set(n, [...(confirmed.get(n) ?? []), r.confirmedMs]);
      }
      log(`round ${round + 1}/${ROUNDS}`);
    }
    const reachMs = Object.fromEntries(SIZES.map((n) => [n, median(reach.get(n) ?? [])]));
    const confirmedMs = Object.fromEntries(SIZES.map((n) => [n, median(confirmed.get(n) ?? [])]));
    const rows: Row[] = [];
    const summary: Record<string, unknown> = {
      bench: "rooms-browser",
      reach_ms: reachMs,
      confirmed_ms: confirmedMs,
      reach_vs_pair: Object.fromEntries(SIZES.map((n) => [n, reachMs[n]! / reachMs[2]!])),
      confirmed_vs_pair: Object.fromEntries(SIZES.map((n) => [n, confirmedMs[n]! / confirmedMs[2]!])),
      rounds: ROUNDS,
      chromium: browser.version(),
    };
    for (const n of SIZES) {
      rows.push({
        name: `one message reaches all ${n - 1} member(s) of a room of ${n}`,
        value: reachMs[n]!,
        unit: "ms",
        baseline: { name: "room of 2", value: reachMs[2]! },
        ratio: reachMs[n]! / reachMs[2]!,
      });
      rows.push({
        name: `… and every member's receipt is back (room of ${n})`,
        value: confirmedMs[n]!,
        unit: "ms",
        baseline: { name: "room of 2", value: confirmedMs[2]! },
        ratio: confirmedMs[n]! / confirmedMs[2]!,
      });
    }
    report(
      `bench:rooms-browser — room fan-out between Chromium pages (Chromium ${browser.version()})`,
      rows,
      summary,
    );
  } finally {
    await bench.close();
  }
}

runBench(main);
