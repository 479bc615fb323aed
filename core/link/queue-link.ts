/**
 * A Link built on an inbound message queue: transports push what arrives (`deliver`), consumers
 * `receive()` in order. The in-memory pair and the Node/WebSocket/data-channel adapters all
 * extend this, so ordering, close propagation and error typing are implemented once.
 */
import { LoftError } from "../errors.ts";
import type { Link, LinkCloseInfo, LinkCloseOptions, LinkState } from "./link.ts";

export abstract class QueueLink implements Link {
  #state: LinkState = "open";
  readonly #inbox: Uint8Array[] = [];
  readonly #waiters: { resolve: (m: Uint8Array) => void; reject: (e: unknown) => void }[] = [];
  #resolveClosed!: (info: LinkCloseInfo) => void;
  #closeInfo: LinkCloseInfo | undefined;
  readonly closed: Promise<LinkCloseInfo> = new Promise((resolve) => {
    this.#resolveClosed = resolve;
  });

  constructor(initial: LinkState = "open") {
    this.#state = initial;
  }

  get state(): LinkState {
    return this.#state;
  }

  protected markOpen(): void {
    if (this.#state === "connecting") this.#state = "open";
  }

  /**
   * Transport → consumer: one received message, handed over — the transport keeps no reference
   * and never touches its bytes again (link.ts `receive`). Ignored after close.
   */
  protected deliver(message: Uint8Array): void {
    if (this.#state === "closed") return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(message);
    else this.#inbox.push(message);
  }

  /** Transport-specific transmission of one message. */
  protected abstract transmit(message: Uint8Array): void;
  /** Transport-specific teardown; called once. */
  protected abstract teardown(info: LinkCloseInfo): void;

  send(message: Uint8Array): void {
    if (this.#state === "closed")
      throw new LoftError("LOFT_ERR_LINK_CLOSED", this.#closeInfo?.reason ?? "closed");
    this.transmit(message);
  }

  receive(): Promise<Uint8Array> {
    const queued = this.#inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#state === "closed")
      return Promise.reject(new LoftError("LOFT_ERR_LINK_CLOSED", this.#closeInfo?.reason ?? "closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * `receive()`, then every message already queued behind that one, up to `max` in all (at
   * least one), in order: for a consumer that handles a run of messages in one go (the ratchet's
   * `ratchetDecryptBatch`). Rejects as `receive()` does.
   */
  async receiveMany(max: number): Promise<Uint8Array[]> {
    if (!Number.isSafeInteger(max) || max < 1)
      throw new RangeError("receiveMany: max must be a positive integer");
    const out = [await this.receive()];
    while (out.length < max && this.#inbox.length > 0) out.push(this.#inbox.shift()!);
    return out;
  }

  close(reason = "closed", detail?: string, options?: LinkCloseOptions): void {
    this.finish(
      {
        reason,
        ...(detail === undefined ? {} : { detail }),
        ...(options?.orderly === true ? { orderly: true } : {}),
      },
      true,
    );
  }

  /** Marks the link closed; `local` tells whether to run the transport teardown. */
  protected finish(info: LinkCloseInfo, local: boolean): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#closeInfo = info;
    for (const w of this.#waiters.splice(0)) w.reject(new LoftError("LOFT_ERR_LINK_CLOSED", info.reason));
    if (local) this.teardown(info);
    this.#resolveClosed(info);
  }
}
