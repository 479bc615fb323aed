/**
 * The owner's side of pairing and provisioning a device (docs/device.md §5–§6): what the PWA's
 * "Pair a device" screen runs over Web Serial and what the Node tests run over a pty or TCP. It
 * needs no DOM and no Node built-in.
 *
 *   connect (HELLO) → handshake (Noise over the serial link, kind "serial") → commit / nonce /
 *   reveal → code shown, technician compares → confirm → provision → provisioned
 *
 * Every core call is awaited, even those that are synchronous today (the crypto seam is becoming
 * async). A failure rejects with a LoftError and closes the session; nothing is provisioned unless
 * the technician confirmed the code, and nothing crosses the cable in clear but the HELLOs and
 * the Noise handshake.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, wipe } from "../bytes.ts";
import { isLoftError, LoftError } from "../errors.ts";
import { encodeIdentity, type Identity, type UserIdentity } from "../identity/identity.ts";
import { establishSession, type Session } from "../session/session.ts";
import type { SerialConnection } from "./endpoint.ts";
import { expectDeviceMessage, sendDeviceMessage } from "./exchange.ts";
import { negotiatedProtocol, STATE_PAIRED } from "./hello.ts";
import type { Provision } from "./messages.ts";
import { checkPairingCommit, PAIRING_NONCE_BYTES, pairingCode } from "./pairing-code.ts";

/** Steps of the pairing stepper, in order (the PWA shows them). */
export type PairingStep = "handshake" | "code" | "provision" | "done";

export interface PairingInfo {
  code: string;
  /** "XXhfs" (post-quantum hybrid) or "XX" — shown to the technician. */
  protocol: "XXhfs" | "XX";
  protocolName: string;
  deviceName: string;
  /** The device's HELLO capabilities (CAP_*): with CAP_CONFIRM_INPUT it waits for its button too. */
  deviceCaps: number;
  device: Identity;
}

export interface PairOptions {
  connection: SerialConnection;
  self: UserIdentity;
  /** Show the code and resolve true once the technician says it matches the device's. */
  confirmCode: (info: PairingInfo) => Promise<boolean>;
  /** What to send the device; `owner` is filled in from `self`. */
  provision?: Omit<Provision, "t" | "owner">;
  onStep?: (step: PairingStep) => void;
  /** Deadline for each message of the device. Default 10 s. */
  stepTimeoutMs?: number;
  handshakeTimeoutMs?: number;
}

export interface PairedDevice {
  session: Session;
  info: PairingInfo;
}

/** Pair an unpaired device: resolves once it confirmed provisioning, with the open session. */
export async function pairDevice(o: PairOptions): Promise<PairedDevice> {
  const { connection } = o;
  const stepTimeoutMs = o.stepTimeoutMs ?? 10_000;
  const protocol = negotiatedProtocol(connection.owner, connection.device);
  o.onStep?.("handshake");
  const session = await establishSession({
    link: connection.link,
    role: "initiator",
    kind: "serial",
    self: o.self,
    protocol,
    ...(o.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: o.handshakeTimeoutMs }),
  });
  const ownerNonce = randomBytes(PAIRING_NONCE_BYTES);
  const h = session.handshakeHash;
  try {
    const device = session.remoteIdentity;
    if (!device.verified.flags.is_machine_account)
      throw new LoftError(
        "LOFT_ERR_BAD_IDENTITY",
        "the peer is not a device (is_machine_account is not set)",
      );
    const first = await expectDeviceMessage(session, ["commit", "ready"], stepTimeoutMs).catch(
      (e: unknown) => {
        // The device refused our identity in the handshake: it belongs to someone else.
        if (isLoftError(e) && e.code === "LOFT_ERR_LINK_CLOSED" && connection.device.state === STATE_PAIRED)
          throw new LoftError(
            "LOFT_ERR_HANDSHAKE_IDENTITY",
            "the device is paired to another owner: factory-reset it to pair again",
          );
        throw e;
      },
    );
    if (first.t === "ready")
      throw new LoftError(
        "LOFT_ERR_HANDSHAKE_STATE",
        "the device is already paired to this identity: reconnect instead",
      );
    sendDeviceMessage(session, { t: "nonce", n: ownerNonce });
    const reveal = await expectDeviceMessage(session, ["reveal"], stepTimeoutMs);
    if (!checkPairingCommit(first.c, h, reveal.n))
      throw new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "the device's nonce does not match its commitment");
    const info: PairingInfo = {
      code: pairingCode({
        handshakeHash: h,
        ownerNonce,
        deviceNonce: reveal.n,
        ownerHello: connection.ownerHello,
        deviceHello: connection.deviceHello,
      }),
      protocol,
      protocolName: session.protocolName,
      deviceName: connection.device.name,
      deviceCaps: connection.device.caps,
      device,
    };
    o.onStep?.("code");
    // The technician may take minutes; a cable pulled meanwhile ends pairing now, not after
    // they answer (docs/device.md §8: "cable pulled mid-way").
    const ended = session.closed.then((c): never => {
      throw new LoftError(
        "LOFT_ERR_LINK_CLOSED",
        `the device went away while the code was shown: ${c.detail ?? c.reason}`,
      );
    });
    ended.catch(() => {}); // after pairing, the session closing is no failure
    if (!(await Promise.race([o.confirmCode(info), ended]))) {
      sendDeviceMessage(session, { t: "abort", m: "the technician saw different codes" });
      throw new LoftError(
        "LOFT_ERR_HANDSHAKE_IDENTITY",
        "pairing codes differ: the device was not provisioned",
      );
    }
    o.onStep?.("provision");
    sendDeviceMessage(session, { t: "confirm" });
    sendDeviceMessage(session, {
      t: "provision",
      owner: new Uint8Array(encodeIdentity(o.self.identity)),
      ...(o.provision ?? {}),
    });
    await expectDeviceMessage(session, ["provisioned"], stepTimeoutMs);
    o.onStep?.("done");
    return { session, info };
  } catch (e) {
    if (session.state !== "closed") session.close(isLoftError(e) ? e.code : "LOFT_ERR_HANDSHAKE_STATE");
    throw e;
  } finally {
    wipe(ownerNonce, h);
  }
}

