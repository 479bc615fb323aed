/**
 * The device screen's command console (docs/device.md §12, docs/user-guide.md): a few typed
 * commands over the attached device's session. Output is plain text lines; nothing secret is
 * printed (no keys, no Wi-Fi passphrase).
 */
import { CAP_CONFIRM_INPUT, CAP_TELEMETRY, CAP_WIFI, CAP_XXHFS } from "../../../core/device/hello.ts";
import type { AttachedDevice } from "./attached-device.ts";

export const CONSOLE_HELP = [
  "help            this list",
  "status          the connection: protocol, HELLO, link counters",
  "telemetry       the latest readings",
  "detach          let go of the device (it stays paired)",
  "reset confirm   factory reset: the device forgets you and makes a new identity",
];

export interface ConsoleResult {
  lines: string[];
  /** The command asks the screen to let go of the device, or to reset it. */
  action?: "detach" | "reset";
}

const capNames = (caps: number) =>
  [
    caps & CAP_XXHFS ? "xxhfs" : "",
    caps & CAP_TELEMETRY ? "telemetry" : "",
    caps & CAP_WIFI ? "wifi" : "",
    caps & CAP_CONFIRM_INPUT ? "confirm-input" : "",
  ]
    .filter(Boolean)
    .join(" ") || "none";

/** Run one console line against `device`. */
export function runConsoleCommand(device: AttachedDevice, line: string): ConsoleResult {
  const [command = "", ...args] = line.trim().split(/\s+/);
  switch (command.toLowerCase()) {
    case "":
      return { lines: [] };
    case "help":
      return { lines: CONSOLE_HELP };
    case "status": {
      const d = device.connection.device;
      const s = device.connection.link.stats;
      return {
        lines: [
          `session   ${device.session.protocolName}`,
          `device    "${d.name}" protocol v${d.version}, capabilities ${capNames(d.caps)}`,
          `link      window ${d.window}, ${d.maxPayload}-byte frames, ${device.connection.link.inFlight} in flight`,
          `frames    ${s.framesSent} sent, ${s.framesReceived} received, ${s.retransmitted} resent, ${s.faults} line faults`,
        ],
      };
    }
    case "telemetry": {
      const last = device.recent.at(-1);
      if (!last) return { lines: ["no telemetry yet"] };
      return {
        lines: [
          `#${last.n} at ${new Date(last.at).toISOString()}`,
          ...Object.entries(last.r).map(([k, v]) => `${k.padEnd(16)}${v}`),
        ],
      };
    }
    case "detach":
      return { lines: ["detaching"], action: "detach" };
    case "reset":
      if (args[0] !== "confirm")
        return { lines: ["factory reset wipes the device's pairing and identity: type `reset confirm`"] };
      return { lines: ["factory reset sent"], action: "reset" };
    default:
      return { lines: [`unknown command "${command.slice(0, 32)}": type help`] };
  }
}
