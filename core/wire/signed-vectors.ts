/**
 * Replays the identity vector files through one crypto provider (isomorphic: Node's
 * test/vectors/backends.test.ts and Chromium's test/e2e/crypto-backends.e2e.ts run it on every
 * backend): docs/vectors/identity-vectors.json (keys, signed bytes, signatures, encoded
 * identities), identity-signed-requests.json (the five signed SREMP requests of
 * docs/protocol/wire.md, "Signed requests") and identity-contact-links.json. A backend passes only
 * if it derives every key, reproduces every signature byte for byte (Ed25519 is deterministic,
 * RFC 8032 §5.1.6), accepts every vector and refuses each one with a flipped signature bit.
 */
import { fromHex, toHex } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { Result } from "../errors.ts";
import { parseContactLinkUrl } from "../identity/contact-link.ts";
import { decodeIdentity } from "../identity/identity.ts";
import { SIGNATURE_CONTEXTS, signedBytes } from "../identity/signature.ts";
import {
  requestSignedPayload,
  verifyDeliveryConfirmation,
  verifyRegisterRequest,
  verifyRelayRegister,
  verifyRetrieveMessages,
  verifyStoreMessage,
} from "./signed.ts";
import { type SrempMessage, srempCodec } from "./sremp.ts";

export interface IdentityVector {
  name: string;
  private_identity_key: string;
  identity_key: string;
  private_noise_key: string;
  noise_key: string;
  signed_bytes: string;
  signature: string;
  /** The encoded Identity. */
  identity: string;
}

export interface IdentityVectorFiles {
  identities: { identities: IdentityVector[]; updates: IdentityVector[] };
  requests: Record<RequestName, string> & Record<string, unknown>;
  links: { links: { url: string; identity: string }[] };
}

type RequestName =
  | "register_request"
  | "relay_register"
  | "retrieve_messages"
  | "store_message"
  | "delivery_confirmation";

/** Per request type: its context, the signature field, and the verifier (with the vector's clock). */
const REQUESTS: Record<
  RequestName,
  {
    context: string;
    field: string;
    verify: (crypto: CryptoProvider, m: SrempMessage, senderKey: Uint8Array) => Promise<Result<unknown>>;
  }
> = {
  register_request: {
    context: SIGNATURE_CONTEXTS.registerRequest,
    field: "signature",
    verify: (c, m) => verifyRegisterRequest(c, m as never, { now: (m as { timestamp: number }).timestamp }),
  },
  relay_register: {
    context: SIGNATURE_CONTEXTS.relayRegister,
    field: "auth_signature",
    verify: (c, m) => verifyRelayRegister(c, m as never, { now: (m as { timestamp: number }).timestamp }),
  },
  retrieve_messages: {
    context: SIGNATURE_CONTEXTS.retrieveMessages,
    field: "auth_signature",
    verify: (c, m) => verifyRetrieveMessages(c, m as never, { now: (m as { timestamp: number }).timestamp }),
  },
  store_message: {
    context: SIGNATURE_CONTEXTS.storeMessage,
    field: "sender_signature",
    verify: (c, m, sender) => verifyStoreMessage(c, m as never, sender),
  },
  delivery_confirmation: {
    context: SIGNATURE_CONTEXTS.deliveryConfirmation,
    field: "signature",
    verify: (c, m) => verifyDeliveryConfirmation(c, m as never),
  },
};

/** The signer of a request vector: the identity it names, or (STORE_MESSAGE) alice, its sender. */
function signerKey(m: SrempMessage): Uint8Array | undefined {
  const r = m as { identity?: Uint8Array; delivered_to?: Uint8Array };
  if (r.delivered_to) return r.delivered_to;
  if (r.identity?.length === 32) return r.identity;
  return undefined;
}

/** "passed", or the first thing that differs (`<vector>: <what>`). */
export async function replayIdentityVectors(
  files: IdentityVectorFiles,
  crypto: CryptoProvider,
): Promise<string> {
  const all = [...files.identities.identities, ...files.identities.updates];
  const secretOf = new Map<string, Uint8Array>();
  for (const v of all) {
    const secret = fromHex(v.private_identity_key);
    if (toHex(await crypto.ed25519.publicKey(secret)) !== v.identity_key) return `${v.name}: identity key`;
    if (toHex(await crypto.x25519.publicKey(fromHex(v.private_noise_key))) !== v.noise_key)
      return `${v.name}: noise key`;
    const signed = fromHex(v.signed_bytes);
    if (toHex(await crypto.ed25519.sign(secret, signed)) !== v.signature) return `${v.name}: signature`;
    const decoded = await decodeIdentity(crypto, fromHex(v.identity));
    if (!decoded.ok) return `${v.name}: identity does not verify`;
    const at = v.identity.indexOf(v.signature) / 2;
    const tampered = fromHex(v.identity);
    tampered[at + 10]! ^= 1;
    const bad = await decodeIdentity(crypto, tampered);
    if (bad.ok || bad.error.code !== "LOFT_ERR_BAD_SIGNATURE") return `${v.name}: tampered identity accepted`;
    secretOf.set(v.identity_key, secret);
  }
  const alice = files.identities.identities.find((v) => v.name === "alice");
  if (!alice) return "identity-vectors.json: no alice";
  for (const name of Object.keys(REQUESTS) as RequestName[]) {
    const spec = REQUESTS[name];
    const decoded = srempCodec.decode(fromHex(files.requests[name]));
    if (!decoded.ok) return `${name}: does not decode`;
    const m = decoded.value;
    const signer = signerKey(m) ?? fromHex(alice.identity_key);
    if (!(await spec.verify(crypto, m, signer)).ok) return `${name}: does not verify`;
    const secret = secretOf.get(toHex(signer));
    if (!secret) return `${name}: signer is not a vector identity`;
    const record = m as unknown as Record<string, unknown>;
    const again = await crypto.ed25519.sign(
      secret,
      signedBytes(spec.context, requestSignedPayload(record, spec.field)),
    );
    if (toHex(again) !== toHex(record[spec.field] as Uint8Array)) return `${name}: signature differs`;
    const flipped = (record[spec.field] as Uint8Array).slice();
    flipped[0]! ^= 1;
    const bad = await spec.verify(crypto, { ...m, [spec.field]: flipped } as SrempMessage, signer);
    if (bad.ok || bad.error.code !== "LOFT_ERR_BAD_SIGNATURE") return `${name}: tampered request accepted`;
  }
  for (const l of files.links.links) {
    const parsed = await parseContactLinkUrl(crypto, l.url);
    if (!parsed.ok) return `contact link ${l.identity}: ${parsed.error.code}`;
  }
  return "passed";
}