export interface ReconnectOptions {
  connection: SerialConnection;
  self: UserIdentity;
  /** The device's identity key, from pairing. */
  deviceIdentityKey: Uint8Array;
  /** The protocol agreed at pairing: a HELLO that now offers less is refused (downgrade). */
  pinnedProtocol: "XXhfs" | "XX";
  stepTimeoutMs?: number;
}

/** Reconnect to a device this owner paired: no code, the identities are already trusted. */
export async function reconnectDevice(o: ReconnectOptions): Promise<Session> {
  const protocol = negotiatedProtocol(o.connection.owner, o.connection.device);
  if (protocol !== o.pinnedProtocol) {
    o.connection.link.close("LOFT_ERR_UNSUPPORTED_VERSION", "protocol downgrade");
    throw new LoftError(
      "LOFT_ERR_UNSUPPORTED_VERSION",
      `the device offers ${protocol}, it was paired with ${o.pinnedProtocol}`,
    );
  }
  const paired = o.connection.device.state === STATE_PAIRED;
  const session = await establishSession({
    link: o.connection.link,
    role: "initiator",
    kind: "serial",
    self: o.self,
    protocol,
    expectedIdentityKey: o.deviceIdentityKey,
  }).catch((e: unknown): never => {
    // Another identity answered (docs/device.md §7): a device paired to someone else, or this
    // device after a factory reset (a new identity) — its HELLO says which.
    if (
      isLoftError(e) &&
      (e.code === "LOFT_ERR_HANDSHAKE_IDENTITY" || e.code === "LOFT_ERR_NOISE_KEY_MISMATCH")
    )
      throw new LoftError(
        "LOFT_ERR_HANDSHAKE_IDENTITY",
        paired
          ? "another identity answered: the device on this port is paired to another owner"
          : "another identity answered and it is not paired: the device was factory-reset (a new identity) or is another device",
      );
    throw e;
  });
  await expectDeviceMessage(session, ["ready"], o.stepTimeoutMs ?? 10_000).catch((e: unknown): never => {
    // The device closed the link refusing our identity at message 3: it has another owner.
    if (
      isLoftError(e) &&
      e.code === "LOFT_ERR_LINK_CLOSED" &&
      e.message.includes("LOFT_ERR_HANDSHAKE_IDENTITY")
    )
      throw new LoftError(
        "LOFT_ERR_HANDSHAKE_IDENTITY",
        "the device refused this identity: it is paired to another owner; factory-reset it to pair again",
      );
    throw e;
  });
  if (!equalBytes(session.remoteIdentity.verified.identity_key, o.deviceIdentityKey))
    throw new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "unexpected device");
  return session;
}
