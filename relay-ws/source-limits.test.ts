/**
 * Properties of the per-source accounting (source-limits.ts; the token bucket itself:
 * host/token-bucket.test.ts) and the output budget
 * (output-budget.ts), and of every command's cost and stored size: the source table admits up to
 * its caps and forgets idle sources.
 */
import { describe, expect, it } from "vitest";
import { BLOCK_SIZE, type Command } from "../core/relay/protocol.ts";
import { defaultRelayConfig } from "./config.ts";
import { OutputBudget, SLOW_CONSUMER_FLOOR } from "./output-budget.ts";
import {
  COST,
  commandCost,
  PrekeyBudget,
  SourceTable,
  storedBytes,
  storedMessageBytes,
} from "./source-limits.ts";

describe("SourceTable", () => {
  it("admits at most the per-source cap, releases, and forgets idle sources once refilled", () => {
    const t = new SourceTable({
      ...defaultRelayConfig(),
      maxConnectionsPerSource: 3,
      connectionsPerSecondPerSource: 0,
    });
    const held = [];
    for (let i = 0; i < 5; i++) if (t.admit("a", 0) === "ok") held.push(t.get("a", 0));
    expect(held).toHaveLength(3);
    expect(t.admit("a", 0)).toBe("too-many");
    expect(t.admit("b", 0)).toBe("ok");
    t.get("a", 0).commands.take(100, 0);
    for (const s of held) t.release(s);
    t.sweep(0);
    expect(t.size).toBe(2); // "a" still owes its budget, "b" holds a connection
    t.sweep(60_000);
    expect(t.size).toBe(1);
  });
});

describe("SourceTable memory", () => {
  it("forgets the oldest idle sources beyond its bound, never one with a connection", () => {
    const t = new SourceTable({ ...defaultRelayConfig(), connectionsPerSecondPerSource: 0 }, 100);
    expect(t.admit("held", 0)).toBe("ok");
    for (let i = 0; i < 1000; i++) t.get(`2001:db8:${i.toString(16)}::/64`, 0).commands.take(10, 0);
    expect(t.size).toBeLessThanOrEqual(101);
    expect(t.get("held", 0).connections).toBe(1);
  });
});

describe("PrekeyBudget", () => {
  it("hands out at most burst per queue, then the rate; a full table fails towards bundle-only", () => {
    const p = new PrekeyBudget(3600, 2, 2);
    expect([p.take("q1", 0), p.take("q1", 0), p.take("q1", 0)]).toEqual([true, true, false]);
    expect(p.take("q1", 1000)).toBe(true); // one per second
    expect(p.take("q2", 0)).toBe(true);
    expect(p.take("q3", 0)).toBe(false); // two queues tracked: the third gets no one-time prekey
    p.refund("q2");
    p.sweep(0);
    expect(p.take("q3", 0)).toBe(true);
  });
});

describe("OutputBudget", () => {
  it("under pressure admits only connections below the floor", () => {
    const o = new OutputBudget(1000);
    expect(o.admits(0, 1000)).toBe(true);
    o.add(1000);
    expect(o.strained).toBe(true);
    expect(o.admits(0, 100)).toBe(true);
    expect(o.admits(SLOW_CONSUMER_FLOOR, 1)).toBe(false);
    o.remove(5000);
    expect(o.queued).toBe(0);
  });
});

describe("costs", () => {
  const id = new Uint8Array(24);
  const k = new Uint8Array(32);
  it("charge every command that checks a signature for it, and SEND the bytes the store keeps for its body", () => {
    const commands: Command[] = [
      { k: "NEW", i: 1, rk: k, dk: k, sub: false },
      { k: "KEY", i: 1, q: id, sk: k },
      { k: "SKEY", i: 1, q: id, sk: k },
      { k: "SEND", i: 1, q: id, n: new Uint8Array(16), b: new Uint8Array(0) },
      { k: "SUB", i: 1, q: id, w: 1 },
      { k: "GET", i: 1, q: id },
      { k: "ACK", i: 1, q: id, m: id },
      { k: "OFF", i: 1, q: id },
      { k: "DEL", i: 1, q: id },
      { k: "PKSET", i: 1, q: id, po: [], pr: false },
      { k: "PKGET", i: 1, q: id },
    ];
    for (const c of commands) expect(commandCost(c), c.k).toBeGreaterThanOrEqual(COST.frame + COST.signature);
    expect(commandCost({ k: "PING", i: 1 })).toBe(COST.frame);
    // What the store keeps (relay-ws/store/at-rest.ts buckets), never less than a minimal bucket.
    expect(storedBytes(commands[3]!)).toBe(storedMessageBytes(0));
    expect(storedMessageBytes(0)).toBeGreaterThanOrEqual(256);
    const big = { ...commands[3]!, b: new Uint8Array(16_000) } as Command;
    expect(storedBytes(big)).toBeGreaterThan(BLOCK_SIZE);
    const pkset = { k: "PKSET", i: 1, q: id, po: [k, k], pb: k, pr: false } as Command;
    expect(storedBytes(pkset)).toBeGreaterThan(3 * 256);
    expect(commandCost(pkset)).toBeGreaterThan(commandCost(commands[9]!));
  });
});
