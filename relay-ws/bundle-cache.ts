/**
 * Prekey bundles recently handed out, by hex recipient id, so that a PKGET beyond its
 * one-time-prekey budget (source-limits.ts) is answered with the bundle alone without touching
 * the store. `RelayStore` has only `takePrekeys`, which also consumes a one-time prekey; the relay
 * then has to put that prekey back — three durable writes — and without this cache a source could
 * make it do so for every refused fetch.
 *
 * A bundle is public (anyone holding the sender id gets it) and signed by its owner; it is kept in
 * memory only, bounded by bytes (least recently used first), and dropped when the queue's owner
 * publishes a new bundle (PKSET with `pb`) or deletes the queue (DEL).
 */
export class BundleCache {
  readonly #map = new Map<string, Uint8Array>();
  #bytes = 0;
  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.#map.size;
  }

  get(queueHex: string): Uint8Array | undefined {
    const b = this.#map.get(queueHex);
    if (b) {
      this.#map.delete(queueHex);
      this.#map.set(queueHex, b);
    }
    return b;
  }

  set(queueHex: string, bundle: Uint8Array): void {
    this.forget(queueHex);
    if (bundle.length > this.maxBytes) return;
    while (this.#bytes + bundle.length > this.maxBytes) {
      const oldest = this.#map.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
    }
    this.#map.set(queueHex, bundle.slice());
    this.#bytes += bundle.length;
  }

  forget(queueHex: string): void {
    const b = this.#map.get(queueHex);
    if (!b) return;
    this.#map.delete(queueHex);
    this.#bytes -= b.length;
  }
}
