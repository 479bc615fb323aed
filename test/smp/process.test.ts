/**
 * The SMP listener in the real entry points: `npm start` (server/main.ts) and `npm run relay`
 * (relay-ws/main.ts) with `--smp-port`, as child processes. The address is logged at start and in
 * the detailed /health; the certificates are made on first start and kept with the data, so a
 * restart keeps the address; a port in use is a configuration error naming the flag; logs carry
 * no client address.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connectSmpBridge } from "../../core/smp/bridge-link.ts";
import { upgradeStatus } from "../../relay-ws/testing.ts";
import { LoftStartError, startLoft } from "../support/loft-process.ts";
import { cmd, SmpTestClient } from "./client.ts";
import { loggedSmpAddress } from "./logged-address.ts";

const dataDir = mkdtempSync(join(tmpdir(), "loft-smp-process-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const smpArgs = ["--smp-port", "0", "--smp-host", "127.0.0.1", "--smp-address-host", "localhost"];

const fingerprintOf = (address: string) => address.slice("smp://".length, address.indexOf("@"));

describe("SMP listener in the entry points", () => {
  it("npm start --smp-port serves SMP next to the WebSocket relay and shows the address in /health", async () => {
    const dir = mkdtempSync(join(tmpdir(), "loft-smp-start-"));
    const proc = await startLoft({
      entry: "server/main.ts",
      args: ["--serve-static", "false", "--relay-data-dir", dir, ...smpArgs],
    });
    try {
      const address = await loggedSmpAddress(proc);
      expect(address).toMatch(/^smp:\/\/[A-Za-z0-9_-]{43}=@localhost:\d+$/);
      const health = (await (await fetch(`${proc.metricsUrl}/health`)).json()) as {
        services: { relay: { smp: { address: string; versions: string } } };
      };
      expect(health.services.relay.smp).toMatchObject({ address, versions: "6-7" });
      const c = await SmpTestClient.connect(address, { connectHost: "127.0.0.1" });
      expect((await c.command(new Uint8Array(0), cmd.ping())).tag).toBe("PONG");
      c.close();
      expect(await proc.stop("SIGTERM")).toBe(0);
      expect(proc.output()).not.toMatch(/127\.0\.0\.1/);
    } finally {
      await proc.stop("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("npm run relay --smp-port: the certificates survive a restart, and so does the address's fingerprint; the SMP bridge is served unless turned off", async () => {
    const addresses: string[] = [];
    for (let i = 0; i < 2; i++) {
      const proc = await startLoft({
        entry: "relay-ws/main.ts",
        // First start: the bridge may reach loopback (its own listener); second: no bridge.
        args: [
          "--relay-data-dir",
          dataDir,
          ...smpArgs,
          ...(i === 0 ? ["--smp-bridge-private", "true"] : ["--smp-bridge", "false"]),
        ],
      });
      try {
        addresses.push(await loggedSmpAddress(proc));
        const c = await SmpTestClient.connect(addresses[i]!, { connectHost: "127.0.0.1" });
        expect((await c.command(new Uint8Array(0), cmd.ping())).tag).toBe("PONG");
        c.close();
        const bridgeUrl = `ws://127.0.0.1:${proc.port}/smp-bridge`;
        if (i === 0) {
          const { client } = await connectSmpBridge(bridgeUrl, addresses[i]!, {
            webSocket: (u) => new WebSocket(u) as never,
          });
          await client.ping();
          client.close();
        } else expect(await upgradeStatus(bridgeUrl)).toBe(404);
        expect(await proc.stop("SIGTERM")).toBe(0);
      } finally {
        await proc.stop("SIGKILL");
      }
    }
    expect(fingerprintOf(addresses[1]!)).toBe(fingerprintOf(addresses[0]!));
  });

  it("an SMP port already in use is a configuration error naming the flag, or the variable it was set in", async () => {
    const blocker = createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as { port: number }).port)),
    );
    try {
      const err = await startLoft({
        entry: "relay-ws/main.ts",
        args: ["--relay-data-dir", dataDir, "--smp-port", String(port), "--smp-host", "127.0.0.1"],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LoftStartError);
      expect((err as LoftStartError).exitCode).toBe(2);
      expect((err as LoftStartError).output).toMatch(/--smp-port\/--smp-host: cannot listen on .*EADDRINUSE/);
      // Set in the environment, the port is named as the operator set it: LOFT_SMP_PORT, not a
      // flag nobody gave (host/config.ts `optionName`).
      const fromEnv = await startLoft({
        entry: "relay-ws/main.ts",
        args: ["--relay-data-dir", dataDir, "--smp-host", "127.0.0.1"],
        env: { LOFT_SMP_PORT: String(port) },
      }).catch((e: unknown) => e);
      expect(fromEnv).toBeInstanceOf(LoftStartError);
      expect((fromEnv as LoftStartError).exitCode).toBe(2);
      expect((fromEnv as LoftStartError).output).toMatch(
        /configuration error: LOFT_SMP_PORT\/--smp-host: cannot listen on .*EADDRINUSE/,
      );
    } finally {
      blocker.close();
    }
  });
});
