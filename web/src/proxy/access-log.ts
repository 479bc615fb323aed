/**
 * The owner's access log: every request made to this device's shares, served or refused (the
 * last 200, in memory for this session of the app). Paths are as the requester wrote them;
 * bodies are never logged.
 */
import { createSignal } from "solid-js";
import type { AccessRecord } from "../../../core/proxy/server.ts";

const MAX = 200;
const [accessLog, setAccessLog] = createSignal<readonly AccessRecord[]>([]);

export { accessLog };

export function logAccess(record: AccessRecord): void {
  setAccessLog((list) => [...list.slice(-(MAX - 1)), { ...record }]);
}
