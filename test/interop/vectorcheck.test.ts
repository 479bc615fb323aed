/**
 * The published vectors (docs/vectors/*.json) against an independent implementation:
 * test/interop/vectorcheck, Python written from the specs and docs/protocol/*.md (not from
 * core/), on Debian's python3-cryptography plus HChaCha20, XSalsa20 and ML-KEM-768 written from
 * their specs, each self-tested on published known answers first (selftest.py; ML-KEM-768 also
 * on Go's accumulated FIPS 203 hash, once, in the `--all` run; docs/vectors/README.md says which
 * file each module checks and why). It recomputes every output of a
 * file — keys, messages, states, decryptions, rejections — and stops on the first mismatch.
 * The negative tests show it can fail: one flipped byte anywhere it reads makes it exit 1.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findCryptographyPython } from "./python.ts";

const CHECKER = fileURLToPath(new URL("./vectorcheck", import.meta.url));
const VECTORS = fileURLToPath(new URL("../../docs/vectors/", import.meta.url));

/** Every vector file the checker covers (the XXhfs files: xxhfs-dissononce.test.ts). */
const CHECKED = [
  "ratchet-v1.json",
  "ratchet-v2.json",
  "ratchet-v3.json",
  "pqxdh-v1.json",
  "files-v1.json",
  "proxy-v1.json",
  "device-v1.json",
  "relay-auth-v1.1.json",
  "relay-delivery-v1.2.json",
  "relay-at-rest-v1.json",
  "relay-batch-v1.3.json",
  "relay-errors-v1.json",
  "smp-v6-v7.json",
  "identity-vectors.json",
  "identity-safety-codes.json",
  "identity-contact-links.json",
  "identity-signed-requests.json",
  "journal-v1.json",
  "draft-copy-v1.json",
  "session-detached-v1.json",
  "rooms-v1.json",
  "local-notes-v1.json",
  "backup-v3.json",
  "chat-v1.json",
];

/** The vector files another independent implementation checks: xxhfs-dissononce.test.ts. */
const CHECKED_ELSEWHERE = ["noise-xxhfs-mlkem768.json", "noise-xxhfs-mlkem768-aesgcm.json"];

let python = "";
let scratch = "";
/**
 * One `--all` run: the self-test, the FIPS 203 ML-KEM-768 accumulated check (2–3 s of CPU), then
 * every file the checker has a module for. Each run on named files pays only the self-test (~0.3 s).
 */
