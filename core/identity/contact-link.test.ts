import { Encoder } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { equalBytes } from "../bytes.ts";
import { toBase64url } from "../codec/base64url.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import {
  type ContactLink,
  contactLinkUrl,
  decodeContactLink,
  encodeContactLink,
  MAX_CONTACT_LINK_CHARS,
  parseContactLinkUrl,
} from "./contact-link.ts";
import { createUserIdentity, encodeIdentity } from "./identity.ts";

const T0 = 1_700_000_000_000;
const alice = createUserIdentity({ username: "alice", now: T0, seed: new Uint8Array(32).fill(1) });
const link: ContactLink = {
  identity: alice.identity,
  signaling: ["wss://signal.example/ws"],
  relay: ["wss://relay.example/ws", "wss://relay2.example/ws"],
  refs: { mailbox: new Uint8Array([1, 2, 3]) },
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);

describe("contact links", () => {
  it("round-trip through the payload and the URL, verifying the identity", async () => {
    const payload = encodeContactLink(link);
    expect(payload.ok).toBe(true);
    if (!payload.ok) return;
    expect(payload.value).toMatch(/^[A-Za-z0-9_-]+$/);
    const back = await decodeContactLink(nobleCrypto, payload.value);
    expect(back.ok).toBe(true);
    if (!back.ok) return;
    expect(equalBytes(encodeIdentity(back.value.identity), encodeIdentity(alice.identity))).toBe(true);
    expect(back.value.signaling).toEqual(link.signaling);
    expect(back.value.relay).toEqual(link.relay);
    expect(back.value.refs).toEqual(link.refs);

    const url = contactLinkUrl("https://loft.example/", link);
    expect(url.ok && url.value.startsWith("https://loft.example/#c=")).toBe(true);
    if (url.ok) expect(codeOf(await parseContactLinkUrl(nobleCrypto, url.value))).toBe("ok");
    if (url.ok)
      expect(codeOf(await parseContactLinkUrl(nobleCrypto, url.value.replace("#c=", "#x=1&c=")))).toBe("ok");
  });

  it("is compact: an identity without extensions plus three URLs stays well under the QR budget", () => {
    const payload = encodeContactLink(link);
    expect(payload.ok && payload.value.length < 700).toBe(true);
  });

  it("refuses a link whose identity signature is broken", async () => {
    const forged = {
      ...link,
      identity: { ...alice.identity, verified: { ...alice.identity.verified, username: "eve" } },
    };
    const payload = encodeContactLink(forged);
    expect(payload.ok).toBe(true);
    if (payload.ok)
      expect(codeOf(await decodeContactLink(nobleCrypto, payload.value))).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("refuses other versions, non-canonical payloads, bad URLs and oversize links with typed codes", async () => {
    const enc = new Encoder({ sortKeys: true });
    const fields = { i: encodeIdentity(alice.identity), r: [], s: [] };
    expect(codeOf(await decodeContactLink(nobleCrypto, toBase64url(enc.encode({ ...fields, v: 2 }))))).toBe(
      "LOFT_ERR_UNSUPPORTED_VERSION",
    );
    expect(
      codeOf(await decodeContactLink(nobleCrypto, toBase64url(new Encoder().encode({ v: 1, ...fields })))),
    ).toBe("LOFT_ERR_MALFORMED");
    expect(
      codeOf(
        await decodeContactLink(nobleCrypto, toBase64url(enc.encode({ ...fields, v: 1, s: ["ftp://x"] }))),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(
      codeOf(await decodeContactLink(nobleCrypto, toBase64url(enc.encode({ ...fields, v: 1, z: 0 })))),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(await decodeContactLink(nobleCrypto, "A".repeat(MAX_CONTACT_LINK_CHARS + 4)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    expect(codeOf(await decodeContactLink(nobleCrypto, "not base64!"))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(encodeContactLink({ ...link, signaling: ["javascript:alert(1)"] }))).toBe(
      "LOFT_ERR_SCHEMA",
    );
    const withPicture = createUserIdentity({
      username: "pic",
      now: T0,
      extensions: { profile_picture: new Uint8Array(4000) },
    });
    expect(codeOf(encodeContactLink({ ...link, identity: withPicture.identity }))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    expect(codeOf(await parseContactLinkUrl(nobleCrypto, "https://loft.example/"))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(await parseContactLinkUrl(nobleCrypto, "https://loft.example/#q=1"))).toBe(
      "LOFT_ERR_MALFORMED",
    );
  });
});
