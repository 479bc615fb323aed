/** SMP v6–v7 codecs and crypto (docs/protocol/smp.md), shared by the listener and the browser bridge. */

export * from "./address.ts";
export * from "./bridge-frames.ts";
export * from "./commands.ts";
export * from "./crypto.ts";
export * from "./encoding.ts";
export * from "./keys.ts";
export * from "./mailbox-map.ts";
export * from "./transport.ts";
