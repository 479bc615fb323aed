/**
 * The SMP-over-TLS listener (docs/protocol/smp.md, docs/operations.md "SMP listener"): TLS 1.3 and
 * 1.2 with ALPN `smp/1`, the listener's own certificates (certs.ts), and an SmpConnection per
 * client, serving the relay's queues (relay-ws/service.ts `shared`). Attached to the relay as a
 * companion: its figures show in the relay's /health, and it closes before the store.
 */

import type { Socket } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { x25519 } from "@noble/curves/ed25519.js";
import { SMP_ALPN, SMP_VERSION_MAX, SMP_VERSION_MIN } from "../../core/smp/transport.ts";
import { sourceKey } from "../../host/client-source.ts";
import { ConfigError, optionName } from "../../host/config.ts";
import type { Logger } from "../../host/log.ts";
import type { RelayService } from "../../relay-ws/service.ts";
import type { RelaySource } from "../../relay-ws/source-limits.ts";
import { loadOrCreateCredentials, type SmpCredentials, smpAddress } from "./certs.ts";
import { type SmpConfig, smpOptions } from "./config.ts";
import { SmpConnection } from "./connection.ts";

/** How long clients get on shutdown to read what is left before their sockets are cut. */
const CLOSE_GRACE_MS = 2_000;

export interface SmpListener {
  /** `smp://<CA fingerprint>@host:port`. */
  readonly address: string;
  readonly port: number;
  readonly fingerprint: Uint8Array;
  readonly connectionCount: number;
  close(): Promise<void>;
}

export interface SmpListenerOptions extends Omit<SmpConfig, "smpPort"> {
  /** 0: any free port. */
  smpPort: number;
  /** The relay data dir (certificates go to `<dataDir>/smp` unless `smpDir` says otherwise). */
  dataDir: string;
  /** Versions offered with ALPN `smp/1` (default 6–7). */
  versions?: { min: number; max: number };
}

/** Start the listener on `smpPort` (0 in tests: an ephemeral port) and attach it to the relay. */
export async function startSmpListener(
  relay: RelayService,
  options: SmpListenerOptions,
  log: Logger,
): Promise<SmpListener> {
  const slog = log.child({ service: "smp" });
  const addressHost = options.smpAddressHost || hostname();
  const dir = options.smpDir || join(options.dataDir, "smp");
  const credentials: SmpCredentials & { created: boolean } = loadOrCreateCredentials(dir, addressHost);
  if (credentials.created)
    slog.warn({ dir }, "smp certificates created; keep ca.key offline once the online certificate exists");
  const { context: ctx, sources } = relay.shared;
  const connections = new Set<SmpConnection>();
  const dummyX25519 = x25519.getPublicKey(x25519.utils.randomSecretKey());
  const versions = options.versions ?? { min: SMP_VERSION_MIN, max: SMP_VERSION_MAX };

  const server: Server = createServer({
    cert: credentials.certPem,
    key: credentials.keyPem,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ALPNProtocols: [SMP_ALPN],
    // What the reference offers (ChaCha20-Poly1305 suites; Ed25519 certificates), plus AES-GCM.
    ciphers: "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
    honorCipherOrder: true,
    handshakeTimeout: ctx.config.openingTimeoutSeconds * 1000,
  });

  // Admission at TCP accept, before the TLS handshake costs anything: the per-source connection
  // count and rate, and the relay's connection cap. The slot is held until the TCP socket closes.
  const admitted = new Map<string, RelaySource>();
  const sockets = new Set<Socket>();
  const peerKey = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) =>
    `${s.remoteAddress}|${s.remotePort}`;
  server.on("connection", (raw: Socket) => {
    if (relay.shared.closing) {
      raw.destroy();
      return;
    }
    const key = sourceKey(raw.remoteAddress ?? "unknown");
    const now = performance.now();
    const verdict = sockets.size >= ctx.config.maxConnections ? "full" : sources.admit(key, now);
    if (verdict !== "ok") {
      ctx.metrics.connectionsTotal.inc({ result: verdict === "rate" ? "smp_rate_limited" : "smp_full" });
      raw.destroy();
      return;
    }
    const source = sources.get(key, now);
    const id = peerKey(raw);
    admitted.set(id, source);
    sockets.add(raw);
    raw.once("close", () => {
      sockets.delete(raw);
      admitted.delete(id);
      sources.release(source);
    });
  });

  server.on("secureConnection", (socket: TLSSocket) => {
    const source = admitted.get(peerKey(socket));
    if (!source || relay.shared.closing) {
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
    ctx.metrics.connectionsTotal.inc({ result: "smp_accepted" });
    const conn = new SmpConnection({
      ctx,
      socket,
      source,
      credentials,
      versions,
      dummyX25519,
      ...(options.smpPassword ? { password: new TextEncoder().encode(options.smpPassword) } : {}),
      onClosed: (c) => connections.delete(c),
    });
    connections.add(conn);
  });
  // A failed TLS handshake says nothing about the client beyond a counter (no address is logged).
  server.on("tlsClientError", () => ctx.metrics.errors.inc({ code: "SMP_TLS_HANDSHAKE" }));

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new ConfigError(
          // Each option as the operator set it (flag or environment variable: host/config.ts
          // `optionName`; the callers keep `options`' sources with `keepSources`).
          `${optionName(options, smpOptions.smpPort)}/${optionName(options, smpOptions.smpHost)}: cannot listen on ${options.smpHost}:${options.smpPort}: ${e.code ?? e.message}`,
        ),
      ),
    );
    server.listen(options.smpPort, options.smpHost, () => {
      server.removeAllListeners("error");
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : options.smpPort);
    });
  });
  const address = smpAddress(credentials.fingerprint, addressHost, port);
  slog.info({ smpAddress: address, versions: `${versions.min}-${versions.max}` }, "smp listening");

  let closed: Promise<void> | undefined;
  const listener: SmpListener = {
    address,
    port,
    fingerprint: credentials.fingerprint,
    get connectionCount() {
      return connections.size;
    },
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const c of [...connections]) c.close(0, "going away", false);
        // A client that does not read what is left keeps its socket open: cut it after a grace.
        const grace = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, CLOSE_GRACE_MS);
        await stopped;
        clearTimeout(grace);
      })();
      return closed;
    },
  };
  relay.attach({
    name: "smp",
    health: () => ({ address, connections: connections.size, versions: `${versions.min}-${versions.max}` }),
    close: () => listener.close(),
  });
  return listener;
}
