/**
 * The in-app ← Back of every screen but Home: one component, in a file of its own so that any
 * screen can import it without importing another screen (Home ↔ Room would be an import cycle;
 * docs/contributing.md, "Layout and imports").
 */
import type { AppModel } from "../app/model.ts";

/** The browser's Back when it leads to `to` (Home by default), else `to` (AppModel `back`). */
export function Back(props: { app: AppModel; to?: Parameters<AppModel["go"]>[0] }) {
  return (
    <button type="button" class="back" data-testid="back" onClick={() => props.app.back(props.to)}>
      ← Back
    </button>
  );
}
