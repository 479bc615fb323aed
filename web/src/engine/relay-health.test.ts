/**
 * When one of our relays is dead (relay-health.ts; docs/protocol/mailbox.md §1, "Moving off a dead
 * relay"): unreachable without a break for the threshold, counted across a reload (the record is
 * sealed in storage), reset by one successful connection; contacts' relays are not judged.
 */
import { describe, expect, it } from "vitest";
import { decodeRelayHealth, SECRET } from "./mailbox.ts";
import { RelayHealth } from "./relay-health.ts";

const OURS = "wss://a.example/relay";
const OTHER = "wss://b.example/relay";
const THEIRS = "wss://contact.example/relay";

function setup(secrets: Map<string, Uint8Array>, clock: { t: number }) {
  return new RelayHealth({
    storage: {
      loadSecret: async (name) => secrets.get(name)?.slice(),
      saveSecret: async (name, bytes) => void secrets.set(name, bytes.slice()),
    },
    tracked: () => [OURS, OTHER],
    deadAfterMs: 1_000,
    now: () => clock.t,
    log: () => {},
  });
}

describe("relay health", () => {
  it("dead only after the threshold without a break; the clock survives a reload; one success resets it", async () => {
    const secrets = new Map<string, Uint8Array>();
    const clock = { t: 10_000 };
    let h = setup(secrets, clock);
    expect(await h.onState(OURS, "unreachable")).toBe(false);
    expect(await h.onState(OURS, "connecting")).toBe(false);
    clock.t += 999;
    expect(await h.onState(OURS, "unreachable")).toBe(false);
    // A reload: the first failure's time comes back from storage.
    h = setup(secrets, clock);
    clock.t += 1;
    expect(await h.onState(OURS, "unreachable")).toBe(true);
    expect(await h.onState(OTHER, "unreachable")).toBe(false); // each relay its own clock
    const stored = decodeRelayHealth(secrets.get(SECRET.health)!);
    expect(stored.ok && [...stored.value]).toEqual([
      [OURS, 10_000],
      [OTHER, 11_000],
    ]);
    // One successful connection: the outage is over, the clock starts again at the next failure.
    expect(await h.onState(OURS, "connected")).toBe(false);
    clock.t += 5_000;
    expect(await h.onState(OURS, "unreachable")).toBe(false);
    expect(h.downSince(OURS)).toBe(clock.t);
  });

  it("a contact's relay is not ours to judge and never enters the record", async () => {
    const secrets = new Map<string, Uint8Array>();
    const clock = { t: 0 };
    const h = setup(secrets, clock);
    expect(await h.onState(THEIRS, "unreachable")).toBe(false);
    clock.t += 10_000;
    expect(await h.onState(THEIRS, "unreachable")).toBe(false);
    expect(secrets.has(SECRET.health)).toBe(false);
  });

  it("an unreadable record counts as none (no throw)", async () => {
    const secrets = new Map([[SECRET.health, new Uint8Array([0xc1, 0x00])]]);
    const clock = { t: 0 };
    const h = setup(secrets, clock);
    expect(await h.onState(OURS, "unreachable")).toBe(false);
    expect(h.downSince(OURS)).toBe(0);
  });
});
