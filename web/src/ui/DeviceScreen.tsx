/**
 * A paired device as a contact (docs/device.md §12, docs/user-guide.md): what it is, whether it
 * is attached to this browser's cable, live telemetry and a small command console while it is.
 * Attaching reconnects without a code (the device's identity key and protocol were pinned at
 * pairing) and bridges the device to the relay. Not attached, the screen shows what the device
 * sent through the relay and runs console lines through it (docs/device.md §13).
 */
import { createEffect, createSignal, For, on, onCleanup, Show } from "solid-js";
import {
  attachedDevice,
  bridgeAttached,
  bridgeState,
  commandThroughRelay,
  detach,
  deviceDetachReason,
  keepAttached,
  onRelayedAnswer,
  relayedReading,
} from "../app/devices.ts";
import type { AppModel } from "../app/model.ts";
import { problemText } from "../app/problems.ts";
import { attachOverSerial, type TelemetryReading } from "../device/attached-device.ts";
import { runConsoleCommand } from "../device/console.ts";
import { type DeviceProblem, describeDeviceError } from "../device/problems.ts";
import { choosePort, DEFAULT_BAUD_RATE, webSerial } from "../device/web-serial.ts";
import { Back } from "./Back.tsx";
import { inlineConfirm } from "./confirm.ts";
import { timeLabel } from "./format.ts";
import { BaudRateField } from "./PairDevice.tsx";

const MAX_CONSOLE_LINES = 200;

