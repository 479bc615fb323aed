/**
 * The device's console commands (docs/device.md §7, `cmd` → `out`): what a technician types on
 * the PWA's device screen runs here, on the device, inside the encrypted session. A firmware
 * implements the same few; unknown commands answer `ok: false`. Output never carries secrets
 * (no seed, no Wi-Fi passphrase, no queue keys).
 */
import { cutUtf8, fromUtf8 } from "../core/bytes.ts";
import { MAX_COMMAND_OUTPUT_BYTES } from "../core/device/messages.ts";
import type { DeviceState, TelemetrySource } from "./agent.ts";

export interface CommandContext {
  state: DeviceState;
  telemetry: TelemetrySource | undefined;
  /** ms since the device (process) started. */
  uptimeMs: number;
  /** Emulated output pin: what `led on|off` sets. */
  led: { on: boolean };
}

export const DEVICE_COMMANDS = [
  "help              this list",
  "info              identity, pairing, Wi-Fi network, uptime",
  "read              one telemetry reading now",
  "led [on|off]      the status LED",
];

/** Run one command line; the answer fits an `out` message (≤ MAX_COMMAND_OUTPUT_BYTES, cut on a character). */
export function runDeviceCommand(line: string, ctx: CommandContext): { ok: boolean; m: string } {
  const out = run(line, ctx);
  return { ok: out.ok, m: fromUtf8(cutUtf8(out.m, MAX_COMMAND_OUTPUT_BYTES)) };
}

function run(line: string, ctx: CommandContext): { ok: boolean; m: string } {
  const [command = "", ...args] = line.trim().split(/\s+/);
  switch (command.toLowerCase()) {
    case "help":
      return { ok: true, m: DEVICE_COMMANDS.join("\n") };
    case "info": {
      const p = ctx.state.provision;
      return {
        ok: true,
        m: [
          `identity  ${ctx.state.username}`,
          `paired    ${ctx.state.owner ? `yes (${ctx.state.protocol})` : "no"}`,
          `wifi      ${p?.wifi ? p.wifi.ssid : "not set"}`,
          `relay     ${ctx.state.relay ? ctx.state.relay.queue.u : "not linked"}`,
          `uptime    ${Math.floor(ctx.uptimeMs / 1000)} s`,
        ].join("\n"),
      };
    }
    case "read": {
      if (!ctx.telemetry) return { ok: false, m: "this device has no sensors" };
      const r = ctx.telemetry.read();
      return {
        ok: true,
        m: Object.entries(r)
          .map(([k, v]) => `${k.padEnd(16)}${v}`)
          .join("\n"),
      };
    }
    case "led":
      if (args[0] === "on" || args[0] === "off") ctx.led.on = args[0] === "on";
      else if (args.length > 0) return { ok: false, m: "usage: led [on|off]" };
      return { ok: true, m: `led ${ctx.led.on ? "on" : "off"}` };
    default:
      return { ok: false, m: `unknown command "${Array.from(command).slice(0, 32).join("")}": type help` };
  }
}
