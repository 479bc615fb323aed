/**
 * TURN credentials in coturn's REST-API scheme (signaling/turn-credentials.ts) and their push to
 * registered clients (ICE_SERVERS, docs/protocol/signaling.md): the real service on loopback and
 * the real client. The HMAC vector was computed with OpenSSL
 * (`printf %s "$username" | openssl dgst -sha1 -hmac "$secret" -binary | base64`).
 */
import { afterEach, describe, expect, it } from "vitest";
import { SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import { ConfigError } from "../host/config.ts";
import { checkSignalingConfig, defaultSignalingConfig } from "./config.ts";
import {
  makeUser,
  RawClient,
  type RunningSignaling,
  registerOn,
  startSignaling,
  wsFactory,
} from "./testing.ts";
import { issueIceServers, needsIceRenewal, turnPassword } from "./turn-credentials.ts";

type IceEvent = Extract<SignalingEvent, { type: "ice-servers" }>;

describe("coturn REST credentials", () => {
  it("match OpenSSL's HMAC-SHA1 of the username", () => {
    expect(turnPassword("north-gate-secret", "1767225600:AAAAAAAAAAAA")).toBe("T6wCZHzHStaNS6ZozsCz1fCXZBM=");
  });

  it("name the expiry in the username, give STUN URLs no credentials, and renew at half-life", () => {
    const config = {
      urls: ["stun:s.example:3478", "turn:t.example:3478?transport=udp"],
      secret: "s",
      ttlSeconds: 600,
    };
    const issued = issueIceServers(config, "tagtagtagtag", 1_767_225_000_500)!;
    expect(issued.expiresAt).toBe(1_767_225_600_000);
    expect(issued.servers).toEqual([
      { urls: ["stun:s.example:3478"] },
      {
        urls: ["turn:t.example:3478?transport=udp"],
        username: "1767225600:tagtagtagtag",
        credential: turnPassword("s", "1767225600:tagtagtagtag"),
      },
    ]);
    expect(needsIceRenewal(config, undefined, 0)).toBe(true);
    expect(needsIceRenewal(config, issued.expiresAt, issued.expiresAt - 301_000)).toBe(false);
    expect(needsIceRenewal(config, issued.expiresAt, issued.expiresAt - 299_000)).toBe(true);
    expect(issueIceServers({ ...config, urls: [] }, "t", 0)).toBeUndefined();
  });

  it("the configuration refuses a TURN URL without a secret, a secret without one, and a bad URL", () => {
    const base = defaultSignalingConfig();
    const bad = (change: Partial<typeof base>) => () => checkSignalingConfig({ ...base, ...change });
    expect(bad({ turnUrls: ["turn:t.example:3478"] })).toThrow(ConfigError);
    expect(bad({ turnSecret: "s" })).toThrow(/needs at least one turn/);
    expect(bad({ turnUrls: ["http://t.example"], turnSecret: "s" })).toThrow(/not a stun:/);
    expect(bad({ turnUrls: ["stun:s.example:3478"] })).not.toThrow();
    expect(bad({ turnUrls: ["turns:t.example:5349"], turnSecret: "s" })).not.toThrow();
  });
});

describe("ICE_SERVERS pushed to registered clients", () => {
  let server: RunningSignaling | undefined;
  const clients: SignalingClient[] = [];
  const raws: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const r of raws.splice(0)) r.close();
    await server?.close();
    server = undefined;
  });

  const collect = (c: SignalingClient) => {
    const got: IceEvent[] = [];
    c.on((e) => {
      if (e.type === "ice-servers") got.push(e);
    });
    return got;
  };

  it("after REGISTER, not again on a renewal at first, and afresh once half the lifetime has passed", async () => {
    let offset = 0;
    server = await startSignaling(
      {
        turnUrls: ["turn:198.18.0.1:3478?transport=udp"],
        turnSecret: "shared",
        turnTtlSeconds: 600,
        clockSkewSeconds: 3_600,
      },
      0,
      () => Date.now() + offset,
    );
    const c = new SignalingClient({ url: server.url, user: makeUser("alice"), connect: wsFactory() });
    clients.push(c);
    const got = collect(c);
    const before = Date.now();
    await c.start();
    await expect.poll(() => got.length).toBe(1);
    const first = got[0]!;
    const server0 = first.servers[0]!;
    const [expiry, tag] = server0.username!.split(":");
    expect(Number(expiry) * 1000).toBe(first.expiresAt);
    // 600 s from when the server issued them (whole seconds), however long this test took to look.
    expect(first.expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(first.expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(tag).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(server0.credential).toBe(turnPassword("shared", server0.username!));

    await c.register(); // a renewal soon after: the credentials are still fresh
    offset = 301_000; // past half of 600 s
    await c.register();
    await expect.poll(() => got.length).toBe(2);
    const second = got[1]!;
    expect(second.expiresAt).toBeGreaterThan(first.expiresAt);
    expect(second.servers[0]!.username!.endsWith(`:${tag}`)).toBe(true);
  });

  it("sends the credentials before the REGISTER response: a client's first dial already has TURN", async () => {
    // A browser handles each WebSocket message as its own task and dials the moment it reads
    // REGISTER_RESPONSE; credentials that came after it would miss that first connection.
    server = await startSignaling({ turnUrls: ["turn:198.18.0.1:3478?transport=udp"], turnSecret: "shared" });
    const raw = await RawClient.hello(server.url);
    raws.push(raw);
    raw.send(await registerOn(raw, makeUser("carol"), { id: 1 }));
    const first = await raw.next();
    const second = await raw.next();
    expect([first.t, second.t]).toEqual(["ICE_SERVERS", "REGISTER_RESPONSE"]);
  });

  it("pushes nothing when the operator configured no servers", async () => {
    server = await startSignaling();
    const c = new SignalingClient({ url: server.url, user: makeUser("bob"), connect: wsFactory() });
    clients.push(c);
    const got = collect(c);
    await c.start();
    await c.register();
    expect(got).toEqual([]);
  });
});
