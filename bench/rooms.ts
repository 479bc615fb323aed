/**
 * `npm run bench:rooms` — what a room of n members costs one member, next to a 1:1 link (n = 2)
 * measured the same way in the same run: the figure behind the default member cap
 * (web/src/engine/rooms/mesh.ts DEFAULT_ROOM_MEMBER_CAP; docs/protocol/rooms.md §2).
 *
 * A newcomer to a room of n members answers n − 1 member links: n − 1 whole Loft sessions
 * (version headers, Noise XXhfs+ML-KEM-768 with the room binding in the prologue, signed
 * identities verified), here over in-memory links (core/link/memory-link.ts) so that only the
 * cryptography and framing count — a browser adds one WebRTC data channel per member on top.
 * Then one room message fans out: encoded once per member (room frame, padded), sealed on each
 * member's session, received and decoded there.
 *
 *   join_ms[n]      the newcomer's n − 1 handshakes (all members' sides included), median of rounds
 *   fanout_ms[n]    one message to n − 1 members, received and decoded by all
 *   join_vs_pair[n], fanout_vs_pair[n]   the ratio to n = 2 (one link)
 *
 * Sizes 2, 4, 8, 16 alternate in rounds (harness.ts idea: load falls on all of them).
 * `--json`: the last line is one JSON object; `--quick`: fewer rounds.
 */
import { createUserIdentity, type UserIdentity } from "../core/identity/identity.ts";
import { memoryLinkPair } from "../core/link/memory-link.ts";
import { establishSession, type Session } from "../core/session/index.ts";
import { roomBinding } from "../web/src/engine/rooms/room-link.ts";
import { decodeRoomFrame, encodeRoomFrame } from "../web/src/engine/rooms/wire.ts";
import { log, median, QUICK, type Row, report } from "./harness.ts";

const SIZES = [2, 4, 8, 16] as const;
const ROUNDS = QUICK ? 2 : 7;
const FANOUTS_PER_ROUND = QUICK ? 5 : 40;
const TEXT = "a room message of ordinary length, about one line of chat".repeat(2);

const link = {
  id: new Uint8Array(16).fill(1),
  secret: new Uint8Array(32).fill(2),
  host: new Uint8Array(32).fill(3),
};
const binding = roomBinding(link);
const people: UserIdentity[] = Array.from({ length: 16 }, (_, i) =>
  createUserIdentity({ username: `m${i}`, now: 1_700_000_000_000, seed: new Uint8Array(32).fill(i + 10) }),
);

/** The newcomer (people[0]) answers one link from each of the n − 1 members present. */
async function join(n: number): Promise<{ ms: number; sessions: [Session, Session][] }> {
  const start = performance.now();
  const pairs = await Promise.all(
    people.slice(1, n).map(async (member) => {
      const [la, lb] = memoryLinkPair();
      const [dialer, newcomer] = await Promise.all([
        establishSession({ link: la, role: "initiator", kind: "direct", self: member, binding }),
        establishSession({ link: lb, role: "responder", kind: "direct", self: people[0]!, binding }),
      ]);
      return [newcomer, dialer] as [Session, Session];
    }),
  );
  return { ms: performance.now() - start, sessions: pairs };
}

async function fanout(sessions: [Session, Session][], k: number): Promise<number> {
  const start = performance.now();
  sessions.map(([from]) =>
    from.send(
      encodeRoomFrame({
        t: "room.msg",
        id: `AAAAAAAAAAAAAAAAAAAA${String(k % 100).padStart(2, "0")}`,
        at: k,
        text: TEXT,
      }),
    ),
  );
  await Promise.all(
    sessions.map(async ([, to]) => {
      const r = decodeRoomFrame(await to.receive());
      if (!r.ok) throw r.error;
    }),
  );
  return performance.now() - start;
}

const joins = new Map<number, number[]>();
const fanouts = new Map<number, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? SIZES : [...SIZES].reverse();
  for (const n of order) {
    const { ms, sessions } = await join(n);
    joins.set(n, [...(joins.get(n) ?? []), ms]);
    const times: number[] = [];
    for (let k = 0; k < FANOUTS_PER_ROUND; k++) times.push(await fanout(sessions, k));
    fanouts.set(n, [...(fanouts.get(n) ?? []), median(times)]);
    for (const [a, b] of sessions) {
      a.close("done");
      b.close("done");
    }
  }
  log(`round ${round + 1}/${ROUNDS}`);
}

const joinMs = Object.fromEntries(SIZES.map((n) => [n, median(joins.get(n)!)]));
const fanoutMs = Object.fromEntries(SIZES.map((n) => [n, median(fanouts.get(n)!)]));
const rows: Row[] = [];
const summary: Record<string, Record<number, number>> = {
  join_ms: joinMs,
  fanout_ms: fanoutMs,
  join_vs_pair: {},
  fanout_vs_pair: {},
};
for (const n of SIZES) {
  summary.join_vs_pair![n] = joinMs[n]! / joinMs[2]!;
  summary.fanout_vs_pair![n] = fanoutMs[n]! / fanoutMs[2]!;
  rows.push({
    name: `newcomer joins a room of ${n}`,
    value: joinMs[n]!,
    unit: "ms",
    baseline: { name: "one link (n = 2)", value: joinMs[2]! },
  });
  rows.push({
    name: `one message to ${n - 1} member(s)`,
    value: fanoutMs[n]!,
    unit: "ms",
    baseline: { name: "one link (n = 2)", value: fanoutMs[2]! },
  });
}
report("bench:rooms — one member's cost in a room of n, next to one 1:1 link", rows, summary);
