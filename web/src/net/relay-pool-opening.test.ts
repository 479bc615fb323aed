/**
 * RelayPool (web/src/net/relay-pool.ts) leaves no socket behind when an opening fails or the
 * pool closes while one is under way. A relay socket left open or CONNECTING holds up every other
 * WebSocket of the page to the same host (RFC 6455 §4.1: one connection in CONNECTING per host),
 * and one Loft host serves signaling and the relay on one host:port (host/host.ts): a person
 * whose relay hung once could reach nothing until the page was reloaded. The stand-in relay is a
 * fault: a TCP server that takes the connection and never answers the upgrade.
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { encodeVersionHeader } from "../../../core/codec/version.ts";
import type { LoftError } from "../../../core/errors.ts";
import { encodeServerFrame } from "../../../core/relay/protocol.ts";
import { relaySocket } from "../../../test/support/engine.ts";
import { type SilentTcp, silentTcp } from "../../../test/support/silent-tcp.ts";
import type { RelayConnectionsOptions } from "../engine/transport.ts";
import { RelayPool } from "./relay-pool.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The silent TCP server (test/support/silent-tcp.ts), closed after the test. */
async function silent(): Promise<SilentTcp> {
  const tcp = await silentTcp();
  cleanups.push(() => tcp.close());
  return tcp;
}

function pool(options: Partial<RelayConnectionsOptions>): RelayPool {
  const p = new RelayPool({
    webSocket: (url) => relaySocket(url),
    timeoutMs: 10_000,
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    window: 8,
    onMessage: () => {},
    onState: () => {},
    log: () => {},
    ...options,
  });
  cleanups.push(() => p.close());
  return p;
}

describe("RelayPool: openings that fail or are abandoned close their sockets", () => {
  it("a relay that never answers the upgrade: each attempt times out and its socket is closed; one at a time", async () => {
    const relay = await silent();
    const p = pool({ timeoutMs: 200 });
    const e = (await p.client(relay.url("/relay")).catch((x: unknown) => x)) as LoftError;
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    await expect.poll(relay.closed).toBe(1);
    // Kept up, it retries with backoff: every failed attempt's socket goes before the next.
    p.keep(relay.url("/relay"));
    await expect.poll(relay.accepted).toBeGreaterThanOrEqual(4);
    await expect.poll(() => relay.accepted() - relay.closed()).toBeLessThanOrEqual(1);
  });

  it("openTimeoutMs: relay and bridge sockets whose upgrade is unanswered are closed at the open bound, far inside the request timeout", async () => {
    const relay = await silent();
    const bridge = await silent();
    // Ten minutes for requests: only the open bound can end these openings within the test.
    const p = pool({ timeoutMs: 600_000, openTimeoutMs: 200, smpBridgeUrl: bridge.url("/smp-bridge") });
    const e = (await p.client(relay.url("/relay")).catch((x: unknown) => x)) as LoftError;
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    await expect.poll(relay.closed).toBe(1);
    const mailbox = await p.mailbox(`smp://${"A".repeat(43)}@127.0.0.1:5223`);
    const refused = (await mailbox.createQueue().catch((x: unknown) => x)) as LoftError;
    expect(refused.message).toContain("did not open in 200 ms");
    await expect.poll(bridge.closed).toBe(1);
  });

  it("closed while an opening waits for the upgrade: the socket goes at once, not after the opening's timeout", async () => {
    const relay = await silent();
    // The opening's own timeout is longer than any wait below: only the pool's close can end it.
    const p = pool({ timeoutMs: 600_000 });
    const opening = p.client(relay.url("/relay")).catch((x: unknown) => x);
    await expect.poll(relay.accepted).toBe(1);
    p.close();
    await expect.poll(relay.closed).toBe(1);
    expect(((await opening) as LoftError).code).toBe("LOFT_ERR_LINK_CLOSED");
  });

  it("an SMP mailbox whose bridge never answers, closed while opening: the bridge socket goes at once", async () => {
    const bridge = await silent();
    const p = pool({ timeoutMs: 600_000, smpBridgeUrl: bridge.url("/smp-bridge") });
    const mailbox = await p.mailbox(`smp://${"A".repeat(43)}@127.0.0.1:5223`);
    const opening = mailbox.createQueue().catch((x: unknown) => x);
    await expect.poll(bridge.accepted).toBe(1);
    p.close();
    await expect.poll(bridge.closed).toBe(1);
    expect(((await opening) as LoftError).code).toBe("LOFT_ERR_LINK_CLOSED");
  });
});

describe("RelayPool: a relay's error on the connection in the log", () => {
  it("names its code once: a relay that opens, then sends an ERR for no command", async () => {
    // A fault stand-in: it answers the opening with the relay's version header and a HELLO, then an
    // ERR with no correlation id (docs/protocol/relay.md §Errors), which the client hands to onError.
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    wss.on("connection", (s) => {
      s.once("message", () => {
        s.send(encodeVersionHeader());
        s.send(
          encodeCanonical({
            k: "HELLO",
            s: new Uint8Array(32).fill(5),
            fl: 65_535,
            qq: 128,
            mi: 16,
            x: new Uint8Array(32).fill(7),
          }),
        );
        s.send(encodeServerFrame({ k: "ERR", e: "INTERNAL" }));
      });
    });
    const logs: string[] = [];
    const p = pool({ log: (l) => logs.push(l) });
    await p.client(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/relay`);
    await expect
      .poll(() => logs.filter((l) => l.startsWith("relay: LOFT_ERR_")))
      .toEqual(["relay: LOFT_ERR_RELAY_INTERNAL: relay error on this connection"]);
  });
});
