/** The strength meter under a new-passphrase field (storage/passphrase-strength.ts). */
import { Show } from "solid-js";
import { passphraseStrength } from "../storage/passphrase-strength.ts";

export function PassphraseStrength(props: { value: string; testid: string }) {
  const s = () => passphraseStrength(props.value);
  return (
    <Show when={props.value.length > 0}>
      <p class="help" aria-live="polite" data-testid={props.testid} data-score={s().score}>
        <meter
          min="0"
          max="4"
          low={2}
          high={3}
          optimum={4}
          value={s().score}
          aria-label="Passphrase strength"
        />{" "}
        Strength: {s().label}. {s().advice}
      </p>
    </Show>
  );
}
