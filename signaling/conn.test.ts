/** signaling/conn.ts: the packed connection state keeps every field apart and makes nothing early. */
import { Session } from "node:inspector";
import { describe, expect, it } from "vitest";
import { TokenBucket } from "../host/token-bucket.ts";
import type { ServerSocket } from "../host/websocket-server.ts";
import { Conn } from "./conn.ts";
import type { SourceState } from "./limits.ts";

const NONE: ReadonlySet<string> = new Set();
const fresh = () => new Conn(7, {} as ServerSocket, {} as SourceState, "h:1", NONE);

/**
 * Which of `c`'s lazily made objects (`#registered`, `#viewer`) exist. Private fields are out of
 * reach of the test's own code, so V8's inspector reads them (Runtime.getProperties lists an
 * object's private properties); its session answers synchronously on this thread.
 */
function made(c: Conn): string[] {
  const session = new Session();
  const g = globalThis as { __connProbe?: Conn };
  const names: string[] = [];
  session.connect();
  g.__connProbe = c;
  try {
    let objectId = "";
    session.post("Runtime.evaluate", { expression: "globalThis.__connProbe" }, (e, r) => {
      if (e) throw e;
      objectId = r.result.objectId ?? "";
    });
    session.post("Runtime.getProperties", { objectId, ownProperties: true }, (e, r) => {
      if (e) throw e;
      // In the protocol (Runtime.PrivatePropertyDescriptor) though not in @types/node's copy of it.
      const { privateProperties } = r as { privateProperties?: { name: string; value?: { type: string } }[] };
      for (const p of privateProperties ?? [])
        if (p.name !== "#bits" && p.value?.type !== "undefined") names.push(p.name);
    });
  } finally {
    delete g.__connProbe;
    session.disconnect();
  }
  expect(names.every((n) => n === "#registered" || n === "#viewer")).toBe(true);
  return names.sort();
}

describe("Conn (packed)", () => {
  it("each boolean and the violations count set and read apart in the one integer", () => {
    const c = fresh();
    expect([c.alive, c.hello, c.closed, c.busy, c.violations]).toEqual([true, false, false, false, 0]);
    const names = ["alive", "hello", "closed", "busy"] as const;
    // Every combination of the four booleans, with a count beside them: none disturbs another.
    for (let m = 0; m < 16; m++) {
      names.forEach((n, i) => {
        c[n] = (m & (1 << i)) !== 0;
      });
      c.violations = m * 1000 + 1;
      expect(names.map((n) => c[n])).toEqual(names.map((_, i) => (m & (1 << i)) !== 0));
      expect(c.violations).toBe(m * 1000 + 1);
      expect(++c.violations).toBe(m * 1000 + 2);
    }
    // Counted up to 2^24 and held there; never negative; the booleans untouched.
    c.violations = 2 ** 40;
    expect(c.violations).toBe(2 ** 24);
    c.violations++;
    expect(c.violations).toBe(2 ** 24);
    c.violations = -5;
    expect(c.violations).toBe(0);
    expect(names.map((n) => c[n])).toEqual([true, true, true, true]);
  });

  it("registration and viewer state: absent until something is kept, then read back as set", () => {
    const c = fresh();
    expect([c.id, c.host, c.watching]).toEqual([7, "h:1", NONE]);
    // Clearing what is not there makes nothing.
    c.reg = undefined;
    c.publicKey = undefined;
    c.envelopeNonces = undefined;
    c.rooms = undefined;
    c.joinBucket = undefined;
    c.iceUntil = undefined;
    c.sharedQ = 0;
    c.shown = undefined;
    c.visibleTo = undefined;
    expect(made(c)).toEqual([]);
    expect([c.lastRegisterAt, c.sharedQ, c.reg, c.rooms, c.iceUntil, c.shown, c.visibleTo]).toEqual([
      0,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    // A verified REGISTER keeps its timestamp: the object is made then.
    c.lastRegisterAt = 1234;
    expect(made(c)).toEqual(["#registered"]);
    const bucket = new TokenBucket(1, 5, 0);
    c.joinBucket = bucket;
    c.rooms = new Set(["ab"]);
    c.sharedQ = 9;
    c.iceUntil = 99;
    expect([c.lastRegisterAt, c.joinBucket, [...c.rooms], c.sharedQ, c.iceUntil]).toEqual([
      1234,
      bucket,
      ["ab"],
      9,
      99,
    ]);
    // The TURN tag is drawn once per registered connection and kept.
    const tag = c.turnTag;
    expect(tag).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(c.turnTag).toBe(tag);
    const other = fresh();
    other.lastRegisterAt = 1;
    expect(other.turnTag).not.toBe(tag);
    c.joinBucket = undefined;
    expect(c.joinBucket).toBeUndefined();
    const shown = new Map([["k", true]]);
    c.shown = shown;
    c.visibleTo = new Set(["v"]);
    expect(made(c)).toEqual(["#registered", "#viewer"]);
    expect(c.shown).toBe(shown);
    expect([...c.visibleTo]).toEqual(["v"]);
    c.visibleTo = undefined;
    expect(c.visibleTo).toBeUndefined();
    expect(c.shown).toBe(shown);
  });

  it("reading any field of an idle connection makes nothing (the TURN tag included)", () => {
    const c = fresh();
    // Every getter, as the service and signaling/rooms.ts read them on an idle connection.
    const read = () => [
      c.lastRegisterAt,
      c.publicKey,
      c.envelopeNonces,
      c.reg,
      c.rooms,
      c.joinBucket,
      c.turnTag,
      c.iceUntil,
      c.sharedQ,
      c.shown,
      c.visibleTo,
    ];
    expect(read()).toEqual([0, ...Array(7).fill(undefined), 0, undefined, undefined]);
    expect(made(c)).toEqual([]);
    // A REGISTER that verified draws the tag; reading it again changes nothing.
    c.lastRegisterAt = 5;
    const tag = c.turnTag;
    expect(tag).toMatch(/^[A-Za-z0-9_-]{12}$/);
    read();
    expect([c.turnTag, made(c)]).toEqual([tag, ["#registered"]]);
  });
});
