/**
 * connectSmpBridge (core/smp/bridge-link.ts) against a bridge that never answers the upgrade (a
 * fault stand-in: a TCP server that reads and says nothing): the opening times out, its socket —
 * still CONNECTING — is closed, and closing it raises nothing in Node (`ws` emits "error" when a
 * connecting socket is closed; vitest fails the run on an uncaught one). A socket left CONNECTING
 * holds up every other WebSocket to that host (RFC 6455 §4.1).
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type SilentTcp, silentTcp } from "../../test/support/silent-tcp.ts";
import type { WebSocketLike } from "../relay/ws-link.ts";
import { type BridgeConnectOptions, connectSmpBridge } from "./bridge-link.ts";
import type { SmpClientError } from "./client.ts";

let tcp: SilentTcp | undefined;
afterEach(() => tcp?.close());

/** A bridge opening against a silent TCP server: the error it fails with, and the server. */
async function failedBridge(
  options: Pick<BridgeConnectOptions, "connectTimeoutMs" | "openTimeoutMs">,
): Promise<{ e: SmpClientError; bridge: SilentTcp }> {
  const bridge = await silentTcp();
  tcp = bridge;
  const e = (await connectSmpBridge(bridge.url("/smp-bridge"), `smp://${"A".repeat(43)}@127.0.0.1:5223`, {
    webSocket: (url) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike,
    ...options,
  }).catch((x: unknown) => x)) as SmpClientError;
  return { e, bridge };
}

describe("connectSmpBridge: an unanswered upgrade", () => {
  it("times out and closes its socket, with no uncaught error", async () => {
    const { e, bridge } = await failedBridge({ connectTimeoutMs: 200 });
    expect(e.code).toBe("TIMEOUT");
    await expect.poll(bridge.closed).toBe(1);
  });

  it("openTimeoutMs: a socket still connecting then fails the opening, far inside connectTimeoutMs", async () => {
    const { e, bridge } = await failedBridge({ connectTimeoutMs: 600_000, openTimeoutMs: 200 });
    expect(e.code).toBe("TIMEOUT");
    expect(e.message).toContain("did not open in 200 ms");
    await expect.poll(bridge.closed).toBe(1);
  });
});
