/** The device's console commands (device/commands.ts): answers fit an `out` message; no secrets. */
import { describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import { MAX_COMMAND_OUTPUT_BYTES } from "../core/device/messages.ts";
import { runDeviceCommand } from "./commands.ts";

const ctx = (ssid: string) => ({
  state: {
    seed: new Uint8Array(32).fill(9),
    created: 0,
    username: "bench",
    owner: new Uint8Array(4),
    protocol: "XX" as const,
    provision: { wifi: { ssid, psk: "do-not-print" } },
  },
  telemetry: { read: () => ({ "temp.c": 21.5 }) },
  uptimeMs: 61_000,
  led: { on: false },
});

describe("runDeviceCommand", () => {
  it("answers help, info, read, led; refuses unknown commands and bad arguments", () => {
    const c = ctx("lab");
    expect(runDeviceCommand("help", c).m).toContain("led");
    const info = runDeviceCommand("info", c);
    expect(info).toMatchObject({ ok: true });
    expect(info.m).toContain("paired    yes (XX)");
    expect(info.m).toContain("uptime    61 s");
    expect(info.m).not.toContain("do-not-print");
    expect(runDeviceCommand("read", c).m).toContain("21.5");
    expect(runDeviceCommand("LED on", c)).toEqual({ ok: true, m: "led on" });
    expect(c.led.on).toBe(true);
    expect(runDeviceCommand("led blink", c).ok).toBe(false);
    expect(runDeviceCommand("rm -rf", c)).toMatchObject({ ok: false });
  });

  it("cuts an answer to the out message bound on a character boundary", () => {
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`sensor-😀-${i}`, i]));
    const long = runDeviceCommand("read", { ...ctx("x"), telemetry: { read: () => many } });
    expect(utf8(long.m).length).toBeLessThanOrEqual(MAX_COMMAND_OUTPUT_BYTES);
    expect(utf8(long.m).length).toBeGreaterThan(MAX_COMMAND_OUTPUT_BYTES - 8);
    expect(new TextDecoder().decode(utf8(long.m))).toBe(long.m);
    const unknown = runDeviceCommand("😀".repeat(40), ctx("x"));
    expect(Array.from(unknown.m).filter((ch) => ch === "😀")).toHaveLength(32);
    expect(new TextDecoder().decode(utf8(unknown.m))).toBe(unknown.m);
  });
});
