/**
 * ACKs paced by the relay's command rate, one pacer per connection (docs/protocol/relay.md
 * §Limits, "commands per connection"; §Live links, step 4).
 *
 * The relay pushes at most a SUB window of unacknowledged messages per queue, so an ACK refused
 * for rate (`RATE`, `SOURCE_RATE`: nothing was done) must be sent again or the queue stalls for
 * good. But every frame costs a token, refused or not, and a connection a whole burst in debt is
 * closed (1008 `LOFT_ERR_RELAY_RATE`): retrying each refused ACK on its own timer sends a window
 * of retries at once, each refused again, and runs the connection into that debt. So all ACKs of
 * one connection — the mailbox's (web/src/net/relay-pool.ts) and every live link's on it
 * (live-link.ts) — wait in one queue:
 *
 * - Unhindered, an ACK leaves at once (the relay never refused, or the pace has recovered).
 * - After a temporary refusal the connection is *paced*: one ACK in flight, and after each answer
 *   a pause before the next. The pause doubles on a refusal (at least `firstDelayMs`, at most
 *   `maxDelayMs`, half of it random) and shrinks by a quarter on each ACK taken, so the pace
 *   settles just under the relay's refill rate, which the relay does not announce; each refusal
 *   costs the connection one token, never a window of them. Once the pause is under 1 ms and no
 *   ACK waits, ACKs leave at once again.
 * - An ACK still refused `giveUpMs` after the refusals began (or after it was queued, if later)
 *   is rejected with the refusal's code; a live link closes on it. Any other failure rejects that
 *   ACK alone; when the connection ends, every waiting ACK is rejected with why (the relay
 *   redelivers unacknowledged messages on the next subscription).
 */
import { isLoftError, LoftError } from "../errors.ts";
import type { RecipientQueue, RelayClient } from "./client.ts";
import { isTemporaryRefusal } from "./errors.ts";

/** How a pacer waits out refusals (the live link's `RelaySendRetry` fits it). */
export interface AckPacing {
  /** Pause after the first refusal (ms); doubles on each further one. */
  firstDelayMs: number;
  /** Longest pause between two ACKs (ms). */
  maxDelayMs: number;
  /** Reject an ACK refused this long (ms). */
  giveUpMs: number;
}

/** Under this pause (ms) with nothing waiting, the pace has recovered: ACKs leave at once. */
const UNPACED_BELOW_MS = 1;

interface Waiting {
  queue: RecipientQueue;
  msgId: Uint8Array;
  queuedAt: number;
  giveUpMs: number;
  resolve: () => void;
  reject: (e: LoftError) => void;
}

export class AckPacer {
  readonly #client: RelayClient;
  readonly #pacing: AckPacing;
  readonly #waiting: Waiting[] = [];
  #inFlight = 0;
  /** A refusal was seen and the pace has not recovered: one ACK at a time, `#pauseMs` apart. */
  #paced = false;
  #pauseMs = 0;
  #timer: unknown;
  /** When the current run of refusals began (undefined after an ACK is taken). */
  #refusedSince: number | undefined;
  #ended: LoftError | undefined;

  constructor(client: RelayClient, pacing: AckPacing) {
    this.#client = client;
    this.#pacing = pacing;
    void client.done.then((why) => this.#end(why));
  }

  /** Paced mode (for tests and metrics): a refusal was seen and the pace has not recovered yet. */
  get paced(): boolean {
    return this.#paced;
  }

  /** ACKs waiting for their turn (not counting the one in flight). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** ACK `msgId` on `queue` when the pace allows; `giveUpMs` overrides the pacer's own bound. */
  ack(queue: RecipientQueue, msgId: Uint8Array, giveUpMs = this.#pacing.giveUpMs): Promise<void> {
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ queue, msgId, queuedAt: Date.now(), giveUpMs, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#ended || this.#timer !== undefined) return;
    if (!this.#paced) {
      for (let w = this.#waiting.shift(); w; w = this.#waiting.shift()) this.#send(w, false);
      return;
    }
    if (this.#inFlight > 0) return;
    const next = this.#waiting.shift();
    if (next) this.#send(next, true);
  }

  #send(w: Waiting, paced: boolean): void {
    this.#inFlight++;
    this.#client.ack(w.queue, w.msgId).then(
      () => {
        this.#inFlight--;
        this.#taken(w, paced);
      },
      (e: unknown) => {
        this.#inFlight--;
        this.#refused(w, paced, isLoftError(e) ? e : new LoftError("LOFT_ERR_LINK_CLOSED", String(e)));
      },
    );
  }

  #taken(w: Waiting, paced: boolean): void {
    w.resolve();
    this.#refusedSince = undefined;
    if (paced && this.#paced) {
      this.#pauseMs *= 0.75;
      if (this.#pauseMs >= UNPACED_BELOW_MS || this.#waiting.length > 0) {
        this.#wait(this.#pauseMs);
        return;
      }
      this.#paced = false;
    }
    this.#pump();
  }

  #refused(w: Waiting, paced: boolean, e: LoftError): void {
    if (this.#ended) {
      w.reject(this.#ended);
      return;
    }
    if (!isTemporaryRefusal(e.code)) {
      w.reject(e);
      this.#pump();
      return;
    }
    const now = Date.now();
    this.#refusedSince ??= now;
    // Back at the head: its turn comes first once the pause is over.
    this.#waiting.unshift(w);
    for (let i = this.#waiting.length - 1; i >= 0; i--) {
      const x = this.#waiting[i]!;
      if (now - Math.max(this.#refusedSince, x.queuedAt) < x.giveUpMs) continue;
      this.#waiting.splice(i, 1);
      x.reject(e);
    }
    // Only a paced ACK's refusal (or the first refusal) lengthens the pause: the other unpaced
    // ACKs refused with it were sent before the pacer knew, and say nothing new about the rate.
    if (paced || !this.#paced) {
      const { firstDelayMs, maxDelayMs } = this.#pacing;
      this.#pauseMs = Math.min(maxDelayMs, Math.max(firstDelayMs, this.#pauseMs * 2));
      this.#paced = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      // Half random: connections refused together (one source address) do not come back together.
      this.#wait(this.#pauseMs / 2 + (Math.random() * this.#pauseMs) / 2);
    } else if (this.#inFlight === 0) this.#wait(this.#pauseMs);
  }

  #wait(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, ms);
  }

  #end(why: LoftError): void {
    this.#ended = why;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiting.splice(0)) w.reject(why);
  }
}

const pacers = new WeakMap<RelayClient, AckPacer>();

/**
 * The one pacer of `client`'s connection, made on first use with `pacing` (later callers share
 * it and pass only their own give-up bound).
 */
export function ackPacer(client: RelayClient, pacing: AckPacing): AckPacer {
  let p = pacers.get(client);
  if (!p) {
    p = new AckPacer(client, pacing);
    pacers.set(client, p);
  }
  return p;
}
