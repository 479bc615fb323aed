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
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { Result } from "../errors.ts";
import type { Link } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { type RecipientQueue, RelayClient, type RelayClientOptions } from "./client.ts";
import {
  authDhPublic,
  authenticateCommand,
  deriveAuthKey,
  newAuthKeyPair,
  newDhKeyPair,
  type OpenedMessage,
  openFromRelay,
  openFromRelayWith,
  sealForRecipient,
} from "./crypto.ts";
import {
  decodeClientFrame,
  decodeCommand,
  encodeServerFrame,
  padBlock,
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

/** The next command the client sent: its frame (`t` the command's bytes, `a` its authenticator), decoded. */
async function receiveCommand(relay: Link) {
  const frame = decodeClientFrame(await relay.receive(), 65_535);
  if (!frame.ok) throw frame.error;
  const cmd = decodeCommand(frame.value.t, 65_535);
  if (!cmd.ok) throw cmd.error;
  return { frame: frame.value, cmd: cmd.value };
}

/**
 * The authenticator the relay accepts on `command` for queue `q`
 * (docs/protocol/relay.md §Command authorization).
 */
async function authenticatorFor(q: RecipientQueue, command: Uint8Array): Promise<Uint8Array> {
  const pub = await nobleCrypto.ed25519.publicKey(q.recipientAuthSecret);
  const key = await deriveAuthKey(nobleCrypto, q.recipientAuthSecret, pub, relayDh.publicKey, session);
  if (!key.ok) throw key.error;
  return authenticateCommand(nobleCrypto, key.value, command);
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
      const { frame, cmd } = await receiveCommand(relay);
      expect(cmd.i).toBeGreaterThan(last);
      last = cmd.i;
      if (cmd.k === "OFF") {
        const q = queues.find((x) => x.recipientId.every((b, j) => b === (cmd as { q: Uint8Array }).q[j]))!;
        expect(frame.a).toEqual(await authenticatorFor(q, frame.t));
      } else expect(frame.a).toBeUndefined();
      relay.send(encodeServerFrame({ k: "OK", i: cmd.i }));
    }
    await Promise.all(done);
    client.close();
  });

  it("the derived key K is wiped once imported, and when the import fails; the next command derives it again", async () => {
    // noble, recording each K (the HKDF output, docs/protocol/relay.md §Command authorization)
    // and failing the first keyed-HMAC import.
    const keys: Uint8Array[] = [];
    let imports = 0;
    const crypto: CryptoProvider = {
      ...nobleCrypto,
      hkdfSha256: async (...args) => {
        const out = await nobleCrypto.hkdfSha256(...args);
        keys.push(out);
        return out;
      },
      hmacSha256Key: (key) =>
        ++imports === 1 ? Promise.reject(new Error("import failed")) : nobleCrypto.hmacSha256Key!(key),
    };
    const { client: connecting, relay } = await open({ x: relayDh.publicKey }, { crypto });
    const client = await connecting;
    const q: RecipientQueue = {
      recipientId: new Uint8Array(24).fill(1),
      senderId: new Uint8Array(24).fill(2),
      recipientAuthSecret: newAuthKeyPair().secretKey,
      rcvKey: new Uint8Array(32),
    };
    await expect(client.suspendQueue(q)).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_UNEXPECTED" });
    expect(keys.length).toBe(1);
    expect(keys[0]!.every((b) => b === 0)).toBe(true);
    // Not cached as failed: the next command imports a fresh K, whose authenticator the relay accepts.
    const suspended = client.suspendQueue(q);
    const { frame, cmd } = await receiveCommand(relay);
    expect(frame.a).toEqual(await authenticatorFor(q, frame.t));
    relay.send(encodeServerFrame({ k: "OK", i: cmd.i }));
    await suspended;
    expect(imports).toBe(2);
    expect(keys.length).toBe(2);
    expect(keys.every((k) => k.every((b) => b === 0))).toBe(true);
    client.close();
  });
});

