/**
 * core/ratchet/kdf.ts `kdfChain` when the provider fails one of its two HMACs (Signal DR §5.2
 * `KDF_CK`): the call rejects with the provider's error and the key the other HMAC made is wiped,
 * not left behind (the answers themselves: core/ratchet/vectors.test.ts and the ratchet vectors).
 */
import { describe, expect, it } from "vitest";
import { faultyProvider, InjectedFault } from "../../test/support/faulty-crypto.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import { kdfChain } from "./kdf.ts";

describe("kdfChain with a provider exception", () => {
  it("rejects with it and wipes the key the other HMAC made", async () => {
    const chainKey = new Uint8Array(32).fill(0x5a);
    const clean = faultyProvider(nobleCrypto, 0);
    const step = await kdfChain(clean.crypto, chainKey);
    expect(clean.calls()).toBe(2); // the message key's HMAC, then the chain key's
    for (const failAt of [1, 2]) {
      const faulty = faultyProvider(nobleCrypto, failAt);
      await expect(kdfChain(faulty.crypto, chainKey)).rejects.toBeInstanceOf(InjectedFault);
      const made = faulty.log
        .filter((c) => c.result instanceof Uint8Array)
        .map((c) => c.result as Uint8Array);
      expect(made.length, `fault at ${failAt}`).toBe(1);
      expect(made[0], `fault at ${failAt}`).toEqual(new Uint8Array(32));
    }
    // The inputs are the caller's, never wiped; the answer without a fault is untouched.
    expect(chainKey).toEqual(new Uint8Array(32).fill(0x5a));
    expect(step.messageKey.some((b) => b !== 0) && step.chainKey.some((b) => b !== 0)).toBe(true);
  });
});
