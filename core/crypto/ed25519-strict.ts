/**
 * The strictness rules of Loft's Ed25519 verification (RFC 8032 §5.1.7 with canonical encodings;
 * docs/protocol/identity.md), checked on the raw bytes before a native verifier sees them.
 *
 * noble in strict mode (`zip215: false`) refuses a signature when A or R is not canonically
 * encoded (y ≥ p), when S ≥ L, and when A is a point of small order. OpenSSL (node:crypto) and
 * WebCrypto check S < L but accept small-order keys, so the native backends run these checks
 * first and every backend gives the same answer on every input core/crypto/self-test.ts tries.
 */

/** p = 2^255 - 19, little-endian. */
const P = hexLe("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const L = hexLe("1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed");

/** The y coordinates (little-endian, sign bit cleared) of the 8 points of small order. */
const SMALL_ORDER_Y: readonly Uint8Array[] = [
  hexLe("0000000000000000000000000000000000000000000000000000000000000000"), // order 4
  hexLe("0000000000000000000000000000000000000000000000000000000000000001"), // identity
  hexLe("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"), // order 2 (y = -1)
  hexLe("7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7"), // order 8
  hexLe("05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826"), // order 8
];

/** A big-endian hex constant as little-endian bytes. */
function hexLe(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++)
    out[out.length - 1 - i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** a < b for two 32-byte little-endian integers (`a` read with its top bit masked when `mask`). */
function lessThan(a: Uint8Array, offset: number, b: Uint8Array, mask: boolean): boolean {
  for (let i = 31; i >= 0; i--) {
    const x = i === 31 && mask ? a[offset + i]! & 0x7f : a[offset + i]!;
    const y = b[i]!;
    if (x !== y) return x < y;
  }
  return false;
}

function sameY(a: Uint8Array, y: Uint8Array): boolean {
  for (let i = 0; i < 31; i++) if (a[i] !== y[i]) return false;
  return (a[31]! & 0x7f) === y[31];
}

/**
 * True when `publicKey` and `signature` pass the strictness rules, so the native verifier's
 * answer is the answer; false means "invalid" whatever a verifier would say.
 */
export function ed25519StrictInputs(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!lessThan(publicKey, 0, P, true)) return false; // A canonical
  if (!lessThan(signature, 0, P, true)) return false; // R canonical
  if (!lessThan(signature, 32, L, false)) return false; // S < L
  for (const y of SMALL_ORDER_Y) if (sameY(publicKey, y)) return false;
  return true;
}
