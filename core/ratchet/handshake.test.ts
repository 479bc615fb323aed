/**
 * The ratchet started from a real finished Noise session (core/session over memoryLinkPair, the
 * hybrid XXhfs handshake with signed identities): the responder advertises its ratchet key in its
 * handshake payload and plays Bob; both sides bootstrap from `exportSecret(RATCHET_EXPORT_LABEL)`
 * and exchange ratchet messages over the session.
 */
import { describe, expect, it } from "vitest";
import { utf8 } from "../bytes.ts";
import { createUserIdentity } from "../identity/identity.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { establishSession } from "../session/session.ts";
import {
  generateRatchetKeyPair,
  RATCHET_EXPORT_LABEL,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
} from "./index.ts";

const NOW = 1_700_000_000_000;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("ratchetFromHandshake over a real Noise session", () => {
  it("the initiator (Alice) and responder (Bob) derive matching ratchets and talk over the link", async () => {
    const alice = createUserIdentity({ username: "alice", now: NOW, seed: new Uint8Array(32).fill(1) });
    const bob = createUserIdentity({ username: "bob", now: NOW, seed: new Uint8Array(32).fill(2) });
    const bobRatchetKeys = await generateRatchetKeyPair();
    const [la, lb] = memoryLinkPair();
    const [a, b] = await Promise.all([
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: alice,
        expectedIdentityKey: bob.identity.verified.identity_key,
      }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: bob,
        extensions: { ratchet_key: bobRatchetKeys.publicKey },
      }),
    ]);
    const ad = ratchetAssociatedData(
      alice.identity.verified.identity_key,
      bob.identity.verified.identity_key,
    );
    const aliceRatchet = await ratchetFromHandshake({
      role: "initiator",
      exported: a.exportSecret(RATCHET_EXPORT_LABEL),
      ad,
      responderRatchetPublic: a.remoteExtensions.ratchet_key!,
    });
    const bobRatchet = await ratchetFromHandshake({
      role: "responder",
      exported: b.exportSecret(RATCHET_EXPORT_LABEL),
      ad: ratchetAssociatedData(b.remoteIdentity.verified.identity_key, bob.identity.verified.identity_key),
      ratchetKeyPair: bobRatchetKeys,
    });
    if (!aliceRatchet.ok || !bobRatchet.ok) throw new Error("ratchet bootstrap failed");

    const hello = await ratchetEncrypt(aliceRatchet.value, utf8("hello over noise"), NOW);
    a.send(hello.message);
    const atBob = await ratchetDecrypt(bobRatchet.value, await b.receive(), NOW);
    expect(atBob.ok && text(atBob.value.plaintext)).toBe("hello over noise");
    if (!atBob.ok) return;
    const reply = await ratchetEncrypt(atBob.value.state, utf8("hello back"), NOW);
    b.send(reply.message);
    const atAlice = await ratchetDecrypt(hello.state, await a.receive(), NOW);
    expect(atAlice.ok && text(atAlice.value.plaintext)).toBe("hello back");

    // A ratchet bootstrapped from another session's export cannot read this one.
    const [lc, ld] = memoryLinkPair();
    const [c] = await Promise.all([
      establishSession({ link: lc, role: "initiator", kind: "direct", self: alice }),
      establishSession({ link: ld, role: "responder", kind: "direct", self: bob }),
    ]);
    const stranger = await ratchetFromHandshake({
      role: "responder",
      exported: c.exportSecret(RATCHET_EXPORT_LABEL),
      ad,
      ratchetKeyPair: await generateRatchetKeyPair(),
    });
    if (!stranger.ok) throw stranger.error;
    const probe = await ratchetEncrypt(atAlice.ok ? atAlice.value.state : hello.state, utf8("x"), NOW);
    const r = await ratchetDecrypt(stranger.value, probe.message, NOW);
    expect(r.ok ? "opened" : r.error.code).toBe("LOFT_ERR_DECRYPT");
  });
});
