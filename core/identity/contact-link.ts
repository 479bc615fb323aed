/**
 * Contact links: everything needed to add someone as a contact, in one URL fragment or QR code
 * (SREMP 0.1-draft §discovery "Direct Connection Sharing: … through QR codes"; docs/design.md, "Who
 * uses it": "add contacts by link or QR code"). Exact bytes: docs/protocol/identity.md, "Contact link".
 *
 *     https://<host>/#c=<base64url(canonical MessagePack payload)>
 *
 * Payload (short keys, sorted): `{ i: bin (encoded Identity), r: [relay URL…], s: [signaling URL…],
 * v: 1, x?: {name: bin} }`. `x` is an opaque map other modules fill (mailbox queue ids, prekey
 * bundle references); this module only bounds it. The fragment never reaches a web server
 * (RFC 3986 §3.5), so the link leaks nothing to the host that serves the app.
 *
 * Decoding verifies the identity (canonical bytes and signature) before returning anything; the
 * identity key inside is the trust anchor the later Noise handshake is checked against.
 * Size: at most MAX_CONTACT_LINK_BYTES of payload (2731 base64url characters), which keeps a full
 * link inside one version-40-L QR code (2953 bytes) with a host name of up to ~200 characters. An
 * identity with a large profile picture does not fit: encode returns LOFT_ERR_FRAME_TOO_LARGE.
 */
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
import { fromBase64url, toBase64url } from "../codec/base64url.ts";
import { decodeRaw, encodeCanonical, validate } from "../codec/codec.ts";
import { binSchema } from "../codec/envelope.ts";
import { serverUrlSchema } from "../codec/server-url.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { decodeIdentity, encodeIdentity, type Identity, MAX_IDENTITY_BYTES } from "./identity.ts";

export const CONTACT_LINK_VERSION = 1;
export const MAX_CONTACT_LINK_BYTES = 2048;
export const MAX_CONTACT_LINK_CHARS = Math.ceil((MAX_CONTACT_LINK_BYTES * 4) / 3);
export const MAX_LINK_URLS = 4;
export const MAX_LINK_URL_CHARS = 256;
export const MAX_LINK_REFS = 8;
export const MAX_LINK_REF_BYTES = 512;
/** The fragment parameter that carries the payload. */
export const CONTACT_LINK_PARAM = "c";

export interface ContactLink {
  identity: Identity;
  /** Signaling servers where the contact registers (wss:// URLs). */
  signaling: string[];
  /** Relays holding the contact's mailbox (wss:// URLs). */
  relay: string[];
  /** Opaque references added by other modules (e.g. "mailbox", "prekeys"); keys `[a-z0-9._-]`, 1–32. */
  refs?: Record<string, Uint8Array>;
}

const urlList = v.pipe(
  v.array(v.pipe(serverUrlSchema, v.maxLength(MAX_LINK_URL_CHARS))),
  v.maxLength(MAX_LINK_URLS),
);

const payloadSchema = v.strictObject({
  v: v.number(),
  i: binSchema(1, MAX_IDENTITY_BYTES),
  s: urlList,
  r: urlList,
  x: v.optional(
    v.pipe(
      v.record(v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9._-]{0,31}$/)), binSchema(0, MAX_LINK_REF_BYTES)),
      v.check((m) => Object.keys(m).length <= MAX_LINK_REFS, `at most ${MAX_LINK_REFS} refs`),
    ),
  ),
});

function payloadObject(link: ContactLink): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: CONTACT_LINK_VERSION,
    i: encodeIdentity(link.identity),
    s: [...link.signaling],
    r: [...link.relay],
  };
  if (link.refs !== undefined && Object.keys(link.refs).length > 0) out.x = { ...link.refs };
  return out;
}

/**
 * Encode a contact link payload (the part after `#c=`). Errors: LOFT_ERR_SCHEMA for a bad URL or
 * ref, LOFT_ERR_FRAME_TOO_LARGE when the payload exceeds MAX_CONTACT_LINK_BYTES.
 */
