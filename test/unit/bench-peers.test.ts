/**
 * bench:core's named baselines do the work they are named for, through the pinned packages: a
 * libp2p-noise XX handshake between its two state machines, a whole secureOutbound/secureInbound
 * over in-memory streams (each side authenticates the other's peer id), a transport round trip;
 * a libsignal-client session from a prekey bundle carrying messages both ways past several
 * direction changes. A baseline that silently did less work would inflate every ratio.
 */
import { describe, expect, it } from "vitest";
import { libp2pNoise } from "../../bench/peers/libp2p-noise.ts";
import { libsignalRatchet } from "../../bench/peers/libsignal.ts";

describe("libp2p-noise baseline", () => {
  it("completes XX handshakes, full secured connections and transport round trips", async () => {
    const peer = await libp2pNoise();
    expect(await peer.xxStateMachine.run()).toBe(1);
    expect(await peer.fullHandshake.run()).toBe(1);
    expect(await peer.fullHandshake.run()).toBe(1);
    // Creating the transport subject round-trips one message and compares it; then 3 more.
    const transport = peer.transport(16 * 1024);
    for (let i = 0; i < 3; i++) expect(await transport.run()).toBe(1);
  });
});

describe("libsignal-client baseline", () => {
  it("carries 1 KiB messages both ways across direction changes (decryption checked)", async () => {
    const ratchet = await libsignalRatchet(1024, 3);
    for (let i = 0; i < 3; i++) expect(await ratchet.run()).toBe(6);
  });
});
