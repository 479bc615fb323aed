/**
 * The device screen's command console (docs/device.md §12, docs/user-guide.md): a few commands
 * the app answers from the attached session; every other line runs on the device (`cmd`). Output is plain text lines; nothing secret is
 * printed (no keys, no Wi-Fi passphrase).
 */
import { CAP_CONFIRM_INPUT, CAP_TELEMETRY, CAP_WIFI, CAP_XXHFS } from "../../../core/device/hello.ts";
import type { AttachedDevice } from "./attached-device.ts";

export const CONSOLE_HELP = [
  "in the app:",
  "help              this list, then the device's own",
  "status            the connection: protocol, HELLO, link counters",
  "telemetry         the latest readings",
  "detach            let go of the device (it stays paired)",
  "reset confirm     factory reset: the device forgets you and makes a new identity",
  "anything else runs on the device:",
];

export interface ConsoleResult {
  lines: string[];
  /**
   * What the screen does next: let go of the device, reset it, or run the line on the device
   * (`cmd`, docs/device.md §7) and print its answer.
   */
  action?: "detach" | "reset" | "device";
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
      return { lines: CONSOLE_HELP, action: "device" };
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
      return { lines: [], action: "device" };
  }
}
