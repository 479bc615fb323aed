import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { concatBytes, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import { createUserIdentity, encodeIdentity, updateIdentity } from "../identity/identity.ts";
import {
  ReplayGuard,
  requestSignedPayload,
  signDeliveryConfirmation,
  signRegisterRequest,
  signRelayRegister,
  signRetrieveMessages,
  signStoreMessage,
  verifyDeliveryConfirmation,
  verifyRegisterRequest,
  verifyRelayRegister,
  verifyRetrieveMessages,
  verifyStoreMessage,
} from "./signed.ts";
import { srempCodec } from "./sremp.ts";

const NOW = 1_700_000_000_000;
const alice = createUserIdentity({ username: "alice", now: NOW, seed: new Uint8Array(32).fill(1) });
const bob = createUserIdentity({ username: "bob", now: NOW, seed: new Uint8Array(32).fill(2) });
const nonce = new Uint8Array(16).fill(7);
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);

describe("REGISTER_REQUEST signing (docs/protocol/wire.md, Signed requests)", async () => {
  const req = await signRegisterRequest(nobleCrypto, alice, {
    id: 9,
    ttl_seconds: 300,
    timestamp: NOW,
    nonce,
    audience: "wss://s.example",
  });

  it("signs context ‖ 0x00 ‖ canonical(request minus signature and id)", () => {
    const expected = concatBytes(
      utf8("loft/sremp/register-request/v1"),
      new Uint8Array([0]),
      encodeCanonical({
        t: "REGISTER_REQUEST",
        identity: encodeIdentity(alice.identity),
        ttl_seconds: 300,
        timestamp: NOW,
        nonce,
        audience: "wss://s.example",
      }),
    );
    expect(ed25519.verify(req.signature, expected, alice.identity.verified.identity_key)).toBe(true);
    expect(requestSignedPayload(req, "signature")).toEqual(expected.subarray(31));
  });

  it("verifies after a wire round trip and returns the decoded identity", async () => {
    const d = srempCodec.decode(srempCodec.encode(req));
    if (!d.ok || d.value.t !== "REGISTER_REQUEST") throw new Error("decode");
    const r = await verifyRegisterRequest(nobleCrypto, d.value, {
      now: NOW + 1000,
      audience: "wss://s.example",
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.identity.verified.username).toBe("alice");
  });

  it("the request id is not signed (a server may renumber); every signed field is", async () => {
    expect((await verifyRegisterRequest(nobleCrypto, { ...req, id: 10 }, { now: NOW })).ok).toBe(true);
    for (const changed of [
      { ...req, ttl_seconds: 301 },
      { ...req, timestamp: NOW + 1 },
      { ...req, nonce: new Uint8Array(16) },
      { ...req, audience: "wss://other.example" },
      { ...req, endpoint: { host: "evil.example", port: 1 } },
    ])
      expect(codeOf(await verifyRegisterRequest(nobleCrypto, changed, { now: NOW }))).toBe(
        "LOFT_ERR_BAD_SIGNATURE",
      );
  });

  it("refuses someone else's identity with the victim's signature, and a stale identity re-signed by nobody", async () => {
    const stolen = { ...req, identity: encodeIdentity(bob.identity) };
    expect(codeOf(await verifyRegisterRequest(nobleCrypto, stolen, { now: NOW }))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
    const bad = encodeIdentity({
      ...alice.identity,
      verified: { ...alice.identity.verified, username: "eve" },
    });
    expect(codeOf(await verifyRegisterRequest(nobleCrypto, { ...req, identity: bad }, { now: NOW }))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
    expect(
      codeOf(
        await verifyRegisterRequest(nobleCrypto, { ...req, identity: new Uint8Array([1, 2]) }, { now: NOW }),
      ),
    ).not.toBe("ok");
  });

  it("refuses a timestamp outside the window and a request for another server (LOFT_ERR_REPLAY)", async () => {
    expect(codeOf(await verifyRegisterRequest(nobleCrypto, req, { now: NOW + 5 * 60_000 + 1 }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    expect(codeOf(await verifyRegisterRequest(nobleCrypto, req, { now: NOW - 5 * 60_000 - 1 }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    expect(codeOf(await verifyRegisterRequest(nobleCrypto, req, { now: NOW, maxSkewMs: 10_000 }))).toBe("ok");
    expect(
      codeOf(await verifyRegisterRequest(nobleCrypto, req, { now: NOW, audience: "wss://other.example" })),
    ).toBe("LOFT_ERR_REPLAY");
  });

  it("carries the latest identity version", async () => {
    const v2 = updateIdentity(alice, { username: "alice2" }, NOW + 1);
    const r = await verifyRegisterRequest(
      nobleCrypto,
      await signRegisterRequest(nobleCrypto, v2, { ttl_seconds: 60, timestamp: NOW }),
      {
        now: NOW,
      },
    );
    expect(r.ok && r.value.identity.verified.version).toBe(2);
  });

  it("a random nonce is drawn when none is given", async () => {
    const a = await signRegisterRequest(nobleCrypto, alice, { ttl_seconds: 60, timestamp: NOW });
    const b = await signRegisterRequest(nobleCrypto, alice, { ttl_seconds: 60, timestamp: NOW });
    expect(a.nonce).not.toEqual(b.nonce);
    await expect(
      signRegisterRequest(nobleCrypto, alice, { ttl_seconds: 60, timestamp: NOW, nonce: new Uint8Array(8) }),
    ).rejects.toThrow(RangeError);
  });
});

describe("relay requests", () => {
  it("RELAY_REGISTER and RETRIEVE_MESSAGES verify under their own identity field and window", async () => {
    const rr = await signRelayRegister(nobleCrypto, alice, {
      capabilities: { max_message_size: 65536, max_storage_duration: 3600 },
      timestamp: NOW,
      nonce,
    });
    expect((await verifyRelayRegister(nobleCrypto, rr, { now: NOW })).ok).toBe(true);
    expect(
      codeOf(
        await verifyRelayRegister(
          nobleCrypto,
          { ...rr, identity: bob.identity.verified.identity_key },
          { now: NOW },
        ),
      ),
    ).toBe("LOFT_ERR_BAD_SIGNATURE");
    expect(codeOf(await verifyRelayRegister(nobleCrypto, rr, { now: NOW + 3_600_000 }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    const rm = await signRetrieveMessages(nobleCrypto, bob, { timestamp: NOW, since: 5, nonce });
    expect((await verifyRetrieveMessages(nobleCrypto, rm, { now: NOW })).ok).toBe(true);
    expect(codeOf(await verifyRetrieveMessages(nobleCrypto, { ...rm, since: 6 }, { now: NOW }))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
  });

  it("a signature cannot move between request types (distinct contexts)", async () => {
    const rr = await signRelayRegister(nobleCrypto, alice, {
      capabilities: { max_message_size: 1, max_storage_duration: 1 },
      timestamp: NOW,
      nonce,
    });
    const rm = await signRetrieveMessages(nobleCrypto, alice, { timestamp: NOW, nonce });
    expect(
      codeOf(
        await verifyRetrieveMessages(nobleCrypto, { ...rm, auth_signature: rr.auth_signature }, { now: NOW }),
      ),
    ).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("STORE_MESSAGE is verified against the sender's key; DELIVERY_CONFIRMATION under delivered_to", async () => {
    const store = await signStoreMessage(nobleCrypto, alice, {
      recipient: bob.identity.verified.identity_key,
      encrypted_blob: new Uint8Array([9, 9]),
      message_id: 5,
    });
    expect((await verifyStoreMessage(nobleCrypto, store, alice.identity.verified.identity_key)).ok).toBe(
      true,
    );
    expect(codeOf(await verifyStoreMessage(nobleCrypto, store, bob.identity.verified.identity_key))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
    expect(
      codeOf(
        await verifyStoreMessage(
          nobleCrypto,
          { ...store, encrypted_blob: new Uint8Array([9, 8]) },
          alice.identity.verified.identity_key,
        ),
      ),
    ).toBe("LOFT_ERR_BAD_SIGNATURE");
    const conf = await signDeliveryConfirmation(nobleCrypto, bob, { message_id: 5, timestamp: NOW });
    expect((await verifyDeliveryConfirmation(nobleCrypto, conf)).ok).toBe(true);
    expect(codeOf(await verifyDeliveryConfirmation(nobleCrypto, { ...conf, message_id: 6 }))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
    expect(
      codeOf(
        await verifyDeliveryConfirmation(nobleCrypto, {
          ...conf,
          delivered_to: alice.identity.verified.identity_key,
        }),
      ),
    ).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("verifiers refuse malformed objects with LOFT_ERR_SCHEMA instead of throwing", async () => {
    const rm = await signRetrieveMessages(nobleCrypto, bob, { timestamp: NOW, nonce });
    expect(
      codeOf(
        await verifyRetrieveMessages(nobleCrypto, { ...rm, auth_signature: new Uint8Array(3) }, { now: NOW }),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(await verifyDeliveryConfirmation(nobleCrypto, {} as never))).toBe("LOFT_ERR_SCHEMA");
  });
});

describe("ReplayGuard", () => {
  const key = alice.identity.verified.identity_key;
  const n = (i: number) => new Uint8Array(16).fill(i);

  it("accepts a nonce once inside the window", () => {
    const g = new ReplayGuard({ maxEntries: 10 });
    expect(codeOf(g.check(key, n(1), NOW, NOW))).toBe("ok");
    expect(codeOf(g.check(key, n(1), NOW, NOW + 1000))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(g.check(bob.identity.verified.identity_key, n(1), NOW, NOW))).toBe("ok"); // other signer
    expect(codeOf(g.check(key, n(2), NOW, NOW))).toBe("ok");
  });

  it("refuses stale or future timestamps", () => {
    const g = new ReplayGuard({ maxEntries: 10, maxSkewMs: 1000 });
    expect(codeOf(g.check(key, n(1), NOW - 1001, NOW))).toBe("LOFT_ERR_REPLAY");
    expect(codeOf(g.check(key, n(1), NOW + 1001, NOW))).toBe("LOFT_ERR_REPLAY");
  });

  it("forgets a nonce only once its timestamp can no longer be accepted", () => {
    const g = new ReplayGuard({ maxEntries: 2, maxSkewMs: 1000 });
    expect(codeOf(g.check(key, n(1), NOW, NOW))).toBe("ok");
    expect(codeOf(g.check(key, n(2), NOW, NOW))).toBe("ok");
    // full of live entries: refuse rather than forget (forgetting would reopen the replay window)
    expect(codeOf(g.check(key, n(3), NOW, NOW + 10))).toBe("LOFT_ERR_REPLAY");
    expect(g.size).toBe(2);
    // later, the old entries are dead and swept; their nonces are refused anyway by the window
    expect(codeOf(g.check(key, n(3), NOW + 1500, NOW + 1500))).toBe("ok");
    expect(codeOf(g.check(key, n(1), NOW, NOW + 1500))).toBe("LOFT_ERR_REPLAY");
    expect(g.size).toBe(1);
  });
});
