/**
 * RelayClient's side of protocol 1.1 (docs/protocol/relay.md §Versions, §Command authorization),
 * against a scripted relay on a memory link: the 1.1 header goes out, HELLO must carry the
 * connection key (and must not under 1.0), a relay from before 1.1 is a typed refusal, and
 * pipelined commands leave in request-id order with the authenticators the relay would accept —
 * although their keys are derived asynchronously.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../codec/codec.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Link } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { type RecipientQueue, RelayClient, type RelayClientOptions } from "./client.ts";
import { authDhPublic, authenticateCommand, deriveAuthKey, newAuthKeyPair, newDhKeyPair } from "./crypto.ts";
import {
  decodeClientFrame,
  decodeCommand,
  encodeServerFrame,
  RELAY_VERSION_AUTHENTICATOR,
  RELAY_VERSION_SIGNATURE,
} from "./protocol.ts";

const session = new Uint8Array(32).fill(5);
const relayDh = newDhKeyPair();

/** Open a client against a scripted relay that answers the opening with `hello`. */
async function open(
  hello: Record<string, unknown> | "version-refused",
  options: RelayClientOptions = {},
): Promise<{ client: Promise<RelayClient>; relay: Link; header: Uint8Array }> {
  const [client, relay] = memoryLinkPair();
  const connecting = RelayClient.connect(client, { timeoutMs: 10_000, ...options });
  const header = await relay.receive();
  relay.send(encodeVersionHeader());
  relay.send(
    hello === "version-refused"
      ? encodeServerFrame({ k: "ERR", e: "VERSION" })
      : encodeCanonical({ k: "HELLO", s: session, fl: 65_535, qq: 128, mi: 16, ...hello }),
  );
  return { client: connecting, relay, header };
}

describe("authDhPublic", () => {
  it("is the Montgomery form of every valid Ed25519 key, and refuses y ≥ p and y = 1", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const pub = ed25519.getPublicKey(seed);
        expect(authDhPublic(pub)).toEqual(ed25519.utils.toMontgomery(pub));
      }),
      { numRuns: 200 },
    );
    const p = new Uint8Array(32).fill(0xff);
    p[0] = 0xed;
    p[31] = 0x7f;
    expect(authDhPublic(p)).toBeUndefined();
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(authDhPublic(one)).toBeUndefined();
    one[31] = 0x80; // the sign bit of x is not part of y
    expect(authDhPublic(one)).toBeUndefined();
    expect(authDhPublic(new Uint8Array(31))).toBeUndefined();
    // Never writes to its input — a Node Buffer (the relay's stored key) included.
    for (let n = 0; n < 20; n++) {
      const key = Buffer.from(newAuthKeyPair().publicKey);
      if ((key[31]! & 0x80) === 0) continue;
      const before = Buffer.from(key);
      authDhPublic(key);
      expect(key.equals(before)).toBe(true);
    }
  });
});

describe("RelayClient opening under 1.1", () => {
  it("sends the 1.1 header by default and the 1.0 one on request", async () => {
    const v11 = await open({ x: relayDh.publicKey });
    expect(decodeVersionHeader(v11.header, RELAY_VERSION_AUTHENTICATOR).ok).toBe(true);
    expect((await v11.client).hello.connectionKey).toEqual(relayDh.publicKey);
    const v10 = await open({}, { auth: "signature" });
    expect(decodeVersionHeader(v10.header, RELAY_VERSION_SIGNATURE).ok).toBe(true);
    expect((await v10.client).hello.connectionKey).toBeUndefined();
  });

  it("a HELLO without the connection key on 1.1, or with one on 1.0, is LOFT_ERR_RELAY_UNEXPECTED", async () => {
    const missing = await open({});
    await expect(missing.client).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_UNEXPECTED" });
    const extra = await open({ x: relayDh.publicKey }, { auth: "signature" });
    await expect(extra.client).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_UNEXPECTED" });
  });

  it("a relay from before 1.1 refuses the header: LOFT_ERR_UNSUPPORTED_VERSION", async () => {
    const old = await open("version-refused");
    await expect(old.client).rejects.toMatchObject({ code: "LOFT_ERR_UNSUPPORTED_VERSION", wire: "VERSION" });
  });

  it("pipelined commands leave in id order, each with the authenticator of its queue", async () => {
    const { client: connecting, relay } = await open({ x: relayDh.publicKey });
    const client = await connecting;
    // Twelve queues: each one's key is derived on first use, asynchronously.
    const queues: RecipientQueue[] = Array.from({ length: 12 }, () => ({
      recipientId: crypto.getRandomValues(new Uint8Array(24)),
      senderId: crypto.getRandomValues(new Uint8Array(24)),
      recipientAuthSecret: newAuthKeyPair().secretKey,
      rcvKey: new Uint8Array(32),
    }));
    const done = Array.from({ length: 60 }, (_, n) => {
      const q = queues[(n * 7) % queues.length]!;
      return n % 5 === 4 ? client.ping() : client.suspendQueue(q);
    });
    let last = 0;
    for (let n = 0; n < 60; n++) {
      const frame = decodeClientFrame(await relay.receive(), 65_535);
      if (!frame.ok) throw frame.error;
      const cmd = decodeCommand(frame.value.t, 65_535);
      if (!cmd.ok) throw cmd.error;
      expect(cmd.value.i).toBeGreaterThan(last);
      last = cmd.value.i;
      if (cmd.value.k === "OFF") {
        const q = queues.find((x) =>
          x.recipientId.every((b, j) => b === (cmd.value as { q: Uint8Array }).q[j]),
        )!;
        const pub = await nobleCrypto.ed25519.publicKey(q.recipientAuthSecret);
        const key = await deriveAuthKey(nobleCrypto, q.recipientAuthSecret, pub, relayDh.publicKey, session);
        if (!key.ok) throw key.error;
        expect(frame.value.a).toEqual(await authenticateCommand(nobleCrypto, key.value, frame.value.t));
      } else expect(frame.value.a).toBeUndefined();
      relay.send(encodeServerFrame({ k: "OK", i: cmd.value.i }));
    }
    await Promise.all(done);
    client.close();
  });
});
