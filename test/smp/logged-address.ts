/**
 * The SMP address a Loft process logs with "smp listening" (smp/server/listener.ts), read from its
 * output: test/smp/process.test.ts, test/e2e/smp-bridge.e2e.ts and bench/smp.ts start real
 * processes with `--smp-port 0` and learn the port and fingerprint this way.
 */
import type { LoftProcess } from "../support/loft-process.ts";

/** Waits (polling the output, bounded by `timeoutMs`) for the "smp listening" record. */
export async function loggedSmpAddress(proc: LoftProcess, timeoutMs = 30_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const line of proc.output().split("\n")) {
      if (!line.startsWith("{")) continue;
      const rec = JSON.parse(line) as { msg?: string; smpAddress?: string };
      if (rec.msg === "smp listening" && rec.smpAddress) return rec.smpAddress;
    }
    if (Date.now() > end) throw new Error(`no "smp listening" in:\n${proc.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
