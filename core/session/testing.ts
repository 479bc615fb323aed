/**
 * What the session tests share (core/session/*.test.ts): two fixed users and the code a failed
 * establishment rejects with.
 */
import { isLoftError, type LoftErrorCode } from "../errors.ts";
import { createUserIdentity } from "../identity/identity.ts";

export const alice = createUserIdentity({
  username: "alice",
  now: 1_700_000_000_000,
  seed: new Uint8Array(32).fill(1),
});
export const bob = createUserIdentity({
  username: "bob",
  now: 1_700_000_000_000,
  seed: new Uint8Array(32).fill(2),
});

/** The code a rejected establishment carries, or "resolved"; anything but a LoftError is rethrown. */
export async function codeOf(p: Promise<unknown>): Promise<LoftErrorCode | "resolved"> {
  try {
    await p;
    return "resolved";
  } catch (e) {
    if (!isLoftError(e)) throw e;
    return e.code;
  }
}
