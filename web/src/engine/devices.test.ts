/**
 * A paired device is not a person (docs/device.md §13): it joins no signaling and takes no direct
 * link, so the engine neither asks signaling for its presence (which would also tell the signaling
 * server which device keys this user owns) nor dials it when told it is online. Its `dev.*`
 * messages from the mailbox reach the app as `device` events; the same from a person do not.
 */
import { describe, expect, it } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { encodeDeviceAppMessage, startDeviceRatchet } from "../../../core/device/relay.ts";
import { createUserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import { generateRatchetKeyPair, ratchetDecrypt, ratchetEncrypt } from "../../../core/ratchet/index.ts";
import { establishSession } from "../../../core/session/session.ts";
import { MemoryStorage } from "../../../test/support/engine.ts";
import { encodeIdentity } from "../identity.ts";
import type { ContactRecord, EngineEvent } from "./api.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import { type EngineContext, peerFor } from "./context.ts";
import { dialDecision } from "./dialing.ts";
import { receive } from "./messages.ts";
import { saveRatchet } from "./peer-ratchet.ts";
import { watchKeys } from "./presence.ts";

async function record(
  name: string,
  device: boolean,
  user?: Awaited<ReturnType<typeof createUserIdentity>>,
): Promise<ContactRecord> {
  const u =
    user ??
    (await createUserIdentity({
      username: name,
      now: 1_700_000_000_000,
      ...(device ? { flags: { is_machine_account: true } } : {}),
    }));
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

describe("dev.* messages from the mailbox", () => {
  /** The owner's ratchet with `contact` (Alice) and the contact's (Bob), from one serial session. */
  async function ratchets(
    contact: { user: Awaited<ReturnType<typeof createUserIdentity>> },
    owner: typeof contact,
  ) {
    const [a, b] = memoryLinkPair();
    const [o, d] = await Promise.all([
      establishSession({ link: a, role: "initiator", kind: "serial", self: owner.user, protocol: "XX" }),
      establishSession({ link: b, role: "responder", kind: "serial", self: contact.user, protocol: "XX" }),
    ]);
    const kp = await generateRatchetKeyPair();
    const bob = await startDeviceRatchet(d, contact.user.identity.verified.identity_key, {
      ratchetKeyPair: kp,
    });
    const alice = await startDeviceRatchet(o, owner.user.identity.verified.identity_key, {
      deviceRatchetPublic: kp.publicKey,
    });
    if (!alice.ok || !bob.ok) throw new Error("no ratchet");
    return { alice: alice.value, bob: bob.value };
  }

  it("become device events for a device contact, and nothing for a person", async () => {
    const owner = { user: await createUserIdentity({ username: "owner", now: 1_700_000_000_000 }) };
    const events: EngineEvent[] = [];
    const storage = new MemoryStorage("");
    const ctx = {
      cfg: DEFAULT_ENGINE_CONFIG,
      stopped: false,
      peers: new Map(),
      listeners: new Set([(e: EngineEvent) => events.push(e)]),
      storage,
      lastStamp: 0,
    } as unknown as EngineContext;
    for (const asDevice of [true, false]) {
      const contact = {
        user: await createUserIdentity({
          username: asDevice ? "sensor" : "mallory",
          now: 1_700_000_000_000,
          ...(asDevice ? { flags: { is_machine_account: true } } : {}),
        }),
      };
      const peer = peerFor(
        ctx,
        await record(contact.user.identity.verified.username, asDevice, contact.user),
      );
      const { alice, bob } = await ratchets(contact, owner);
      await saveRatchet(ctx, peer, alice);
      // The owner writes first (Bob can send only after reading one message).
      const first = await ratchetEncrypt(alice.state, encodeDeviceAppMessage({ t: "sync" }), Date.now());
      await saveRatchet(ctx, peer, { id: alice.id, state: first.state });
      const read = await ratchetDecrypt(bob.state, first.message, Date.now());
      if (!read.ok) throw read.error;
      const sealed = await ratchetEncrypt(
        read.value.state,
        encodeDeviceAppMessage({ t: "dev.telemetry", n: 1, at: 1, r: { "temp.c": 20 } }),
        Date.now(),
      );
      await receive(ctx, peer, undefined, sealed.message);
      const got = events.filter((e) => e.type === "device" && e.contactId === peer.id);
      expect(got).toHaveLength(asDevice ? 1 : 0);
      expect(storage.texts(peer.id, "in")).toEqual([]);
    }
  });
});
