/**
 * The server URL field: how SREMP's LIST_SERVERS_RESPONSE (core/wire/sremp.ts, docs/protocol/wire.md)
 * and the contact link (core/identity/contact-link.ts) name a server. It lives in the codec layer,
 * below both, so identity and the message schemas share one rule without importing each other.
 */
import * as v from "valibot";

export const MAX_URL_CHARS = 512;

/** ws, wss, http or https URL without whitespace or control characters. */
const SERVER_URL = /^(?:wss?|https?):\/\/[^\s/?#\p{Cc}\p{Cs}]+(?:[/?#][^\s\p{Cc}\p{Cs}]*)?$/u;

export const serverUrlSchema = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(MAX_URL_CHARS),
  v.regex(SERVER_URL),
);
