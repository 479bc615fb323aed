/** A build hash in groups of eight hex digits, easier to read out and compare. */
export const groupHash = (hash: string): string => hash.match(/.{1,8}/g)?.join(" ") ?? hash;
