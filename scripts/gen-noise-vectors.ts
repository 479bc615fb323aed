/**
 * Generates Loft's own Noise vectors, docs/vectors/noise-xxhfs-mlkem768.json, for
 * `Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s` (Noise HFS extension rev 1 with ML-KEM-768), and
 * docs/vectors/noise-xxhfs-mlkem768-aesgcm.json for `Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256`
 * (the same inputs; the suite of Noise §12.4, §12.5).
 * No published vectors exist for this name, so these pin our implementation down: every key
 * generation and encapsulation uses a fixed seed written into the file, and
 * core/noise/hfs-vectors.test.ts both replays the committed file and regenerates it from the
 * seeds and compares.
 *
 * Format: cacophony's (protocol_name, init_/resp_prologue, _static, _ephemeral, handshake_hash,
 * messages[{payload, ciphertext}]) plus `init_ephemeral_kem_seed` (64-byte ML-KEM-768 keygen seed,
 * FIPS 203 §7.1 d ‖ z, for `e1`), `resp_kem_encapsulation_seed` (32-byte `m`, FIPS 203 §7.2,
 * for `ekem1`) and `exported_secrets` (our Split-time `exportSecret(label)` extension).
 *
 *   npx tsx scripts/gen-noise-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-noise-vectors.ts --check  # exit 1 if the committed file differs
 */
import { fileURLToPath } from "node:url";
import { blake2s } from "@noble/hashes/blake2.js";
import { fromHex, toHex, utf8 } from "../core/bytes.ts";
import { HandshakeState } from "../core/noise/handshake-state.ts";
import { type HandshakePattern, XX_HFS, XX_HFS_AESGCM } from "../core/noise/patterns.ts";
import { keyPairFromPrivate, type NoiseEntropy } from "../core/noise/primitives.ts";
import type { NoiseTransport } from "../core/noise/transport.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const HFS_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/noise-xxhfs-mlkem768.json", import.meta.url),
);
/** The same inputs under the AES-GCM / SHA-256 suite (Noise §12.4, §12.5). */
export const HFS_AESGCM_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/noise-xxhfs-mlkem768-aesgcm.json", import.meta.url),
);

/** A fixed, documented seed: BLAKE2s(label), or two of them for 64 bytes. */
function seed(label: string, length: 32 | 64): string {
  const first = blake2s(utf8(label));
  return toHex(length === 32 ? first : new Uint8Array([...first, ...blake2s(utf8(`${label} (2)`))]));
}

interface VectorInput {
  prologue: string;
  payloads: string[];
  exportLabels: string[];
  salt: string;
}

// Static and X25519 ephemeral keys are cacophony's (as in test/vectors/noise), so the XX and
// XXhfs vectors differ only by the KEM tokens and the protocol name.
const CACOPHONY = {
  init_static: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  init_ephemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  resp_static: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  resp_ephemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
};

const INPUTS: VectorInput[] = [
  {
    prologue: toHex(utf8("John Galt")),
    payloads: [
      "Ludwig von Mises",
      "Murray Rothbard",
      "F. A. Hayek",
      "Carl Menger",
      "Jean-Baptiste Say",
      "Eugen Böhm von Bawerk",
    ].map((s) => toHex(utf8(s))),
    exportLabels: ["loft/ratchet/v1"],
    salt: "1",
  },
  { prologue: "", payloads: ["", "", "", "", ""], exportLabels: ["a", "b"], salt: "2" },
];

function fixed(values: Record<string, string | undefined>, prefix: "init" | "resp"): NoiseEntropy {
  const get = (key: string) => () => fromHex(values[`${prefix}_${key}`] ?? "");
  return {
    ephemeralPrivateKey: get("ephemeral"),
    kemKeySeed: get("ephemeral_kem_seed"),
    kemEncapsulationRandomness: get("kem_encapsulation_seed"),
  };
}

