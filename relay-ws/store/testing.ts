/**
 * Records for tests of the store (and relay-ws/store/crash-worker.ts): fresh random ids and keys,
 * as the relay would create them. Never imported by the relay itself.
 */
import { randomBytes } from "node:crypto";
import type { NewMessage, QueueRecord } from "./types.ts";

/** A queue with fresh random ids and keys, no sender key yet. */
export const randomQueue = (): QueueRecord => ({
  recipientId: new Uint8Array(randomBytes(24)),
  senderId: new Uint8Array(randomBytes(24)),
  recipientKey: new Uint8Array(randomBytes(32)),
  rcvKey: new Uint8Array(randomBytes(32)),
  senderKey: undefined,
  suspended: false,
});

/** A message of `body` sent at `now` (ms) that expires `ttlMs` later, with fresh ids. */
export const newMessage = (body: Uint8Array, now: number, ttlMs: number): NewMessage => ({
  msgId: new Uint8Array(randomBytes(24)),
  sendId: new Uint8Array(randomBytes(16)),
  timestamp: Math.floor(now / 1000),
  expiresAt: now + ttlMs,
  body,
});
