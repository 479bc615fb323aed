/**
 * web/src/engine/errors.ts: the engine's close-reason table — the flags the engine acts on are
 * the ones its three former side tables held, every reason has words for a person, and a reason
 * the table does not know (an inherited property name included) is an internal failure — and the
 * relay's rations (RATE per connection; SOURCE_RATE, STORE_RATE per source address) read as a busy
 * relay that Loft retries, never as an unreachable relay, an offline contact or an internal
 * failure, whether a mailbox SEND was refused or a live link through the relay gave up.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TEMPORARY_REFUSALS } from "../../../core/relay/errors.ts";
import {
  CLOSE_REASONS,
  type CloseReason,
  closeRule,
  describeFailure,
  RELAY_BUSY_MESSAGE,
  registerRefusalMessage,
  relayUnreachable,
  signalingLostMessage,
} from "./errors.ts";

const QUIET: CloseReason[] = [
  "stopped",
  "user-disconnect",
  "replaced",
  "glare-yield",
  "superseded",
  "bye-glare",
  "transport-closed",
  "contact-blocked",
  "identity-change",
  "relay-fallback",
  "suite-offer-refused",
];
const PEER_ON_PURPOSE: CloseReason[] = [
  "stopped",
  "user-disconnect",
  "contact-blocked",
  "identity-change",
  "replaced",
  "superseded",
];
const PATH_FAILURE: CloseReason[] = [
  "open-timeout",
  "ERR_ICE_CONNECTION_FAILURE",
  "ERR_ICE_CONNECTION_CLOSED",
  "ERR_CONNECTION_FAILURE",
  "ERR_WEBRTC_SUPPORT",
  "bye-no-direct",
];

const reasons = Object.keys(CLOSE_REASONS) as CloseReason[];

describe("close reasons: one table", () => {
  it("marks exactly the quiet, on-purpose and path-failure reasons", () => {
    expect(reasons.filter((r) => CLOSE_REASONS[r].quiet).sort()).toEqual([...QUIET].sort());
    expect(reasons.filter((r) => CLOSE_REASONS[r].peerOnPurpose).sort()).toEqual([...PEER_ON_PURPOSE].sort());
    expect(reasons.filter((r) => CLOSE_REASONS[r].pathFailure).sort()).toEqual([...PATH_FAILURE].sort());
  });

  it("says what happened, in the words the engine has always used", () => {
    expect(describeFailure("LOFT_ERR_SIGNALING_PEER_OFFLINE", "bob")).toEqual({
      kind: "peer-offline",
      message: "bob is offline. Messages wait on this device.",
    });
    expect(describeFailure("LOFT_ERR_NOISE_KEY_MISMATCH", "bob")).toMatchObject({
      kind: "verification-failed",
      check: "noise-static-key",
    });
    expect(describeFailure("BAD_SIGNAL_SIGNATURE", "bob")).toMatchObject({ check: "signaling-signature" });
    expect(describeFailure("bye-refused", "bob", undefined, true).message).toBe(
      "bob hasn't accepted you yet — your first message will reach bob as a contact request.",
    );
    expect(describeFailure("bye-refused", "bob").message).toBe(
      "bob hasn't added you yet. Messages wait on this device until bob opens your contact link.",
    );
    expect(describeFailure("LOFT_ERR_SIGNALING_UNREACHABLE", "bob")).toEqual({
      kind: "signaling-unreachable",
      url: "",
      message: "The signaling server can't be reached. Retrying…",
    });
    for (const code of ["LOFT_ERR_RELAY_AUTH", "LOFT_ERR_RELAY_QUOTA", "LOFT_ERR_RELAY_UNEXPECTED"])
      expect(describeFailure(code, "bob").message).toBe(
        "No connection to bob could be made, directly or through the relay. Retrying…",
      );
    expect(describeFailure("ERR_WEBRTC_SUPPORT", "bob", "no RTCPeerConnection")).toEqual({
      kind: "internal",
      message: "The connection to bob failed.",
      detail: "ERR_WEBRTC_SUPPORT: no RTCPeerConnection",
    });
  });

  it("treats an unknown reason as an internal failure, never as quiet", () => {
    for (const odd of ["constructor", "__proto__", "toString", "hasOwnProperty", "internal", ""]) {
      const rule = closeRule(odd);
      expect(rule).toMatchObject({ quiet: false, peerOnPurpose: false, pathFailure: false });
      expect(rule.describe({ reason: odd, name: "bob", canRequest: false }).kind).toBe("internal");
    }
    expect(describeFailure("", "bob")).toEqual({
      kind: "internal",
      message: "The connection to bob failed.",
    });
  });

  it("describes any reason, detail and name without throwing", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...reasons), fc.string()),
        fc.option(fc.string()),
        fc.string(),
        (r, d, n) => {
          const error = describeFailure(r, n, d ?? undefined);
          expect(typeof error.message).toBe("string");
          expect(error.message.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

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

describe("the relay's rations in the close-reason table", () => {
  it("reads the per-connection RATE as a busy relay, like SOURCE_RATE and STORE_RATE", () => {
    expect([...TEMPORARY_REFUSALS].sort()).toEqual([
      "LOFT_ERR_RELAY_RATE",
      "LOFT_ERR_RELAY_SOURCE_RATE",
      "LOFT_ERR_RELAY_STORE_RATE",
    ]);
    for (const code of TEMPORARY_REFUSALS) {
      const rule = closeRule(code);
      expect(rule).toMatchObject({ quiet: false, peerOnPurpose: false, pathFailure: false });
      const words = rule.describe({ reason: code, name: "bob", canRequest: false });
      expect(words).toEqual({
        kind: "peer-offline",
        message: `${RELAY_BUSY_MESSAGE} Messages to bob stay queued.`,
      });
      expect(words.message).not.toMatch(/can't be reached|No connection/);
    }
  });

  it("keeps 'no connection' words for the relay's other refusals", () => {
    expect(describeFailure("LOFT_ERR_RELAY_FULL", "bob").message).toBe(
      "No connection to bob could be made, directly or through the relay. Retrying…",
    );
  });
});

describe("signaling failures in words (the PWA's one place for them)", () => {
  it("says when signaling is lost, and how", () => {
    expect(signalingLostMessage("LOFT_ERR_SIGNALING_UNREACHABLE", false)).toBe(
      "The signaling server can't be reached. Retrying…",
    );
    expect(signalingLostMessage("LOFT_ERR_SIGNALING_CLOSED", true)).toBe(
      "Lost the connection to the signaling server. Reconnecting…",
    );
    expect(signalingLostMessage("LOFT_ERR_UNSUPPORTED_VERSION", true)).toMatch(/incompatible version/);
    expect(signalingLostMessage("LOFT_ERR_SIGNALING_PEER_OFFLINE", true)).toBeUndefined();
  });

  it("has plain words for every REGISTER refusal, BUSY once it repeats", () => {
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_WRONG_AUDIENCE")).toMatch(/another address/);
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_BAD_CHALLENGE")).toMatch(/sign-in check/);
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_STALE_TIMESTAMP")).toMatch(/clock is off/);
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_BUSY", 2)).toBeUndefined();
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_BUSY", 3)).toMatch(/too busy/);
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_UNAVAILABLE")).toMatch(/trouble with its database/);
    expect(registerRefusalMessage("LOFT_ERR_SIGNALING_UNRECOGNIZED")).toBeUndefined();
  });

  it("words a signaling refusal of what we sent as a failed connection, not a failed verification", () => {
    // web/src/net/direct.ts closes such an attempt with LOFT_ERR_SIGNALING_PROTOCOL.
    expect(describeFailure("LOFT_ERR_SIGNALING_PROTOCOL", "bob")).toMatchObject({
      kind: "internal",
      message: "The connection to bob failed.",
    });
  });
});