async function buildVector(input: VectorInput, pattern: HandshakePattern): Promise<Record<string, unknown>> {
  const keys = {
    ...CACOPHONY,
    init_ephemeral_kem_seed: seed(`loft noise-xxhfs vector ${input.salt}: initiator e1 keygen seed`, 64),
    resp_kem_encapsulation_seed: seed(
      `loft noise-xxhfs vector ${input.salt}: responder ekem1 randomness`,
      32,
    ),
  };
  const side = async (role: "init" | "resp") =>
    HandshakeState.create({
      pattern,
      role: role === "init" ? "initiator" : "responder",
      prologue: fromHex(input.prologue),
      staticKeyPair: await keyPairFromPrivate(fromHex(keys[`${role}_static`])),
      entropy: fixed(keys, role),
    });
  const initiator = await side("init");
  const responder = await side("resp");
  const messages: { payload: string; ciphertext: string }[] = [];
  let transports: [NoiseTransport, NoiseTransport] | undefined;
  for (const [i, payloadHex] of input.payloads.entries()) {
    const payload = fromHex(payloadHex);
    const fromInitiator = i % 2 === 0;
    let ciphertext: Uint8Array;
    if (i < pattern.messages.length) {
      const [w, r] = fromInitiator ? [initiator, responder] : [responder, initiator];
      const written = await w.writeMessage(payload);
      if (!written.ok) throw written.error;
      ciphertext = written.value;
      const read = await r.readMessage(ciphertext);
      if (!read.ok) throw read.error;
    } else {
      if (transports === undefined) transports = await finish(initiator, responder, input.exportLabels);
      const [w, r] = fromInitiator ? transports : [transports[1], transports[0]];
      const sealed = await w.send.encryptWithAd(new Uint8Array(0), payload);
      if (!sealed.ok) throw sealed.error;
      ciphertext = sealed.value;
      if (!(await r.receive.decryptWithAd(new Uint8Array(0), ciphertext)).ok)
        throw new Error("transport decrypt");
    }
    messages.push({ payload: payloadHex, ciphertext: toHex(ciphertext) });
  }
  const [a] = transports ?? (await finish(initiator, responder, input.exportLabels));
  return {
    protocol_name: pattern.protocolName,
    init_prologue: input.prologue,
    init_static: keys.init_static,
    init_ephemeral: keys.init_ephemeral,
    init_ephemeral_kem_seed: keys.init_ephemeral_kem_seed,
    resp_prologue: input.prologue,
    resp_static: keys.resp_static,
    resp_ephemeral: keys.resp_ephemeral,
    resp_kem_encapsulation_seed: keys.resp_kem_encapsulation_seed,
    handshake_hash: toHex(a.handshakeHash),
    messages,
    exported_secrets: input.exportLabels.map((label) => ({ label, secret: toHex(a.exportSecret(label)) })),
  };
}

async function finish(
  i: HandshakeState,
  r: HandshakeState,
  exportLabels: readonly string[],
): Promise<[NoiseTransport, NoiseTransport]> {
  const a = await i.finish(exportLabels);
  const b = await r.finish(exportLabels);
  if (!a.ok || !b.ok) throw new Error("handshake did not complete");
  return [a.value, b.value];
}

/** The file's exact text (2-space JSON, trailing newline), for XXhfs with its suite. */
export async function buildHfsVectorFile(pattern: HandshakePattern = XX_HFS): Promise<string> {
  const file = {
    _about:
      `Loft's deterministic vectors for ${pattern.protocolName} (Noise HFS rev 1 + ` +
      "ML-KEM-768, FIPS 203). Generated by scripts/gen-noise-vectors.ts; fields as cacophony plus " +
      "init_ephemeral_kem_seed (ML-KEM keygen d||z), resp_kem_encapsulation_seed (encapsulation m) and " +
      "exported_secrets (Loft's exportSecret extension, docs/protocol/noise.md).",
    vectors: await Promise.all(INPUTS.map((input) => buildVector(input, pattern))),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

if (isScript(import.meta.url))
  writeOrCheck([
    [HFS_VECTOR_FILE, await buildHfsVectorFile(XX_HFS)],
    [HFS_AESGCM_VECTOR_FILE, await buildHfsVectorFile(XX_HFS_AESGCM)],
  ]);
