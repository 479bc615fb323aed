/**
 * Both proxy roles on one session (docs/protocol/proxy.md §Carrying frames over a session). Either
 * contact may request from the other over the same session, and DATA, END, CREDIT and RESET look
 * the same in both directions — so each proxy message carries one channel byte before the frame:
 *
 *   0x00 ‖ frame   from the sender's requesting side, for the receiver's serving side
 *   0x01 ‖ frame   from the sender's serving side, for the receiver's requesting side
 *
 * `receive` routes by that byte; a message with any other first byte, or empty, is
 * LOFT_ERR_UNKNOWN_TYPE / LOFT_ERR_MALFORMED, and the session must close.
 */
import { err, LoftError, type Result } from "../errors.ts";
import { ProxyClient, type ProxyClientOptions } from "./client.ts";
import { type FrameParts, LEGACY_CHUNK, MAX_CHUNK } from "./frames.ts";
import { ProxyServer, type ProxyServerOptions } from "./server.ts";

/**
 * Session handshake extension (docs/protocol/proxy.md, "DATA size"): the largest DATA body this
 * side accepts, u32 big-endian. A peer that does not send it accepts LEGACY_CHUNK.
 */
export const PROXY_DATA_EXTENSION = "proxy.data";

/** The extension every session that carries PROXY frames sends: we accept DATA up to MAX_CHUNK. */
export function proxyDataExtension(): Record<string, Uint8Array> {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, MAX_CHUNK);
  return { [PROXY_DATA_EXTENSION]: value };
}

/**
 * The largest DATA body to send to a peer, from its handshake extensions: what it announced, at
 * most MAX_CHUNK; LEGACY_CHUNK when it announced nothing, or anything but 4 bytes holding 1…2³²−1
 * (a malformed value is read as no announcement: the peer only limits what it is sent).
 */
export function peerChunkLimit(extensions: Readonly<Record<string, Uint8Array>>): number {
  const value = peerValue(extensions, PROXY_DATA_EXTENSION);
  if (value?.length !== 4) return LEGACY_CHUNK;
  const announced = new DataView(value.buffer, value.byteOffset, 4).getUint32(0);
  return announced === 0 ? LEGACY_CHUNK : Math.min(announced, MAX_CHUNK);
}

/**
 * Session handshake extension (docs/protocol/proxy.md, "Body-less requests"): what this side's
 * serving side reads beyond version 1's frames, one byte of flags. Bit 0x01: a REQUEST whose
 * method byte has NO_BODY set (frames.ts) — no request body, no END. Other bits are reserved:
 * sent 0, ignored. A peer that does not send it, or sends anything but exactly one byte, reads
 * none of them.
 */
export const PROXY_FLAGS_EXTENSION = "proxy.flags";
/** `proxy.flags` bit: this side's serving side takes REQUEST's NO_BODY. */
export const FLAG_NO_BODY = 0x01;

/** The extension every session that carries PROXY frames sends: we read NO_BODY. */
export function proxyFlagsExtension(): Record<string, Uint8Array> {
  return { [PROXY_FLAGS_EXTENSION]: Uint8Array.of(FLAG_NO_BODY) };
}

/**
 * Whether the peer's serving side reads REQUEST's NO_BODY, from its handshake extensions: only
 * when it announced `proxy.flags` as exactly one byte with FLAG_NO_BODY set (anything else is
 * read as no announcement, as `peerChunkLimit` does: the value only limits what its sender is sent).
 */
export function peerReadsNoBody(extensions: Readonly<Record<string, Uint8Array>>): boolean {
  const value = peerValue(extensions, PROXY_FLAGS_EXTENSION);
  return value?.length === 1 && (value[0]! & FLAG_NO_BODY) !== 0;
}

/** The peer's value of extension `name`: its own property, and bytes (anything else: not announced). */
function peerValue(extensions: Readonly<Record<string, Uint8Array>>, name: string): Uint8Array | undefined {
  const value = Object.hasOwn(extensions, name) ? extensions[name] : undefined;
  return value instanceof Uint8Array ? value : undefined;
}

export const CHANNEL_TO_SERVER = 0x00;
export const CHANNEL_TO_CLIENT = 0x01;
const TO_SERVER = Uint8Array.of(CHANNEL_TO_SERVER);
const TO_CLIENT = Uint8Array.of(CHANNEL_TO_CLIENT);

export class ProxyEndpoint {
  readonly client: ProxyClient;
  readonly server: ProxyServer;

  /**
   * `send` is the session's: one application message per call, as the parts whose concatenation
   * it is (the channel byte, then the frame's parts: a DATA body is never copied on its way to the
   * session). `serve` is this side's serving options (its handler, rate limit, log) with `peer`
   * the session's authenticated contact id.
   */
  constructor(
    send: (message: FrameParts) => void,
    serve: Omit<ProxyServerOptions, "send">,
    clientOptions: ProxyClientOptions = {},
  ) {
    this.client = new ProxyClient((f) => send([TO_SERVER, ...f]), clientOptions);
    this.server = new ProxyServer({
      ...serve,
      send: (f) => send([TO_CLIENT, ...f]),
    });
  }

  /** One proxy message from the session. An error means the session must close (then call `close`). */
  receive(message: Uint8Array): Result<void> {
    if (message.length === 0) return err("LOFT_ERR_MALFORMED", "proxy message: empty");
    const frame = message.subarray(1);
    if (message[0] === CHANNEL_TO_SERVER) return this.server.receive(frame);
    if (message[0] === CHANNEL_TO_CLIENT) return this.client.receive(frame);
    return err("LOFT_ERR_UNKNOWN_TYPE", `proxy channel ${message[0]}`);
  }

  /** The session closed: every request in both directions ends. */
  close(error = new LoftError("LOFT_ERR_LINK_CLOSED", "session closed")): void {
    this.client.close(error);
    this.server.close(error);
  }
}
