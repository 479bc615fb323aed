/**
 * The relay's node:crypto fast paths against noble, byte for byte: XChaCha20-Poly1305 delivery
 * sealing (draft-irtf-cfrg-xchacha §2.3), Ed25519 verification (RFC 8032) and AES-256-GCM at rest.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../core/bytes.ts";
import {
  newAuthKeyPair,
  openFromRelay,
  sealForRecipient,
  signCommand,
  verifyCommand,
} from "../core/relay/crypto.ts";
import { authInput, BLOCK_SIZE, encodeServerFrame, padBlock } from "../core/relay/protocol.ts";
import { ed25519PublicKey, ed25519Verify } from "../host/node-ed25519.ts";
import { openAtRest, sealAtRest, sealDelivery, sealDeliveryParts, xchachaOpen } from "./node-crypto.ts";
import { bucketSize } from "./store/at-rest.ts";
import { encodeMsg } from "./wire-fast.ts";

describe("relay node:crypto fast paths", () => {
  it("sealDelivery equals noble's XChaCha20-Poly1305 and opens with core", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (key, msgId, body, ts) => {
          const block = padBlock(body);
          const fast = sealDelivery(key, msgId, ts, block);
          const ref = sealForRecipient(key, msgId, ts, block);
          expect(toHex(fast)).toBe(toHex(ref));
          const viaNode = xchachaOpen(key, msgId, fast);
          expect(viaNode && toHex(viaNode.subarray(8))).toBe(toHex(block));
          const opened = openFromRelay(key, msgId, fast);
          expect(opened.ok && toHex(opened.value.body) === toHex(body) && opened.value.timestamp === ts).toBe(
            true,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("sealDeliveryParts from a bucket-sized block equals sealDelivery of the full block, in a MSG frame too", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.option(fc.integer({ min: 0, max: 0xffff_ffff }), { nil: undefined }),
        (key, msgId, body, ts, corr) => {
          const bucket = padBlock(body, bucketSize(body.length, BLOCK_SIZE));
          const whole = sealDelivery(key, msgId, ts, padBlock(body));
          const parts = sealDeliveryParts(key, msgId, ts, bucket);
          expect(Buffer.concat(parts).equals(whole)).toBe(true);
          const q = new Uint8Array(24).fill(9);
          const generic = encodeServerFrame(
            corr === undefined
              ? { k: "MSG", q, m: msgId, b: whole }
              : { k: "MSG", i: corr, q, m: msgId, b: whole },
          );
          expect(Buffer.from(encodeMsg(q, msgId, parts, corr)).equals(Buffer.from(generic))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a flipped bit or another message id does not open", () => {
    const key = new Uint8Array(randomBytes(32));
    const msgId = new Uint8Array(randomBytes(24));
    const ct = sealDelivery(key, msgId, 1, padBlock(new Uint8Array([1, 2, 3])));
    ct[100]! ^= 1;
    const r = openFromRelay(key, msgId, ct);
    expect(r.ok ? "opened" : r.error.code).toBe("LOFT_ERR_DECRYPT");
    ct[100]! ^= 1;
    expect(xchachaOpen(key, new Uint8Array(randomBytes(24)), ct)).toBeUndefined();
    const other = openFromRelay(key, new Uint8Array(randomBytes(24)), ct);
    expect(other.ok ? "opened" : other.error.code).toBe("LOFT_ERR_DECRYPT");
  });

  it("Ed25519: OpenSSL verification agrees with noble on valid and tampered signatures", () => {
    const session = new Uint8Array(randomBytes(32));
    for (let i = 0; i < 50; i++) {
      const kp = newAuthKeyPair();
      const t = new Uint8Array(randomBytes(1 + i * 7));
      const sig = signCommand(kp.secretKey, session, t);
      const ko = ed25519PublicKey(kp.publicKey)!;
      expect(ed25519Verify(ko, authInput(session, t), sig)).toBe(true);
      expect(verifyCommand(kp.publicKey, session, t, sig)).toBe(true);
      const bad = sig.slice();
      bad[i % 64]! ^= 1 << (i % 8);
      expect(ed25519Verify(ko, authInput(session, t), bad)).toBe(
        verifyCommand(kp.publicKey, session, t, bad),
      );
      expect(ed25519Verify(ko, authInput(new Uint8Array(32), t), sig)).toBe(false);
    }
    expect(
      ed25519Verify(ed25519PublicKey(newAuthKeyPair().publicKey)!, new Uint8Array(1), new Uint8Array(63)),
    ).toBe(false);
  });

  it("AES-256-GCM at rest: fresh key per blob, bound to its record by the AAD", () => {
    const block = padBlock(new Uint8Array([7, 7, 7]));
    const a = sealAtRest(block, new Uint8Array([1]));
    const b = sealAtRest(block, new Uint8Array([1]));
    expect(toHex(a.key)).not.toBe(toHex(b.key));
    expect(a.sealed.length).toBe(12 + BLOCK_SIZE + 16);
    expect(toHex(openAtRest(a.key, a.sealed, new Uint8Array([1]))!)).toBe(toHex(block));
    expect(openAtRest(a.key, a.sealed, new Uint8Array([2]))).toBeUndefined();
    expect(openAtRest(b.key, a.sealed, new Uint8Array([1]))).toBeUndefined();
    expect(openAtRest(new Uint8Array(32), a.sealed, new Uint8Array([1]))).toBeUndefined();
  });
});
