/**
 * `npm run bench:codec` — what strict UTF-8 costs the MessagePack decode (docs/protocol/wire.md,
 * "Canonical MessagePack": every str is checked after the parse, core/codec/codec.ts). Typical
 * frames, each decoded by this tree's decoder next to a baseline in the same process, in
 * alternating slices (harness.ts `alternate`):
 *
 *   - the parse step: `decodeRaw` (bounds, parse, the UTF-8 check) vs the bare @msgpack/msgpack
 *     Decoder with the same bounds (`parse_vs_bare`: what decodeRaw adds to the library, its
 *     decoder look-up included), and with `--baseline` vs DIR's decodeRaw (`parse_vs_baseline`);
 *   - with `--baseline DIR` (a checkout of the tree before, e.g. `git archive <commit> | tar -x -C
 *     DIR && ln -s $PWD/node_modules DIR/node_modules`): each whole frame decode — SREMP
 *     REGISTER_REQUEST, a chat message of 300 characters, a room.msg, a draft record of 2 000
 *     characters — vs DIR's same function: `<frame>_vs_baseline` (1.0: no change; 0.9: 10 % fewer
 *     decodes per second); and `encodeCanonical` of a chat message (`encode_vs_baseline`: the
 *     encoder checks its own strings too).
 *
 * Each row also gives the ratio per CPU-second of this process, which other processes' load disturbs
 * less (harness.ts). `--json`: the last line is one JSON object; `--quick`: a smoke run. Figures: bench/README.md,
 * "bench:codec".
 */
import { resolve } from "node:path";
import { Decoder } from "@msgpack/msgpack";
import { decodeRaw, encodeCanonical } from "../core/codec/codec.ts";
import { srempCodec } from "../core/wire/sremp.ts";
import { exampleMessages } from "../test/fuzz/sremp-examples.ts";
import { encodeDraft } from "../web/src/engine/local-notes.ts";
import { encodeRoomFrame } from "../web/src/engine/rooms/wire.ts";
import { encodeAppMessage } from "../web/src/engine/wire.ts";
import { alternate, log, type Row, rateOf, report, type SliceRate, type Subject } from "./harness.ts";
import { ratioRow } from "./support/ratio-row.ts";

const BATCH = 200;

/**
 * One row: the rate of `subjects[0]` against `subjects[1]`, both from the same alternating run
 * (bench/README.md: ratios within one run). Returns the wall ratio for the summary.
 */
function pushRatio(
  rows: Row[],
  rates: Map<string, SliceRate>,
  [a, b]: readonly [string, string],
  name: string,
  unit: string,
  baseline: string,
): number {
  const row = ratioRow(name, unit, rateOf(rates, a), { name: baseline, rate: rateOf(rates, b) });
  rows.push(row);
  return Number(row.ratio.toFixed(3));
}
const baselineFlag = process.argv.indexOf("--baseline");
const baselineDir = baselineFlag > 0 ? resolve(process.argv[baselineFlag + 1] ?? "") : undefined;

const register = srempCodec.encode((await exampleMessages())[0]!);
const chat = encodeAppMessage({
  t: "msg",
  id: "AAECAwQFBgcICQoLDA0ODw",
  at: 1_700_000_000_000,
  text: "see you at eight, bring the book — ".repeat(9).slice(0, 300),
});
const room = encodeRoomFrame({
  t: "room.msg",
  id: "AAECAwQFBgcICQoLDA0ODw",
  at: 1_700_000_000_000,
  text: "Zoë: see you at eight 🕗",
});
const draft = encodeDraft(
  "half a thought, and then some more. ".repeat(56).slice(0, 2000),
  1_700_000_000_000,
);

type Decoders = {
  register: (b: Uint8Array) => unknown;
  chat: (b: Uint8Array) => unknown;
  room: (b: Uint8Array) => unknown;
  draft: (b: Uint8Array) => unknown;
};

async function decodersFrom(dir: string): Promise<Decoders> {
  const at = (p: string) => import(resolve(dir, p));
  const sremp = await at("core/wire/sremp.ts");
  const wire = await at("web/src/engine/wire.ts");
  const rooms = await at("web/src/engine/rooms/wire.ts");
  const notes = await at("web/src/engine/local-notes.ts");
  return {
    register: (b) => sremp.srempCodec.decode(b),
    chat: (b) => wire.decodeAppMessage(b),
    room: (b) => rooms.decodeRoomFrame(b),
    draft: (b) => notes.decodeDraftRecord(b),
  };
}

