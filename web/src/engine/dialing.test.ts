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
import { DIRECT_UNAVAILABLE_AFTER } from "./dialing.ts";
import { Engine } from "./engine.ts";

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
