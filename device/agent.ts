/**
 * The device's side of the protocol (docs/device.md §5–§7), as firmware would run it: answer each
 * connection with the session handshake (responder, link kind "serial"), then pair (commit /
 * reveal, show the code), take provisioning, stream telemetry, obey a factory reset.
 *
 * Pure logic over a `SerialConnection` and a `DeviceStore`; the emulator (emulator.ts) wires it to
 * a serial port or TCP and a state file. Every core call is awaited.
 *
 * Through the relay (docs/device.md §13): `link` starts the device's ratchet with its owner and
 * stores the relay settings; from then on the device reads its owner's `dev.*` messages from
 * either path — its own relay connection (`OwnerUplink`, Wi-Fi: relay-uplink.ts) or the attached
 * browser (`relay-in`) — and sends its own through the cable while one is attached (`relay-out`:
 * the browser deposits them) and through its uplink otherwise.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, wipe } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
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
import type { DeviceLink, Provision } from "../core/device/messages.ts";
import { PAIRING_NONCE_BYTES, pairingCode, pairingCommit } from "../core/device/pairing-code.ts";
import {
  type DeviceAppMessage,
  decodeDeviceAppMessage,
  encodeDeviceAppMessage,
  startDeviceRatchet,
} from "../core/device/relay.ts";
import { isLoftError, LoftError } from "../core/errors.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  type UserIdentity,
} from "../core/identity/identity.ts";
import {
  canSend,
  deserializeRatchet,
  generateRatchetKeyPair,
  type RatchetState,
  ratchetDecrypt,
  ratchetEncrypt,
  serializeRatchet,
} from "../core/ratchet/index.ts";
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
  /** Relay settings and the ratchet with the owner, once linked (docs/device.md §13). */
  relay?: DeviceRelayState;
}

/** What `link` gave the device, and its ratchet with the owner (serialized, core/ratchet/state.ts). */
export interface DeviceRelayState {
  queue: DeviceLink["q"];
  mbox: DeviceLink["m"];
  ratchetId: Uint8Array;
  ratchet: Uint8Array;
}

/** The device's own way to the relay (Wi-Fi; relay-uplink.ts): deposits into the owner's mailbox. */
export interface OwnerUplink {
  /** One ratchet message into the owner's mailbox; rejects when the relay can't take it now. */
  send(message: Uint8Array): Promise<void>;
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
  /** The owner sent relay settings and a new ratchet started (`link`). */
  linked?: (relayUrl: string) => void;
  /** A message from the owner through the relay, read (`via`: the device's uplink or the cable). */
  fromOwner?: (t: string, via: "uplink" | "cable") => void;
  /** A message to the owner left (`via` "cable": handed to the attached browser) or was dropped. */
  toOwner?: (t: string, via: "uplink" | "cable" | "dropped") => void;
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
  /** Primitives for the ratchet (the emulator passes node:crypto's); noble when absent. */
  crypto?: CryptoProvider;
}

export const DEFAULT_DEVICE_CAPS = CAP_XXHFS | CAP_TELEMETRY | CAP_WIFI;