const batch = (f: () => unknown) => async () => {
  for (let i = 0; i < BATCH; i++) f();
  return BATCH;
};

/** Each must decode: a bench of refusals would measure the wrong path. */
function mustDecode(what: string, r: unknown) {
  const ok = r !== undefined && (typeof r !== "object" || r === null || !("ok" in r) || r.ok === true);
  if (!ok) throw new Error(`${what} does not decode: ${JSON.stringify(r)}`);
}

async function main() {
  const rows: Row[] = [];
  const summary: Record<string, unknown> = {};
  const limits = { maxBytes: 65_535, maxArrayLength: 4096, maxMapLength: 256 };
  const bare = new Decoder({
    maxStrLength: limits.maxBytes,
    maxBinLength: limits.maxBytes,
    maxArrayLength: limits.maxArrayLength,
    maxMapLength: limits.maxMapLength,
    maxExtLength: limits.maxBytes,
  });
  const body = encodeCanonical({ t: "msg", id: "AAECAwQFBgcICQoLDA0ODw", at: 1, text: "x".repeat(120) });
  const parse = await alternate([
    { name: "decodeRaw", run: batch(() => decodeRaw(register, limits)) },
    { name: "bare", run: batch(() => bare.decode(register)) },
    { name: "decodeRaw chat body", run: batch(() => decodeRaw(body, limits)) },
    { name: "bare chat body", run: batch(() => bare.decode(body)) },
  ]);
  for (const [label, a, b, key] of [
    ["parse: REGISTER_REQUEST", "decodeRaw", "bare", "parse_vs_bare"],
    ["parse: chat message body", "decodeRaw chat body", "bare chat body", "parse_chat_vs_bare"],
  ] as const) {
    summary[key] = pushRatio(rows, parse, [a, b], label, "decodes/s", "bare @msgpack/msgpack");
  }
  if (baselineDir !== undefined) {
    const here = await decodersFrom(resolve(import.meta.dirname, ".."));
    const there = await decodersFrom(baselineDir);
    const rawThere = (await import(resolve(baselineDir, "core/codec/codec.ts")))
      .decodeRaw as typeof decodeRaw;
    const raw = await alternate([
      { name: "here", run: batch(() => decodeRaw(register, limits)) },
      { name: "baseline", run: batch(() => rawThere(register, limits)) },
    ]);
    summary.parse_vs_baseline = pushRatio(
      rows,
      raw,
      ["here", "baseline"],
      "parse: REGISTER_REQUEST, decodeRaw",
      "decodes/s",
      "baseline tree",
    );
    // The encoder's own check (a lone surrogate written as U+FFFD): a chat message's canonical encoding.
    const encThere = (await import(resolve(baselineDir, "core/codec/codec.ts")))
      .encodeCanonical as typeof encodeCanonical;
    const message = {
      t: "msg",
      id: "AAECAwQFBgcICQoLDA0ODw",
      at: 1_700_000_000_000,
      text: "see you at eight 🕗 ".repeat(8),
    };
    const enc = await alternate([
      { name: "here", run: batch(() => encodeCanonical(message)) },
      { name: "baseline", run: batch(() => encThere(message)) },
    ]);
    summary.encode_vs_baseline = pushRatio(
      rows,
      enc,
      ["here", "baseline"],
      "encode: chat message, encodeCanonical",
      "encodes/s",
      "baseline tree",
    );
    const frames = { register, chat, room, draft } as const;
    for (const k of Object.keys(frames) as (keyof Decoders)[]) {
      mustDecode(`${k} (this tree)`, here[k](frames[k]));
      mustDecode(`${k} (baseline)`, there[k](frames[k]));
    }
    const subjects: Subject[] = (Object.keys(frames) as (keyof Decoders)[]).flatMap((k) => [
      { name: `${k} here`, run: batch(() => here[k](frames[k])) },
      { name: `${k} baseline`, run: batch(() => there[k](frames[k])) },
    ]);
    const whole = await alternate(subjects);
    for (const k of Object.keys(frames) as (keyof Decoders)[]) {
      summary[`${k}_vs_baseline`] = pushRatio(
        rows,
        whole,
        [`${k} here`, `${k} baseline`],
        `whole decode: ${k} (${frames[k].length} B)`,
        "decodes/s",
        "baseline tree",
      );
    }
  } else log("  (no --baseline DIR: the whole-frame comparison is skipped)");
  report("bench:codec", rows, summary);
}

await main();
