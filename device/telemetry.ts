/** A fake telemetry source for the emulator: a slow temperature wave, a noisy humidity, uptime. */
import type { TelemetrySource } from "./agent.ts";

export function fakeTelemetry(start = Date.now()): TelemetrySource {
  return {
    read() {
      const s = (Date.now() - start) / 1000;
      return {
        "temp.c": Math.round((21 + 3 * Math.sin(s / 60)) * 100) / 100,
        "humidity.pct": Math.round((45 + 5 * Math.sin(s / 17) + Math.random()) * 10) / 10,
        "uptime.s": Math.floor(s),
      };
    },
  };
}
