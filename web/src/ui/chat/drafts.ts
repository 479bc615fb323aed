/**
 * What is typed in a composer and not sent yet, per conversation ("chat:<contact id>",
 * "room:<room id>"), kept while the tab lives: leaving a chat for Home, another chat or Settings
 * and coming back finds the words where they were (README "For people": the chat never loses what
 * you type). In memory only, never written to storage: a draft is plaintext, and everything Loft
 * keeps on disk is sealed (docs/design.md, storage); a reload or a closed tab drops drafts.
 */
const drafts = new Map<string, string>();

export function draftOf(key: string): string {
  return drafts.get(key) ?? "";
}

export function keepDraft(key: string, text: string): void {
  if (text) drafts.set(key, text);
  else drafts.delete(key);
}
