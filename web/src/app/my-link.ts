/**
 * What goes in the user's own contact link besides their identity (docs/protocol/identity.md,
 * "Contact link"): the servers they use, and the engine's references (the contact address at
 * their relay, absent until the relay has it).
 */
import type { EngineSettings } from "../engine/api.ts";
import type { AppModel } from "./model.ts";

export interface MyLinkParts {
  settings: EngineSettings;
  refs: Record<string, Uint8Array> | undefined;
}

export async function myLinkParts(app: AppModel): Promise<MyLinkParts> {
  return {
    settings: await app.storage.getSettings(),
    refs: await app.engine?.contactLinkRefs?.().catch(() => undefined),
  };
}
