/**
 * An inline confirmation (a `role="alertdialog"` row that replaces or follows the button asking
 * for it), usable from the keyboard as the WAI-ARIA Authoring Practices' alert dialog pattern
 * describes: when it opens the focus moves to its safe choice (the element marked `data-cancel`,
 * never the destructive one: a stray Enter must not confirm), Escape cancels, and a cancel — by
 * Escape or by the Cancel button — puts the focus back on the button that opened it (otherwise it
 * falls to the page's top and the next Tab starts over from there).
 *
 *   const dialog = inlineConfirm(() => setConfirm(false), "delete-contact");
 *   <div role="alertdialog" ref={dialog.ref}> … <button data-cancel onClick={dialog.cancel}>Cancel</button>
 */
export interface InlineConfirm {
  /** The dialog element's ref: focuses the safe choice, listens for Escape. */
  ref(el: HTMLElement): void;
  /** Close without doing anything, focus back on the opener. */
  cancel(): void;
}

export function inlineConfirm(close: () => void, openerTestId: string): InlineConfirm {
  const cancel = () => {
    close();
    // The opener may be rendered again by this close (a `<Show fallback>`): look it up after.
    queueMicrotask(() => document.querySelector<HTMLElement>(`[data-testid="${openerTestId}"]`)?.focus());
  };
  return {
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
