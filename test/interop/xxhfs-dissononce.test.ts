/**
 * Our XXhfs vectors (docs/vectors/noise-xxhfs-mlkem768.json, ChaChaPoly_BLAKE2s, and
 * noise-xxhfs-mlkem768-aesgcm.json, AESGCM_SHA256) recomputed by a second implementation of the
 * HFS token rules on top of python3-dissononce (xxhfs-dissononce.py): every handshake and
 * transport ciphertext, the handshake hash and the exported secrets. dissononce has no KEM: the
 * ML-KEM-768 values come from test/interop/vectorcheck/mlkem.py (FIPS 203 in Python, checked
 * against C2SP's and Go's vectors), so nothing of ours in TypeScript or noble is involved.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { findDissononcePython } from "./python.ts";

const SCRIPT = fileURLToPath(new URL("./xxhfs-dissononce.py", import.meta.url));
const FILES = ["noise-xxhfs-mlkem768.json", "noise-xxhfs-mlkem768-aesgcm.json"];

type Vector = Record<string, unknown>;

const load = (name: string) =>
  (
    JSON.parse(readFileSync(new URL(`../../docs/vectors/${name}`, import.meta.url), "utf8")) as {
      vectors: Vector[];
    }
  ).vectors;

let python = "";
beforeAll(() => {
  python = findDissononcePython();
});

function check(vectors: Vector[], overrideKem = false): { status: number | null; lines: string[] } {
  const r = spawnSync(python, ["-B", SCRIPT], {
    input: JSON.stringify(overrideKem ? { vectors, override_kem: true } : { vectors }),
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  if (r.error) throw r.error;
  if (r.stderr) throw new Error(r.stderr);
  return { status: r.status, lines: r.stdout.trim().split("\n") };
}

describe("XXhfs vectors against a dissononce-based second implementation", () => {
  it.each(FILES)("%s: every message, the handshake hash and the exported secrets agree", (name) => {
    const vectors = load(name);
    // The ML-KEM values are the checker's own (mlkem.py), never the file's; the exported secrets
    // are there to be checked.
    for (const v of vectors) {
      expect(Object.keys(v).filter((k) => k.startsWith("kem_"))).toEqual([]);
      expect((v.exported_secrets as unknown[]).length).toBeGreaterThan(0);
    }
    const r = check(vectors);
    expect(r.lines).toEqual(vectors.map((_, i) => `ok ${i}`));
    expect(r.status).toBe(0);
  });

  it("takes no ML-KEM value from a file, and fails one without exported secrets", () => {
    const [v] = load(FILES[0]!);
    const { exported_secrets: _, ...bare } = v!;
    // One run (the checker's start-up is most of its time): a vector carrying a KEM value, one
    // without exported secrets, and the vector as published.
    const r = check([{ ...v, kem_shared_secret: "00".repeat(32) }, bare, v!]);
    expect(r.lines).toEqual([
      "FAIL 0 carries kem_shared_secret: ML-KEM values are computed here, never taken from the file",
      "FAIL 1 no exported secrets",
      "ok 2",
    ]);
    expect(r.status).toBe(1);
  });

  it("notices a wrong KEM output (the KEM secret really enters the key schedule)", () => {
    const bad = load(FILES[0]!).map((v) => ({ ...v, kem_shared_secret: "00".repeat(32) }));
    const r = check(bad, true);
    expect(r.lines.every((l) => l.startsWith("FAIL") && l.includes("message 1"))).toBe(true);
    expect(r.status).toBe(1);
  });

  it("notices a wrong exported secret", () => {
    const bad = load(FILES[1]!).map((v) => {
      const e = (v.exported_secrets as { label: string; secret: string }[])[0]!;
      return { ...v, exported_secrets: [{ ...e, secret: `${e.secret.slice(0, 62)}00` }] };
    });
    const r = check(bad);
    expect(r.lines.every((l) => l.startsWith("FAIL") && l.includes("exported secret"))).toBe(true);
    expect(r.status).toBe(1);
  });
});
