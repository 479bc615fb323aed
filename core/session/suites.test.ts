/**
 * Noise suite negotiation through the version header (docs/protocol/noise.md, "Cipher suites"):
 * an offer picks AES-GCM when both sides accept it, no offer keeps the 1.0 header byte for byte
 * (old ChaChaPoly-only peers interoperate both ways), an offer to an old peer fails with a clear
 * code, and a header rewritten in transit — the offer stripped or the answer changed — makes the
 * handshake fail instead of downgrading it.
 */
import { describe, expect, it } from "vitest";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { utf8 } from "../bytes.ts";
import { CURRENT_VERSION, decodeVersionHeader, encodeVersionHeader } from "../codec/version.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import { err } from "../errors.ts";
import type { Link } from "../link/link.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { establishSession, type Session, type SessionOptions } from "./session.ts";
import { alice, bob, codeOf } from "./testing.ts";

const V1_0 = encodeVersionHeader();
const OFFER = ["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"] as const;

type Extra = Partial<Omit<SessionOptions, "link" | "role" | "self">>;

/**
 * A peer from before suites existed: it sends the 1.0 header first, and its strict decoder
 * refused any field it did not know (LOFT_ERR_SCHEMA), so an offer never reaches its handshake.
 */
const OLD_PEER: Extra = {
  versionCodec: {
    encode: () => V1_0,
    decode: (b) => {
      const h = decodeVersionHeader(b);
      return h.ok && h.value.noise_suites !== undefined
        ? err("LOFT_ERR_SCHEMA", "unknown field noise_suites")
        : h;
    },
  },
};

/** Both ends over memory links; `tap` sees (and may rewrite) every message in each direction. */
function connect(a: Extra, b: Extra, tap?: { forward?: Rewrite; backward?: Rewrite }) {
  const [la, relayA] = memoryLinkPair();
  const [relayB, lb] = memoryLinkPair();
  const seen = { forward: [] as Uint8Array[], backward: [] as Uint8Array[] };
  pipe(relayA, relayB, (m, i) => {
    seen.forward.push(m);
    return tap?.forward?.(m, i) ?? m;
  });
  pipe(relayB, relayA, (m, i) => {
    seen.backward.push(m);
    return tap?.backward?.(m, i) ?? m;
  });
  const initiator = establishSession({ link: la, role: "initiator", kind: "direct", self: alice, ...a });
  const responder = establishSession({ link: lb, role: "responder", kind: "direct", self: bob, ...b });
  return { initiator, responder, seen };
}

type Rewrite = (m: Uint8Array, i: number) => Uint8Array | undefined;

function pipe(from: Link, to: Link, rewrite: (m: Uint8Array, i: number) => Uint8Array): void {
  void (async () => {
    for (let i = 0; ; i++) {
      let m: Uint8Array;
      try {
        m = await from.receive();
      } catch {
        const info = await from.closed;
        if (to.state !== "closed") to.close(info.detail ?? info.reason);
        return;
      }
      if (to.state === "closed") return;
      to.send(rewrite(m, i));
    }
  })();
}

async function talk(a: Session, b: Session): Promise<void> {
  a.send(utf8("hello bob"));
  b.send(utf8("hello alice"));
  expect(await b.receive()).toEqual(utf8("hello bob"));
  expect(await a.receive()).toEqual(utf8("hello alice"));
  a.close();
  b.close();
}