export function encodeContactLink(link: ContactLink): Result<string> {
  const object = payloadObject(link);
  const checked = validate(object, payloadSchema);
  if (!checked.ok) return checked;
  const bytes = encodeCanonical(object);
  if (bytes.length > MAX_CONTACT_LINK_BYTES)
    return err(
      "LOFT_ERR_FRAME_TOO_LARGE",
      `contact link is ${bytes.length} bytes; at most ${MAX_CONTACT_LINK_BYTES}`,
    );
  return ok(toBase64url(bytes));
}

/**
 * Decode a payload and verify the identity in it. Errors: LOFT_ERR_FRAME_TOO_LARGE,
 * LOFT_ERR_MALFORMED (base64url, MessagePack, non-canonical), LOFT_ERR_SCHEMA,
 * LOFT_ERR_UNSUPPORTED_VERSION, and the identity's own errors (LOFT_ERR_BAD_SIGNATURE …).
 */
export async function decodeContactLink(
  crypto: CryptoProvider,
  payload: string,
): Promise<Result<ContactLink>> {
  const bytes = fromBase64url(payload, MAX_CONTACT_LINK_CHARS);
  if (!bytes.ok) return bytes;
  const raw = decodeRaw(bytes.value, {
    maxBytes: MAX_CONTACT_LINK_BYTES,
    maxStrLength: MAX_LINK_URL_CHARS * 4,
    maxArrayLength: MAX_LINK_URLS,
    maxMapLength: 16,
  });
  if (!raw.ok) return raw;
  const checked = validate(raw.value, payloadSchema);
  if (!checked.ok) return checked;
  const p = checked.value;
  if (p.v !== CONTACT_LINK_VERSION)
    return err(
      "LOFT_ERR_UNSUPPORTED_VERSION",
      `contact link version ${p.v}; we read ${CONTACT_LINK_VERSION}`,
    );
  if (!equalBytes(encodeCanonical(p), bytes.value))
    return err("LOFT_ERR_MALFORMED", "contact link not in canonical MessagePack form");
  const identity = await decodeIdentity(crypto, p.i);
  if (!identity.ok) return identity;
  const link: ContactLink = { identity: identity.value, signaling: p.s, relay: p.r };
  if (p.x !== undefined) {
    const refs: Record<string, Uint8Array> = {};
    for (const [k, value] of Object.entries(p.x)) refs[k] = value.slice();
    link.refs = refs;
  }
  return ok(link);
}

/** `https://host/#c=<payload>` for an app origin such as "https://loft.example". */
export function contactLinkUrl(appOrigin: string, link: ContactLink): Result<string> {
  const payload = encodeContactLink(link);
  if (!payload.ok) return payload;
  const base = appOrigin.replace(/\/+$/, "");
  return ok(`${base}/#${CONTACT_LINK_PARAM}=${payload.value}`);
}

/**
 * Find `c=<payload>` in a URL's fragment (`#c=…` or `#a=1&c=…`) and decode it. The fragment is
 * parsed by hand: core/ has no URL global.
 */
export async function parseContactLinkUrl(crypto: CryptoProvider, url: string): Promise<Result<ContactLink>> {
  if (typeof url !== "string") return err("LOFT_ERR_MALFORMED", "contact link: not a string");
  if (url.length > MAX_CONTACT_LINK_CHARS + 2048)
    return err("LOFT_ERR_FRAME_TOO_LARGE", "contact link URL too long");
  const hash = url.indexOf("#");
  if (hash < 0) return err("LOFT_ERR_MALFORMED", "contact link: no #fragment");
  for (const part of url.slice(hash + 1).split("&")) {
    if (part.startsWith(`${CONTACT_LINK_PARAM}=`))
      return decodeContactLink(crypto, part.slice(CONTACT_LINK_PARAM.length + 1));
  }
  return err("LOFT_ERR_MALFORMED", `contact link: no ${CONTACT_LINK_PARAM}= in the fragment`);
}
