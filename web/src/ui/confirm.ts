/**
 * An inline confirmation (a `role="alertdialog"` row that replaces or follows the button asking
 * for it), usable from the keyboard as the WAI-ARIA Authoring Practices' alert dialog pattern
 * describes: when it opens the focus moves to its safe choice (the element marked `data-cancel`,
 * never the destructive one: a stray Enter must not confirm), Escape cancels, and a cancel — by
 * Escape or by the Cancel button — puts the focus back on the button that opened it (otherwise it
 * falls to the page's top and the next Tab starts over from there).
 *
 *   const dialog = inlineConfirm(() => setConfirm(false));
 *   <button ref={dialog.opener} onClick={() => setConfirm(true)}>Delete…</button>
 *   <div role="alertdialog" ref={dialog.ref}> … <button data-cancel onClick={dialog.cancel}>Cancel</button>
 */
export interface InlineConfirm {
  /** The opener's ref: the button that asked, focused again on a cancel. */
  opener(el: HTMLElement): void;
  /** The dialog element's ref: focuses the safe choice, listens for Escape. */
  ref(el: HTMLElement): void;
  /** Close without doing anything, focus back on the opener. */
  cancel(): void;
}

export function inlineConfirm(close: () => void): InlineConfirm {
  // The opener as last drawn: a `<Show fallback>` draws a new button when the dialog closes, and
  // its ref runs again with it — so the focus goes to the button on screen, not a removed one.
  let openerEl: HTMLElement | undefined;
  const cancel = () => {
    close();
    queueMicrotask(() => openerEl?.focus());
  };
  return {
    opener(el) {
      openerEl = el;
    },
    ref(el) {
      queueMicrotask(() => el.querySelector<HTMLElement>("[data-cancel]")?.focus());
      el.addEventListener("keydown", (e) => {
        if (e.key !== "Escape") return;
        e.preventDefault();
        e.stopPropagation();
        cancel();
      });
    },
    cancel,
  };
}
