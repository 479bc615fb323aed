/**
 * The relay's native NEW key agreement (queue-dh.ts) against core's noble `deriveRcvKey`, which
 * the client runs: both sides must get the same server→recipient key, and low-order or malformed
 * recipient keys are refused.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../core/bytes.ts";
import { deriveRcvKey, newDhKeyPair } from "../core/relay/crypto.ts";
import { queueDh } from "./queue-dh.ts";

describe("queueDh", () => {
  it("gives the key the client derives with core (noble)", () => {
    for (let i = 0; i < 50; i++) {
      const client = newDhKeyPair();
      const rid = new Uint8Array(randomBytes(24));
      const relay = queueDh(client.publicKey, rid)!;
      const mine = deriveRcvKey(client.secretKey, relay.publicKey, rid);
      expect(mine.ok && toHex(mine.value)).toBe(toHex(relay.rcvKey));
    }
  });

  it("refuses low-order points and wrong lengths, never throws on any 32 bytes", () => {
    const rid = new Uint8Array(24);
    expect(queueDh(new Uint8Array(32), rid)).toBeUndefined(); // the zero point
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(queueDh(one, rid)).toBeUndefined(); // order 1
    expect(queueDh(new Uint8Array(31), rid)).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (pub) => {
        const r = queueDh(pub, rid);
        const core = deriveRcvKey(newDhKeyPair().secretKey, pub, rid);
        // Refused by one side exactly when refused by the other (low order ⇔ all-zero secret).
        expect(r === undefined).toBe(!core.ok);
      }),
      // Not a decoder: each case runs noble X25519 (milliseconds), so a few hundred cases.
      { numRuns: 300 },
    );
  });
});
