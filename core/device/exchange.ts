/**
 * Reading device messages from a session with a deadline, and refusing out-of-protocol ones — the
 * shared step of both sides of pairing (docs/device.md §5).
 */
import { isLoftError, LoftError, type LoftErrorCode } from "../errors.ts";
import type { Session } from "../session/session.ts";
import {
  type DeviceMessage,
  type DeviceMessageType,
  decodeDeviceMessage,
  encodeDeviceMessage,
} from "./messages.ts";

export function sendDeviceMessage(session: Session, m: DeviceMessage): void {
  session.send(encodeDeviceMessage(m));
}

/**
 * The next device message, which must be one of `expected`; anything else closes the session with
 * the failure's code (an unexpected type is LOFT_ERR_HANDSHAKE_STATE). A session our side closed
 * for a failure (LOFT_ERR_DECRYPT…) rejects with that code; a closed link with LOFT_ERR_LINK_CLOSED
 * naming the peer's reason; the deadline with LOFT_ERR_TIMEOUT.
 */
export async function expectDeviceMessage<T extends DeviceMessageType>(
  session: Session,
  expected: readonly T[],
  timeoutMs: number,
): Promise<Extract<DeviceMessage, { t: T }>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LoftError("LOFT_ERR_TIMEOUT", `no ${expected.join(" / ")} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    let bytes: Uint8Array;
    try {
      bytes = await Promise.race([session.receive(), deadline]);
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_LINK_CLOSED") {
        const info = await session.closed;
        // Closed by our own session for a reason it names (a frame that failed to decrypt…): keep it.
        if (info.reason.startsWith("LOFT_ERR_") && info.reason !== "LOFT_ERR_LINK_CLOSED")
          throw new LoftError(info.reason as LoftErrorCode, info.detail ?? info.reason);
        throw new LoftError("LOFT_ERR_LINK_CLOSED", info.detail ?? info.reason);
      }
      throw e;
    }
    const decoded = decodeDeviceMessage(bytes);
    if (!decoded.ok) throw decoded.error;
    if (!(expected as readonly string[]).includes(decoded.value.t))
      throw new LoftError(
        "LOFT_ERR_HANDSHAKE_STATE",
        `expected ${expected.join(" / ")}, got ${decoded.value.t}`,
      );
    return decoded.value as Extract<DeviceMessage, { t: T }>;
  } catch (e) {
    if (isLoftError(e) && e.code !== "LOFT_ERR_LINK_CLOSED") session.close(e.code, e.detail);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
