/**
 * When one of our relays is dead (docs/protocol/mailbox.md §1, "Moving off a dead relay"): every
 * attempt to reach it has failed, without one success in between, for `relayDeadAfterMs` (48 h by
 * default, EngineConfig). The clock survives reloads — an app opened a few minutes a day must still
 * see a relay that has been gone for days — so "since when" is kept sealed as `relay/health`
 * (mailbox.ts `encodeRelayHealth`); a relay that answers once leaves the record.
 *
 * Fed by the relay connections' state changes (RelayConnections `onState`): the pool reports
 * `unreachable` after each failed attempt while it backs off, so no timer of its own is needed.
 */
import { wipe } from "../../../core/bytes.ts";
import type { EngineStorage } from "./api.ts";
import { decodeRelayHealth, encodeRelayHealth, MAX_HEALTH_RELAYS, SECRET } from "./mailbox.ts";
import type { RelayConnState } from "./transport.ts";

export interface RelayHealthDeps {
  storage: Pick<EngineStorage, "loadSecret" | "saveSecret">;
  /**
   * The relays judged: ours (Settings). The pool also reaches contacts' relays (their mailboxes),
   * whose failures are not ours to judge and must not fill the record.
   */
  tracked: () => readonly string[];
  deadAfterMs: number;
  now: () => number;
  log: (message: string) => void;
}

export class RelayHealth {
  readonly #d: RelayHealthDeps;
  readonly #since = new Map<string, number>();
  #loaded: Promise<void> | undefined;
  /** Reads and writes of the record, one at a time. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(deps: RelayHealthDeps) {
    this.#d = deps;
  }

  /**
   * A relay connection's state: true when `url` is dead now (unreachable without a break for
   * `deadAfterMs`). Said again at every later failure, so a move that could not happen yet (no
   * other relay reachable) is tried again.
   */
  onState(url: string, state: RelayConnState): Promise<boolean> {
    const next = this.#chain.then(async () => {
      if (!this.#d.tracked().includes(url)) return false;
      await this.#load();
      const now = this.#d.now();
      if (state === "connected") {
        if (this.#since.delete(url)) await this.#save();
        return false;
      }
      if (state !== "unreachable") return false;
      let since = this.#since.get(url);
      if (since === undefined) {
        if (this.#since.size >= MAX_HEALTH_RELAYS) return false;
        since = now;
        this.#since.set(url, since);
        await this.#save();
      }
      return now - since >= this.#d.deadAfterMs;
    });
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Since when `url` has been unreachable (undefined: it answered last time, or never failed). */
  downSince(url: string): number | undefined {
    return this.#since.get(url);
  }

  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      const bytes = await this.#d.storage.loadSecret(SECRET.health);
      if (!bytes) return;
      const r = decodeRelayHealth(bytes);
      wipe(bytes);
      // Relays no longer ours (Settings changed) are dropped with the next write.
      const tracked = this.#d.tracked();
      if (!r.ok) {
        this.#d.log(`relay health record unreadable: ${r.error.code}`);
        return;
      }
      for (const [url, since] of r.value) if (tracked.includes(url)) this.#since.set(url, since);
    })();
    return this.#loaded;
  }

  async #save(): Promise<void> {
    await this.#d.storage
      .saveSecret(SECRET.health, encodeRelayHealth(this.#since))
      .catch((e: unknown) => this.#d.log(`relay health not stored: ${(e as Error).name}`));
  }
}
