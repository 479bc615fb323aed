/**
 * The device's side of the protocol (docs/device.md §5–§7), as firmware would run it: answer each
 * connection with the session handshake (responder, link kind "serial"), then pair (commit /
 * reveal, show the code), take provisioning, stream telemetry, obey a factory reset.
 *
 * Pure logic over a `SerialConnection` and a `DeviceStore`; the emulator (emulator.ts) wires it to
 * a serial port or TCP and a state file. Every core call is awaited.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, wipe } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { SerialConnection } from "../core/device/endpoint.ts";
import { expectDeviceMessage, sendDeviceMessage } from "../core/device/exchange.ts";
import {
  CAP_TELEMETRY,
  CAP_WIFI,
  CAP_XXHFS,
  negotiatedProtocol,
  STATE_PAIRED,
  STATE_UNPAIRED,
} from "../core/device/hello.ts";
import type { Provision } from "../core/device/messages.ts";
import { PAIRING_NONCE_BYTES, pairingCode, pairingCommit } from "../core/device/pairing-code.ts";
import { isLoftError, LoftError } from "../core/errors.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  type UserIdentity,
} from "../core/identity/identity.ts";
import { establishSession, type Session } from "../core/session/session.ts";
import { runDeviceCommand } from "./commands.ts";

/** What a device keeps across reboots (in flash on hardware, a file in the emulator). */
export interface DeviceState {
  /** 32-byte seed of the device identity, generated on the device. */
  seed: Uint8Array;
  created: number;
  username: string;
  /** The owner's encoded Identity once paired. */
  owner?: Uint8Array;
  protocol?: "XXhfs" | "XX";
  provision?: Omit<Provision, "t" | "owner">;
}

export interface DeviceStore {
  load(): Promise<DeviceState | undefined>;
  /** Must replace the whole state atomically (a reset mid-write leaves the old or the new state). */
  save(state: DeviceState): Promise<void>;
}

export interface DeviceEvents {
  /** The pairing code to show on the console or display. */
  code?: (code: string, protocol: "XXhfs" | "XX") => void;
  paired?: (owner: string) => void;
  reset?: () => void;
  /** A connection ended; `reason` is the LoftError code or the peer's close reason. */
  ended?: (reason: string) => void;
}

export interface TelemetrySource {
  /** One reading set, e.g. { "temp.c": 21.5 }. */
  read(): Record<string, number>;
}

export interface AgentOptions {
  store: DeviceStore;
  /** The capabilities this device announces (CAP_XXHFS | CAP_TELEMETRY | CAP_WIFI by default). */
  caps?: number;
  events?: DeviceEvents;
  telemetry?: TelemetrySource;
  telemetryMs?: number;
  stepTimeoutMs?: number;
  now?: () => number;
  /** A device with a button (CAP_CONFIRM_INPUT) resolves true when the technician pressed it. */
  localConfirm?: () => Promise<boolean>;
}

export const DEFAULT_DEVICE_CAPS = CAP_XXHFS | CAP_TELEMETRY | CAP_WIFI;

export class DeviceAgent {
  readonly #o: AgentOptions;
  #state!: DeviceState;
  #self!: UserIdentity;
  #session: Session | undefined;
  readonly #startedAt: number;
  readonly #led = { on: false };

  private constructor(o: AgentOptions) {
    this.#o = o;
    this.#startedAt = (o.now ?? Date.now)();
  }

  /** Load the state, or make a fresh identity (is_machine_account) and save it. */
  static async start(o: AgentOptions & { username?: string }): Promise<DeviceAgent> {
    const agent = new DeviceAgent(o);
    const loaded = await o.store.load();
    agent.#state = loaded ?? (await agent.#fresh(o.username ?? "Loft device"));
    agent.#self = await agent.#identityFrom(agent.#state);
    return agent;
  }

  async #fresh(username: string): Promise<DeviceState> {
    const state: DeviceState = { seed: randomBytes(32), created: (this.#o.now ?? Date.now)(), username };
    await this.#o.store.save(state);
    return state;
  }

  /** Awaited: core identity calls may become async (the crypto seam). */
  async #identityFrom(s: DeviceState): Promise<UserIdentity> {
    return await createUserIdentity({
      username: s.username,
      now: s.created,
      seed: s.seed,
      flags: { is_machine_account: true },
    });
  }

  get identity(): UserIdentity {
    return this.#self;
  }

  get paired(): boolean {
    return this.#state.owner !== undefined;
  }

  get helloState(): typeof STATE_PAIRED | typeof STATE_UNPAIRED {
    return this.paired ? STATE_PAIRED : STATE_UNPAIRED;
  }

  get provision(): DeviceState["provision"] {
    return this.#state.provision;
  }

  /** Serve one connection until it ends; never rejects (the outcome goes to `events.ended`). */
  async serve(connection: SerialConnection): Promise<string> {
    let reason = "closed";
    try {
      await this.#run(connection);
      reason = (await connection.link.closed).reason;
    } catch (e) {
      reason = isLoftError(e) ? e.code : "LOFT_ERR_HANDSHAKE_STATE";
      if (connection.link.state !== "closed")
        connection.link.close(reason, isLoftError(e) ? e.message : undefined);
    } finally {
      this.#session = undefined;
    }
    this.#o.events?.ended?.(reason);
    return reason;
  }

