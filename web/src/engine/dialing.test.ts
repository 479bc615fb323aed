/**
 * Dialing when the contact is said to be online but no path opens (issue #17: "a server claiming
 * an offline contact is online keeps the label cycling 'connecting…' forever"). Real signaling,
 * real engines; the Hub's `blockDirect` stands for a data channel that never opens.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { createUserIdentity } from "../../../core/identity/identity.ts";
import { type RunningSignaling, startSignaling, wsFactory } from "../../../signaling/testing.ts";
import { Hub, MemoryStorage, until } from "../../../test/support/engine.ts";
import { createRelayPool } from "../net/relay-pool.ts";
import type { Presence } from "./api.ts";
import type { Peer } from "./context.ts";
import {
  DIRECT_UNAVAILABLE_AFTER,
  type DialingContext,
  dialDecision,
  directPathLost,
  planUpgrade,
  retryLater,
} from "./dialing.ts";
import { Engine } from "./engine.ts";
import { onPresence, type PresenceContext } from "./presence.ts";

/** Close links that have not opened after `ms` with "open-timeout", as WebRtcLink does. */
function withOpenTimeout(factory: ReturnType<Hub["factory"]>, ms: number): ReturnType<Hub["factory"]> {
  return (deps) => {
    const t = factory(deps);
    return {
      ...t,
      path: t.path,
      dial: (peer) => {
        const link = t.dial(peer);
        setTimeout(() => {
          if (link.state === "connecting") link.close("open-timeout");
        }, ms);
        return link;
      },
      close: () => t.close(),
    };
  };
}

describe("a contact shown online whose direct path never opens", () => {
  let signaling: RunningSignaling;
  const running: Engine[] = [];
  beforeAll(async () => {
    signaling = await startSignaling();
  });
  afterAll(async () => {
    await signaling?.close();
  });
  afterEach(async () => {
    for (const e of running.splice(0)) await e.stop();
  });

  it("backs off and says the direct path is unavailable instead of cycling 'connecting…'", async () => {
    const hub = new Hub();
    hub.blockDirect = true;
    const make = (name: string) => {
      const user = createUserIdentity({ username: name, now: Date.now() });
      const storage = new MemoryStorage(signaling.url);
      const engine = new Engine(
        { user, storage },
        {
          backoffInitialMs: 20,
          backoffMaxMs: 100,
          glareDelayMs: 20,
          log: () => {},
          webSocket: wsFactory(),
          transport: withOpenTimeout(hub.factory(user), 150),
          relayConnections: createRelayPool,
        },
      );
      running.push(engine);
      return { user, storage, engine, id: toHex(user.identity.verified.identity_key) };
    };
    const a = make("alice");
    const b = make("bob");
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    const seen: Presence[] = [];
    a.engine.subscribe((e) => {
      if (e.type === "presence" && e.contactId === b.id) seen.push(e.presence);
    });
    await a.engine.start();
    await b.engine.start();

    await until(() => a.engine.presence(b.id).directUnavailable === true, "direct path unavailable", 30_000);
    const p = a.engine.presence(b.id);
    expect(p.status).toBe("offline");
    expect(p.lastError?.message).toContain("direct path is unavailable");
    // Retries go on, quietly: no more "connecting…" while the path stays unavailable.
    const from = seen.length;
    const offers = hub.offers;
    await until(() => hub.offers >= offers + 2, "two more attempts", 30_000);
    expect(seen.slice(from).filter((s) => s.status === "connecting")).toEqual([]);
    expect(a.engine.presence(b.id).directUnavailable).toBe(true);
    expect(seen.filter((s) => s.status === "connecting").length).toBeLessThanOrEqual(
      2 * DIRECT_UNAVAILABLE_AFTER,
    );
  });
});

