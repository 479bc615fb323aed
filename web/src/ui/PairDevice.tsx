/**
 * "Pair a device" (docs/device.md §12, docs/user-guide.md): a device on a USB cable, over Web
 * Serial. The technician picks the port and baud rate (and Wi-Fi for a device that takes it),
 * follows the stepper connect → hello → handshake → compare code → provision → done, and
 * compares the 6-digit code with the device's before anything secret is sent. Every failure is
 * said in plain words (web/src/device/problems.ts); those that leave nothing provisioned offer
 * "Try again", which starts over from HELLO with a new code.
 */
import { createSignal, For, Match, onCleanup, Show, Switch } from "solid-js";
import { CAP_CONFIRM_INPUT } from "../../../core/device/hello.ts";
import type { PairingInfo } from "../../../core/device/owner.ts";
import { bridgeAttached, bridgeState, deviceContactRecord, keepAttached } from "../app/devices.ts";
import type { AppModel } from "../app/model.ts";
import { PAIR_STEPS, type PairStep, pairOverSerial } from "../device/attached-device.ts";
import { type DeviceProblem, describeDeviceError, deviceProblem } from "../device/problems.ts";
import { BAUD_RATES, choosePort, DEFAULT_BAUD_RATE, webSerial } from "../device/web-serial.ts";
import { Back } from "./Back.tsx";

const STEP_LABEL: Record<PairStep, string> = {
  connect: "Connect",
  hello: "Hello",
  handshake: "Handshake",
  code: "Compare code",
  provision: "Provision",
  done: "Done",
};

const PROTOCOL_LABEL = {
  XXhfs: "post-quantum hybrid (X25519 + ML-KEM-768)",
  XX: "classical X25519 only (the device cannot afford ML-KEM)",
};

/** The baud rate to open the port at (both device screens); `id` names the field and its test id. */
export function BaudRateField(props: {
  id: string;
  value: number;
  onChange: (baudRate: number) => void;
  disabled?: boolean;
}) {
  return (
    <>
      <label for={props.id}>Baud rate</label>
      <select
        id={props.id}
        data-testid={props.id}
        disabled={props.disabled}
        onChange={(e) => props.onChange(Number(e.currentTarget.value))}
      >
        <For each={BAUD_RATES}>
          {(b) => (
            <option value={b} selected={b === props.value}>
              {b.toLocaleString("en")}
            </option>
          )}
        </For>
      </select>
    </>
  );
}

