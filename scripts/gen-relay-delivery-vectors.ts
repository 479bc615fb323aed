/**
 * Generates Loft's vectors for relay protocol 1.2 deliveries (docs/protocol/relay.md §Padding,
 * §Server→recipient layer):
 *
 *   docs/vectors/relay-delivery-v1.2.json  the client's 1.2 version header, one server→recipient
 *                                          key and, for bodies of 0, 5, 255, 1000 and 3000 bytes,
 *                                          the bucket and the `b` of 1.2 (the first also as a whole
 *                                          MSG frame), and a hash of 1.1's 16 KiB `b` of the same message.
 *
 * Every key, id and body is SHA-256("loft/vectors/relay-delivery/" ‖ label) (bodies: repeated),
 * written into the file. Computed with the core reference (noble); relay-ws/bucketed.test.ts
 * replays it through the relay's node:crypto sealing and core's `openFromRelay`, and checks that
 * this script regenerates it byte for byte.
 *
 *   npx tsx scripts/gen-relay-delivery-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-relay-delivery-vectors.ts --check  # exit 1 if the committed file differs
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { toHex } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { sealForRecipient } from "../core/relay/crypto.ts";
import {
  deliveryBucket,
  encodeServerFrame,
  padBlock,
  RELAY_VERSION_BUCKETED,
} from "../core/relay/protocol.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const RELAY_DELIVERY_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/relay-delivery-v1.2.json", import.meta.url),
);

const det = (label: string, length: number): Uint8Array => {
  const out = new Uint8Array(length);
  const block = createHash("sha256").update(`loft/vectors/relay-delivery/${label}`).digest();
  for (let i = 0; i < length; i++) out[i] = block[i % 32]!;
  return out;
};

/** Body lengths: empty, short, the first past the 256-byte bucket, about 1 KiB, about 3 KiB. */
export const DELIVERY_VECTOR_BODY_LENGTHS = [0, 5, 255, 1000, 3000];

export function buildRelayDeliveryVectors(): unknown {
  const rcvKey = det("rcv key", 32);
  const recipientId = det("recipient id", 24);
  const timestamp = 1_780_000_000;
  const cases = DELIVERY_VECTOR_BODY_LENGTHS.map((n, k) => {
    const msgId = det(`message id ${k}`, 24);
    const body = det(`body ${k}`, n);
    const bucket = deliveryBucket(n);
    const b = sealForRecipient(rcvKey, msgId, timestamp, padBlock(body, bucket));
    const block = sealForRecipient(rcvKey, msgId, timestamp, padBlock(body));
    return {
      bodyLength: n,
      body: toHex(body),
      msgId: toHex(msgId),
      bucket,
      b: toHex(b),
      ...(k === 0 ? { msg: toHex(encodeServerFrame({ k: "MSG", q: recipientId, m: msgId, b })) } : {}),
      /** The same message on a 1.1 connection: the 16 KiB block (SHA-256 of `b`, to keep the file small). */
      blockSha256: createHash("sha256").update(block).digest("hex"),
    };
  });
  return {
    description:
      "Loft relay protocol 1.2 deliveries (docs/protocol/relay.md §Padding). b = XChaCha20-Poly1305(rcvKey, " +
      "nonce = msgId)(u64be(timestamp) ‖ u16be(len) ‖ body ‖ zeros to bucket), bucket = min(16384, " +
      "max(256, 2^ceil(log2(len + 2)))); blockSha256 is SHA-256 of the 1.1 b (the same plaintext padded to 16384).",
    clientVersionHeader: toHex(encodeVersionHeader(RELAY_VERSION_BUCKETED)),
    rcvKey: toHex(rcvKey),
    recipientId: toHex(recipientId),
    timestamp,
    cases,
  };
}

if (isScript(import.meta.url))
  writeOrCheck([[RELAY_DELIVERY_VECTOR_FILE, `${JSON.stringify(buildRelayDeliveryVectors(), null, 2)}\n`]]);
