/**
 * The published Noise vectors (cacophony, snow, noise-c; vendored unchanged in
 * test/vectors/noise/, see SOURCE.txt there) replayed against our XX and XXpsk3: every
 * ciphertext, every decrypted payload and the handshake hash must match. Vectors for protocols
 * we do not implement are reported as skipped, one by one.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { patternByName } from "./patterns.ts";
import { runVector, runVectorFile } from "./vectors.ts";

const file = new URL("../../test/vectors/noise/noise-xx-blake2s.json", import.meta.url);
const aesFile = new URL("../../test/vectors/noise/noise-xx-aesgcm-sha256.json", import.meta.url);
const published = JSON.parse(readFileSync(file, "utf8")) as { vectors: Record<string, unknown>[] };

describe("published Noise vectors (test/vectors/noise/noise-xx-blake2s.json)", () => {
  published.vectors.forEach((vector, index) => {
    const name = String(vector.protocol_name ?? vector.name);
    const test = patternByName(name) ? it : it.skip;
    test(`#${index} ${name}`, async () => {
      expect(await runVector(vector, index)).toEqual({ index, protocolName: name, status: "passed" });
    });
  });

  it("covers every plain XX vector in the file and the XXpsk3 one", async () => {
    const outcomes = await runVectorFile(published);
    const passedXX = outcomes.filter(
      (o) => o.protocolName === "Noise_XX_25519_ChaChaPoly_BLAKE2s" && o.status === "passed",
    );
    expect(passedXX).toHaveLength(4);
    expect(outcomes.find((o) => o.protocolName.startsWith("Noise_XXpsk3_"))?.status).toBe("passed");
    expect(outcomes.filter((o) => o.status === "failed")).toEqual([]);
  });

  it("the AES-GCM / SHA-256 suite reproduces cacophony's XX and XXpsk3 vectors (Noise §12.4, §12.5)", async () => {
    const aes = JSON.parse(readFileSync(aesFile, "utf8")) as { vectors: Record<string, unknown>[] };
    const outcomes = await runVectorFile(aes);
    expect(outcomes.map((o) => [o.protocolName, o.status])).toEqual([
      ["Noise_XX_25519_AESGCM_SHA256", "passed"],
      ["Noise_XXpsk3_25519_AESGCM_SHA256", "passed"],
    ]);
  });

  it("notices a single changed byte in a ciphertext, a payload or the handshake hash", async () => {
    const original = published.vectors[0]!;
    const flip = (hex: string, at: number) =>
      hex.slice(0, at) + (hex[at] === "0" ? "1" : "0") + hex.slice(at + 1);
    const messages = original.messages as { payload: string; ciphertext: string }[];
    for (let m = 0; m < messages.length; m++) {
      const changed = structuredClone(original);
      const target = (changed.messages as { ciphertext: string }[])[m]!;
      target.ciphertext = flip(target.ciphertext, 10);
      expect((await runVector(changed, 0)).status, `message ${m}`).toBe("failed");
    }
    const badHash = { ...original, handshake_hash: flip(String(original.handshake_hash), 0) };
    expect((await runVector(badHash, 0)).status).toBe("failed");
    const badPrologue = { ...original, resp_prologue: "00" };
    expect((await runVector(badPrologue, 0)).status).toBe("failed");
  });
});
