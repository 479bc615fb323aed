/**
 * Live relay links' receiving queues a stop could not delete (docs/protocol/chat.md §6,
 * "Stopping"): when the bounded wait in `stop` runs out, the relay connections close before those
 * queues' DEL is answered, and each queue would stay on its relay until the idle expiry. The engine
 * keeps them in one small sealed record (`EngineStorage.saveSecret`, encrypted at rest: it holds
 * the queues' recipient keys) and deletes them at its next start; a relay that no longer has one
 * (AUTH) counts as done.
 *
 * The record is JSON: `[{ "u": relay URL, "r": recipientId, "s": senderId, "a": recipientAuthSecret,
 * "k": rcvKey }, ...]`, bytes in lower-case hex. Anything else reads as no entries (a damaged
 * record costs only the idle expiry it was meant to avoid).
 */
import { fromHex, toHex } from "../../../core/bytes.ts";
import { isLoftError } from "../../../core/errors.ts";
import type { RecipientQueue } from "../../../core/relay/client.ts";
import type { EngineStorage } from "./api.ts";
import type { RelayConnections } from "./transport.ts";

/** The secret's name (`EngineStorage.loadSecret`). */
export const LIVE_LEFTOVERS_SECRET = "relay/live-undeleted";
/** At most this many entries are kept (oldest dropped): the record stays small. */
export const MAX_LIVE_LEFTOVERS = 256;

export interface LiveLeftover {
  url: string;
  queue: RecipientQueue;
}

const HEX = /^(?:[0-9a-f]{2})+$/;
const MAX_URL = 2_048;
const MAX_HEX = 256; // 128 bytes: ids are 24 bytes, keys 32 or 64

function hexField(v: unknown): Uint8Array | undefined {
  return typeof v === "string" && v.length <= MAX_HEX && HEX.test(v) ? fromHex(v) : undefined;
}

export function encodeLeftovers(list: readonly LiveLeftover[]): Uint8Array {
  const rows = list.slice(-MAX_LIVE_LEFTOVERS).map(({ url, queue: q }) => ({
    u: url,
    r: toHex(q.recipientId),
    s: toHex(q.senderId),
    a: toHex(q.recipientAuthSecret),
    k: toHex(q.rcvKey),
  }));
  return new TextEncoder().encode(JSON.stringify(rows));
}

/** The entries of a stored record; malformed entries (or a malformed record) are skipped. */
export function decodeLeftovers(bytes: Uint8Array | undefined): LiveLeftover[] {
  if (!bytes) return [];
  let rows: unknown;
  try {
    rows = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return [];
  }
  if (!Array.isArray(rows)) return [];
  const out: LiveLeftover[] = [];
  for (const row of rows.slice(-MAX_LIVE_LEFTOVERS)) {
    if (typeof row !== "object" || row === null) continue;
    const { u, r, s, a, k } = row as Record<string, unknown>;
    const [recipientId, senderId, recipientAuthSecret, rcvKey] = [r, s, a, k].map(hexField);
    if (typeof u !== "string" || u.length === 0 || u.length > MAX_URL) continue;
    if (!recipientId || !senderId || !recipientAuthSecret || !rcvKey) continue;
    out.push({ url: u, queue: { recipientId, senderId, recipientAuthSecret, rcvKey } });
  }
  return out;
}

const keyOf = (l: LiveLeftover) => `${l.url} ${toHex(l.queue.recipientId)}`;

/**
 * Read-modify-write of the record, one at a time (a stop's save and a start's clean-up of the
 * same engine storage must not overwrite each other's change).
 */
export class LiveLeftovers {
  readonly #storage: EngineStorage;
  readonly #log: (message: string) => void;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(storage: EngineStorage, log: (message: string) => void) {
    this.#storage = storage;
    this.#log = log;
  }

  #update(change: (list: LiveLeftover[]) => LiveLeftover[]): Promise<void> {
    const run = this.#chain.then(async () => {
      const before = decodeLeftovers(await this.#storage.loadSecret(LIVE_LEFTOVERS_SECRET));
      const after = change(before);
      if (after.length === 0) {
        if (before.length > 0) await this.#storage.deleteSecret(LIVE_LEFTOVERS_SECRET);
      } else await this.#storage.saveSecret(LIVE_LEFTOVERS_SECRET, encodeLeftovers(after));
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Remember `list` (besides what the record holds). */
  add(list: readonly LiveLeftover[]): Promise<void> {
    if (list.length === 0) return Promise.resolve();
    return this.#update((before) => {
      const known = new Set(before.map(keyOf));
      return [...before, ...list.filter((l) => !known.has(keyOf(l)))];
    });
  }

  /**
   * DEL every remembered queue through `pool`; each answered (OK, or AUTH: the relay no longer
   * has it) leaves the record. One that could not be reached stays for the next start.
   *
   * Only on relays `connectable(url)` allows (the engine: the user's relays and those of their
   * contacts' links, which it connects to anyway): an entry on a relay the user has since removed
   * from their list is dropped from the record, logged, and never connected to — removing a relay
   * means not talking to it again, and what is left there goes at its idle expiry
   * (docs/protocol/chat.md §6, "Stopping").
   */
  async clean(pool: RelayConnections, connectable: (url: string) => boolean): Promise<void> {
    const all = decodeLeftovers(await this.#storage.loadSecret(LIVE_LEFTOVERS_SECRET));
    if (all.length === 0) return;
    const done = new Set<string>();
    const list = all.filter((l) => {
      if (connectable(l.url)) return true;
      done.add(keyOf(l));
      this.#log(`dropping a live link's old queue on ${l.url}: that relay is no longer in the list`);
      return false;
    });
    await Promise.all(
      list.map(async (l) => {
        try {
          await (await pool.client(l.url)).deleteQueue(l.queue);
          done.add(keyOf(l));
        } catch (e) {
          // Any rejection, `undefined` and `null` included: a read of `.code` on those threw here,
          // and the queues already deleted stayed in the record (Promise.all below rejected).
          if (isLoftError(e) && e.code === "LOFT_ERR_RELAY_AUTH") done.add(keyOf(l));
          else
            this.#log(
              `deleting a live link's old queue on ${l.url} failed: ${e instanceof Error ? e.message : String(e)}`,
            );
        }
      }),
    );
    if (done.size > 0) await this.#update((before) => before.filter((l) => !done.has(keyOf(l))));
  }
}
