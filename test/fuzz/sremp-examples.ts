/**
 * One valid example of every SREMP message (deterministic keys and nonces), shared by the unit
 * tests, the property tests (test/fuzz) and the documentation vectors. Not used at run time.
 */
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { createUserIdentity, encodeIdentity } from "../../core/identity/identity.ts";
import {
  signDeliveryConfirmation,
  signRegisterRequest,
  signRelayRegister,
  signRetrieveMessages,
  signStoreMessage,
} from "../../core/wire/signed.ts";
import type { SrempMessage } from "../../core/wire/sremp.ts";

export const EXAMPLE_NOW = 1_700_000_000_000;
export const exampleAlice = createUserIdentity({
  username: "alice",
  now: EXAMPLE_NOW,
  seed: new Uint8Array(32).fill(1),
});
export const exampleBob = createUserIdentity({
  username: "bob",
  now: EXAMPLE_NOW,
  seed: new Uint8Array(32).fill(2),
});
const nonce = (n: number) => new Uint8Array(16).fill(n);
const aliceKey = exampleAlice.identity.verified.identity_key;
const bobKey = exampleBob.identity.verified.identity_key;

export async function exampleMessages(): Promise<SrempMessage[]> {
  return [
    await signRegisterRequest(nobleCrypto, exampleAlice, {
      id: 1,
      ttl_seconds: 300,
      timestamp: EXAMPLE_NOW,
      nonce: nonce(7),
      endpoint: { host: "peer.example", port: 443 },
      audience: "wss://signal.example/ws",
    }),
    {
      t: "REGISTER_RESPONSE",
      id: 1,
      success: true,
      expires_at: EXAMPLE_NOW + 300_000,
      renewal_interval: 240,
    },
    { t: "LOOKUP_REQUEST", id: 2, target_identity: bobKey, list_all: false },
    { t: "LOOKUP_REQUEST", id: 3, list_all: true },
    {
      t: "LOOKUP_RESPONSE",
      id: 2,
      peers: [{ identity: encodeIdentity(exampleBob.identity), last_seen: EXAMPLE_NOW, online: true }],
    },
    { t: "LIST_SERVERS_REQUEST", id: 4 },
    {
      t: "LIST_SERVERS_RESPONSE",
      id: 4,
      servers: ["wss://signal.example/ws", "wss://[2001:db8::1]:8443/ws"],
      timestamp: EXAMPLE_NOW,
    },
    await signRelayRegister(nobleCrypto, exampleAlice, {
      id: 5,
      capabilities: { max_message_size: 65_536, max_storage_duration: 172_800 },
      timestamp: EXAMPLE_NOW,
      nonce: nonce(8),
    }),
    await signStoreMessage(nobleCrypto, exampleAlice, {
      id: 6,
      recipient: bobKey,
      encrypted_blob: new Uint8Array([1, 2, 3]),
      message_id: 42,
    }),
    { t: "STORE_RESPONSE", id: 6, success: true, stored_at: EXAMPLE_NOW, message_id: 42 },
    await signRetrieveMessages(nobleCrypto, exampleBob, {
      id: 7,
      timestamp: EXAMPLE_NOW,
      since: EXAMPLE_NOW - 60_000,
      nonce: nonce(9),
    }),
    {
      t: "MESSAGE_BATCH",
      id: 7,
      messages: [
        {
          message_id: 42,
          sender: aliceKey,
          timestamp: EXAMPLE_NOW,
          encrypted_blob: new Uint8Array([1, 2, 3]),
        },
      ],
      has_more: false,
    },
    await signDeliveryConfirmation(nobleCrypto, exampleBob, {
      message_id: 42,
      timestamp: EXAMPLE_NOW + 1000,
    }),
    { t: "ERROR", id: 9, code: "LOFT_ERR_SCHEMA", message: "ttl_seconds: expected a number" },
  ];
}
