/**
 * The bytes and sizes quoted in docs/protocol/session.md and docs/protocol/noise.md, recomputed
 * from the code, so the documents cannot drift from what goes on the wire.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { toHex } from "../bytes.ts";
import { chunkMessage } from "../codec/chunk.ts";
import { CURRENT_VERSION, encodeVersionHeader } from "../codec/version.ts";
import { createUserIdentity } from "../identity/identity.ts";
import { XX, XX_HFS } from "../noise/patterns.ts";
import { closeFrame, MAX_DATA_PAYLOAD, messageFrames } from "./frames.ts";
import { encodeHandshakePayload } from "./payload.ts";
import { sessionPrologue } from "./prologue.ts";

const sessionDoc = readFileSync(new URL("../../docs/protocol/session.md", import.meta.url), "utf8");
const noiseDoc = readFileSync(new URL("../../docs/protocol/noise.md", import.meta.url), "utf8");

describe("docs/protocol/session.md", () => {
  it("shows the exact prologue of two SREMP 1.0 peers on a direct link", () => {
    const block = sessionDoc.split("<!-- checked by core/session/docs.test.ts -->")[1]!.split("```")[1]!;
    const hex = block.replace(/^hex/, "").replace(/\s+/g, "");
    const header = encodeVersionHeader();
    expect(hex).toBe(toHex(sessionPrologue("direct", header, header)));
    expect(hex.length / 2).toBe(165);
    expect(sessionDoc).toContain("these 165 bytes");
  });

  it("shows the exact suite-offer header", () => {
    const block = sessionDoc
      .split("<!-- offer: checked by core/session/docs.test.ts -->")[1]!
      .split("```")[1]!;
    const hex = block
      .replace(/^hex/, "")
      .replace(/"([^"]*)"/g, (_, text: string) => toHex(new TextEncoder().encode(text)))
      .replace(/\s+/g, "");
    const offer = encodeVersionHeader({
      ...CURRENT_VERSION,
      noise_suites: ["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"],
    });
    expect(hex).toBe(toHex(offer));
    expect(offer.length).toBe(115);
    expect(sessionDoc).toContain("these 115 bytes");
  });

  it("gives the right sizes for the version header, messages, payloads and frames", () => {
    expect(encodeVersionHeader().length).toBe(68);
    expect(XX_HFS.overhead).toEqual([1216, 1200, 64]);
    expect(XX.overhead).toEqual([32, 96, 64]);
    const alice = createUserIdentity({
      username: "alice",
      now: 1_700_000_000_000,
      seed: new Uint8Array(32).fill(1),
    });
    const payload = encodeHandshakePayload(alice.identity);
    expect(payload.length).toBe(303);
    expect(toHex(payload.subarray(0, 13))).toBe(`81a8${toHex(new TextEncoder().encode("identity"))}c50122`);
    expect(encodeHandshakePayload(alice.identity, { ratchet_key: new Uint8Array(32) }).length).toBe(354);
    expect(MAX_DATA_PAYLOAD).toBe(65518);
    expect(messageFrames(new Uint8Array(0), 0)[0]!.length).toBe(17);
    expect(messageFrames(new Uint8Array(200_000), 0).map((f) => f.length)).toEqual([
      65531, 65531, 65531, 3839,
    ]);
    expect(chunkMessage(0, new Uint8Array(200_000), 65518).map((c) => c.length)).toEqual([
      65514, 65514, 65514, 3822,
    ]);
    expect(toHex(closeFrame("bye").subarray(0, 4))).toBe("02627965");
  });
});

describe("docs/protocol/noise.md", () => {
  it("quotes the published vector and our XXhfs vector as they are in the files", () => {
    const published = readFileSync(
      new URL("../../test/vectors/noise/noise-xx-blake2s.json", import.meta.url),
      "utf8",
    );
    const first = (
      JSON.parse(published) as { vectors: { handshake_hash: string; messages: { ciphertext: string }[] }[] }
    ).vectors[0]!;
    expect(noiseDoc).toContain(first.handshake_hash);
    for (const m of first.messages) expect(noiseDoc).toContain(m.ciphertext);
    const ours = JSON.parse(
      readFileSync(new URL("../../docs/vectors/noise-xxhfs-mlkem768.json", import.meta.url), "utf8"),
    ) as {
      vectors: { handshake_hash: string; exported_secrets: { secret: string }[]; messages: unknown[] }[];
    };
    expect(noiseDoc).toContain(ours.vectors[0]!.handshake_hash);
    expect(noiseDoc).toContain(ours.vectors[0]!.exported_secrets[0]!.secret);
  });
});
