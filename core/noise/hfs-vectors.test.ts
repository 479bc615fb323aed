/**
 * Loft's own XXhfs+ML-KEM-768 vectors (docs/vectors/noise-xxhfs-mlkem768.json): the committed
 * file replays against our implementation, and regenerating it from the seeds it records gives
 * the same bytes (scripts/gen-noise-vectors.ts), so neither can drift without the test noticing.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildHfsVectorFile,
  HFS_AESGCM_VECTOR_FILE,
  HFS_VECTOR_FILE,
} from "../../scripts/gen-noise-vectors.ts";
import { XX_HFS_AESGCM } from "./patterns.ts";
import { runVectorFile } from "./vectors.ts";

const committed = readFileSync(HFS_VECTOR_FILE, "utf8");

describe("docs/vectors/noise-xxhfs-mlkem768.json", () => {
  it("replays: every ciphertext, payload, handshake hash and exported secret matches", async () => {
    const outcomes = await runVectorFile(JSON.parse(committed));
    expect(outcomes.length).toBeGreaterThanOrEqual(2);
    for (const o of outcomes)
      expect(o).toEqual({ index: o.index, protocolName: o.protocolName, status: "passed" });
  });

  it("is exactly what scripts/gen-noise-vectors.ts generates from its seeds", async () => {
    expect(await buildHfsVectorFile()).toBe(committed);
  });

  it("docs/vectors/noise-xxhfs-mlkem768-aesgcm.json (AESGCM_SHA256): replays, and is what the seeds generate", async () => {
    const aes = readFileSync(HFS_AESGCM_VECTOR_FILE, "utf8");
    const outcomes = await runVectorFile(JSON.parse(aes));
    expect(outcomes.map((o) => [o.protocolName, o.status])).toEqual([
      ["Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256", "passed"],
      ["Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256", "passed"],
    ]);
    expect(await buildHfsVectorFile(XX_HFS_AESGCM)).toBe(aes);
  });

  it("fails when a KEM seed in the file is changed (the seeds really drive the bytes)", async () => {
    const file = JSON.parse(committed) as { vectors: Record<string, string>[] };
    const v = file.vectors[0]!;
    const kemSeed = v.init_ephemeral_kem_seed!;
    v.init_ephemeral_kem_seed = (kemSeed[0] === "0" ? "1" : "0") + kemSeed.slice(1);
    const encSeed = file.vectors[1]!.resp_kem_encapsulation_seed!;
    file.vectors[1]!.resp_kem_encapsulation_seed = (encSeed[0] === "0" ? "1" : "0") + encSeed.slice(1);
    expect((await runVectorFile(file)).map((o) => o.status)).toEqual(["failed", "failed"]);
  });
});
