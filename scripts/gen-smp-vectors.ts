/**
 * Generates Loft's SMP v6–v7 vectors (docs/protocol/smp.md, "Vectors"):
 *
 *   docs/vectors/smp-v6-v7.json  the server and client hellos, every command's transmission at v6
 *                                and v7 (authorization, authorized bytes as sent), the server's
 *                                answers, one batched block, and one delivered MSG through the
 *                                server→recipient crypto_box layer.
 *
 * Every key, id and session id is SHA-256("loft/vectors/smp/" ‖ label), truncated; Ed25519
 * signatures are deterministic (RFC 8032), so the file is reproducible. test/smp/vectors.test.ts
 * replays it against core/smp and against the independent test client (test/smp/client.ts), and
 * checks that this script regenerates it byte for byte.
 *
 *   npx tsx scripts/gen-smp-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-smp-vectors.ts --check  # exit 1 if the committed file differs
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { toHex } from "../core/bytes.ts";
import {
  encodeCommand,
  encodeRcvMsgBody,
  encodeResponse,
  type SmpCommand,
  type SmpResponse,
} from "../core/smp/commands.ts";
import { boxKeyFromShared, secretboxSeal } from "../core/smp/crypto.ts";
import { pad } from "../core/smp/encoding.ts";
import { encodeSpki } from "../core/smp/keys.ts";
import {
  authorizedPart,
  encodeBatches,
  encodeBlock,
  encodeClientHello,
  encodeServerHello,
  encodeServerTransmission,
  encodeTransmission,
} from "../core/smp/transport.ts";

export const SMP_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/smp-v6-v7.json", import.meta.url));

const det = (label: string, length: number): Uint8Array =>
  new Uint8Array(createHash("sha256").update(`loft/vectors/smp/${label}`).digest().subarray(0, length));
const sha256hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export function buildSmpVectors(): unknown {
  const sessionId = det("session id", 32);
  const corrId = det("corr id", 24);
  const rcvAuth = det("recipient auth secret", 32);
  const rcvDh = det("recipient dh secret", 32);
  const sender = det("sender auth secret", 32);
  const serverQueueDh = det("server queue dh secret", 32);
  const rcvId = det("recipient id", 24);
  const sndId = det("sender id", 24);
  const msgId = det("message id", 24);
  const keyHash = det("ca certificate", 32);
  const pub = {
    rcvAuth: ed25519.getPublicKey(rcvAuth),
    rcvDh: x25519.getPublicKey(rcvDh),
    sender: ed25519.getPublicKey(sender),
    serverQueueDh: x25519.getPublicKey(serverQueueDh),
  };
  const none = new Uint8Array(0);
  const body = new TextEncoder().encode("hello over SMP");

  const commands: { name: string; entityId: Uint8Array; command: SmpCommand; key?: Uint8Array }[] = [
    { name: "PING", entityId: none, command: { tag: "PING" } },
    {
      name: "NEW (create only)",
      entityId: none,
      command: {
        tag: "NEW",
        rcvAuthKey: { alg: "ed25519", raw: pub.rcvAuth },
        rcvDhKey: { alg: "x25519", raw: pub.rcvDh },
        subscribe: false,
      },
      key: rcvAuth,
    },
    {
      name: "KEY",
      entityId: rcvId,
      command: { tag: "KEY", senderKey: { alg: "ed25519", raw: pub.sender } },
      key: rcvAuth,
    },
    { name: "SEND (unsecured)", entityId: sndId, command: { tag: "SEND", notification: false, body } },
    {
      name: "SEND (secured, notify)",
      entityId: sndId,
      command: { tag: "SEND", notification: true, body },
      key: sender,
    },
    { name: "SUB", entityId: rcvId, command: { tag: "SUB" }, key: rcvAuth },
    { name: "GET", entityId: rcvId, command: { tag: "GET" }, key: rcvAuth },
    { name: "ACK", entityId: rcvId, command: { tag: "ACK", msgId }, key: rcvAuth },
    { name: "OFF", entityId: rcvId, command: { tag: "OFF" }, key: rcvAuth },
    { name: "DEL", entityId: rcvId, command: { tag: "DEL" }, key: rcvAuth },
  ];
  const transmissions = [6, 7].flatMap((version) =>
    commands.map((c) => {
      const command = encodeCommand(c.command);
      const { forAuth, toSend } = authorizedPart(version, sessionId, corrId, c.entityId, command);
      const authorization = c.key ? ed25519.sign(forAuth, c.key) : none;
      return {
        version,
        name: c.name,
        entityId: toHex(c.entityId),
        signedBy: c.key === rcvAuth ? "recipient" : c.key === sender ? "sender" : "none",
        command: toHex(command),
        authorized: toHex(forAuth),
        authorization: toHex(authorization),
        transmission: toHex(encodeTransmission(authorization, toSend)),
      };
    }),
  );

  const shared = x25519.getSharedSecret(serverQueueDh, pub.rcvDh);
  const rcvKey = boxKeyFromShared(shared);
  const timestamp = 1_900_000_000;
  const rcvBody = encodeRcvMsgBody(timestamp, false, body);
  const padded = pad(rcvBody, 16_106)!;
  const sealed = secretboxSeal(rcvKey, msgId, padded);

  const responses: { name: string; entityId: Uint8Array; corrId: Uint8Array; message: SmpResponse }[] = [
    {
      name: "IDS",
      entityId: none,
      corrId,
      message: { tag: "IDS", rcvId, sndId, srvDhKey: encodeSpki({ alg: "x25519", raw: pub.serverQueueDh }) },
    },
    { name: "OK", entityId: rcvId, corrId, message: { tag: "OK" } },
    { name: "PONG", entityId: none, corrId, message: { tag: "PONG" } },
    { name: "END", entityId: rcvId, corrId: none, message: { tag: "END" } },
    { name: "ERR AUTH", entityId: rcvId, corrId, message: { tag: "ERR", error: { type: "AUTH" } } },
    {
      name: "ERR CMD SYNTAX",
      entityId: none,
      corrId,
      message: { tag: "ERR", error: { type: "CMD", cmd: "SYNTAX" } },
    },
    { name: "ERR BLOCK", entityId: none, corrId: none, message: { tag: "ERR", error: { type: "BLOCK" } } },
  ];
  const answers = [6, 7].flatMap((version) =>
    responses.map((r) => ({
      version,
      name: r.name,
      transmission: toHex(
        encodeServerTransmission(version, sessionId, r.corrId, r.entityId, encodeResponse(r.message)),
      ),
    })),
  );
  const msgTransmission = encodeServerTransmission(
    7,
    sessionId,
    none,
    rcvId,
    encodeResponse({ tag: "MSG", msgId, body: sealed }),
  );

  const ping7 = transmissions.find((t) => t.version === 7 && t.name === "PING")!;
  const send7 = transmissions.find((t) => t.version === 7 && t.name === "SEND (unsecured)")!;
  const batch = encodeBatches([
    Buffer.from(ping7.transmission, "hex"),
    Buffer.from(send7.transmission, "hex"),
  ]).blocks[0]!;

  const certChain = [
    det("online certificate DER (opaque to the codec)", 20),
    det("CA certificate DER (opaque)", 16),
  ];
  const signedKey = det("signed session key DER (opaque)", 12);
  return {
    description:
      "SMP v6-v7 wire vectors (docs/protocol/smp.md). Hex. Blocks are 16384 bytes: content is shown unpadded; padding = Word16 length, content, then '#' (0x23) to 16384. Generated by scripts/gen-smp-vectors.ts.",
    sessionId: toHex(sessionId),
    corrId: toHex(corrId),
    keys: {
      recipientAuthSecret: toHex(rcvAuth),
      recipientAuthPublic: toHex(pub.rcvAuth),
      recipientDhSecret: toHex(rcvDh),
      recipientDhPublic: toHex(pub.rcvDh),
      senderAuthSecret: toHex(sender),
      senderAuthPublic: toHex(pub.sender),
      serverQueueDhSecret: toHex(serverQueueDh),
      serverQueueDhPublic: toHex(pub.serverQueueDh),
    },
    ids: { recipientId: toHex(rcvId), senderId: toHex(sndId), messageId: toHex(msgId) },
    serverHello: {
      v6: toHex(encodeServerHello({ versions: { min: 6, max: 6 }, sessionId })),
      v7: {
        certChain: certChain.map((c) => toHex(c)),
        signedKey: toHex(signedKey),
        content: toHex(
          encodeServerHello({ versions: { min: 6, max: 7 }, sessionId, auth: { certChain, signedKey } }),
        ),
      },
      v6PaddedBlockSha256: sha256hex(
        encodeBlock(encodeServerHello({ versions: { min: 6, max: 6 }, sessionId }))!,
      ),
    },
    clientHello: {
      keyHash: toHex(keyHash),
      v6: toHex(encodeClientHello({ version: 6, keyHash })),
      v7: toHex(encodeClientHello({ version: 7, keyHash })),
      v7WithKey: toHex(
        encodeClientHello({ version: 7, keyHash, authKey: { alg: "x25519", raw: pub.rcvDh } }),
      ),
    },
    transmissions,
    batch: {
      of: ["PING v7", "SEND (unsecured) v7"],
      blockHead: toHex(batch.subarray(0, 300)),
      blockSha256: sha256hex(batch),
    },
    responses: answers,
    delivery: {
      rcvKey: toHex(rcvKey),
      timestamp,
      body: toHex(body),
      rcvMsgBody: toHex(rcvBody),
      paddedLength: padded.length,
      paddedSha256: sha256hex(padded),
      sealedLength: sealed.length,
      sealedHead: toHex(sealed.subarray(0, 48)),
      sealedSha256: sha256hex(sealed),
      msgTransmissionV7Head: toHex(msgTransmission.subarray(0, 64)),
      msgTransmissionV7Sha256: sha256hex(msgTransmission),
    },
  };
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const json = `${JSON.stringify(buildSmpVectors(), null, 2)}\n`;
  if (process.argv.includes("--check")) {
    if (readFileSync(SMP_VECTOR_FILE, "utf8") !== json) {
      console.error(`${SMP_VECTOR_FILE} differs from what the generator produces`);
      process.exit(1);
    }
  } else writeFileSync(SMP_VECTOR_FILE, json);
}
