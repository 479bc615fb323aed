/**
 * What a person reads about calls (calls/words.ts): every way a call ends has words naming the
 * contact where it matters, and history entries say how long an answered call lasted.
 */
import { describe, expect, it } from "vitest";
import type { CallEndKind } from "./types.ts";
import { durationLabel, endMessage, historyText, mediaProblem } from "./words.ts";

const KINDS: CallEndKind[] = [
  "hangup",
  "cancelled",
  "missed",
  "declined",
  "busy",
  "no-answer",
  "offline",
  "blocked",
  "permission",
  "no-device",
  "device-busy",
  "unavailable",
  "fingerprint",
  "refused",
  "failed",
];

describe("call words", () => {
  it("every end has a sentence; those about the contact name them", () => {
    for (const k of KINDS) {
      const m = endMessage(k, "Bob", false);
      expect(m, k).toMatch(/^[A-Z].*\.$/);
      if (
        [
          "missed",
          "declined",
          "busy",
          "no-answer",
          "offline",
          "unavailable",
          "fingerprint",
          "refused",
        ].includes(k)
      )
        expect(m, k).toContain("Bob");
    }
    expect(endMessage("permission", "Bob", true)).toContain("microphone or camera");
    expect(endMessage("permission", "Bob", false)).not.toContain("camera");
    expect(endMessage("device-busy", "Bob", false)).toBe(mediaProblem("device-busy", false));
    // A voice note or a room call says what to try again in its own words.
    expect(mediaProblem("permission", false, "record again")).toMatch(/, then record again\.$/);
  });

  it("durations read as m:ss or h:mm:ss", () => {
    expect(durationLabel(0)).toBe("0:00");
    expect(durationLabel(65_000)).toBe("1:05");
    expect(durationLabel(3_723_000)).toBe("1:02:03");
    expect(durationLabel(-5)).toBe("0:00");
  });

  it("history entries: an answered call's length, else how it went", () => {
    expect(historyText("hangup", false, 65_000)).toBe("Voice call · 1:05");
    expect(historyText("failed", true, 1_000)).toBe("Video call · 0:01");
    expect(historyText("missed", false)).toBe("Missed voice call");
    expect(historyText("declined", true)).toBe("Declined video call");
    expect(historyText("no-answer", false)).toBe("Voice call · no answer");
    expect(historyText("fingerprint", false)).toBe("Voice call refused: the media key did not match");
    expect(historyText("failed", false)).toBe("Voice call · not connected");
  });
});
