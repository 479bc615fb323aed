/**
 * Tabs of this origin telling each other that the device's storage is being replaced under them
 * (docs/protocol/chat.md §9, "Several tabs"): Delete identity, or a backup restored. A tab still open holds
 * the unlocked keys, drafts in memory, and would write draft copies and outbox journal entries
 * when it goes (app/drafts.ts, storage/journal.ts) — after the other tab cleared them: junk after a
 * deletion, folded into the restored identity after a restore. Told, it locks itself at once
 * (`AppModel.closeForOtherTab`). A BroadcastChannel reaches every other tab of the origin, not
 * the one posting.
 */

/**
 * What another tab did to this device's storage. "backup-restored" and "backup-not-restored"
 * follow a "backup-restoring": the import done, or failed or refused — nothing replaced
 * (app/model.ts `replaceStored`); the tabs it closed say how it ended instead of a restore still
 * under way, for ever.
 */
export type OtherTabNews =
  | "identity-deleted"
  | "backup-restoring"
  | "backup-restored"
  | "backup-not-restored";

/**
 * What a tab is after `news` from another (app/model.ts `#otherTabSaid`), from `now`: "open", or
 * the news it was locked for (undefined: locked with no news kept). An open tab locks for any
 * news — a restore done too (opened as its import began, what it read may be of the replaced
 * device) — but a restore that did not go through, which changed nothing under it. A locked tab
 * stays locked and only changes its words to the news that follows what locked it: locked by a
 * restore under way, how it ended; locked by one that ended, something new (another restore, the
 * identity deleted). Anything else leaves it as it is.
 */
export function afterOtherTabNews(
  now: "open" | OtherTabNews | undefined,
  news: OtherTabNews,
): "open" | OtherTabNews | undefined {
  if (now === "open") return news === "backup-not-restored" ? "open" : news;
  const ending = (n: OtherTabNews | undefined) => n === "backup-restored" || n === "backup-not-restored";
  return (now === "backup-restoring" ? ending(news) : ending(now) && !ending(news)) ? news : now;
}

const CHANNEL = "loft-tabs";
const TYPES: Record<string, OtherTabNews> = {
  "loft-identity-deleted": "identity-deleted",
  "loft-backup-restoring": "backup-restoring",
  "loft-backup-restored": "backup-restored",
  "loft-backup-not-restored": "backup-not-restored",
};

let channel: BroadcastChannel | undefined;

function open(): BroadcastChannel | undefined {
  if (!channel && typeof BroadcastChannel !== "undefined") channel = new BroadcastChannel(CHANNEL);
  return channel;
}

/** Tell every other tab, before the storage is touched: they stop writing before it is cleared. */
export function tellOtherTabs(news: OtherTabNews): void {
  open()?.postMessage({ type: `loft-${news}` });
}

/** Follow what other tabs say; anything else on the channel is ignored. Returns the unsubscribe. */
export function onOtherTabs(handler: (news: OtherTabNews) => void): () => void {
  const c = open();
  if (!c) return () => undefined;
  const listener = (e: MessageEvent) => {
    const type = (e.data as { type?: unknown } | null)?.type;
    const news = typeof type === "string" && Object.hasOwn(TYPES, type) ? TYPES[type] : undefined;
    if (news) handler(news);
  };
  c.addEventListener("message", listener);
  return () => c.removeEventListener("message", listener);
}
