/**
 * A paired device is not a person (docs/device.md §13): it joins no signaling and takes no direct
 * link, so the engine neither asks signaling for its presence (which would also tell the signaling
 * server which device keys this user owns) nor dials it when told it is online.
 */
import { describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { createUserIdentity } from "../../../core/identity/identity.ts";
import { encodeIdentity } from "../identity.ts";
import type { ContactRecord } from "./api.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import { type EngineContext, peerFor } from "./context.ts";
import { dialDecision } from "./dialing.ts";
import { watchKeys } from "./presence.ts";

async function record(name: string, device: boolean): Promise<ContactRecord> {
  const u = await createUserIdentity({
    username: name,
    now: 1_700_000_000_000,
    ...(device ? { flags: { is_machine_account: true } } : {}),
  });
  return {
    id: toHex(u.identity.verified.identity_key),
    identity: encodeIdentity(u.identity),
    username: name,
    trust: "trusted",
    firstSeen: 1,
    lastSeen: 1,
    ...(device ? { device: { kind: "device", name: "bench", protocol: "XXhfs", caps: 7, pairedAt: 1 } } : {}),
  };
}

describe("devices in the engine", () => {
  it("watches people, never a device; dials a person said online, never a device", async () => {
    const person = await record("bob", false);
    const device = await record("sensor", true);
    const ctx = {
      cfg: DEFAULT_ENGINE_CONFIG,
      stopped: false,
      peers: new Map(),
      listeners: new Set(),
      signaling: { state: "registered" },
      direct: {},
      relayLive: undefined,
      selfId: "0".repeat(64),
    } as unknown as EngineContext;
    const bob = peerFor(ctx, person);
    const sensor = peerFor(ctx, device);
    expect(sensor.device).toBe(true);
    expect(watchKeys(ctx).map(toHex)).toEqual([bob.id]);
    bob.online = true;
    sensor.online = true;
    expect(dialDecision(ctx, bob, "send").length).toBeGreaterThan(0);
    expect(dialDecision(ctx, sensor, "send")).toEqual([]);
  });
});
