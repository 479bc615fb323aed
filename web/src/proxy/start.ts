/**
 * Starts the window side of the proxy for the app (web/src/main.tsx): the person's id and
 * contacts from the AppModel, the access log, contacts' shares through the engine's live sessions
 * (`proxyClient`), and this device's shares served to contacts (`serveProxy`, set on every engine
 * the app starts).
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
    remote: (id) => app.engine?.proxyClient?.(id),
    log: logAccess,
  });
  const serving = host.serving;
  if (app.engine) app.engine.serveProxy?.(serving);
  app.engineStarted.add((engine) => engine.serveProxy?.(serving));
}

/** The shares changed (ShareFolder): serve the new list from the next request on. */
export async function reloadProxyShares(): Promise<void> {
  await host?.reloadShares();
}