describe("pushed deliveries opened by a native AEAD (docs/protocol/relay.md §Server→recipient layer)", () => {
  /** A subscribed client on a scripted 1.1 relay; `options` as the app passes them. */
  async function subscribed(options: RelayClientOptions) {
    const got: { body: Uint8Array; timestamp: number }[] = [];
    const errors: string[] = [];
    const { client: connecting, relay } = await open(
      { x: relayDh.publicKey },
      { ...options, onMessage: (m) => got.push(m), onError: (e) => errors.push(e.code) },
    );
    const client = await connecting;
    const queue: RecipientQueue = {
      recipientId: crypto.getRandomValues(new Uint8Array(24)),
      senderId: crypto.getRandomValues(new Uint8Array(24)),
      recipientAuthSecret: newAuthKeyPair().secretKey,
      rcvKey: crypto.getRandomValues(new Uint8Array(32)),
    };
    const subscribing = client.subscribe(queue);
    relay.send(encodeServerFrame({ k: "OK", i: (await receiveCommand(relay)).cmd.i }));
    await subscribing;
    return { client, relay, queue, got, errors };
  }

  /** Push `body` to `queue` as the relay does (MSG sent at `timestamp`), the reply to command `i` if set. */
  function push(relay: Link, queue: RecipientQueue, body: Uint8Array, timestamp: number, i?: number): void {
    const m = crypto.getRandomValues(new Uint8Array(24));
    const b = sealForRecipient(queue.rcvKey, m, timestamp, padBlock(body));
    relay.send(
      encodeServerFrame({ k: "MSG", ...(i === undefined ? {} : { i }), q: queue.recipientId, m, b }),
    );
  }

  /**
   * noble whose AEAD opens each await `before()` (called as the open begins), under a backend
   * name that is not noble's, so the client takes its asynchronous open path.
   */
  function opensAfter(before: () => Promise<unknown>): CryptoProvider {
    return {
      ...nobleCrypto,
      backends: { ...nobleCrypto.backends, xchacha20poly1305: "test" },
      xchacha20poly1305: {
        ...nobleCrypto.xchacha20poly1305,
        open: async (...args) => {
          await before();
          return nobleCrypto.xchacha20poly1305.open(...args);
        },
      },
    };
  }

  /** noble whose AEAD opens each wait for `release()`; `opening()` counts the opens begun. */
  function heldOpens() {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let opening = 0;
    const held = opensAfter(() => {
      opening++;
      return gate;
    });
    return { held, release: () => release(), opening: () => opening };
  }

  it("the node provider's open answers as noble's for every delivery, tampered, cut or padded wrong", async () => {
    const node = await createNodeCryptoProvider();
    expect(node.backends.xchacha20poly1305).toBe("node");
    const key = crypto.getRandomValues(new Uint8Array(32));
    const msgId = crypto.getRandomValues(new Uint8Array(24));
    const block = sealForRecipient(key, msgId, 7, padBlock(new Uint8Array(300).fill(9)));
    const small = sealForRecipient(key, msgId, 7, padBlock(new Uint8Array(200).fill(9), 256));
    const bucket = sealForRecipient(key, msgId, 7, padBlock(new Uint8Array(300).fill(9), 512));
    const outcome = (r: Result<OpenedMessage>) => (r.ok ? r.value : r.error.code);
    const same = async (b: Uint8Array, id: Uint8Array, padding: "block" | "bucket") => {
      const native = await openFromRelayWith(node.xchacha20poly1305, key, id, b, padding);
      expect(outcome(native)).toEqual(outcome(openFromRelay(key, id, b, padding)));
    };
    /** `sealed` whole (0), one bit flipped at `at` (1), cut at `at` (2), or random bytes of its length (3). */
    const variant = (sealed: Uint8Array, at: number, how: number) =>
      how === 0
        ? sealed
        : how === 1
          ? sealed.map((x, i) => (i === at % sealed.length ? x ^ (1 << (at & 7)) : x))
          : how === 2
            ? sealed.subarray(0, at % sealed.length)
            : crypto.getRandomValues(new Uint8Array(sealed.length));
    // The 16 KiB block of 1.0/1.1 a few times (noble's open of it is slow), the 1.2 buckets fuzzed.
    for (let n = 0; n < 24; n++)
      for (const padding of ["block", "bucket"] as const)
        await same(variant(block, n * 977 + 5, n % 4), msgId, padding);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(small, bucket),
        fc.constantFrom<"block" | "bucket">("block", "bucket"),
        fc.nat(20_000),
        fc.integer({ min: 0, max: 3 }),
        fc.boolean(),
        async (sealed, padding, at, how, shortId) =>
          same(variant(sealed, at, how), shortId ? msgId.subarray(1) : msgId, padding),
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("hands pushed messages over in the order they came, a forged one in between an error, the rest kept", async () => {
    // Opens that settle out of order (a backend on a thread pool would): the client must not.
    const slow = opensAfter(() => new Promise((r) => setTimeout(r, Math.random() * 5)));
    const { client, relay, queue, got, errors } = await subscribed({ crypto: slow });
    const sent: number[] = [];
    for (let n = 0; n < 20; n++) {
      const m = crypto.getRandomValues(new Uint8Array(24));
      const b = sealForRecipient(queue.rcvKey, m, 1000 + n, padBlock(Uint8Array.of(n)));
      if (n === 7)
        b[100]! ^= 1; // does not authenticate: LOFT_ERR_DECRYPT, and the others go on
      else sent.push(n);
      relay.send(encodeServerFrame({ k: "MSG", q: queue.recipientId, m, b }));
    }
    await expect.poll(() => got.length + errors.length, { timeout: 10_000 }).toBe(20);
    expect(got.map((m) => m.body[0])).toEqual(sent);
    expect(got.map((m) => m.timestamp)).toEqual(sent.map((n) => 1000 + n));
    expect(errors).toEqual(["LOFT_ERR_DECRYPT"]);
    // A reply after the pushed messages is settled after them: frames stay in order.
    const pinged = client.ping();
    const ping = (await receiveCommand(relay)).cmd;
    push(relay, queue, Uint8Array.of(99), 1);
    relay.send(encodeServerFrame({ k: "OK", i: ping.i } as never));
    await pinged;
    expect(got.at(-1)?.body).toEqual(Uint8Array.of(99));
    client.close();
  });

  it("a delivery still opening when the client closes is not handed over (the relay keeps it: not acknowledged)", async () => {
    // Before, a native open that settled after close() handed the message to the application,
    // which could no longer ACK it on this connection: taken now and delivered again later.
    const { held, release, opening } = heldOpens();
    const { client, relay, queue, got, errors } = await subscribed({ crypto: held });
    push(relay, queue, Uint8Array.of(1), 1);
    await expect.poll(opening, { timeout: 10_000 }).toBe(1);
    client.close();
    release();
    await client.done.catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("a GET reply still opening when the client closes is not returned: the GET rejects with the close (not acknowledged)", async () => {
    // Before, the poll resolved with the message after close(): taken by the caller, which could
    // no longer ACK it on this connection, and delivered again by the next GET or SUB.
    const { held, release, opening } = heldOpens();
    const { client, relay, queue } = await subscribed({ crypto: held });
    const polled = client.get(queue);
    polled.catch(() => {});
    const { cmd } = await receiveCommand(relay);
    expect(cmd.k).toBe("GET");
    push(relay, queue, Uint8Array.of(1), 1, cmd.i);
    await expect.poll(opening, { timeout: 10_000 }).toBe(1);
    client.close();
    release();
    await expect(polled).rejects.toMatchObject({ code: "LOFT_ERR_LINK_CLOSED" });
  });

  it("with the node provider, pushed messages arrive whole (the native path on a real backend)", async () => {
    const { client, relay, queue, got, errors } = await subscribed({
      crypto: await createNodeCryptoProvider(),
    });
    const bodies = [new Uint8Array(0), new Uint8Array(16_382).fill(3), Uint8Array.of(1, 2, 3)];
    for (const body of bodies) push(relay, queue, body, 5);
    await expect.poll(() => got.length, { timeout: 10_000 }).toBe(3);
    expect(got.map((m) => m.body)).toEqual(bodies);
    expect(errors).toEqual([]);
    client.close();
  });
});
