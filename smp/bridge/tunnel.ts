/**
 * One bridged SMP connection (docs/protocol/smp.md, "The bridge"): a browser's WebSocket on one
 * side, a TLS connection to an SMP server on the other. The bridge checks what a browser cannot —
 * the server's CA certificate hashes to the address's fingerprint and signed the online
 * certificate, the hello's session id is this TLS connection's channel binding, the hello offers a
 * version this bridge carries — and then forwards 16 384-byte blocks unchanged both ways. It never
 * parses a transmission: the commands are built and signed in the browser, and `MSG` bodies are
 * sealed to the recipient's key, which only the browser has.
 */
import { createHash, timingSafeEqual, X509Certificate } from "node:crypto";
import { connect, type TLSSocket } from "node:tls";
import { parseSmpServerAddress, smpHosts } from "../../core/smp/address.ts";
import { type BridgeErrorName, decodeBridgeFrame, encodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import {
  decodeServerHello,
  SMP_ALPN,
  SMP_BLOCK_SIZE,
  SMP_VERSION_MAX,
  SMP_VERSION_MIN,
  unpad,
} from "../../core/smp/index.ts";
import type { ServerSocket as WebSocket } from "../../host/websocket-server.ts";
import type { DestinationPolicy } from "./policy.ts";

/** Idle time before TCP keepalive probes start on the connection to an SMP server. */
const TLS_KEEPALIVE_MS = 30_000;

/** Frames queued to the browser before the bridge stops reading the server. */
export const WS_HIGH_WATER = 64 * (SMP_BLOCK_SIZE + 1);

/**
 * How a tunnel ended: "client_closed" (the browser closed or its connection went), "heartbeat" (the
 * browser answered no ping for a heartbeat period: gone without a word, its TCP connection cut).
 */
export type TunnelResult = "ok" | BridgeErrorName | "client_closed" | "heartbeat";

export interface TunnelOptions {
  ws: WebSocket;
  policy: DestinationPolicy;
  /** For OPEN, the TCP connection and the TLS handshake, each. */
  timeoutMs: number;
  onEnd(result: TunnelResult, opened: boolean): void;
}

export class BridgeTunnel {
  readonly #o: TunnelOptions;
  #tls: TLSSocket | undefined;
  #phase: "await-open" | "connecting" | "await-hello" | "open" | "done" = "await-open";
  #timer: NodeJS.Timeout | undefined;
  #buffer: Buffer = Buffer.alloc(0);
  #fingerprint: Uint8Array | undefined;
  /** The server reads slowly: the browser's socket is paused until TLS drains. */
  #draining = false;
  /** The browser answered the last heartbeat ping (or sent a frame) since the previous one. */
  #alive = true;

  constructor(options: TunnelOptions) {
    this.#o = options;
    const { ws } = options;
    this.#arm();
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.#alive = true;
      this.#onFrame(isBinary ? new Uint8Array(data) : undefined);
    });
    ws.on("pong", () => {
      this.#alive = true;
    });
    ws.on("close", () => this.#end("client_closed"));
    ws.on("error", () => this.#end("client_closed"));
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () =>
        this.#phase === "await-open"
          ? this.#fail("MALFORMED", "no OPEN in time")
          : this.#fail("UNREACHABLE", "the server did not answer in time"),
      this.#o.timeoutMs,
    );
  }

  /** Shut down with an ERROR frame to the browser. */
  #fail(error: BridgeErrorName, detail: string): undefined {
    if (this.#phase === "done") return;
    const ws = this.#o.ws;
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeBridgeFrame({ kind: "ERROR", error, detail }));
      ws.close(error === "GOING_AWAY" ? 1001 : error === "CLOSED" ? 1000 : 1008, error);
    }
    this.#end(error);
  }

  #end(result: TunnelResult): void {
    if (this.#phase === "done") return;
    const opened = this.#phase === "open";
    this.#phase = "done";
    clearTimeout(this.#timer);
    this.#tls?.destroy();
    // A socket paused for a server that read slowly is read again: the closing handshake needs
    // the browser's answer, and no "drain" comes from a destroyed TLS connection.
    if (this.#draining) {
      this.#draining = false;
      this.#o.ws.resume();
    }
    if (this.#o.ws.readyState === this.#o.ws.OPEN) this.#o.ws.close(1000, "done");
    this.#o.onEnd(result, opened);
  }

  /**
   * What this tunnel holds for the browser: bytes queued on its WebSocket plus a partial block
   * read from the server. Bounded by WS_HIGH_WATER and one TLS read (docs/protocol/smp.md, "The
   * bridge"); `paused`: the server is not being read until the browser catches up.
   */
  get held(): { bytes: number; paused: boolean } {
    return {
      bytes: this.#o.ws.bufferedAmount + this.#buffer.length,
      paused: this.#tls?.isPaused() ?? false,
    };
  }

  /**
   * The service's heartbeat (every `heartbeatMs`): a browser that answered nothing since the
   * previous ping is gone — a tab killed, a laptop closed, a network that dropped the connection
   * without a FIN — and its tunnel, with the TLS connection to the SMP server it holds, would
   * otherwise stay open for as long as the server keeps it (RFC 6455 §5.5.2: a ping must be
   * answered with a pong "as soon as is practical"). Before the tunnel is open its own timeouts
   * (OPEN, resolution, TLS, hello) bound it; the heartbeat runs in every phase all the same.
   */
  heartbeat(): void {
    if (this.#phase === "done") return;
    const ws = this.#o.ws;
    if (!this.#alive) {
      // No close handshake with a peer that does not answer: cut (close event 1006).
      ws.terminate();
      this.#end("heartbeat");
      return;
    }
    this.#alive = false;
    if (ws.readyState === ws.OPEN) ws.ping();
  }

  /** The relay is shutting down. */
  goAway(): void {
    this.#fail("GOING_AWAY", "");
  }

  #onFrame(bytes: Uint8Array | undefined): void {
    const frame = bytes ? decodeBridgeFrame(bytes) : undefined;
    if (this.#phase === "await-open" && frame?.kind === "OPEN") {
      this.#phase = "connecting";
      void this.#open(frame.address);
      return;
    }
    if (this.#phase === "open" && frame?.kind === "BLOCK") {
      const tls = this.#tls!;
      // A server that reads slowly stops the browser's side: ws stops reading its socket.
      if (!tls.write(frame.block) && !this.#draining) {
        this.#draining = true;
        this.#o.ws.pause();
        tls.once("drain", () => {
          this.#draining = false;
          this.#o.ws.resume();
        });
      }
      return;
    }
    this.#fail("MALFORMED", frame ? `${frame.kind} out of order` : "a frame that does not parse");
  }

  async #open(text: string): Promise<void> {
    const address = parseSmpServerAddress(text);
    if (!address) return this.#fail("BAD_ADDRESS", "expected smp://<fingerprint>@host[,host…][:port]");
    // SMP basic auth is for the server, inside NEW: the browser never names it to the bridge.
    if (address.password !== undefined)
      return this.#fail("BAD_ADDRESS", "the server's password stays in the browser");
    this.#fingerprint = address.fingerprint;
    // Several hosts name one server (docs/protocol/smp.md, "Addresses"): tried in order, each
    // with its own policy check and timeout; the first TLS connection up is the one checked.
    let failure: { reason: "DENIED" | "UNREACHABLE"; detail: string } | undefined;
    for (const host of smpHosts(address)) {
      this.#arm(); // the name's resolution
      const admission = await this.#o.policy.admit(host, address.port);
      if (this.#phase !== "connecting") return;
      if (!admission.ok) {
        if (!failure || admission.reason === "UNREACHABLE") failure = admission;
        continue;
      }
      clearTimeout(this.#timer); // #connect times itself, per host
      const tls = await this.#connect(host, admission.address, address.port);
      if (this.#phase !== "connecting") {
        tls?.destroy();
        return;
      }
      if (tls) {
        this.#arm();
        return this.#secured(tls);
      }
      failure = { reason: "UNREACHABLE", detail: "connection or TLS handshake failed" };
    }
    this.#fail(failure?.reason ?? "UNREACHABLE", failure?.detail ?? "no host to try");
  }

  /** One TLS connection to one host's checked address; undefined when it fails or times out. */
  #connect(host: string, ip: string, port: number): Promise<TLSSocket | undefined> {
    return new Promise((resolve) => {
      const tls = connect({
        host: ip,
        port,
        ...(host === ip ? {} : { servername: host }),
        ALPNProtocols: [SMP_ALPN],
        minVersion: "TLSv1.2" as const,
        // The server proves itself by its CA fingerprint (checked in #secured), not by a public CA.
        rejectUnauthorized: false,
      });
      this.#buffer = Buffer.alloc(0);
      let settled = false;
      const settle = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (ok) resolve(tls);
        else {
          tls.destroy();
          resolve(undefined);
        }
      };
      const timer = setTimeout(() => settle(false), this.#o.timeoutMs);
      this.#tls = tls;
      tls.setNoDelay(true);
      // A server host that vanished (no FIN, no RST) is found by TCP keepalive; the browser's own
      // SMP pings through the tunnel find it too, and close the tunnel from their side.
      tls.setKeepAlive(true, TLS_KEEPALIVE_MS);
      tls.once("secureConnect", () => settle(true));
      tls.on("data", (chunk: Buffer) => {
        if (this.#tls === tls) this.#fromServer(chunk);
      });
      tls.on("error", () => settle(false));
      tls.on("close", () => {
        if (!settled) return settle(false);
        if (this.#tls === tls && this.#phase !== "connecting") this.#fail("CLOSED", "");
      });
    });
  }

  #secured(tls: TLSSocket): undefined {
    if (this.#phase !== "connecting") return;
    const leaf = tls.getPeerCertificate(true);
    const ca = leaf?.issuerCertificate;
    if (!leaf?.raw || !ca?.raw || ca === leaf)
      return this.#fail("FINGERPRINT", "the server sent no CA certificate");
    const hash = createHash("sha256").update(ca.raw).digest();
    if (!timingSafeEqual(hash, Buffer.from(this.#fingerprint!)))
      return this.#fail("FINGERPRINT", "the CA certificate does not hash to the address's fingerprint");
    let signed = false;
    try {
      signed = new X509Certificate(leaf.raw).verify(new X509Certificate(ca.raw).publicKey);
    } catch {
      signed = false;
    }
    if (!signed) return this.#fail("FINGERPRINT", "the online certificate is not signed by the CA");
    this.#phase = "await-hello";
    this.#o.ws.send(encodeBridgeFrame({ kind: "READY", tls: tls.getProtocol() ?? "" }));
    // The hello comes from the server at once; a block already read is handled now.
    this.#fromServer(Buffer.alloc(0));
    return undefined;
  }

  #fromServer(chunk: Buffer): void {
    if (this.#phase !== "await-hello" && this.#phase !== "open") {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      return;
    }
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    while (
      this.#buffer.length >= SMP_BLOCK_SIZE &&
      (this.#phase === "await-hello" || this.#phase === "open")
    ) {
      const block = new Uint8Array(this.#buffer.subarray(0, SMP_BLOCK_SIZE));
      this.#buffer = this.#buffer.subarray(SMP_BLOCK_SIZE);
      if (this.#phase === "await-hello" && !this.#checkHello(block)) return;
      this.#o.ws.send(encodeBridgeFrame({ kind: "BLOCK", block }));
    }
    // The browser reads slowly: stop reading the server until ws has sent what it holds.
    const ws = this.#o.ws;
    const tls = this.#tls;
    if (tls && ws.bufferedAmount > WS_HIGH_WATER && !tls.isPaused()) {
      tls.pause();
      const resume = () => {
        if (this.#phase === "done") return;
        if (ws.bufferedAmount > WS_HIGH_WATER / 2) setTimeout(resume, 10);
        else tls.resume();
      };
      setTimeout(resume, 10);
    }
  }

  /** The server hello: parses, offers a version in 6–7, and is bound to this TLS connection. */
  #checkHello(block: Uint8Array): boolean {
    const tls = this.#tls!;
    const content = unpad(block);
    const hello = content ? decodeServerHello(content) : undefined;
    if (!hello) {
      this.#fail("VERSION", "the server hello does not parse");
      return false;
    }
    const { min, max } = hello.versions;
    if (max < SMP_VERSION_MIN || min > SMP_VERSION_MAX) {
      this.#fail(
        "VERSION",
        `the server serves SMP ${min}–${max}; this bridge carries ${SMP_VERSION_MIN}–${SMP_VERSION_MAX}`,
      );
      return false;
    }
    const binding = tls.getFinished();
    if (!binding || !timingSafeEqualSafe(hello.sessionId, binding)) {
      this.#fail("FINGERPRINT", "the hello's session id is not this TLS connection's");
      return false;
    }
    if (hello.auth) {
      const leaf = tls.getPeerCertificate(true);
      const [online, ca] = hello.auth.certChain;
      if (
        !online ||
        !ca ||
        !Buffer.from(online).equals(leaf.raw) ||
        !Buffer.from(ca).equals(leaf.issuerCertificate.raw)
      ) {
        this.#fail("FINGERPRINT", "the hello's certificates are not the TLS connection's");
        return false;
      }
    }
    clearTimeout(this.#timer);
    this.#phase = "open";
    return true;
  }
}

function timingSafeEqualSafe(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
