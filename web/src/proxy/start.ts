/**
 * Starts the window side of the proxy for the app (web/src/main.tsx): the person's id and
 * contacts from the AppModel, the access log, and — the one seam the engine fills — no remote
 * sessions yet (docs/protocol/proxy.md §Status).
 */
import type { AppModel } from "../app/model.ts";
import { contactIdOf } from "../identity.ts";
import { logAccess } from "./access-log.ts";
import { startProxyHost } from "./host.ts";

let host: ReturnType<typeof startProxyHost> | undefined;

export function startProxy(app: AppModel): void {
  host = startProxyHost({
    me: () => {
      const u = app.phase() === "ready" ? app.user() : undefined;
      return u ? contactIdOf(u.identity) : undefined;
    },
    isContact: (id) => app.contacts().some((c) => c.record.id === id && !c.record.request),
    remote: () => undefined,
    log: logAccess,
  });
}

/** The shares changed (ShareFolder): serve the new list from the next request on. */
export async function reloadProxyShares(): Promise<void> {
  await host?.reloadShares();
}
