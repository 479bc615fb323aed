/**
 * Console answers through the relay on the device screen (docs/device.md §13): an answer that
 * comes while no screen is open is shown when one opens; answers to commands we did not send, or
 * for another device, are not shown; a command the relay refused waits for nothing.
 */
import { describe, expect, it } from "vitest";
import type { DeviceRelayApi } from "../engine/api.ts";
import { commandThroughRelay, noteDeviceMessage, onRelayedAnswer, relayedReading } from "./devices.ts";

/** The engine side as far as this module uses it: `command` takes the line or refuses it. */
function relay(refuse = false): DeviceRelayApi {
  return {
    command: async () => {
      if (refuse) throw new Error("The relay did not take the command");
    },
  } as unknown as DeviceRelayApi;
}

describe("relayed console answers", () => {
  it("are held until a device screen listens; others are dropped", async () => {
    const n = await commandThroughRelay(relay(), "dev-a", "info");
    noteDeviceMessage("dev-a", { t: "dev.out", id: n + 1, ok: true, m: "not ours" });
    noteDeviceMessage("dev-b", { t: "dev.out", id: n, ok: true, m: "another device" });
    noteDeviceMessage("dev-a", { t: "dev.out", id: n, ok: true, m: "identity  sensor" });
    const seen: string[] = [];
    const stop = onRelayedAnswer("dev-a", (out) => seen.push(out.m));
    expect(seen).toEqual(["identity  sensor"]);
    // Once answered, a copy of the same answer is not shown again.
    noteDeviceMessage("dev-a", { t: "dev.out", id: n, ok: true, m: "identity  sensor" });
    const m = await commandThroughRelay(relay(), "dev-a", "read");
    noteDeviceMessage("dev-a", { t: "dev.out", id: m, ok: true, m: "temp.c 21" });
    expect(seen).toEqual(["identity  sensor", "temp.c 21"]);
    stop();
    await expect(commandThroughRelay(relay(true), "dev-a", "led on")).rejects.toThrow(/did not take/);
  });

  it("telemetry through the relay is the device's latest reading", () => {
    noteDeviceMessage("dev-c", { t: "dev.telemetry", n: 4, at: 1000, r: { "temp.c": 20 } });
    noteDeviceMessage("dev-c", { t: "dev.telemetry", n: 5, at: 2000, r: { "temp.c": 21 } });
    expect(relayedReading("dev-c")).toMatchObject({ n: 5, at: 2000, r: { "temp.c": 21 } });
    expect(relayedReading("dev-d")).toBeUndefined();
  });
});
