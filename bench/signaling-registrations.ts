/**
 * Measurement: registrations a signaling process holds and its resident memory per registered
 * peer. Starts `signaling/main.ts` as its own process on loopback (so the clients' memory is
 * not counted), opens `n` WebSockets from this process, registers a distinct identity on each,
 * and reads the server's RSS (`loft_process_resident_memory_bytes`) from its own /metrics, on its
 * metrics listener, before and after. The per-peer figure includes everything a registered
 * browser costs the server: its WebSocket, its registration and its signed Identity.
 *
 * bench/chat.ts imports `measureRegistrations`; alone: `tsx bench/signaling-registrations.ts [n]`.
 */
import { makeUser, RawClient, registerOn } from "../signaling/testing.ts";
import { startLoft } from "../test/support/loft-process.ts";
import { metricValue } from "../test/support/metrics.ts";

export interface RegistrationMeasurement {
  /** Registrations the server reported holding at the end (from /health). */
  peers: number;
  /** (RSS with n peers − RSS with none) / n, in KiB. */
  rss_per_peer_kib: number;
}

async function serverRss(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return metricValue(text, "loft_process_resident_memory_bytes");
}

/** Register `n` peers (n ≥ 1) on a fresh signaling process and report its memory per peer. */
export async function measureRegistrations(n: number): Promise<RegistrationMeasurement> {
  if (!Number.isInteger(n) || n < 1 || n > 15_000) throw new RangeError("n: 1..15000");
  const high = String(10 * n + 1_000);
  const proc = await startLoft({
    entry: "signaling/main.ts",
    args: [
      "--signal-max-connections-per-source",
      high,
      "--signal-max-registrations-per-source",
      high,
      "--signal-upgrade-rate",
      high,
      "--signal-upgrade-burst",
      high,
      "--signal-source-rate",
      high,
      "--signal-source-burst",
      high,
      // Every peer registers from this one address: lift its verification budget too.
      "--signal-source-cpu-ms",
      "1000",
      "--signal-source-cpu-burst-ms",
      "60000",
    ],
  });
  const clients: RawClient[] = [];
  try {
    const wsUrl = `ws://127.0.0.1:${proc.port}/signal`;
    // Warm up (JIT, first-connection allocations) before the baseline.
    const warm = await RawClient.hello(wsUrl);
    await warm.request(await registerOn(warm, makeUser("warmup"), { id: 1, ttl: 300 }));
    warm.close();
    await warm.closed;
    const metricsUrl = proc.metricsUrl;
    if (!metricsUrl) throw new Error("the signaling process has no metrics listener to read RSS from");
    const before = await serverRss(metricsUrl);

    const users = Array.from({ length: n }, (_, i) => makeUser(`peer${i}`));
    const BATCH = 200;
    for (let i = 0; i < n; i += BATCH) {
      const batch = await Promise.all(
        users.slice(i, i + BATCH).map(async (user) => {
          const c = await RawClient.hello(wsUrl);
          const reply = await c.request(await registerOn(c, user, { id: 1, ttl: 300 }));
          if (reply.t !== "REGISTER_RESPONSE")
            throw new Error(`registration refused: ${JSON.stringify(reply)}`);
          return c;
        }),
      );
      clients.push(...batch);
    }
    const after = await serverRss(metricsUrl);
    const health = (await (await fetch(`${metricsUrl}/health`)).json()) as {
      services: { signaling: { registrations: number } };
    };
    return {
      peers: health.services.signaling.registrations,
      rss_per_peer_kib: Math.round(((after - before) / n / 1024) * 100) / 100,
    };
  } finally {
    for (const c of clients) c.close();
    await proc.stop("SIGTERM");
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 2_000);
  measureRegistrations(n).then(
    (m) => console.log(JSON.stringify(m)),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