export function PairDevice(props: { app: AppModel }) {
  const app = props.app;
  const serial = webSerial();
  const [baud, setBaud] = createSignal(DEFAULT_BAUD_RATE);
  const [ssid, setSsid] = createSignal("");
  const [psk, setPsk] = createSignal("");
  const [step, setStep] = createSignal<PairStep | undefined>();
  const [code, setCode] = createSignal<PairingInfo | undefined>();
  const [problem, setProblem] = createSignal<DeviceProblem | undefined>();
  const [pairedId, setPairedId] = createSignal<string | undefined>();
  let answer: ((same: boolean) => void) | undefined;
  let leaving = false;
  onCleanup(() => {
    leaving = true;
    answer?.(false);
  });

  const running = () => step() !== undefined && step() !== "done" && problem() === undefined;

  const start = async () => {
    const me = app.user();
    if (!serial || !me || running()) return;
    setProblem(undefined);
    setCode(undefined);
    setPairedId(undefined);
    setStep("connect");
    let shown: PairingInfo | undefined;
    try {
      const port = await choosePort(serial);
      const wifi = ssid().trim() === "" ? undefined : { ssid: ssid().trim(), psk: psk() };
      const result = await pairOverSerial({
        port,
        baudRate: baud(),
        self: me,
        onStep: (s) => {
          if (!leaving) setStep(s);
        },
        confirmCode: (info) =>
          new Promise<boolean>((resolve) => {
            if (leaving) return resolve(false);
            shown = info;
            setCode(info);
            answer = (same) => {
              answer = undefined;
              setCode(undefined);
              resolve(same);
            };
          }),
        ...(wifi ? { provision: { wifi } } : {}),
      });
      if (leaving) {
        result.device.close();
        return;
      }
      const record = deviceContactRecord(result.info, result.device.connection.device.caps, Date.now());
      await app.addDeviceContact(record);
      keepAttached(record.id, result.device);
      void bridgeAttached(app.deviceRelay(), me.identity.verified.identity_key, record.id, result.device);
      setPsk("");
      setPairedId(record.id);
      setStep("done");
    } catch (e) {
      if (leaving) return;
      answer = undefined;
      setCode(undefined);
      const p = describeDeviceError(e);
      // A device without a button took `confirm` from whoever it had the session with: if that was
      // a man in the middle, it is paired to them now (docs/device.md §6). Say to reset it.
      if (p.kind === "code-mismatch" && shown !== undefined && !(shown.deviceCaps & CAP_CONFIRM_INPUT))
        p.message += " This device has no button to confirm on: factory-reset it before pairing again.";
      setProblem(p);
    }
  };

  return (
    <main class="screen pair-device" data-testid="pair-device">
      <Back app={app} />
      <h1>Pair a device</h1>
      <Show
        when={serial}
        fallback={
          <section class="card" data-testid="no-web-serial">
            <p>{deviceProblem("no-serial").message}</p>
            <p class="help">
              Pairing talks to the device over its USB cable, end to end encrypted, and needs the browser's
              Web Serial API. Your contacts and chats work in this browser as usual.
            </p>
          </section>
        }
      >
        <p class="help">
          Plug the device into this computer with a USB cable. Loft opens an encrypted session over the cable;
          you compare a 6-digit code shown here and on the device before anything is sent to it.
        </p>
        <form
          class="card"
          onSubmit={(e) => {
            e.preventDefault();
            void start();
          }}
        >
          <BaudRateField id="pair-baud" value={baud()} onChange={setBaud} disabled={running()} />
          <fieldset class="choices">
            <legend>Wi-Fi for the device (optional)</legend>
            <p class="help">Sent only inside the encrypted session, after you confirmed the code.</p>
            <label for="pair-ssid">Network name</label>
            <input
              id="pair-ssid"
              data-testid="pair-ssid"
              maxLength={32}
              autocomplete="off"
              disabled={running()}
              value={ssid()}
              onInput={(e) => setSsid(e.currentTarget.value)}
            />
            <label for="pair-psk">Wi-Fi passphrase</label>
            <input
              id="pair-psk"
              data-testid="pair-psk"
              type="password"
              maxLength={63}
              autocomplete="off"
              disabled={running()}
              value={psk()}
              onInput={(e) => setPsk(e.currentTarget.value)}
            />
          </fieldset>
          <button type="submit" data-testid="pair-connect" disabled={running()} data-autofocus>
            {problem()?.resumable ? "Try again" : "Connect"}
          </button>
        </form>

        <p class="sr-only" role="status" data-testid="pair-step-status">
          {step() && !problem()
            ? `Step ${PAIR_STEPS.indexOf(step()!) + 1} of ${PAIR_STEPS.length}: ${STEP_LABEL[step()!]}`
            : ""}
        </p>
        <Show when={step()}>
          <ol class="stepper" aria-label="Pairing progress" data-testid="pair-steps">
            <For each={PAIR_STEPS}>
              {(s) => {
                const index = PAIR_STEPS.indexOf(s);
                const state = () => {
                  const at = PAIR_STEPS.indexOf(step()!);
                  if (index < at || step() === "done") return "done";
                  if (index === at) return problem() ? "failed" : "current";
                  return "todo";
                };
                return (
                  <li
                    class={`step ${state()}`}
                    data-step={s}
                    data-state={state()}
                    aria-current={state() === "current" ? "step" : undefined}
                  >
                    {STEP_LABEL[s]}
                    <span class="sr-only">
                      {state() === "done" ? " (done)" : state() === "failed" ? " (failed)" : ""}
                    </span>
                  </li>
                );
              }}
            </For>
          </ol>
        </Show>

        <Show when={code()} keyed>
          {(info) => (
            <section
              class="card"
              role="alertdialog"
              aria-labelledby="pair-code-title"
              data-testid="pair-code-card"
              tabindex="-1"
              // The question takes the focus (not "Same code": a stray Enter must not confirm).
              ref={(el) => queueMicrotask(() => el.focus())}
            >
              <h2 id="pair-code-title">Compare the code</h2>
              <p>
                <strong>{info.deviceName || "The device"}</strong> should show this code. Does it show the
                same?
              </p>
              <p class="pair-code" data-testid="pair-code">
                <span aria-hidden="true">
                  {info.code.slice(0, 3)} {info.code.slice(3)}
                </span>
                <span class="sr-only">{info.code.split("").join(" ")}</span>
              </p>
              <Show when={info.deviceCaps & CAP_CONFIRM_INPUT}>
                <p data-testid="pair-press-button">If they match, also press the button on the device.</p>
              </Show>
              <p class="help" data-testid="pair-protocol" data-protocol={info.protocol}>
                Encryption: {PROTOCOL_LABEL[info.protocol]}.
              </p>
              <div class="row">
                <button type="button" data-testid="pair-code-match" onClick={() => answer?.(true)}>
                  Same code
                </button>
                <button
                  type="button"
                  class="danger"
                  data-testid="pair-code-differ"
                  onClick={() => answer?.(false)}
                >
                  Different code
                </button>
              </div>
            </section>
          )}
        </Show>

        <Switch>
          <Match when={problem()} keyed>
            {(p) => (
              <section class="card warning" role="alert" data-testid="pair-error" data-kind={p.kind}>
                <p>{p.message}</p>
                <Show when={p.detail}>
                  <details>
                    <summary>Details</summary>
                    <p class="help" data-testid="pair-error-detail">
                      {p.detail}
                    </p>
                  </details>
                </Show>
              </section>
            )}
          </Match>
          <Match when={step() === "done" && pairedId()} keyed>
            {(id) => (
              <section class="card" role="status" data-testid="pair-done">
                <p>The device is paired and now one of your contacts.</p>
                <Show when={bridgeState(id)} keyed>
                  {(b) => (
                    <p data-testid="device-bridge" data-state={b.state}>
                      {b.message}
                    </p>
                  )}
                </Show>
                <button
                  type="button"
                  data-testid="open-device"
                  onClick={() => app.go({ name: "device", id })}
                >
                  Open the device
                </button>
              </section>
            )}
          </Match>
        </Switch>
      </Show>
    </main>
  );
}
