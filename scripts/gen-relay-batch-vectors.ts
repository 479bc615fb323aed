/**
 * Generates Loft's vectors for relay protocol 1.3, several messages per frame
 * (docs/protocol/relay.md §Batches):
 *
 *   docs/vectors/relay-batch-v1.3.json  the client's 1.3 version header; one connection (session
 *                                       id, the relay's X25519 key) and one sender and one
 *                                       recipient queue key with their authentication keys; a
 *                                       SENDS of three messages and an ACKS of two ids, each with
 *                                       its encoded command `t`, authenticator `a` and frame; the
 *                                       RES answers; a MSGS of two deliveries (bucketed, sealed
 *                                       under a server→recipient key) as a whole frame.
 *
 * Every key, id and body is SHA-256("loft/vectors/relay-batch/" ‖ label), truncated or repeated,
 * and written into the file. Computed with the core reference (noble); relay-ws/batch.test.ts
 * decodes every frame with the relay's byte-level decoder and the generic codec, checks every
 * authenticator with the relay's node:crypto code, opens every delivery with core, compares the
 * relay's encoders' bytes, and checks that this script regenerates the file byte for byte.
 *
 *   npx tsx scripts/gen-relay-batch-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-relay-batch-vectors.ts --check  # exit 1 if the committed file differs
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { x25519 } from "@noble/curves/ed25519.js";
import { toHex } from "../core/bytes.ts";
import { encodeVersionHeader } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { authenticateCommand, authPublicKey, deriveAuthKey, sealForRecipient } from "../core/relay/crypto.ts";
import {
  type Command,
  deliveryBucket,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  padBlock,
  RELAY_VERSION_BATCHED,
} from "../core/relay/protocol.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const RELAY_BATCH_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/relay-batch-v1.3.json", import.meta.url),
);

const det = (label: string, length: number): Uint8Array => {
  const out = new Uint8Array(length);
  const block = createHash("sha256").update(`loft/vectors/relay-batch/${label}`).digest();
  for (let i = 0; i < length; i++) out[i] = block[i % 32]!;
  return out;
};

/** Body lengths of the SENDS: empty, short, one past the 256-byte bucket. */
export const BATCH_VECTOR_BODY_LENGTHS = [0, 5, 255];

export async function buildRelayBatchVectors(): Promise<unknown> {
  const sessionId = det("session id", 32);
  const relaySecret = det("relay connection key", 32);
  const relayPublic = x25519.getPublicKey(relaySecret);
  const senderSeed = det("sender auth key", 32);
  const recipientSeed = det("recipient auth key", 32);
  const senderKey = await deriveAuthKey(
    nobleCrypto,
    senderSeed,
    authPublicKey(senderSeed),
    relayPublic,
    sessionId,
  );
  const recipientKey = await deriveAuthKey(
    nobleCrypto,
    recipientSeed,
    authPublicKey(recipientSeed),
    relayPublic,
    sessionId,
  );
  if (!senderKey.ok) throw senderKey.error;
  if (!recipientKey.ok) throw recipientKey.error;
  const sid = det("sender id", 24);
  const rid = det("recipient id", 24);
  const bodies = BATCH_VECTOR_BODY_LENGTHS.map((n, k) => det(`body ${k}`, n));
  const sends: Command = {
    k: "SENDS",
    i: 7,
    q: sid,
    ms: bodies.map((b, k) => [det(`send id ${k}`, 16), b]),
  };
  const msgIds = [det("message id 0", 24), det("message id 1", 24)];
  const acks: Command = { k: "ACKS", i: 8, q: rid, ms: msgIds };
  const commands = [];
  for (const [command, key] of [
    [sends, senderKey.value],
    [acks, recipientKey.value],
  ] as const) {
    const t = encodeCommand(command);
    const a = await authenticateCommand(nobleCrypto, key, t);
    commands.push({
      command: command.k,
      i: command.i,
      t: toHex(t),
      a: toHex(a),
      frame: toHex(encodeClientFrame(t, a)),
    });
  }
  const rcvKey = det("rcv key", 32);
  const timestamp = 1_780_000_000;
  const deliveries = msgIds.map((m, k) => {
    const body = bodies[k + 1]!;
    return {
      msgId: toHex(m),
      body: toHex(body),
      bucket: deliveryBucket(body.length),
      b: toHex(sealForRecipient(rcvKey, m, timestamp, padBlock(body, deliveryBucket(body.length)))),
    };
  });
  const msgs = encodeServerFrame({
    k: "MSGS",
    q: rid,
    ms: deliveries.map((d) => [Buffer.from(d.msgId, "hex"), Buffer.from(d.b, "hex")]),
  });
  return {
    description:
      "Loft relay protocol 1.3 batches (docs/protocol/relay.md §Batches). SENDS {i, k, ms: [[n, b]…], q: sid} and " +
      "ACKS {i, k, ms: [m…], q: rid}, canonical MessagePack, one HMAC-SHA256 authenticator over t as 1.1's " +
      "(docs/vectors/relay-auth-v1.1.json); RES {i, k, r: [result…]}; MSGS {k, ms: [[m, b]…], q: rid} with each b " +
      "as 1.2's (docs/vectors/relay-delivery-v1.2.json).",
    clientVersionHeader: toHex(encodeVersionHeader(RELAY_VERSION_BATCHED)),
    sessionId: toHex(sessionId),
    relaySecret: toHex(relaySecret),
    relayPublic: toHex(relayPublic),
    senderSeed: toHex(senderSeed),
    senderAuthKey: toHex(senderKey.value),
    recipientSeed: toHex(recipientSeed),
    recipientAuthKey: toHex(recipientKey.value),
    commands,
    answers: [
      { r: ["OK", "OK", "OK"], frame: toHex(encodeServerFrame({ k: "RES", i: 7, r: ["OK", "OK", "OK"] })) },
      {
        r: ["OK", "DUPLICATE", "QUOTA"],
        frame: toHex(encodeServerFrame({ k: "RES", i: 7, r: ["OK", "DUPLICATE", "QUOTA"] })),
      },
      { r: ["OK", "NO_MSG"], frame: toHex(encodeServerFrame({ k: "RES", i: 8, r: ["OK", "NO_MSG"] })) },
    ],
    rcvKey: toHex(rcvKey),
    timestamp,
    deliveries,
    msgs: toHex(msgs),
  };
}

if (isScript(import.meta.url))
  writeOrCheck([[RELAY_BATCH_VECTOR_FILE, `${JSON.stringify(await buildRelayBatchVectors(), null, 2)}\n`]]);
