/**
 * The handshake patterns Loft speaks, as Noise token lists: Noise Protocol Framework rev 34, §7.5
 * (`XX`), §9.4 (the `psk3` modifier, only for the published vectors) and the Noise HFS extension
 * rev 1, §4–§5 (`XXhfs`: `e1` after the first `e`, `ekem1` after the first `ee`).
 * https://noiseprotocol.org/noise.html#interactive-handshake-patterns-fundamental
 * https://github.com/noiseprotocol/noise_hfs_spec/blob/master/noise_hfs.md
 *
 * Two suites (suite.ts): ChaChaPoly_BLAKE2s and AESGCM_SHA256, chosen per session through the
 * version header (docs/protocol/noise.md, "Cipher suites"); each protocol name fixed, with its
 * message layouts computed once from its tokens.
 */

import { DHLEN, KEM_CIPHERTEXT_LEN, KEM_PUBLIC_KEY_LEN, TAGLEN } from "./primitives.ts";
import { type SuiteName, suiteOf } from "./suite.ts";

export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk" | "e1" | "ekem1";

export interface HandshakePattern {
  /** Full Noise protocol name (§8), hashed into `h` by InitializeSymmetric (§5.2). */
  readonly protocolName: string;
  /** Message patterns in order; even indices are initiator → responder (§7.1). */
  readonly messages: readonly (readonly Token[])[];
  /** True when a `psk` token occurs: `e` then also calls MixKey(e.public_key) (§9.2). */
  readonly psk: boolean;
  /**
   * Bytes each handshake message carries before (and around) the payload: public keys, KEM
   * values, their tags, and the payload's own tag when a key is set. A message is exactly
   * `overhead[i] + payload.length` bytes.
   */
  readonly overhead: readonly number[];
}

/** Walks the tokens tracking HasKey() (§5.2) to know which fields are encrypted (+16 bytes). */
function computeOverhead(messages: readonly (readonly Token[])[], psk: boolean): number[] {
  let hasKey = false;
  return messages.map((tokens) => {
    let size = 0;
    for (const token of tokens) {
      switch (token) {
        case "e":
          size += DHLEN;
          if (psk) hasKey = true; // §9.2: MixKey(e.public_key)
          break;
        case "s":
          size += DHLEN + (hasKey ? TAGLEN : 0);
          break;
        case "e1":
          size += KEM_PUBLIC_KEY_LEN + (hasKey ? TAGLEN : 0);
          break;
        case "ekem1":
          size += KEM_CIPHERTEXT_LEN + (hasKey ? TAGLEN : 0);
          hasKey = true; // HFS §4: MixKey(kem_output) after sending the ciphertext
          break;
        default: // ee es se ss psk: MixKey / MixKeyAndHash
          hasKey = true;
      }
    }
    return size + (hasKey ? TAGLEN : 0);
  });
}

function pattern(protocolName: string, messages: Token[][]): HandshakePattern {
  const psk = messages.some((m) => m.includes("psk"));
  return { protocolName, messages, psk, overhead: computeOverhead(messages, psk) };
}

/**
 * Noise §7.5 `XX`:
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 */
export const XX = pattern("Noise_XX_25519_ChaChaPoly_BLAKE2s", [["e"], ["e", "ee", "s", "es"], ["s", "se"]]);

/** Noise §9.4 `XXpsk3`: XX with `psk` at the end of the third message (vectors only). */
export const XX_PSK3 = pattern("Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s", [
  ["e"],
  ["e", "ee", "s", "es"],
  ["s", "se", "psk"],
]);

/**
 * Noise HFS §5 `XXhfs` with ML-KEM-768 as the KEM (the DH section names it, `25519+MLKEM768`):
 *   -> e, e1
 *   <- e, ee, ekem1, s, es
 *   -> s, se
 */
export const XX_HFS = pattern("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s", [
  ["e", "e1"],
  ["e", "ee", "ekem1", "s", "es"],
  ["s", "se"],
]);

/**
 * `pattern` with its protocol name's suite replaced (Noise §8: the name's last two sections are
 * the cipher and the hash), e.g. XX → `Noise_XX_25519_AESGCM_SHA256`. Message sizes are the same
 * for both suites (32-byte hash, 16-byte tag).
 */
export function withSuite(base: HandshakePattern, suite: SuiteName): HandshakePattern {
  const current = suiteOf(base.protocolName);
  if (!current) throw new RangeError(`no suite in ${base.protocolName}`);
  const name = `${base.protocolName.slice(0, -current.name.length)}${suite}`;
  return { ...base, protocolName: name };
}

/** The AES-GCM / SHA-256 forms (Noise §12.4, §12.5): hardware AES through WebCrypto or node:crypto. */
export const XX_AESGCM = withSuite(XX, "AESGCM_SHA256");
export const XX_PSK3_AESGCM = withSuite(XX_PSK3, "AESGCM_SHA256");
export const XX_HFS_AESGCM = withSuite(XX_HFS, "AESGCM_SHA256");

export const PATTERNS: readonly HandshakePattern[] = [
  XX,
  XX_PSK3,
  XX_HFS,
  XX_AESGCM,
  XX_PSK3_AESGCM,
  XX_HFS_AESGCM,
];

/** The pattern for a full protocol name, or undefined when we do not implement it. */
export function patternByName(protocolName: string): HandshakePattern | undefined {
  return PATTERNS.find((p) => p.protocolName === protocolName);
}
