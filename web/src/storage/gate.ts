/**
 * A shared/exclusive gate for LoftStorage (storage.ts). Every read or write of a sealed record runs
 * `shared`: any number at once. A passphrase change runs `exclusive`: it waits until the shared
 * tasks already running are done, holds new ones back until it finishes, and so re-seals every
 * record and switches vault with nothing in flight that could seal under the old vault or write a
 * stale copy over the re-sealed one. Exclusive tasks run one at a time, in call order; a shared
 * task arriving while an exclusive one waits queues behind it (no starvation of the re-seal).
 *
 * Not re-entrant: a shared task must not start another gated task and wait for it (the inner one
 * would wait on a pending exclusive that waits on the outer one). Storage's public methods take the
 * gate; its private helpers do not.
 */
export class StorageGate {
  /** Shared tasks running now. */
  #active = 0;
  /** The exclusive task running or waiting to run, if any (settles when it is done). */
  #exclusive: Promise<void> | null = null;
  /** Wakes the exclusive task when `#active` reaches 0. */
  #drained: (() => void) | null = null;

  /** True while an exclusive task waits or runs. */
  get closed(): boolean {
    return this.#exclusive !== null;
  }

  async shared<T>(task: () => Promise<T>): Promise<T> {
    // A loop: another exclusive task may be queued by the time this one wakes.
    while (this.#exclusive) await this.#exclusive;
    this.#active++;
    try {
      return await task();
    } finally {
      this.#active--;
      if (this.#active === 0) this.#drained?.();
    }
  }

  async exclusive<T>(task: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise<void>((r) => {
      release = r;
    });
    try {
      if (this.#active > 0)
        await new Promise<void>((r) => {
          this.#drained = r;
        });
      this.#drained = null;
      return await task();
    } finally {
      this.#exclusive = null;
      release();
    }
  }
}
