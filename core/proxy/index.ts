/** The E2EE fetch proxy (docs/protocol/proxy.md): frames, flow-controlled bodies, both sides, shares. */
export * from "./body.ts";
export * from "./client.ts";
export * from "./endpoint.ts";
export * from "./frames.ts";
export * from "./pair.ts";
export * from "./paths.ts";
export * from "./rate-limit.ts";
export * from "./server.ts";
export * from "./share.ts";
