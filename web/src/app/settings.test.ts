import { describe, expect, it } from "vitest";
import { MAX_LINK_URL_CHARS, MAX_LINK_URLS } from "../../../core/identity/contact-link.ts";
import { serverListProblem, storedSignalingUrls } from "./settings.ts";

describe("server lists typed in Settings", () => {
  it("takes ws: and wss: addresses, up to what a contact link carries", () => {
    expect(serverListProblem("signaling", [])).toBeUndefined();
    expect(
      serverListProblem("relay", ["wss://a.example/relay", "ws://127.0.0.1:8080/relay"]),
    ).toBeUndefined();
    const four = Array.from({ length: MAX_LINK_URLS }, (_, i) => `wss://r${i}.example/relay`);
    expect(serverListProblem("relay", four)).toBeUndefined();
    // A repeat is one server (the engine drops repeats too).
    expect(serverListProblem("relay", [...four, four[0]!])).toBeUndefined();
  });

  it("refuses other schemes, non-URLs, too many and too long, in words", () => {
    expect(serverListProblem("signaling", ["https://a.example/signal"])).toBe(
      "Each signaling address must start with ws:// or wss://.",
    );
    expect(serverListProblem("relay", ["relay.example"])).toBe(
      "Each relay address must start with ws:// or wss://.",
    );
    const five = Array.from({ length: MAX_LINK_URLS + 1 }, (_, i) => `wss://s${i}.example/signal`);
    expect(serverListProblem("signaling", five)).toBe(
      `At most ${MAX_LINK_URLS} signaling servers: your contact link carries no more.`,
    );
    const long = `wss://a.example/${"x".repeat(MAX_LINK_URL_CHARS)}`;
    expect(serverListProblem("relay", [long])).toMatch(/at most 256 characters/);
  });

  it("reads the stored list, or the single server of a record from before", () => {
    expect(storedSignalingUrls(undefined)).toEqual([]);
    expect(storedSignalingUrls({ signalingUrl: "wss://a/signal" })).toEqual(["wss://a/signal"]);
    expect(
      storedSignalingUrls({
        signalingUrl: "wss://a/signal",
        signalingUrls: ["wss://a/signal", "wss://b/signal"],
      }),
    ).toEqual(["wss://a/signal", "wss://b/signal"]);
  });
});
