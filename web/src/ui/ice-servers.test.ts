import { describe, expect, it } from "vitest";
import { hasTurnServer } from "../engine/ice-servers.ts";
import { formatIceServers, parseIceServers } from "./ice-servers.ts";

describe("ICE servers field", () => {
  it("reads STUN and TURN lines and writes them back", () => {
    const text = "stun:stun.example.org:3478\n\n  turn:turn.example.org:3478?transport=udp alice s3cret ";
    const r = parseIceServers(text);
    expect(r).toEqual({
      servers: [
        { urls: "stun:stun.example.org:3478" },
        { urls: "turn:turn.example.org:3478?transport=udp", username: "alice", credential: "s3cret" },
      ],
    });
    expect(formatIceServers("servers" in r ? r.servers : [])).toBe(
      "stun:stun.example.org:3478\nturn:turn.example.org:3478?transport=udp alice s3cret",
    );
    expect(parseIceServers("")).toEqual({ servers: [] });
  });

  it("names the first line that is not a server", () => {
    expect(parseIceServers("stun:ok:1\nhttp://x")).toEqual({ bad: "http://x" });
    expect(parseIceServers("turn:t:3478")).toEqual({ bad: "turn:t:3478" }); // TURN needs credentials
    expect(parseIceServers("stun:s:1 user")).toEqual({ bad: "stun:s:1 user" });
    expect(parseIceServers("stun:s:1 a b c")).toEqual({ bad: "stun:s:1 a b c" });
  });

  it("tells whether a TURN server is configured (relay-only needs one)", () => {
    expect(hasTurnServer([])).toBe(false);
    expect(hasTurnServer([{ urls: "stun:s:3478" }])).toBe(false);
    expect(hasTurnServer([{ urls: "turn:t:3478", username: "u", credential: "p" }])).toBe(true);
    expect(hasTurnServer([{ urls: ["stun:s:1", "turns:t:5349"], username: "u", credential: "p" }])).toBe(
      true,
    );
  });
});
