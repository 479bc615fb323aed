/**
 * `npx tsx bench/idle-census.ts [--idle 5000] [--service relay|signaling] [--ws-impl lean|ws] [--node-arg …] [--wait 3] [--churn 1] [--top 25] [--keep] [--json]`
 *
 * What one idle connection leaves in the V8 heap, by constructor (bench/README.md, "bench:scale",
 * "Where an idle connection's bytes are"): one `relay-ws/main.ts` (embedded store) or
 * `signaling/main.ts` process, a heap snapshot (`--heapsnapshot-signal`, which collects garbage
 * first) before and after `--idle` connections held by bench/idle-holder.ts, and the difference of
 * every (node type, constructor) pair's count and self size divided by the connections held. A
 * census of live objects: garbage and the young generation's slack, which RSS also holds, are not
 * in it (bench:scale measures RSS). `--node-arg` (repeatable) is handed to the server's node.
 * `--wait` is the seconds between the last connection held and the second snapshot: past one
 * heartbeat (30 s by default) the servers have forgotten the rate buckets the openings spent from.
 * `--churn K`: the holder opens K × `--idle` connections and keeps one in K, closing the others as
 * soon as their opening completes (bench/idle-holder.ts `churn`): what the held ones cost once many
 * came and went around them — a slab of connection-long bytes kept alive by one survivor shows
 * here (relay-ws/random-pool.ts `LastingSlab`).
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLoft } from "../test/support/loft-process.ts";
import { liftedSignalingArgs, spawnIdleHolder } from "./idle-holders.ts";
import { numberFlag, stringFlag } from "./relay-cli.ts";

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes("--json");
const IDLE = numberFlag("idle", 5000);
const TOP = numberFlag("top", 25);
const WAIT_S = numberFlag("wait", 3);
const CHURN = Math.max(1, numberFlag("churn", 1));
const SERVICE = (stringFlag("service") ?? "relay") as "relay" | "signaling";
const WS_IMPL = stringFlag("ws-impl") ?? "lean";
const NODE_ARGS = argv.flatMap((a, i) => (a === "--node-arg" && argv[i + 1] ? [argv[i + 1]!] : []));
const say = (s: string) => (JSON_OUT ? process.stderr.write(`${s}\n`) : console.log(s));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** (type:name) → [count, self bytes] of a snapshot file. */
function census(file: string): Map<string, [number, number]> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const [ti, ni, si] = [f.indexOf("type"), f.indexOf("name"), f.indexOf("self_size")];
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + ti]!]!;
    // Strings and numbers by type only (their "name" is the value); objects by constructor.
    const name =
      type === "string" || type === "concatenated string" || type === "sliced string" || type === "number"
        ? ""
        : s.strings[s.nodes[i + ni]!]!.slice(0, 60);
    const key = `${type}:${name}`;
    const e = out.get(key) ?? [0, 0];
    e[0]++;
    e[1] += s.nodes[i + si]!;
    out.set(key, e);
  }
  return out;
}

/** Signal the process and wait for the snapshot file it writes to be complete. */
async function snapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const fresh = readdirSync(dir).filter((n) => n.endsWith(".heapsnapshot") && !before.has(n));
    if (fresh.length === 0) continue;
    const file = join(dir, fresh[0]!);
    const size = statSync(file).size;
    await sleep(1000);
    if (size > 0 && statSync(file).size === size) {
      try {
        JSON.parse(readFileSync(file, "utf8"));
        return file;
      } catch {}
    }
  }
  throw new Error("no heap snapshot");
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "loft-idle-census-"));
  const keyFile = join(dir, "master.key");
  writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const relayArgs = [
    "--relay-data-dir",
    join(dir, "lmdb"),
    "--relay-master-key-file",
    keyFile,
    "--relay-conn-rate",
    "0",
    "--relay-source-rate",
    "0",
    "--relay-max-connections-per-source",
    "100000",
    "--relay-verify-threads",
    "0",
  ];
  const signalingArgs = liftedSignalingArgs(IDLE);
  const p = await startLoft({
    entry: SERVICE === "relay" ? "relay-ws/main.ts" : "signaling/main.ts",
    args: [...(SERVICE === "relay" ? relayArgs : signalingArgs), "--ws-impl", WS_IMPL],
    nodeArgs: ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${dir}`, ...NODE_ARGS],
  });
  const pid = p.child.pid!;
  let holder: ChildProcess | undefined;
  try {
    await sleep(3000);
    // Before the first connection (the holder starts once this snapshot is written).
    const a = census(await snapshot(pid, dir));
    const h = spawnIdleHolder({
      targets: [{ host: "127.0.0.1", port: p.port, path: SERVICE === "relay" ? "/relay" : "/signal" }],
      count: IDLE,
      firstSource: 0,
      perSource: 200,
      concurrency: 64,
      service: SERVICE,
      churn: CHURN,
    });
    holder = h.child;
    const { held } = await h.done;
    await sleep(WAIT_S * 1000);
    const b = census(await snapshot(pid, dir));
    const rows = [...new Set([...a.keys(), ...b.keys()])].map((k) => {
      const [c0, s0] = a.get(k) ?? [0, 0];
      const [c1, s1] = b.get(k) ?? [0, 0];
      return { what: k, count: (c1 - c0) / held, bytes: (s1 - s0) / held };
    });
    rows.sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((s, r) => s + r.bytes, 0);
    say(
      `${SERVICE} (--ws-impl ${WS_IMPL} ${NODE_ARGS.join(" ")}): ${held} idle connections held ${WAIT_S} s` +
        (CHURN > 1 ? `, each among ${CHURN} opened (the others closed at once)` : ""),
    );
    say(`${"per connection".padEnd(64)} ${"objects".padStart(8)} ${"bytes".padStart(8)}`);
    for (const r of rows.slice(0, TOP))
      say(`${r.what.padEnd(64)} ${r.count.toFixed(2).padStart(8)} ${r.bytes.toFixed(0).padStart(8)}`);
    say(`${"live heap in all".padEnd(64)} ${"".padStart(8)} ${total.toFixed(0).padStart(8)}`);
    if (JSON_OUT)
      console.log(
        JSON.stringify({
          service: SERVICE,
          ws_impl: WS_IMPL,
          held,
          wait_s: WAIT_S,
          churn: CHURN,
          heap_bytes_per_connection: total,
          top: rows.slice(0, TOP),
        }),
      );
  } finally {
    holder?.stdin?.end();
    holder?.kill();
    await p.stop("SIGTERM");
    // `--keep`: the snapshots stay for a closer look (a heap viewer's retainers view).
    if (argv.includes("--keep")) say(`snapshots kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
