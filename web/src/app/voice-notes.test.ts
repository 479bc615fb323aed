import { describe, expect, it } from "vitest";
import { voiceNoteDuration, voiceNoteName } from "./voice-notes.ts";

describe("voice note names carry their duration", () => {
  it("names a recording by its length and container, at least a second", () => {
    expect(voiceNoteName(7_400, "audio/webm")).toBe("Voice note 0:07.webm");
    expect(voiceNoteName(65_000, "audio/ogg")).toBe("Voice note 1:05.ogg");
    expect(voiceNoteName(200, "audio/mp4")).toBe("Voice note 0:01.m4a");
    // Whole seconds, as the recorder showed them when Send was pressed: 1.9 s is "0:01".
    expect(voiceNoteName(1_900, "audio/webm")).toBe("Voice note 0:01.webm");
    expect(voiceNoteName(2_000, "audio/webm")).toBe("Voice note 0:02.webm");
  });
  it("reads the duration back, and nothing from any other file", () => {
    expect(voiceNoteDuration("Voice note 0:07.webm")).toBe("0:07");
    expect(voiceNoteDuration("Voice note 0:07.exe")).toBeUndefined();
    expect(voiceNoteDuration("holiday.webm")).toBeUndefined();
  });
});
