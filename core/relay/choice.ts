/**
 * Which of the user's relays a new queue goes to, and in which order the others are tried when
 * that one fails (docs/protocol/mailbox.md §1, "Several relays"). Pure: the engine hands in what
 * it knows (the configured URLs, how many of our queues each holds, which ones are down) and tries
 * the URLs in the order returned, the first success winning.
 *
 * - Spread: new queues go to the reachable relay holding the fewest of our queues, ties broken by
 *   the order the user configured, so two relays take turns and a relay added later fills up first.
 *   No relay learns every contact we have, and losing one relay loses only its share of mailboxes.
 * - Failover: relays known to be down come last (still tried: "down" is what we saw, not a fact),
 *   in the same order among themselves.
 */

/** `urls` without empty entries and repeats, in the configured order. */
export function distinctUrls(urls: readonly string[]): string[] {
  const out: string[] = [];
  for (const u of urls) {
    const t = u.trim();
    if (t.length > 0 && !out.includes(t)) out.push(t);
  }
  return out;
}

/**
 * The order in which to try `urls` for a new queue: reachable ones first by ascending `load(url)`
 * (our queues there), then the ones `down(url)` says are down, each group stable in configured order.
 */
export function relayOrder(
  urls: readonly string[],
  load: (url: string) => number,
  down: (url: string) => boolean,
): string[] {
  const list = distinctUrls(urls).map((url, index) => ({ url, index, load: load(url), down: down(url) }));
  list.sort((a, b) => Number(a.down) - Number(b.down) || a.load - b.load || a.index - b.index);
  return list.map((e) => e.url);
}

/**
 * The order in which to try `urls` for something that should stay on the first relay the user
 * listed (the contact address): configured order, down ones last.
 */
export function preferredOrder(urls: readonly string[], down: (url: string) => boolean): string[] {
  return relayOrder(urls, () => 0, down);
}
