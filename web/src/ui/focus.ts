// Where the keyboard focus goes when a screen, or the part of it that held the focus, changes:
// never left on the page's body, where a keyboard user would start over from the top.

/**
 * Focus the screen now shown: `prefer` if given and present, else its `[data-autofocus]` control,
 * else its h1 (made focusable with tabindex -1). A screen that already put the focus inside itself
 * (the chat's composer) keeps it.
 */
export function focusScreen(prefer?: string): void {
  const main = document.querySelector<HTMLElement>("main.screen");
  if (!main) return;
  const active = document.activeElement;
  if (active && active !== main && main.contains(active)) return;
  const target =
    (prefer ? main.querySelector<HTMLElement>(prefer) : null) ??
    main.querySelector<HTMLElement>("[data-autofocus]") ??
    main.querySelector<HTMLElement>("h1");
  if (!target) return;
  if (target.tagName === "H1" && !target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
  target.focus();
}
