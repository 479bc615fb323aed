/**
 * Every text words.ts gives a person (docs/protocol/files.md §7, "What a person reads"): in the
 * app's words — none of the protocol's — and ending with what to do next.
 */
import { describe, expect, it } from "vitest";
import { FILE_FAIL_REASONS } from "./wire.ts";
import {
  cancelledThere,
  declinedThere,
  failedHere,
  failedThere,
  receivingStopped,
  refused,
  sendingStopped,
  stoppedThere,
} from "./words.ts";

const PROTOCOL_WORDS =
  /\b(chunks?|window|hash(es)?|malformed|integrity|AEAD|frames?|keys?|transfer|protocol|session|ACK)\b/i;
/** A next step: the last sentence tells the person (or says what happens without them). */
const NEXT_STEP =
  /(Try sending it again|Try again once .+|Send it again( if .+)?|Ask .+ to send it again( if you still want it)?|Ask .+ to free some space, then send it again|Free some space, then ask .+ to send it again|Reload Loft, then ask .+ to send it again|Send a smaller file, or split it into parts|Unblock .+ first|Pick another contact|send it once someone has joined|Check that .+, then send it again)\.$/;

const all: [string, string][] = [
  ...[...FILE_FAIL_REASONS, "mismatch" as const].flatMap((r): [string, string][] => [
    [`failedHere ${r}`, failedHere("Bob", "x.bin", r)],
    [`failedThere ${r}`, failedThere("Bob", "x.bin", r)],
  ]),
  ["failedHere full", failedHere("Bob", "x.bin", "full")],
  ["stoppedThere", stoppedThere("Bob", "x.bin")],
  ["cancelledThere out", cancelledThere("Bob", "out")],
  ["cancelledThere in", cancelledThere("Bob", "in")],
  ["declinedThere too-large", declinedThere("Bob", "too-large")],
  ["declinedThere busy", declinedThere("Bob", "busy")],
  ["declinedThere chunks", declinedThere("Bob", "chunks")],
  ["refused.tooLarge", refused.tooLarge("3.0 MiB", "2.0 MiB")],
  ["refused.blocked", refused.blocked("Bob")],
  ["refused.unknown", refused.unknown()],
  ["refused.emptyRoom", refused.emptyRoom()],
  ...Object.entries(sendingStopped).map(([k, f]): [string, string] => [`sendingStopped.${k}`, f("x.bin")]),
  ...Object.entries(receivingStopped).map(([k, f]): [string, string] => [
    `receivingStopped.${k}`,
    f("x.bin"),
  ]),
];

describe("file texts a person reads", () => {
  it.each(all)("%s: no protocol words, ends with a next step", (_, text) => {
    expect(text).not.toMatch(PROTOCOL_WORDS);
    expect(text).toMatch(NEXT_STEP);
  });

  it("the issue's example, word for word, and each reason a different text on each side", () => {
    expect(failedThere("Bob", "x.bin", "window")).toBe(
      "Bob's device received more of x.bin at once than it had room for and discarded it. Try sending it again.",
    );
    const reasons = [...FILE_FAIL_REASONS, "mismatch" as const];
    expect(new Set(reasons.map((r) => failedHere("Bob", "x.bin", r))).size).toBe(reasons.length);
    expect(new Set(reasons.map((r) => failedThere("Bob", "x.bin", r))).size).toBe(reasons.length);
  });

  it("only a full device is said to be full: another storage failure has its own words", () => {
    expect(failedHere("Bob", "x.bin", "full")).toMatch(/may be full/);
    expect(failedHere("Bob", "x.bin", "storage")).not.toMatch(/full|space/);
  });
});