describe("Noise suite negotiation", () => {
  it.each(["XXhfs", "XX"] as const)("%s: an offer both accept runs AES-GCM / SHA-256", async (protocol) => {
    const { initiator, responder, seen } = connect({ protocol, suites: OFFER }, { protocol });
    const [a, b] = await Promise.all([initiator, responder]);
    const name =
      protocol === "XX" ? "Noise_XX_25519_AESGCM_SHA256" : "Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256";
    expect([a.protocolName, b.protocolName]).toEqual([name, name]);
    expect(a.handshakeHash).toEqual(b.handshakeHash);
    const offer = decodeVersionHeader(seen.forward[0]!);
    const answer = decodeVersionHeader(seen.backward[0]!);
    expect(offer.ok && offer.value.noise_suites).toEqual([...OFFER]);
    expect(answer.ok && answer.value.noise_suites).toEqual(["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"]);
    await talk(a, b);
  });

  it("the initiator's preference wins; a responder that accepts only ChaChaPoly gets ChaChaPoly", async () => {
    const { initiator, responder } = connect({ suites: OFFER }, { suites: ["ChaChaPoly_BLAKE2s"] });
    const [a, b] = await Promise.all([initiator, responder]);
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    expect(b.protocolName).toBe(a.protocolName);
    await talk(a, b);
  });

  it("without an offer both headers are the 1.0 bytes and the suite is ChaChaPoly", async () => {
    const { initiator, responder, seen } = connect({}, {});
    const [a, b] = await Promise.all([initiator, responder]);
    expect(seen.forward[0]).toEqual(V1_0);
    expect(seen.backward[0]).toEqual(V1_0);
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    await talk(a, b);
  });

  it("old ChaChaPoly-only peers interoperate: an old initiator with a new responder, a new initiator with an old responder", async () => {
    const one = connect(OLD_PEER, {});
    const [a1, b1] = await Promise.all([one.initiator, one.responder]);
    expect(b1.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    await talk(a1, b1);
    const two = connect({}, OLD_PEER);
    const [a2, b2] = await Promise.all([two.initiator, two.responder]);
    expect(a2.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s");
    await talk(a2, b2);
  });

  it("an offer to an old peer fails with LOFT_ERR_UNSUPPORTED_VERSION; dialling again without it works", async () => {
    const first = connect({ suites: OFFER }, OLD_PEER);
    expect(await codeOf(first.initiator)).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(await codeOf(first.responder)).not.toBe("resolved");
    const again = connect({}, OLD_PEER);
    await talk(...(await Promise.all([again.initiator, again.responder])));
  });

  it("an offer stripped in transit does not downgrade: the initiator sees no answer and stops", async () => {
    const { initiator, responder } = connect(
      { suites: OFFER },
      {},
      { forward: (m, i) => (i === 0 ? V1_0 : m) },
    );
    expect(await codeOf(initiator)).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(await codeOf(responder)).not.toBe("resolved");
  });

  it("an answer rewritten in transit (AES-GCM removed) breaks the handshake via the prologue", async () => {
    const chachaOnly = encodeVersionHeader({ ...CURRENT_VERSION, noise_suites: ["ChaChaPoly_BLAKE2s"] });
    const { initiator, responder } = connect(
      { suites: OFFER },
      {},
      { backward: (m, i) => (i === 0 ? chachaOnly : m) },
    );
    // The initiator runs ChaChaPoly, the responder AES-GCM: different names and prologues.
    expect(await codeOf(initiator)).not.toBe("resolved");
    expect(await codeOf(responder)).not.toBe("resolved");
  });

  it("unknown suite names are ignored; no common suite is LOFT_ERR_UNSUPPORTED_VERSION", async () => {
    const future = encodeVersionHeader({
      ...CURRENT_VERSION,
      noise_suites: ["Future_Suite", "AESGCM_SHA256"],
    });
    const ok = connect({ suites: OFFER }, {}, { forward: (m, i) => (i === 0 ? future : m) });
    // the responder answers AES-GCM to the rewritten offer; the initiator's prologue differs
    expect(await codeOf(ok.initiator)).not.toBe("resolved");
    expect(await codeOf(ok.responder)).not.toBe("resolved");
    const none = connect({ suites: ["AESGCM_SHA256"] }, { suites: ["ChaChaPoly_BLAKE2s"] });
    expect(await codeOf(none.initiator)).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(await codeOf(none.responder)).not.toBe("resolved");
  });

  it("runs AES-GCM through WebCrypto on one side and node:crypto on the other", async () => {
    const [web, node] = await Promise.all([createWebCryptoProvider(), createNodeCryptoProvider()]);
    expect(web.backends.aes256gcm).toBe("webcrypto");
    expect(node.backends.aes256gcm).toBe("node");
    const { initiator, responder } = connect({ suites: OFFER, crypto: web }, { crypto: node });
    const [a, b] = await Promise.all([initiator, responder]);
    expect(a.protocolName).toBe("Noise_XXhfs_25519+MLKEM768_AESGCM_SHA256");
    await talk(a, b);
  });
});
