/**
 * Loft's Double Ratchet vectors (docs/vectors/ratchet-v1.json): the committed file replays against
 * our implementation using only the random draws it lists, and scripts/gen-ratchet-vectors.ts
 * regenerates it byte for byte, so neither the code nor the file can drift unnoticed.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  buildRatchetV2VectorFile,
  buildRatchetV3VectorFile,
  buildRatchetVectorFile,
  RATCHET_V2_VECTOR_FILE,
  RATCHET_V3_VECTOR_FILE,
  RATCHET_VECTOR_FILE,
} from "../../scripts/gen-ratchet-vectors.ts";
import { fromHex, toHex } from "../bytes.ts";
import { deserializeRatchet, serializeRatchet } from "./index.ts";
import { type RatchetVectorFile, replayRatchetVectors } from "./vectors.ts";

const committed = readFileSync(RATCHET_VECTOR_FILE, "utf8");
const committedV2 = readFileSync(RATCHET_V2_VECTOR_FILE, "utf8");
const committedV3 = readFileSync(RATCHET_V3_VECTOR_FILE, "utf8");

/**
 * `committed` replays; its encrypt steps write `versions` (each message's version byte the one
 * asked for) and its failing steps fail with `errors`, in order.
 */
async function expectVersionedReplay(committed: string, versions: number[], errors: string[]) {
  const file = JSON.parse(committed) as RatchetVectorFile;
  const encrypts = file.steps.filter((s) => s.op === "encrypt");
  expect(encrypts.map((s) => s.version)).toEqual(versions);
  // The version byte on the wire is the one asked for.
  for (const s of encrypts) expect(s.message!.slice(0, 2)).toBe(`0${s.version}`);
  expect(file.steps.filter((s) => s.error).map((s) => s.error)).toEqual(errors);
  expect(await replayRatchetVectors(file)).toBe("passed");
}

/** `committed` with its first step's version changed to each of `others` fails at that message. */
async function expectVersionDrivesBytes(committed: string, others: number[]) {
  for (const v of others) {
    const file = JSON.parse(committed) as RatchetVectorFile;
    file.steps[0]!.version = v;
    expect(await replayRatchetVectors(file)).toMatch(/^step 0 .*: message$/);
  }
}

describe("docs/vectors/ratchet-v1.json", () => {
  it("replays: KDFs, every message, plaintext, error code and serialized state match", async () => {
    const file = JSON.parse(committed) as RatchetVectorFile;
    expect(file.steps.length).toBeGreaterThanOrEqual(20);
    expect(file.steps.filter((s) => s.error).map((s) => s.error)).toEqual([
      "LOFT_ERR_REPLAY",
      "LOFT_ERR_DECRYPT",
      "LOFT_ERR_DECRYPT",
      "LOFT_ERR_REPLAY",
      "LOFT_ERR_UNSUPPORTED_VERSION",
    ]);
    expect(await replayRatchetVectors(file)).toBe("passed");
  });

  it("replays the limit edges: maxSkip, eviction at maxSkippedKeys, MAX_SKIPPED_CHAINS, the TTL boundary", async () => {
    const file = JSON.parse(committed) as RatchetVectorFile;
    expect(file.limit_edges.map((e) => e.steps.filter((s) => s.error).map((s) => s.error))).toEqual([
      ["LOFT_ERR_TOO_MANY_SKIPPED"],
      ["LOFT_ERR_REPLAY"],
      ["LOFT_ERR_DECRYPT"],
      ["LOFT_ERR_REPLAY", "LOFT_ERR_REPLAY"],
    ]);
    expect(file.limit_edges.at(-1)!.steps.some((s) => s.op === "expire")).toBe(true);
    expect(await replayRatchetVectors(file)).toBe("passed");
  });

  it("restores every recorded state and re-serializes it to the same bytes", async () => {
    const file = JSON.parse(committed) as RatchetVectorFile;
    const edges = file.limit_edges.flatMap((e) => [
      e.session.alice_state,
      e.session.bob_state,
      ...e.steps.map((s) => s.state),
    ]);
    for (const hex of [
      file.session.alice_state,
      file.session.bob_state,
      ...file.steps.map((s) => s.state),
      ...edges,
    ]) {
      const r = deserializeRatchet(fromHex(hex));
      expect(r.ok && toHex(serializeRatchet(r.value))).toBe(hex);
    }
  });

  it("is exactly what scripts/gen-ratchet-vectors.ts generates", async () => {
    expect(await buildRatchetVectorFile()).toBe(committed);
  });

  it("fails when a recorded random draw or a message byte is changed (the file really drives the bytes)", async () => {
    const nonce = JSON.parse(committed) as RatchetVectorFile;
    const draw = nonce.steps[0]!.random[0]!;
    nonce.steps[0]!.random[0] = (draw[0] === "0" ? "1" : "0") + draw.slice(1);
    expect(await replayRatchetVectors(nonce)).toMatch(/^step 0 .*: message$/);
    const key = JSON.parse(committed) as RatchetVectorFile;
    const dhDraw = key.steps[3]!.random[0]!;
    key.steps[3]!.random[0] = (dhDraw[0] === "0" ? "1" : "0") + dhDraw.slice(1);
    expect(await replayRatchetVectors(key)).toMatch(/^step 3 .*: state$/);
  });
});

describe("docs/vectors/ratchet-v2.json (message version 0x02)", () => {
  it("replays: 0x02 and 0x01 mixed, a flipped tag, a version byte swapped either way, truncated, unknown", async () => {
    await expectVersionedReplay(
      committedV2,
      [2, 1, 2, 2, 2, 2, 1],
      [
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_MALFORMED",
        "LOFT_ERR_REPLAY",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_UNSUPPORTED_VERSION",
      ],
    );
  });

  it("is exactly what scripts/gen-ratchet-vectors.ts generates", async () => {
    expect(await buildRatchetV2VectorFile()).toBe(committedV2);
  });

  it("fails when an encrypt step's version is changed (the field drives the bytes)", async () => {
    await expectVersionDrivesBytes(committedV2, [1]);
  });
});

describe("docs/vectors/ratchet-v3.json (message version 0x03)", () => {
  it("replays: 0x03, 0x02 and 0x01 mixed, out of order, replays, tampered header / tag / IV, relabelled, truncated, unknown", async () => {
    await expectVersionedReplay(
      committedV3,
      [3, 2, 1, 3, 3, 3, 3, 3, 2],
      [
        "LOFT_ERR_REPLAY",
        "LOFT_ERR_REPLAY",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_MALFORMED",
        "LOFT_ERR_REPLAY",
        "LOFT_ERR_DECRYPT",
        "LOFT_ERR_UNSUPPORTED_VERSION",
      ],
    );
  });

  it("is exactly what scripts/gen-ratchet-vectors.ts generates", async () => {
    expect(await buildRatchetV3VectorFile()).toBe(committedV3);
  });

  it("fails when an encrypt step's version is changed (the field drives the bytes)", async () => {
    await expectVersionDrivesBytes(committedV3, [1, 2]);
  });
});