describe("who dials when both ends learn of each other at once (chat.md §1)", () => {
  const ctxAs = (selfId: string) =>
    ({
      cfg: { glareDelayMs: 1_000, directRetryMs: 10_000, directRetryMaxMs: 60_000 },
      stopped: false,
      direct: {},
      signaling: { state: "registered" },
      selfId,
    }) as unknown as DialingContext;
  const peer = (id: string) => ({ id, online: true, failures: 0 }) as unknown as Peer;

  it("a contact change (a request accepted, the answer to a resubscription) follows the glare rule", () => {
    // Accepting a contact makes us visible to it at the moment it becomes dialable for us: both
    // would dial together, so the higher key waits, as when a contact comes online.
    for (const why of ["changed", "presence", "registered"] as const) {
      expect(dialDecision(ctxAs("bb"), peer("aa"), why)).toEqual([
        { kind: "schedule", timer: "retry", ms: 1_000, next: { step: "maybe-dial", why: "retry" } },
      ]);
      expect(dialDecision(ctxAs("aa"), peer("bb"), why)).toEqual([
        { kind: "cancel", timer: "retry" },
        { kind: "follow", next: { step: "dial" } },
      ]);
    }
    // A send, a retry: at once, whichever key.
    for (const why of ["send", "retry"] as const)
      expect(dialDecision(ctxAs("bb"), peer("aa"), why)).toEqual([
        { kind: "cancel", timer: "retry" },
        { kind: "follow", next: { step: "dial" } },
      ]);
  });

  it("the upgrade from the relay to direct: the lower key dials, the higher one a glare delay later", () => {
    // Both ends go live on the relay together and plan the upgrade together (mailbox.md §6): the
    // lower key's dial comes first, so the higher one finds it running instead of dialling too.
    const onRelay = (id: string, upgradeFailures: number) =>
      ({ ...peer(id), live: { path: "relay" }, upgradeFailures }) as unknown as Peer;
    const at = (ms: number) => [{ kind: "schedule", timer: "upgrade", ms, next: { step: "upgrade-due" } }];
    expect(planUpgrade(ctxAs("aa"), onRelay("bb", 0))).toEqual(at(10_000));
    expect(planUpgrade(ctxAs("bb"), onRelay("aa", 0))).toEqual(at(11_000));
    // After failures: the same doubling on both sides (each counts the failed upgrade), the ceiling too.
    expect(planUpgrade(ctxAs("aa"), onRelay("bb", 2))).toEqual(at(40_000));
    expect(planUpgrade(ctxAs("bb"), onRelay("aa", 2))).toEqual(at(41_000));
    expect(planUpgrade(ctxAs("bb"), onRelay("aa", 5))).toEqual(at(61_000));
    // Live on a direct session: nothing to upgrade.
    expect(planUpgrade(ctxAs("bb"), { ...peer("aa"), live: { path: "direct" } } as unknown as Peer)).toEqual([
      { kind: "cancel", timer: "upgrade" },
    ]);
  });

  it("which closes of a live session mean the direct path died (the next dial goes through the relay first)", () => {
    // ICE failed: the session says only that its link closed; the link's reason says why.
    expect(directPathLost("direct", "LOFT_ERR_LINK_CLOSED", "ERR_ICE_CONNECTION_FAILURE")).toBe(true);
    expect(directPathLost("direct", "LOFT_ERR_LINK_CLOSED", "ERR_ICE_CONNECTION_CLOSED")).toBe(true);
    expect(directPathLost("direct", "LOFT_ERR_LINK_CLOSED", "ERR_CONNECTION_FAILURE")).toBe(true);
    // Stopped answering: how a network change shows when no close event comes (chat.md §6).
    expect(directPathLost("direct", "heartbeat-timeout", "heartbeat-timeout")).toBe(true);
    // The peer closed it, left, or it was replaced: not the path.
    expect(directPathLost("direct", "LOFT_ERR_LINK_CLOSED", "remote-closed")).toBe(false);
    expect(directPathLost("direct", "remote-closed")).toBe(false);
    expect(directPathLost("direct", "presence-offline", "presence-offline")).toBe(false);
    expect(directPathLost("direct", "replaced", "replaced")).toBe(false);
    expect(directPathLost("direct", "LOFT_ERR_DECRYPT", "LOFT_ERR_DECRYPT")).toBe(false);
    // A relay session lost: nothing to skip.
    expect(directPathLost("relay", "heartbeat-timeout", "heartbeat-timeout")).toBe(false);
    expect(directPathLost("relay", "LOFT_ERR_LINK_CLOSED", "ERR_ICE_CONNECTION_FAILURE")).toBe(false);
  });

  it("a retry after a lost path: the lower key within half a glare delay, the higher a glare delay later, never before the caller's floor", () => {
    const ctx = (selfId: string) =>
      ({
        ...(ctxAs(selfId) as object),
        cfg: { glareDelayMs: 1_000, backoffInitialMs: 1_000, backoffMaxMs: 30_000 },
        relayLive: {},
      }) as unknown as DialingContext;
    const lost = (id: string) => ({ ...peer(id), relayFirst: true }) as unknown as Peer;
    const delay = (o: ReturnType<typeof retryLater>) => (o[0]?.kind === "schedule" ? o[0].ms : Number.NaN);
    for (let i = 0; i < 20; i++) {
      expect(delay(retryLater(ctx("aa"), lost("bb")))).toBeLessThanOrEqual(500);
      expect(delay(retryLater(ctx("bb"), lost("aa")))).toBeGreaterThanOrEqual(1_200);
      // The floor (an attempt the dialer cancelled: its relay offer comes first, dialing.ts
      // `attemptFailed`) holds for the lower key too; before, the half glare delay undercut it.
      expect(delay(retryLater(ctx("aa"), lost("bb"), 1_000))).toBeGreaterThanOrEqual(1_000);
      expect(delay(retryLater(ctx("bb"), lost("aa"), 1_000))).toBeGreaterThanOrEqual(1_000);
    }
  });

  it("the relay-first mark goes when signaling says the contact left (its next dial is not a redial)", () => {
    const key = new Uint8Array(32).fill(7);
    const p = { ...peer(toHex(key)), key, relayFirst: true, timers: { clear() {} } } as unknown as Peer;
    const ctx = { peers: new Map([[p.id, p]]), cfg: {}, stopped: false } as unknown as PresenceContext;
    onPresence(ctx, key, true);
    expect(p.relayFirst).toBe(true);
    onPresence(ctx, key, false);
    expect(p.relayFirst).toBe(false);
  });
});
