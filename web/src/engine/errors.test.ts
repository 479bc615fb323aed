/**
 * web/src/engine/errors.ts: the relay's rations (RATE per connection; SOURCE_RATE, STORE_RATE per
 * source address) read as a busy relay that Loft retries — never as an unreachable relay, an offline contact or an internal
 * failure — whether a mailbox SEND was refused or a live link through the relay gave up.
 */
import { describe, expect, it } from "vitest";
import { describeFailure, RELAY_BUSY_MESSAGE, relayUnreachable } from "./errors.ts";

describe("relay busy codes", () => {
  for (const code of ["LOFT_ERR_RELAY_RATE", "LOFT_ERR_RELAY_SOURCE_RATE", "LOFT_ERR_RELAY_STORE_RATE"]) {
    it(`${code}: plain words, retried`, () => {
      expect(relayUnreachable("wss://relay.example/relay", "bob", code).message).toBe(
        `${RELAY_BUSY_MESSAGE} Messages to bob wait on this device until then.`,
      );
      expect(relayUnreachable("wss://relay.example/relay", undefined, code).message).toBe(RELAY_BUSY_MESSAGE);
      const live = describeFailure(code, "bob", "the relay kept refusing for 30 s (3 pieces unsent)");
      expect(live).toEqual({
        kind: "peer-offline",
        message: `${RELAY_BUSY_MESSAGE} Messages to bob stay queued.`,
      });
      // No server detail or code leaks into what the person reads.
      expect(JSON.stringify(live)).not.toMatch(/LOFT_ERR|pieces/);
    });
  }

  it("other relay codes keep their own words", () => {
    expect(relayUnreachable("wss://r/relay", "bob", "LOFT_ERR_RELAY_QUOTA").message).toMatch(
      /mailbox is full/,
    );
    expect(relayUnreachable("wss://r/relay", "bob").message).toMatch(/relay can't be reached/);
  });
});
