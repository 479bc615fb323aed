/**
 * The signaling service's cross-option checks (signaling/config.ts): a refused combination names
 * each option, the value read for it and what is allowed — the operator may have set either
 * option by flag, environment or not at all (a default), and must see which to change.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, readConfig } from "../host/config.ts";
import { shutdownOptions } from "../host/standalone.ts";
import {
  checkShutdownGrace,
  checkSignalingConfig,
  defaultSignalingConfig,
  type SignalingConfig,
  shownUrl,
  signalingConfigFrom,
  signalingOptions,
} from "./config.ts";

const base = defaultSignalingConfig();

/** The ConfigError `check` throws (fails the test when it throws nothing or something else). */
function refusal(check: () => void): string {
  try {
    check();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).message;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

const refused = (change: Partial<SignalingConfig>) =>
  refusal(() => checkSignalingConfig({ ...base, ...change }));

describe("signaling option checks", () => {
  it("the close grace must be below the stop bound: both values and the largest allowed grace named", () => {
    expect(refusal(() => checkShutdownGrace({ ...base, shutdownGraceMs: 2_000 }, 1_000))).toBe(
      "--signal-shutdown-grace-ms is 2000 ms, --shutdown-timeout-ms 1000 ms: the grace must be below the stop bound (at most 999 ms with this bound)",
    );
    // Equal is refused too: the stop would always end at the bound.
    expect(refusal(() => checkShutdownGrace({ ...base, shutdownGraceMs: 1_500 }, 1_500))).toContain(
      "is 1500 ms, --shutdown-timeout-ms 1500 ms",
    );
    expect(() => checkShutdownGrace({ ...base, shutdownGraceMs: 999 }, 1_000)).not.toThrow();
    expect(() => checkShutdownGrace(base, 10_000)).not.toThrow();
  });

  it("TTL bounds, frame against payload: the values read and the limit", () => {
    expect(refused({ ttlMinSeconds: 400, ttlMaxSeconds: 300 })).toBe(
      "--signal-ttl-min is 400 s, --signal-ttl-max 300 s: the minimum must not exceed the maximum",
    );
    expect(() => checkSignalingConfig({ ...base, ttlMinSeconds: 300, ttlMaxSeconds: 300 })).not.toThrow();
    expect(refused({ maxFrameBytes: 8_000, maxPayloadBytes: 7_500 })).toBe(
      "--signal-max-frame-bytes is 8000, --signal-max-payload-bytes 7500: the frame must exceed the payload by at least 1024 (a frame of at least 8524, or a payload of at most 6976)",
    );
    expect(() =>
      checkSignalingConfig({ ...base, maxFrameBytes: 8_524, maxPayloadBytes: 7_500 }),
    ).not.toThrow();
    // No payload is small enough for a frame of 1200 (the payload's least is 256): only the frame
    // is offered — a payload of at most 176 would be refused in its turn.
    expect(refused({ maxFrameBytes: 1_200, maxPayloadBytes: 256 })).toBe(
      "--signal-max-frame-bytes is 1200, --signal-max-payload-bytes 256: the frame must exceed the payload by at least 1024 (a frame of at least 1280)",
    );
  });

  it("a refused URL is shown without what could be a credential in it", async () => {
    const secret = "hunter2-s3cret";
    const cases: [Partial<SignalingConfig>, string][] = [
      // A TURN URL with user info, pasted with a space in it (so refused).
      [
        { turnUrls: [`turn:loft:${secret}@turn.example:3478 ?transport=udp`] },
        '--turn-url: "turn:…@turn.example:3478" is not',
      ],
      // The secret pasted after the URL, as a second word.
      [{ turnUrls: [`turn:turn.example:3478 ${secret}`] }, '--turn-url: "turn:turn.example:3478" is not'],
      // No scheme at all: user info still left out.
      [{ turnUrls: [`loft:${secret}@turn.example`] }, '--turn-url: "…@turn.example" is not'],
      // Over-long, with the secret in the query.
      [
        { turnUrls: [`turn:turn.example:3478?password=${secret}${"x".repeat(500)}`] },
        '--turn-url: "turn:turn.example:3478?…" is not',
      ],
      [
        { servers: [`wss://admin:${secret}@a.example/signal x`] },
        '--signal-servers: "wss://…@a.example/signal" is not',
      ],
      [{ servers: [`wss://admin:${secret}@a.example/${"p".repeat(600)}`] }, "--signal-servers: a URL of"],
      [
        { audience: [`ftp://admin:${secret}@a.example/signal`] },
        '--signal-audience: "…@a.example/signal" is not',
      ],
    ];
    for (const [change, start] of cases) {
      const message = refused(change);
      expect(message).toContain(start);
      expect(message).not.toContain(secret);
      expect(message).not.toContain("hunter2");
    }
    expect(shownUrl(`wss://${"a".repeat(100)}`)).toBe(`"wss://${"a".repeat(54)}…"`);
  });

  it("lists: how many were given and the most allowed, or the entry that is not a URL", () => {
    const stun = (i: number) => `stun:s${i}.example:3478`;
    expect(refused({ turnUrls: Array.from({ length: 9 }, (_, i) => stun(i)) })).toBe(
      "--turn-url: 9 URLs given, at most 8 allowed",
    );
    expect(refused({ servers: Array.from({ length: 65 }, (_, i) => `wss://s${i}.example/signal`) })).toBe(
      "--signal-servers: 65 URLs given, at most 64 allowed",
    );
    expect(refused({ servers: ["wss://a.example/signal", "ftp://b.example"] })).toBe(
      '--signal-servers: "ftp://b.example" is not a ws://, wss://, http:// or https:// URL',
    );
    // An oversized entry is named by its length and start, not printed whole.
    const long = `wss://${"a".repeat(600)}.example/signal`;
    const message = refused({ servers: [long] });
    expect(message).toBe(
      `--signal-servers: a URL of ${long.length} characters ("wss://${"a".repeat(54)}…"), at most 512 allowed`,
    );
    expect(() =>
      checkSignalingConfig({
        ...base,
        servers: Array.from({ length: 64 }, (_, i) => `wss://s${i}.example/signal`),
      }),
    ).not.toThrow();
  });

  it("an option set in the environment is named by its variable, a flag by the flag, a default by its flag", () => {
    const read = (argv: string[], env: Record<string, string>) => readConfig(signalingOptions, argv, env);
    // Both in the environment: the operator looks for them there, not for flags nobody gave.
    expect(
      refusal(() =>
        checkSignalingConfig(read([], { LOFT_SIGNAL_TTL_MIN: "400", LOFT_SIGNAL_TTL_MAX: "300" })),
      ),
    ).toBe(
      "LOFT_SIGNAL_TTL_MIN is 400 s, LOFT_SIGNAL_TTL_MAX 300 s: the minimum must not exceed the maximum",
    );
    // One by flag, the other from the environment: each named as it was set.
    expect(
      refusal(() => checkSignalingConfig(read(["--signal-ttl-min", "400"], { LOFT_SIGNAL_TTL_MAX: "300" }))),
    ).toContain("--signal-ttl-min is 400 s, LOFT_SIGNAL_TTL_MAX 300 s");
    // A flag wins over the environment, and is the one named.
    expect(
      refusal(() =>
        checkSignalingConfig(
          read(["--signal-ttl-max=300"], { LOFT_SIGNAL_TTL_MIN: "400", LOFT_SIGNAL_TTL_MAX: "900" }),
        ),
      ),
    ).toContain("LOFT_SIGNAL_TTL_MIN is 400 s, --signal-ttl-max 300 s");
    // Left at its default (the payload's), it is named by the flag that changes it.
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_SIGNAL_MAX_FRAME_BYTES: "2000" })))).toMatch(
      /^LOFT_SIGNAL_MAX_FRAME_BYTES is 2000, --signal-max-payload-bytes \d+:/,
    );
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_TURN_URLS: "stun:a.example x" })))).toBe(
      'LOFT_TURN_URLS: "stun:a.example" is not a stun:, stuns:, turn: or turns: URL',
    );
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_TURN_URLS: "turn:a.example:3478" })))).toBe(
      "LOFT_TURN_URLS names a TURN server: give its shared secret with --turn-secret (or LOFT_TURN_SECRET)",
    );
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_TURN_SECRET: "s3cret-s3cret" })))).toBe(
      "LOFT_TURN_SECRET needs at least one turn: or turns: URL in --turn-url",
    );
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_SIGNAL_SERVERS: "ftp://b.example" })))).toBe(
      'LOFT_SIGNAL_SERVERS: "ftp://b.example" is not a ws://, wss://, http:// or https:// URL',
    );
    expect(refusal(() => checkSignalingConfig(read([], { LOFT_SIGNAL_AUDIENCE: "ftp://a.example" })))).toBe(
      'LOFT_SIGNAL_AUDIENCE: "ftp://a.example" is not a ws(s):// or http(s):// URL',
    );
  });

  it("the sources travel with the signaling part of a larger config (server/main.ts) and to the stop bound", () => {
    const specs = { ...shutdownOptions, ...signalingOptions };
    const all = readConfig(specs, [], {
      LOFT_SIGNAL_SHUTDOWN_GRACE_MS: "2000",
      LOFT_SHUTDOWN_TIMEOUT_MS: "1000",
    });
    const signaling = signalingConfigFrom(all);
    expect(refusal(() => checkShutdownGrace(signaling, all.shutdownTimeoutMs, all))).toBe(
      "LOFT_SIGNAL_SHUTDOWN_GRACE_MS is 2000 ms, LOFT_SHUTDOWN_TIMEOUT_MS 1000 ms: the grace must be below the stop bound (at most 999 ms with this bound)",
    );
    const byFlag = readConfig(specs, ["--shutdown-timeout-ms", "1000"], {
      LOFT_SIGNAL_SHUTDOWN_GRACE_MS: "2000",
    });
    expect(refusal(() => checkShutdownGrace(signalingConfigFrom(byFlag), 1_000, byFlag))).toContain(
      "LOFT_SIGNAL_SHUTDOWN_GRACE_MS is 2000 ms, --shutdown-timeout-ms 1000 ms",
    );
    expect(refusal(() => signalingConfigFrom(readConfig(specs, [], { LOFT_SIGNAL_TTL_MIN: "900" })))).toMatch(
      /^LOFT_SIGNAL_TTL_MIN is 900 s, --signal-ttl-max \d+ s/,
    );
  });
});
