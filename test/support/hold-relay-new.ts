/**
 * A test hook for the stop bound (relay-ws/main.test.ts; docs/operations.md, "Stopping"), loaded
 * before a real entry with `startLoft({ imports: [...] })`: in that process, creating a queue in
 * the LMDB store never settles, so a client's NEW stays a pending operation that the relay's
 * graceful close waits for (relay-ws/service.ts close, step "operations") and that never ends.
 * It says so on stdout when a NEW reaches it, so the test signals only once one is pending.
 */
import { LmdbStore } from "../../relay-ws/store/lmdb.ts";

LmdbStore.prototype.createQueue = () => {
  console.log("test hook: a NEW is held");
  return new Promise<void>(() => {});
};
