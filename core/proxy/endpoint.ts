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
import { concatBytes } from "../bytes.ts";
import { err, LoftError, type Result } from "../errors.ts";
import { ProxyClient, type ProxyClientOptions } from "./client.ts";
import { ProxyServer, type ProxyServerOptions } from "./server.ts";

export const CHANNEL_TO_SERVER = 0x00;
export const CHANNEL_TO_CLIENT = 0x01;

export class ProxyEndpoint {
  readonly client: ProxyClient;
  readonly server: ProxyServer;

  /**
   * `send` is the session's (one application message per call); `serve` is this side's serving
   * options (its handler, rate limit, log) with `peer` the session's authenticated contact id.
   */
  constructor(
    send: (message: Uint8Array) => void,
    serve: Omit<ProxyServerOptions, "send">,
    clientOptions: ProxyClientOptions = {},
  ) {
    this.client = new ProxyClient(
      (f) => send(concatBytes(Uint8Array.of(CHANNEL_TO_SERVER), f)),
      clientOptions,
    );
    this.server = new ProxyServer({
      ...serve,
      send: (f) => send(concatBytes(Uint8Array.of(CHANNEL_TO_CLIENT), f)),
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
