/**
 * An inline confirmation card (ui/confirm.ts): the question, its one choice, and Cancel — what
 * a screen shows instead of the browser's confirm(), which blocks the page, reads badly and is
 * not styled like the rest. Used for the destructive or role-changing actions of a contact
 * (Delete) and of a room (Leave, Make host, Remove).
 *
 * For screen readers (WAI-ARIA Authoring Practices, alert dialog pattern): the card is a
 * `role="alertdialog"` named by `label` (what is being decided: "Delete contact") and described
 * by its question (`aria-describedby`), so both are read when the focus lands on its Cancel.
 */
import { createUniqueId, type JSX } from "solid-js";
import type { InlineConfirm } from "./confirm.ts";

export function ConfirmCard(props: {
  /** The dialog's accessible name. */
  label: string;
  dialog: InlineConfirm;
  kind: "primary" | "danger";
  /** The confirming button's data-testid. */
  testid: string;
  /** The confirming button's words. */
  confirm: string;
  onConfirm: () => void;
  /** The question. */
  children: JSX.Element;
}) {
  const question = createUniqueId();
  return (
    <div
      class="card warning"
      role="alertdialog"
      aria-label={props.label}
      aria-describedby={question}
      ref={props.dialog.ref}
    >
      <p id={question}>{props.children}</p>
      <div class="row">
        <button type="button" class={props.kind} data-testid={props.testid} onClick={() => props.onConfirm()}>
          {props.confirm}
        </button>
        <button type="button" data-cancel onClick={() => props.dialog.cancel()}>
          Cancel
        </button>
      </div>
    </div>
  );
}
