/**
 * Our XXhfs vectors (docs/vectors/noise-xxhfs-mlkem768.json) recomputed by a second
 * implementation of the HFS token rules on top of python3-dissononce (xxhfs-dissononce.py): every
 * handshake and transport ciphertext and the handshake hash. dissononce has no KEM, so this test
 * hands it the ML-KEM-768 values derived from the vector's seeds with noble's ml_kem768 alone —
 * the Noise side (token order, MixHash / EncryptAndHash / MixKey, DH, Split) is independent.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { beforeAll, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../core/bytes.ts";
import { findDissononcePython } from "./python.ts";

const SCRIPT = fileURLToPath(new URL("./xxhfs-dissononce.py", import.meta.url));
const FILE = new URL("../../docs/vectors/noise-xxhfs-mlkem768.json", import.meta.url);

type Vector = Record<string, unknown> & {
  init_ephemeral_kem_seed: string;
  resp_kem_encapsulation_seed: string;
};

function withKemValues(v: Vector): Vector {
  const { publicKey } = ml_kem768.keygen(fromHex(v.init_ephemeral_kem_seed));
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(
    publicKey,
    fromHex(v.resp_kem_encapsulation_seed),
  );
  return {
    ...v,
    kem_public_key: toHex(publicKey),
    kem_ciphertext: toHex(cipherText),
    kem_shared_secret: toHex(sharedSecret),
  };
}

let python = "";
beforeAll(() => {
  python = findDissononcePython();
});

function check(vectors: Vector[]): { status: number | null; lines: string[] } {
  const r = spawnSync(python, [SCRIPT], { input: JSON.stringify({ vectors }), encoding: "utf8" });
  if (r.stderr) throw new Error(r.stderr);
  return { status: r.status, lines: r.stdout.trim().split("\n") };
}

describe("XXhfs vectors against a dissononce-based second implementation", () => {
  const vectors = (JSON.parse(readFileSync(FILE, "utf8")) as { vectors: Vector[] }).vectors.map(
    withKemValues,
  );

  it("agrees on every message and the handshake hash", () => {
    const r = check(vectors);
    expect(r.lines).toEqual(vectors.map((_, i) => `ok ${i}`));
    expect(r.status).toBe(0);
  });

  it("notices a wrong KEM output (the KEM secret really enters the key schedule)", () => {
    const bad = vectors.map((v) => ({ ...v, kem_shared_secret: "00".repeat(32) }));
    const r = check(bad);
    expect(r.lines.every((l) => l.startsWith("FAIL") && l.includes("message 1"))).toBe(true);
    expect(r.status).toBe(1);
  });
});