export function DeviceScreen(props: { app: AppModel; id: string }) {
  const app = props.app;
  const view = () => app.contact(props.id);
  const info = () => view()?.record.device;
  const attached = () => attachedDevice(props.id);
  const serial = webSerial();
  const [baud, setBaud] = createSignal(DEFAULT_BAUD_RATE);
  const [attaching, setAttaching] = createSignal(false);
  const [problem, setProblem] = createSignal<DeviceProblem | undefined>();
  const [reading, setReading] = createSignal<TelemetryReading | undefined>();
  const [lines, setLines] = createSignal<string[]>([]);
  const [command, setCommand] = createSignal("");

  // Follow the attached device's telemetry (a new attachment replaces the subscription).
  createEffect(
    on(attached, (device) => {
      setReading(device?.recent.at(-1));
      if (!device) return;
      const stop = device.onTelemetry((r) => setReading(r));
      onCleanup(stop);
    }),
  );

  const attach = async () => {
    const me = app.user();
    const v = view();
    const d = info();
    if (!serial || !me || !v || !d || attaching()) return;
    setAttaching(true);
    setProblem(undefined);
    try {
      const port = await choosePort(serial);
      const device = await attachOverSerial({
        port,
        baudRate: baud(),
        self: me,
        deviceIdentityKey: v.identity.verified.identity_key,
        pinnedProtocol: d.protocol,
      });
      keepAttached(props.id, device);
      void bridgeAttached(app.deviceRelay(), me.identity.verified.identity_key, props.id, device);
    } catch (e) {
      setProblem(describeDeviceError(e, "attached"));
    } finally {
      setAttaching(false);
    }
  };

  const print = (out: string[]) => setLines((l) => [...l, ...out].slice(-MAX_CONSOLE_LINES));
  // Answers to commands sent through the relay (also those that came while this screen was closed).
  onCleanup(
    onRelayedAnswer(props.id, (out) =>
      print([`(through the relay, #${out.id})`, ...(out.ok ? out.m.split("\n") : [`! ${out.m}`])]),
    ),
  );
  const linked = () => {
    bridgeState(props.id); // re-read once the bridge links the device
    return app.deviceRelay()?.isLinked(props.id) === true;
  };
  /** Not attached: a line runs on the device through the relay (docs/device.md §13). */
  const runThroughRelay = async (line: string) => {
    const [word = ""] = line.trim().split(/\s+/);
    print([`> ${line.slice(0, 200)}`]);
    const name = word.toLowerCase();
    if (name === "") return;
    if (name === "status" || name === "detach" || name === "reset") {
      print(["the device is not attached: attach it over USB for this command"]);
      return;
    }
    if (name === "telemetry") {
      const r = relayedReading(props.id);
      print(
        r
          ? Object.entries(r.r).map(([k, v]) => `${k.padEnd(16)}${v}`)
          : ["no telemetry through the relay yet"],
      );
      return;
    }
    const any = app.deviceRelay();
    const relay = any?.isLinked(props.id) ? any : undefined;
    if (!relay) {
      print(["the device is not attached and not linked to your relay: attach it over USB once"]);
      return;
    }
    try {
      const n = await commandThroughRelay(relay, props.id, line.trim());
      print([`sent through your relay (#${n}); the device answers when it next reads its queue`]);
    } catch (err) {
      print([`! ${(err as Error).message}`]);
    }
  };
  const run = async (e: Event) => {
    e.preventDefault();
    const device = attached();
    const line = command();
    setCommand("");
    if (!device) return runThroughRelay(line);
    const result = runConsoleCommand(device, line);
    print([`> ${line.slice(0, 200)}`, ...result.lines]);
    if (result.action === "device") {
      const answer = await device.command(line);
      print(answer.ok ? answer.m.split("\n") : [`! ${answer.m}`]);
    }
    if (result.action === "detach") detach(props.id);
    if (result.action === "reset") {
      await device.factoryReset();
      print(["the device was reset: it is a new identity now; pair it again to use it"]);
    }
  };

  const ended = () => problem() ?? deviceDetachReason(props.id);
  /** Attached: the cable's latest reading; otherwise the latest one that came through the relay. */
  const shown = (): (TelemetryReading & { via: "cable" | "relay" }) | undefined => {
    const live = attached() ? reading() : undefined;
    if (live) return { ...live, via: "cable" };
    const r = relayedReading(props.id);
    return r && !attached() ? { ...r, via: "relay" } : undefined;
  };
  const [forgetting, setForgetting] = createSignal(false);
  const forgetDialog = inlineConfirm(() => setForgetting(false));
  // A forget the storage refused (a full disk): the device stays a contact, the screen says why
  // and Forget can be tried again — as Contact's Delete (ui/Contact.tsx); it was an unhandled
  // rejection with the question left open. The cable let go stays let go (Attach again).
  const [forgetError, setForgetError] = createSignal<string>();
  const forget = async () => {
    detach(props.id);
    try {
      await app.deleteContact(props.id);
      app.go({ name: "home" }, { replace: true });
    } catch (e) {
      forgetDialog.cancel();
      setForgetError(problemText(e, "forget the device"));
    }
  };

  return (
    <main class="screen device" data-testid="device-screen">
      <Back app={app} />
      <Show when={view() && info()} fallback={<h1>Device</h1>}>
        <h1 data-testid="device-name">{info()!.name || view()!.record.username}</h1>
        <dl class="facts">
          <dt>Identity</dt>
          <dd>{view()!.record.username}</dd>
          <dt>Paired</dt>
          <dd>{timeLabel(info()!.pairedAt)}</dd>
          <dt>Encryption</dt>
          <dd data-testid="device-protocol">
            {info()!.protocol === "XXhfs" ? "post-quantum hybrid (XXhfs)" : "classical X25519 (XX)"}
          </dd>
          <dt>Cable</dt>
          <dd data-testid="device-attached" data-attached={attached() ? "yes" : "no"}>
            {attached() ? "attached to this browser" : "not attached"}
          </dd>
          <dt>Relay</dt>
          <dd data-testid="device-relay" data-linked={linked() ? "yes" : "no"}>
            {(attached() && bridgeState(props.id)?.message) ||
              (linked()
                ? "linked: it reaches you through your relay when it is not attached"
                : "not linked yet: attach it over USB once to link it")}
          </dd>
        </dl>

        <Show when={ended()} keyed>
          {(p) => (
            <p class="error" role="alert" data-testid="device-error" data-kind={p.kind}>
              {p.message}
            </p>
          )}
        </Show>

        <Show when={!attached()}>
          <Show
            when={serial}
            fallback={
              <p class="help" data-testid="no-web-serial">
                This browser has no Web Serial: attach the device from Chrome or Edge on a computer.
              </p>
            }
          >
            <form
              class="card"
              onSubmit={(e) => {
                e.preventDefault();
                void attach();
              }}
            >
              <BaudRateField id="device-baud" value={baud()} onChange={setBaud} />
              <button type="submit" data-testid="device-attach" disabled={attaching()}>
                {attaching() ? "Attaching…" : "Attach over USB"}
              </button>
            </form>
          </Show>
        </Show>

        <section class="card" aria-labelledby="telemetry-title">
          <h2 id="telemetry-title">Telemetry</h2>
          <Show
            when={shown()}
            keyed
            fallback={
              <p class="help">
                {attached()
                  ? "Waiting for the device's first reading…"
                  : "No reading yet: attach the device, or wait for it to send one through your relay."}
              </p>
            }
          >
            {(r) => (
              <table class="telemetry" data-testid="telemetry" data-n={r.n} data-via={r.via}>
                <caption class={r.via === "cable" ? "sr-only" : "help"}>
                  {r.via === "cable"
                    ? `Latest readings, number ${r.n}`
                    : `Through your relay, sent ${timeLabel(r.at)} (reading ${r.n})`}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Reading</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  <For each={Object.entries(r.r)}>
                    {([name, value]) => (
                      <tr data-reading={name}>
                        <th scope="row">{name}</th>
                        <td>{Number.isInteger(value) ? value : value.toFixed(2)}</td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            )}
          </Show>
        </section>
        <section class="card" aria-labelledby="console-title">
          <h2 id="console-title">Console</h2>
          <pre
            class="console"
            data-testid="device-console"
            role="log"
            aria-live="polite"
            aria-label="Console output"
            tabindex={0}
          >
            {lines().join("\n")}
          </pre>
          <form class="row" onSubmit={run}>
            <label for="device-command" class="sr-only">
              Command
            </label>
            <input
              id="device-command"
              data-testid="device-command"
              autocomplete="off"
              spellcheck={false}
              placeholder="help"
              maxLength={200}
              value={command()}
              onInput={(e) => setCommand(e.currentTarget.value)}
            />
            <button type="submit" data-testid="device-run">
              Run
            </button>
          </form>
        </section>

        <section class="card" aria-labelledby="forget-title">
          <h2 id="forget-title">Forget this device</h2>
          <p class="help">
            Removes it from your contacts on this browser. The device keeps its pairing until it is
            factory-reset (console: <code>reset confirm</code> while attached).
          </p>
          <Show
            when={forgetting()}
            fallback={
              <button
                type="button"
                class="danger"
                data-testid="forget-device"
                ref={forgetDialog.opener}
                onClick={() => {
                  setForgetError(undefined);
                  setForgetting(true);
                }}
              >
                Forget this device
              </button>
            }
          >
            <div
              class="row"
              role="alertdialog"
              aria-label="Confirm forgetting the device"
              ref={forgetDialog.ref}
            >
              <button
                type="button"
                class="danger"
                data-testid="confirm-forget-device"
                onClick={() => void forget()}
              >
                Forget it
              </button>
              <button type="button" data-cancel onClick={forgetDialog.cancel}>
                Keep it
              </button>
            </div>
          </Show>
          <Show when={forgetError()}>
            {(message) => (
              <p class="card warning" role="alert" data-testid="forget-device-error">
                {message()}
              </p>
            )}
          </Show>
        </section>
      </Show>
    </main>
  );
}