export class DeviceAgent {
  readonly #o: AgentOptions;
  #state!: DeviceState;
  #self!: UserIdentity;
  #session: Session | undefined;
  readonly #startedAt: number;
  readonly #led = { on: false };
  #uplink: OwnerUplink | undefined;
  /** Serializes every ratchet step and its state write (a crash never reuses a chain key). */
  #ratchetChain: Promise<unknown> = Promise.resolve();
  #detachedTimer: ReturnType<typeof setInterval> | undefined;
  #telemetryCount = 0;

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
    const timer =
      this.#o.telemetry === undefined
        ? undefined
        : setInterval(() => {
            if (session.state !== "open") return;
            try {
              sendDeviceMessage(session, {
                t: "telemetry",
                n: this.#nextTelemetry(),
                at: (this.#o.now ?? Date.now)(),
                r: this.#o.telemetry!.read(),
              });
            } catch {}
          }, period);
    try {
      for (;;) {
        const m = await expectDeviceMessage(session, ["reset", "cmd", "link", "relay-in"], 2 ** 31 - 1);
        if (m.t === "cmd") {
          sendDeviceMessage(session, { t: "out", id: m.id, ...this.#command(m.c) });
          continue;
        }
        if (m.t === "link") {
          await this.#link(session, m);
          continue;
        }
        if (m.t === "relay-in") {
          await this.fromOwner(m.b, "cable");
          if (session.state === "open") sendDeviceMessage(session, { t: "relay-took" });
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

  #command(line: string): { ok: boolean; m: string } {
    return runDeviceCommand(line, {
      state: this.#state,
      telemetry: this.#o.telemetry,
      uptimeMs: (this.#o.now ?? Date.now)() - this.#startedAt,
      led: this.#led,
    });
  }

  #nextTelemetry(): number {
    const n = this.#telemetryCount;
    this.#telemetryCount = (n + 1) >>> 0;
    return n;
  }

  /** In turn with every other ratchet step. */
  #inTurn<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#ratchetChain.then(task, task);
    this.#ratchetChain = run.catch(() => {});
    return run;
  }

  /**
   * `link`: store the relay settings and start a new ratchet as its responder (docs/device.md §13),
   * in one atomic state write, then answer with the ratchet key. A second `link` replaces both.
   */
  async #link(session: Session, m: DeviceLink): Promise<void> {
    await this.#inTurn(async () => {
      const keyPair = await generateRatchetKeyPair(undefined, this.#o.crypto);
      const started = await startDeviceRatchet(
        session,
        this.#self.identity.verified.identity_key,
        { ratchetKeyPair: keyPair },
        this.#o.crypto,
      );
      if (!started.ok) throw started.error;
      const relay: DeviceRelayState = {
        queue: m.q,
        mbox: m.m,
        ratchetId: started.value.id,
        ratchet: serializeRatchet(started.value.state),
      };
      await this.#save({ ...this.#state, relay });
      sendDeviceMessage(session, { t: "linked", k: new Uint8Array(keyPair.publicKey) });
    });
    this.#o.events?.linked?.(m.q.u);
  }

  async #save(state: DeviceState): Promise<void> {
    await this.#o.store.save(state);
    this.#state = state;
  }

  /** The relay settings once linked (the emulator opens its uplink with them). */
  get relay(): DeviceRelayState | undefined {
    return this.#state.relay;
  }

  /** The device's own relay connection (Wi-Fi), or none. */
  useUplink(uplink: OwnerUplink | undefined): void {
    this.#uplink = uplink;
  }

  /**
   * One ratchet message from the owner, from the relay (the uplink) or down the cable
   * (`relay-in`). A message that does not decrypt (a copy already read, a ratchet the owner
   * replaced) is dropped; a command is answered through the same ways back. Never rejects.
   */
  async fromOwner(message: Uint8Array, via: "uplink" | "cable"): Promise<void> {
    const app = await this.#inTurn(async () => {
      const relay = this.#state.relay;
      if (!relay) return undefined;
      const state = this.#ratchetOf(relay);
      if (!state) return undefined;
      const opened = await ratchetDecrypt(state, message, Date.now(), this.#cryptoOption());
      if (!opened.ok) return undefined;
      await this.#save({
        ...this.#state,
        relay: { ...relay, ratchet: serializeRatchet(opened.value.state) },
      });
      const m = decodeDeviceAppMessage(opened.value.plaintext);
      wipe(opened.value.plaintext);
      return m.ok ? m.value : undefined;
    }).catch(() => undefined);
    if (!app) return;
    this.#o.events?.fromOwner?.(app.t, via);
    if (app.t === "dev.cmd") await this.toOwner({ t: "dev.out", id: app.id, ...this.#command(app.c) });
  }

  #cryptoOption(): { crypto?: CryptoProvider } {
    return this.#o.crypto ? { crypto: this.#o.crypto } : {};
  }

  #ratchetOf(relay: DeviceRelayState): RatchetState | undefined {
    const r = deserializeRatchet(relay.ratchet);
    return r.ok ? r.value : undefined;
  }

  /**
   * One message to the owner through the relay: sealed with the ratchet (its new state stored
   * before the ciphertext leaves), then handed to the attached browser if a session is open on the
   * cable, else to the uplink. Resolves with the way it went ("dropped": no way now, or the
   * ratchet can't send yet — the owner's first message has not arrived).
   */
  async toOwner(m: DeviceAppMessage): Promise<"uplink" | "cable" | "dropped"> {
    const session = this.#session?.state === "open" ? this.#session : undefined;
    const uplink = this.#uplink;
    let via: "uplink" | "cable" | "dropped" = "dropped";
    if (session || uplink)
      via = await this.#inTurn(async () => {
        const relay = this.#state.relay;
        const state = relay && this.#ratchetOf(relay);
        if (!relay || !state || !canSend(state)) return "dropped";
        const plaintext = encodeDeviceAppMessage(m);
        const sealed = await ratchetEncrypt(state, plaintext, Date.now(), this.#cryptoOption());
        wipe(plaintext);
        await this.#save({ ...this.#state, relay: { ...relay, ratchet: serializeRatchet(sealed.state) } });
        if (session && session.state === "open") {
          sendDeviceMessage(session, { t: "relay-out", b: new Uint8Array(sealed.message) });
          return "cable";
        }
        if (!uplink) return "dropped";
        await uplink.send(sealed.message);
        return "uplink";
      }).catch(() => "dropped" as const);
    this.#o.events?.toOwner?.(m.t, via);
    return via;
  }

  /**
   * Telemetry while no cable is attached: every `telemetryMs` a `dev.telemetry` through the
   * uplink (attached, telemetry goes over the cable, §7).
   */
  startDetachedTelemetry(): void {
    const source = this.#o.telemetry;
    if (!source || this.#detachedTimer !== undefined) return;
    this.#detachedTimer = setInterval(() => {
      if (this.#session?.state === "open" || !this.#uplink || !this.#state.relay) return;
      void this.toOwner({
        t: "dev.telemetry",
        n: this.#nextTelemetry(),
        at: (this.#o.now ?? Date.now)(),
        r: source.read(),
      });
    }, this.#o.telemetryMs ?? 1000);
  }

  stop(): void {
    if (this.#detachedTimer !== undefined) clearInterval(this.#detachedTimer);
    this.#detachedTimer = undefined;
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
    this.#uplink = undefined;
    this.#o.events?.reset?.();
  }

  /** The live session, if a connection is being served (tests). */
  get session(): Session | undefined {
    return this.#session;
  }
}
