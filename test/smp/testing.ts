/**
 * A real relay (host, LMDB store, WebSocket mailbox) with the SMP listener attached, both on
 * loopback ports — what `npm start --smp-port` runs, in process.
 */
import { createLogger } from "../../host/log.ts";
import type { RelayConfig } from "../../relay-ws/config.ts";
import type { RelayStore } from "../../relay-ws/store/types.ts";
import { startTestRelay, type TestRelay } from "../../relay-ws/testing.ts";
import { type SmpListener, startSmpListener } from "../../smp/server/listener.ts";

export interface SmpTestServer {
  relay: TestRelay;
  smp: SmpListener;
  /** The listener's address, with "localhost" as its host (the client connects to 127.0.0.1). */
  address: string;
  close(keep?: boolean): Promise<void>;
}

export async function startSmpTestServer(
  overrides: Partial<RelayConfig> = {},
  options: {
    dataDir?: string;
    clock?: () => number;
    versions?: { min: number; max: number };
    /** SMP basic auth for NEW (`--smp-password`). */
    password?: string;
    /** The relay's store, made in its data dir (as relay-ws/testing.ts `startTestRelay`). */
    store?: (dataDir: string) => RelayStore;
  } = {},
): Promise<SmpTestServer> {
  const relay = await startTestRelay(overrides, {
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.store ? { store: options.store } : {}),
  });
  const smp = await startSmpListener(
    relay.service,
    {
      smpPort: 0,
      smpHost: "127.0.0.1",
      smpAddressHost: "localhost",
      smpDir: "",
      dataDir: relay.dataDir,
      ...(options.versions ? { versions: options.versions } : {}),
      ...(options.password ? { smpPassword: options.password } : {}),
    },
    createLogger("smp-test", process.env.LOG_LEVEL ?? "warn"),
  );
  return {
    relay,
    smp,
    address: smp.address,
    close: (keep = false) => relay.close(keep),
  };
}