let all: { status: number | null; out: string };
beforeAll(() => {
  python = findCryptographyPython();
  scratch = mkdtempSync(join(tmpdir(), "loft-vectorcheck-"));
  all = check("--all");
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function check(...files: string[]): { status: number | null; out: string } {
  const r = spawnSync(python, ["-B", CHECKER, ...files], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A copy of `name` under its own name (the checker picks its module by file name). */
function tampered(name: string, edit: (doc: Record<string, unknown>) => void): string {
  const doc = JSON.parse(readFileSync(join(VECTORS, name), "utf8")) as Record<string, unknown>;
  edit(doc);
  const path = join(scratch, name);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

/** Flips the lowest bit of byte `at` of a hex string. */
const flip = (hex: string, at: number) =>
  hex.slice(0, 2 * at) +
  (Number.parseInt(hex.slice(2 * at, 2 * at + 2), 16) ^ 1).toString(16).padStart(2, "0") +
  hex.slice(2 * at + 2);

type Steps = { steps: Record<string, string>[] };

describe("published vectors against the independent Python checker", () => {
  it.each(CHECKED)("%s reproduces", (name) => {
    expect(all.out.split("\n")).toContainEqual(
      expect.stringMatching(new RegExp(`^ok .*/${name.replaceAll(".", "\\.")}: `)),
    );
    expect(all.status).toBe(0);
  });

  it("its ML-KEM-768 is FIPS 203 (final): Go's 100-case accumulated hash, which ipd key generation misses", () => {
    // docs/vectors/README.md, "The checker": the self-test's intermediate values follow the ipd
    // (no k byte after d in key generation); core's noble ML-KEM and the vectors follow the final.
    expect(all.out.split("\n")[0]).toBe(
      "ok ML-KEM-768 accumulated (FIPS 203 key generation), 100 cases: " +
        "1114b1b6699ed191734fa339376afa7e285c9e6acf6ff0177d346696ce564415",
    );
    const ipd = check("--mlkem-accumulated=ipd");
    expect(ipd.status).toBe(1);
    expect(ipd.out).toContain("FAIL ML-KEM-768 accumulated (FIPS 203 ipd key generation), 100 cases: ");
    expect(ipd.out).toContain("expected 1114b1b6699ed191734fa339376afa7e285c9e6acf6ff0177d346696ce564415");
  });

  it("fails on a ratchet state with one flipped byte (names the step and the offset)", () => {
    const path = tampered("ratchet-v1.json", (d) => {
      const s = (d as unknown as Steps).steps[7]!;
      s.state = flip(s.state!, 40);
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toContain("FAIL");
    expect(r.out).toContain("step 7 (alice decrypt");
    expect(r.out).toContain("state differs at byte 40");
  });

  it("fails on a detached link message with one flipped byte, and on an invalid one given the wrong code", () => {
    type Detached = { frames: Record<string, string>[]; invalid: Record<string, string>[] };
    const link = check(
      tampered("session-detached-v1.json", (d) => {
        const f = (d as unknown as Detached).frames[0]!;
        f.link_message = flip(f.link_message!, 130); // inside the detached ratchet body
      }),
    );
    expect(link.status).toBe(1);
    expect(link.out).toContain("frames[0] (DETACHED");
    expect(link.out).toContain("link message differs at byte 130");
    const code = check(
      tampered("session-detached-v1.json", (d) => {
        (d as unknown as Detached).invalid[6]!.code = "delivered"; // the tag changed: DECRYPT
      }),
    );
    expect(code.status).toBe(1);
    expect(code.out).toContain("invalid[6]");
  });

  it.each([
    ["0x02", "body", "ratchet-v2.json", 90],
    ["0x03", "header", "ratchet-v3.json", 40],
  ] as const)("fails on a %s message with one flipped byte in its AES-GCM %s", (_v, _part, name, at) => {
    const path = tampered(name, (d) => {
      const s = (d as unknown as Steps).steps[0]!;
      s.message = flip(s.message!, at);
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toContain("step 0 (alice encrypt");
    expect(r.out).toContain(`message differs at byte ${at}`);
  });

  it("fails on an initial message whose ML-KEM ciphertext has one flipped byte", () => {
    const path = tampered("pqxdh-v1.json", (d) => {
      const c = (d as { cases: Record<string, string>[] }).cases[1]!;
      // byte 100 is in `ct`, the map's first value (87 a2 "ct" c5 0440, then 1088 bytes)
      c.initial_message = flip(c.initial_message!, 100);
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toContain("case 1");
    expect(r.out).toContain("initial_message differs at byte 100");
  });

  it("fails on an SMP delivery whose sealed body hash has one flipped byte", () => {
    const path = tampered("smp-v6-v7.json", (d) => {
      const x = (d as { delivery: Record<string, string> }).delivery;
      x.sealedSha256 = flip(x.sealedSha256!, 31);
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toContain("delivery sealedSha256 differs at byte 31");
  });

  it("fails on a journal entry whose nonce has one flipped byte", () => {
    const path = tampered("journal-v1.json", (d) => {
      const e = (d as { entries: Record<string, string>[] }).entries[0]!;
      e.nonce = flip(e.nonce!, 5);
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toContain("entries[0] (a short message with an emoji) value differs");
  });

  it("fails on a draft copy with one flipped byte, and on an invalid one given the wrong code", () => {
    type Copies = { copies: Record<string, string>[]; invalid: Record<string, string>[] };
    const sealed = check(
      tampered("draft-copy-v1.json", (d) => {
        const c = (d as unknown as Copies).copies[1]!;
        const raw = Buffer.from(c.value!, "base64url");
        raw[60] = raw[60]! ^ 1; // inside the ciphertext
        c.value = raw.toString("base64url");
      }),
    );
    expect(sealed.status).toBe(1);
    expect(sealed.out).toContain(
      "copies[1] (an erased draft (empty text) of a room) value differs at byte 60",
    );
    const code = check(
      tampered("draft-copy-v1.json", (d) => {
        const v = (d as unknown as Copies).invalid.find((x) => x.label!.startsWith("padded fields shorter"))!;
        v.code = "LOFT_ERR_PADDING"; // the padding is right: the 3 fields bytes are SCHEMA
      }),
    );
    expect(code.status).toBe(1);
    expect(code.out).toMatch(
      /invalid\[\d+\] \(padded fields shorter than the time \(3 bytes\)\) code differs/,
    );
  });

  it("fails on a room link, state or frame with one flipped byte, and on an invalid frame given the wrong code", () => {
    type Rooms = {
      links: Record<string, string>[];
      states: Record<string, string>[];
      frames: Record<string, string>[];
      invalidFrames: Record<string, string>[];
      parse: Record<string, string>[];
    };
    const rooms = (edit: (d: Rooms) => void) =>
      check(tampered("rooms-v1.json", (d) => edit(d as unknown as Rooms)));
    const binding = rooms((d) => {
      d.links[0]!.binding = flip(d.links[0]!.binding!, 31);
    });
    expect(binding.status).toBe(1);
    expect(binding.out).toContain("links[0] (the docs' link (§1, §2, §4)) binding differs at byte 31");
    const state = rooms((d) => {
      d.states[1]!.state = flip(d.states[1]!.state!, 200); // inside the body's member list
    });
    expect(state.status).toBe(1);
    expect(state.out).toMatch(/states\[1\] \(after a removal[^\n]*\) state differs at byte 200/);
    const handover = rooms((d) => {
      const ho = (d.states[2] as unknown as { handovers: Record<string, string>[] }).handovers[1]!;
      ho.sig = flip(ho.sig!, 63);
    });
    expect(handover.status).toBe(1);
    expect(handover.out).toContain("handovers[1].sig differs at byte 63");
    const verified = rooms((d) => {
      const v = (d as unknown as { verify: Record<string, string>[] }).verify.find((x) =>
        x.label!.startsWith("after a hand-over"),
      )!;
      v.state = flip(v.state!, 20); // inside the hand-over's key: its signature no longer holds
    });
    expect(verified.status).toBe(1);
    expect(verified.out).toMatch(
      /verify\[\d+\] \(after a hand-over[^\n]*\) differs:\n {2}computed: 'LOFT_ERR_BAD_SIGNATURE'\n {2}vector: {3}'verifies'/,
    );
    const frame = rooms((d) => {
      d.frames[2]!.frame = flip(d.frames[2]!.frame!, 30);
    });
    expect(frame.status).toBe(1);
    expect(frame.out).toContain("frames[2] (room.msg) frame differs at byte 30");
    const code = rooms((d) => {
      const f = d.invalidFrames.find((x) => x.label!.startsWith("keys out of order"))!;
      f.code = "LOFT_ERR_SCHEMA"; // the shape is right: only its order is not canonical
    });
    expect(code.status).toBe(1);
    expect(code.out).toMatch(/invalidFrames\[\d+\] \(keys out of order \(not canonical\)\) code differs/);
    const parse = rooms((d) => {
      const p = d.parse.find((x) => x.label!.startsWith("non-zero unused bits"))!;
      p.text = p.text!.replace("ODx", "ODw"); // now canonical: it reads
    });
    expect(parse.status).toBe(1);
    expect(parse.out).toContain("parse[11] (non-zero unused bits in the last character of the id) differs");
    // rooms.md §8: a signed state's lists sorted, no key twice; §5: a whole float is not canonical.
    for (const label of ["members not sorted", "a removed key twice", "a version of 1.0 as a float"]) {
      const said = rooms((d) => {
        const v = (d as unknown as { verify: Record<string, string>[] }).verify.find((x) =>
          x.label!.startsWith(label),
        )!;
        delete v.code;
        (v as Record<string, unknown>).verifies = true;
      });
      expect(said.status).toBe(1);
      expect(said.out).toMatch(/computed: 'LOFT_ERR_MALFORMED'\n {2}vector: {3}'verifies'/);
    }
    const float = rooms((d) => {
      const f = d.invalidFrames.find((x) => x.label!.startsWith("a time of 1.0 as a float"))!;
      f.code = "LOFT_ERR_SCHEMA";
    });
    expect(float.status).toBe(1);
    expect(float.out).toMatch(/\(a time of 1.0 as a float: not canonical\) code differs/);
  });

  it("fails on a draft or room-name record with one flipped byte, and on a record said to read otherwise", () => {
    type Notes = { drafts: Record<string, string>[]; roomNameReads: Record<string, unknown>[] };
    const record = check(
      tampered("local-notes-v1.json", (d) => {
        const r = (d as unknown as Notes).drafts[0]!;
        r.record = flip(r.record!, 5);
      }),
    );
    expect(record.status).toBe(1);
    expect(record.out).toContain(
      "drafts[0] (the docs' draft (chat.md §9, backup.md §3)) record differs at byte 5",
    );
    const reads = check(
      tampered("local-notes-v1.json", (d) => {
        const r = (d as unknown as Notes).roomNameReads.find((x) => x.label === "only whitespace")!;
        r.reads = "  "; // a name empty once cleaned reads as none
      }),
    );
    expect(reads.status).toBe(1);
    expect(reads.out).toMatch(/roomNameReads\[\d+\] \(only whitespace\) differs/);
  });

  it("fails on a backup entry with one flipped byte, and on a name said to travel that does not", () => {
    type Backup = { local: Record<string, string>[]; names: { n: string; travels: boolean }[] };
    const entry = check(
      tampered("backup-v3.json", (d) => {
        const e = (d as unknown as Backup).local[0]!;
        e.entry = flip(e.entry!, 50); // inside the name
      }),
    );
    expect(entry.status).toBe(1);
    expect(entry.out).toContain(
      "local[0] (the docs' entry: room abab…ab named Book club) entry differs at byte 50",
    );
    const names = check(
      tampered("backup-v3.json", (d) => {
        const n = (d as unknown as Backup).names.find((x) => x.n === "room-pairs")!;
        n.travels = true; // the pair ratchets stay out (backup.md §3)
      }),
    );
    expect(names.status).toBe(1);
    expect(names.out).toContain("names[10] (room-pairs) travels differs");
    type Locals = { locals: { label: string; kept?: number[]; dropped?: number; damaged?: boolean }[] };
    const locals = (label: string, edit: (x: Locals["locals"][number]) => void) =>
      check(
        tampered("backup-v3.json", (d) => {
          edit((d as unknown as Locals).locals.find((x) => x.label === label)!);
        }),
      );
    const first = locals("a name twice, the first not reading: the second kept", (x) => {
      x.kept = [0, 1]; // the first does not read: the second is the one kept
    });
    expect(first.status).toBe(1);
    expect(first.out).toContain("(a name twice, the first not reading: the second kept) reads differs");
    const damaged = locals("an entry that is an array", (x) => {
      delete x.kept;
      delete x.dropped;
      x.damaged = true; // only the section itself can be damaged
    });
    expect(damaged.status).toBe(1);
    expect(damaged.out).toContain("(an entry that is an array) reads differs");
  });

  it("fails on a chat payload, HELLO or app message with one flipped byte, and on a refusal given the wrong code", () => {
    type Chat = Record<
      "signals" | "hellos" | "apps" | "signalReads" | "frameReads" | "appReads",
      Record<string, string>[]
    >;
    const chat = (edit: (d: Chat) => void) =>
      check(tampered("chat-v1.json", (d) => edit(d as unknown as Chat)));
    const bye = chat((d) => {
      d.signals[0]!.payload = flip(d.signals[0]!.payload!, 20); // the reason's last byte
    });
    expect(bye.status).toBe(1);
    expect(bye.out).toContain("signals[0] (the docs' bye: glare, attempt ab…ab) payload differs at byte 20");
    const hello = chat((d) => {
      d.hellos[0]!.frame = flip(d.hellos[0]!.frame!, 10); // inside rid
    });
    expect(hello.status).toBe(1);
    expect(hello.out).toContain(
      "hellos[0] (the docs' HELLO with a ratchet that can send) frame differs at byte 10",
    );
    const padded = chat((d) => {
      d.apps[1]!.padded = flip(d.apps[1]!.padded!, 200); // in the padding's zeros
    });
    expect(padded.status).toBe(1);
    expect(padded.out).toContain("apps[1] (the docs' msg) padded differs at byte 200");
    for (const [list, label, wrong] of [
      ["signalReads", "bye with its keys out of order", "LOFT_ERR_SCHEMA"],
      ["frameReads", "HELLO with 4 keys", "LOFT_ERR_SCHEMA"],
      ["appReads", "rcpt with 65 ids", "LOFT_ERR_SCHEMA"],
      ["appReads", "padded to 512 when 256 would do", "reads"],
    ] as const) {
      const r = chat((d) => {
        d[list].find((x) => x.label!.startsWith(label))!.code = wrong;
      });
      expect(r.status).toBe(1);
      expect(r.out).toMatch(new RegExp(`${list}\\[\\d+\\] \\(${label}[^\\n]*\\) code differs`));
    }
  });

  it("fails on a relay ERR frame with one flipped byte, and on a frame said to read otherwise", () => {
    type Errors = { errors: Record<string, string>[]; reads: Record<string, unknown>[] };
    const errors = (edit: (d: Errors) => void) =>
      check(tampered("relay-errors-v1.json", (d) => edit(d as unknown as Errors)));
    const frame = errors((d) => {
      d.errors[2]!.frame = flip(d.errors[2]!.frame!, 4); // inside the code QUOTA
    });
    expect(frame.status).toBe(1);
    expect(frame.out).toContain("errors[2] (QUOTA, i 7) frame differs at byte 4");
    const client = errors((d) => {
      d.errors[0]!.client = "LOFT_ERR_RELAY_QUOTA";
    });
    expect(client.status).toBe(1);
    expect(client.out).toContain("errors[0] (AUTH, i 7) client differs");
    const read = errors((d) => {
      const r = d.reads.find((x) => x.label === "a code starting with _")!;
      Object.assign(r, { code: "LOFT_ERR_RELAY_UNRECOGNIZED", i: 9, wire: "_AUTH" }); // not the shape
    });
    expect(read.status).toBe(1);
    expect(read.out).toMatch(/reads\[\d+\] \(a code starting with _\) differs/);
  });

  it("fails on an expected rejection that does not happen", () => {
    const path = tampered("ratchet-v1.json", (d) => {
      const s = (d as unknown as Steps).steps.find((x) => x.error === "LOFT_ERR_REPLAY")!;
      s.error = "LOFT_ERR_DECRYPT";
    });
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(
      /outcome differs:\n {2}computed: 'LOFT_ERR_REPLAY'\n {2}vector: {3}'LOFT_ERR_DECRYPT'/,
    );
  });

  it("every vector file is checked by an independent implementation, and the README says which", () => {
    const files = readdirSync(VECTORS).filter((f) => f.endsWith(".json"));
    expect([...CHECKED, ...CHECKED_ELSEWHERE].sort()).toEqual(files.sort());
    const readme = readFileSync(join(VECTORS, "README.md"), "utf8");
    for (const f of files)
      expect(readme, f).toMatch(new RegExp(`^\\| \`${f.replaceAll(".", "\\.")}\` +\\| \\S`, "m"));
  });

  it("every generator in scripts/ runs in npm run vectors:generate and vectors:check", () => {
    const scripts = fileURLToPath(new URL("../../scripts/", import.meta.url));
    const generators = readdirSync(scripts).filter((f) => /^gen-.*-vectors\.ts$/.test(f));
    const pkg = JSON.parse(readFileSync(join(scripts, "..", "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    const steps = (name: string) => pkg.scripts[name]!.split(" && ");
    expect(steps("vectors:generate").sort()).toEqual(generators.map((g) => `tsx scripts/${g}`).sort());
    expect(steps("vectors:check").sort()).toEqual(generators.map((g) => `tsx scripts/${g} --check`).sort());
  });

  it("refuses a file it has no checker for", () => {
    const path = join(scratch, "unknown-v1.json");
    writeFileSync(path, "{}");
    const r = check(path);
    expect(r.status).toBe(2);
    expect(r.out).toContain("no checker for this file");
  });
});
