/**
 * The engine's close-reason table (web/src/engine/errors.ts): the flags the engine acts on are
 * the ones its three former side tables held, every reason has words for a person, and a reason
 * the table does not know — including an inherited property name — is an internal failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLOSE_REASONS, type CloseReason, closeRule, describeFailure } from "./errors.ts";

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
];

const reasons = Object.keys(CLOSE_REASONS) as CloseReason[];

describe("close reasons: one table", () => {
  it("marks exactly the quiet, on-purpose and path-failure reasons", () => {
    expect(reasons.filter((r) => CLOSE_REASONS[r].quiet).sort()).toEqual([...QUIET].sort());
    expect(reasons.filter((r) => CLOSE_REASONS[r].peerOnPurpose).sort()).toEqual([...PEER_ON_PURPOSE].sort());
    expect(reasons.filter((r) => CLOSE_REASONS[r].pathFailure).sort()).toEqual([...PATH_FAILURE].sort());
  });

  it("says what happened, in the words the engine has always used", () => {
    expect(describeFailure("PEER_OFFLINE", "bob")).toEqual({
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
    expect(describeFailure("UNREACHABLE", "bob")).toEqual({
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
