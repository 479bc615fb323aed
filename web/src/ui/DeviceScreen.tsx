/**
 * A paired device as a contact (docs/device.md §12, docs/user-guide.md): what it is, whether it
 * is attached to this browser's cable, live telemetry and a small command console while it is.
 * Attaching reconnects without a code (the device's identity key and protocol were pinned at
 * pairing).
 */
import { createEffect, createSignal, For, on, onCleanup, Show } from "solid-js";
import { attachedDevice, detach, deviceDetachReason, keepAttached } from "../app/devices.ts";
import type { AppModel } from "../app/model.ts";
import { attachOverSerial, type TelemetryReading } from "../device/attached-device.ts";
import { runConsoleCommand } from "../device/console.ts";
import { type DeviceProblem, describeDeviceError } from "../device/problems.ts";
import { choosePort, DEFAULT_BAUD_RATE, webSerial } from "../device/web-serial.ts";
import { timeLabel } from "./format.ts";
import { Back } from "./Home.tsx";
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
    } catch (e) {
      setProblem(describeDeviceError(e, "attached"));
    } finally {
      setAttaching(false);
    }
  };

  const print = (out: string[]) => setLines((l) => [...l, ...out].slice(-MAX_CONSOLE_LINES));
  const run = async (e: Event) => {
    e.preventDefault();
    const device = attached();
    const line = command();
    setCommand("");
    if (!device) return;
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
  const [forgetting, setForgetting] = createSignal(false);
  const forget = async () => {
    detach(props.id);
    await app.deleteContact(props.id);
    app.go({ name: "home" }, { replace: true });
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
        </dl>

        <Show when={ended()} keyed>
          {(p) => (
            <p class="error" role="alert" data-testid="device-error" data-kind={p.kind}>
              {p.message}
            </p>
          )}
        </Show>

        <Show
          when={attached()}
          fallback={
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
          }
        >
          <section class="card" aria-labelledby="telemetry-title">
            <h2 id="telemetry-title">Telemetry</h2>
            <Show
              when={reading()}
              keyed
              fallback={<p class="help">Waiting for the device's first reading…</p>}
            >
              {(r) => (
                <table class="telemetry" data-testid="telemetry" data-n={r.n}>
                  <caption class="sr-only">Latest readings, number {r.n}</caption>
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
            <pre class="console" data-testid="device-console" aria-live="polite">
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
        </Show>

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
                onClick={() => setForgetting(true)}
              >
                Forget this device
              </button>
            }
          >
            <div class="row" role="alertdialog" aria-label="Confirm forgetting the device">
              <button
                type="button"
                class="danger"
                data-testid="confirm-forget-device"
                onClick={() => void forget()}
              >
                Forget it
              </button>
              <button type="button" onClick={() => setForgetting(false)}>
                Keep it
              </button>
            </div>
          </Show>
        </section>
      </Show>
    </main>
  );
}
