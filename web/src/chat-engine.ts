/**
 * The chat engine the PWA runs (loaded lazily by web/src/engine-loader.ts): the engine
 * (web/src/engine/, written against the contract of web/src/engine/api.ts) composed with the
 * browser's transports from web/src/net — direct WebRTC links, live relay links, the relay
 * connections and the offers remembered across reloads. The engine names only the contracts
 * (web/src/engine/transport.ts); this module is where the concrete parts are chosen — the crypto
 * provider too: WebCrypto where the browser has the primitive natively (X25519, Ed25519, AES-GCM,
 * SHA-2, HMAC, HKDF), noble for the rest (ChaCha20-Poly1305, BLAKE2s, ML-KEM), detected once per
 * page (web/src/crypto.ts, core/crypto/webcrypto.ts; docs/decisions.md, "Cryptography: one async provider, carried
 * explicitly").
 */
import { pageCrypto } from "./crypto.ts";
import type { ChatEngine, CreateChatEngine, EngineStartOptions } from "./engine/api.ts";
import { OpfsFileStore } from "./engine/files/opfs-store.ts";
import { Engine, type EngineConfig } from "./engine/index.ts";
import { PageWarmUp } from "./engine/warm-up.ts";
import { DirectTransport } from "./net/direct.ts";
import { RelayLiveTransport } from "./net/relay-live.ts";
import { createRelayPool } from "./net/relay-pool.ts";
import { localSeenOffers } from "./net/seen-offers.ts";
import { pageTimings } from "./page-timings.ts";

/** The page's provider (web/src/crypto.ts), shared with the app's own checks. */
const crypto = pageCrypto;

const browserParts: Pick<
  EngineConfig,
  "transport" | "relayTransport" | "relayConnections" | "seenOffers" | "crypto" | "fileStore" | "warmUp"
> = {
  crypto,
  // A contact link accepted on a fresh page: its first session runs on compiled code (engine/warm-up.ts);
  // one per page, shared by every engine the page starts.
  warmUp: new PageWarmUp(),
  transport: (deps) => new DirectTransport(deps),
  relayTransport: (deps) => new RelayLiveTransport(deps),
  relayConnections: createRelayPool,
  seenOffers: localSeenOffers,
  // Sent and received files, sealed chunk by chunk: records in IndexedDB, chunks in one
  // origin-private file per transfer, or in IndexedDB without sync access handles
  // (docs/protocol/files.md §6).
  fileStore: new OpfsFileStore(),
};

/** With the timings a browser test set for this page, if any (page-timings.ts); else the defaults. */
export const createChatEngine: CreateChatEngine = (options) =>
  new Engine(options, { ...browserParts, ...pageTimings() });

/** The same engine with some timings or hooks changed (tests, benchmarks). */
export function createChatEngineWith(options: EngineStartOptions, config: Partial<EngineConfig>): ChatEngine {
  return new Engine(options, { ...browserParts, ...config });
}