  async #run(connection: SerialConnection): Promise<void> {
    const stepTimeoutMs = this.#o.stepTimeoutMs ?? 30_000;
    const owner =
      this.#state.owner === undefined ? undefined : await decodeIdentity(nobleCrypto, this.#state.owner);
    if (owner !== undefined && !owner.ok) throw owner.error;
    const protocol = negotiatedProtocol(connection.owner, connection.device);
    if (this.#state.protocol !== undefined && protocol !== this.#state.protocol)
      throw new LoftError(
        "LOFT_ERR_UNSUPPORTED_VERSION",
        `paired with ${this.#state.protocol}, offered ${protocol}`,
      );
    // A paired device only completes a handshake with its owner (re-pairing needs a factory reset).
    const session = await establishSession({
      link: connection.link,
      role: "responder",
      kind: "serial",
      self: this.#self,
      protocol,
      exportLabels: [],
      ...(owner ? { expectedIdentityKey: owner.value.verified.identity_key } : {}),
    });
    this.#session = session;
    if (owner) sendDeviceMessage(session, { t: "ready" });
    else await this.#pair(session, connection, protocol, stepTimeoutMs);
    await this.#operate(session);
  }

  async #pair(
    session: Session,
    c: SerialConnection,
    protocol: "XXhfs" | "XX",
    stepTimeoutMs: number,
  ): Promise<void> {
    const h = session.handshakeHash;
    const deviceNonce = randomBytes(PAIRING_NONCE_BYTES);
    try {
      sendDeviceMessage(session, { t: "commit", c: new Uint8Array(pairingCommit(h, deviceNonce)) });
      const nonce = await expectDeviceMessage(session, ["nonce"], stepTimeoutMs);
      sendDeviceMessage(session, { t: "reveal", n: new Uint8Array(deviceNonce) });
      const code = pairingCode({
        handshakeHash: h,
        ownerNonce: nonce.n,
        deviceNonce,
        ownerHello: c.ownerHello,
        deviceHello: c.deviceHello,
      });
      this.#o.events?.code?.(code, protocol);
      const answer = await expectDeviceMessage(session, ["confirm", "abort"], stepTimeoutMs * 10);
      if (answer.t === "abort")
        throw new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "the owner saw a different code");
      if (this.#o.localConfirm && !(await this.#o.localConfirm()))
        throw new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "the technician refused the code on the device");
      const p = await expectDeviceMessage(session, ["provision"], stepTimeoutMs);
      const ownerBytes = encodeIdentity(session.remoteIdentity);
      if (!equalBytes(p.owner, ownerBytes))
        throw new LoftError("LOFT_ERR_HANDSHAKE_IDENTITY", "provisioned owner is not the session's peer");
      const { t: _t, owner: _owner, ...rest } = p;
      await this.#o.store.save({ ...this.#state, owner: ownerBytes, protocol, provision: rest });
      this.#state = { ...this.#state, owner: ownerBytes, protocol, provision: rest };
      sendDeviceMessage(session, { t: "provisioned" });
      this.#o.events?.paired?.(session.remoteIdentity.verified.username);
    } finally {
      wipe(deviceNonce, h);
    }
  }

  async #operate(session: Session): Promise<void> {
    const period = this.#o.telemetryMs ?? 1000;
    let n = 0;
    const timer =
      this.#o.telemetry === undefined
        ? undefined
        : setInterval(() => {
            if (session.state !== "open") return;
            try {
              sendDeviceMessage(session, {
                t: "telemetry",
                n: n++,
                at: (this.#o.now ?? Date.now)(),
                r: this.#o.telemetry!.read(),
              });
            } catch {}
          }, period);
    try {
      for (;;) {
        const m = await expectDeviceMessage(session, ["reset", "cmd"], 2 ** 31 - 1);
        if (m.t === "cmd") {
          const out = runDeviceCommand(m.c, {
            state: this.#state,
            telemetry: this.#o.telemetry,
            uptimeMs: (this.#o.now ?? Date.now)() - this.#startedAt,
            led: this.#led,
          });
          sendDeviceMessage(session, { t: "out", id: m.id, ...out });
          continue;
        }
        if (m.t === "reset") {
          await this.factoryReset();
          sendDeviceMessage(session, { t: "reset-done" });
          session.close("factory-reset");
          return;
        }
      }
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_LINK_CLOSED") return;
      throw e;
    } finally {
      if (timer !== undefined) clearInterval(timer);
    }
  }

  /** Forget the owner and the provisioning, and make a new identity (a button held at boot on hardware). */
  async factoryReset(): Promise<void> {
    const fresh: DeviceState = {
      seed: randomBytes(32),
      created: (this.#o.now ?? Date.now)(),
      username: this.#state.username,
    };
    await this.#o.store.save(fresh);
    wipe(this.#state.seed, this.#self.privateIdentityKey, this.#self.privateNoiseKey);
    this.#state = fresh;
    this.#self = await this.#identityFrom(fresh);
    this.#o.events?.reset?.();
  }

  /** The live session, if a connection is being served (tests). */
  get session(): Session | undefined {
    return this.#session;
  }
}
