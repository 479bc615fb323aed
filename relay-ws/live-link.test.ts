/**
 * Live relay fallback: two online peers run a Link over a queue pair on a real relay
 * (docs/protocol/relay.md §Live links) — ordered, chunked beyond one block, both directions,
 * close propagation — and a real Noise XXhfs handshake plus transport messages over it.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import type { Link } from "../core/link/link.ts";
import { generateKeyPair, HandshakeState, XX_HFS } from "../core/noise/index.ts";
import type { RecipientQueue, RelayClient, SenderQueue } from "../core/relay/client.ts";
import { RelayLink } from "../core/relay/live-link.ts";
import { MAX_BODY } from "../core/relay/protocol.ts";
import { connectRelay, startTestRelay, type TestRelay } from "./testing.ts";

let relay: TestRelay;
beforeAll(async () => {
  relay = await startTestRelay();
});
afterAll(async () => {
  await relay.close();
});

/** Both peers create a receiving queue, swap sender ids (out of band) and SKEY each other's. */
async function linkPair(): Promise<{ a: RelayLink; b: RelayLink; ca: RelayClient; cb: RelayClient }> {
  const ca = await connectRelay(relay.url);
  const cb = await connectRelay(relay.url);
  const qa: RecipientQueue = await ca.createQueue({ subscribe: false });
  const qb: RecipientQueue = await cb.createQueue({ subscribe: false });
  const toB: SenderQueue = await ca.senderSecure({ senderId: qb.senderId });
  const toA: SenderQueue = await cb.senderSecure({ senderId: qa.senderId });
  const a = await RelayLink.open(ca, qa, toB);
  const b = await RelayLink.open(cb, qb, toA);
  return { a, b, ca, cb };
}

describe("live link over a queue pair", () => {
  it("carries ordered messages both ways, larger ones chunked, and propagates close", async () => {
    const { a, b, ca, cb } = await linkPair();
    const sizes = [0, 1, 100, MAX_BODY - 1, MAX_BODY, 65_535, 200_000];
    const sent = sizes.map((n) => new Uint8Array(randomBytes(n)));
    for (const m of sent) a.send(m);
    for (let i = 0; i < 50; i++) b.send(utf8(`reply ${i}`));
    for (const m of sent) expect(await b.receive()).toEqual(m);
    for (let i = 0; i < 50; i++) expect(new TextDecoder().decode(await a.receive())).toBe(`reply ${i}`);
    a.close();
    expect((await b.closed).reason).toBe("remote-closed");
    ca.close();
    cb.close();
  });

  it("runs a Noise XXhfs handshake and transport messages end to end", async () => {
    const { a, b, ca, cb } = await linkPair();
    const prologue = utf8("loft relay live link test");
    const ini = new HandshakeState({
      pattern: XX_HFS,
      role: "initiator",
      prologue,
      staticKeyPair: generateKeyPair(),
    });
    const res = new HandshakeState({
      pattern: XX_HFS,
      role: "responder",
      prologue,
      staticKeyPair: generateKeyPair(),
    });
    const step = async (from: HandshakeState, fromLink: Link, to: HandshakeState, toLink: Link) => {
      const msg = from.writeMessage();
      if (!msg.ok) throw msg.error;
      fromLink.send(msg.value);
      const read = to.readMessage(await toLink.receive());
      if (!read.ok) throw read.error;
    };
    await step(ini, a, res, b);
    await step(res, b, ini, a);
    await step(ini, a, res, b);
    const ti = ini.finish();
    const tr = res.finish();
    if (!ti.ok || !tr.ok) throw new Error("handshake did not finish");
    expect(ti.value.handshakeHash).toEqual(tr.value.handshakeHash);
    const ct = ti.value.send.encryptWithAd(new Uint8Array(0), utf8("over the relay"));
    if (!ct.ok) throw ct.error;
    a.send(ct.value);
    const pt = tr.value.receive.decryptWithAd(new Uint8Array(0), await b.receive());
    expect(pt.ok && new TextDecoder().decode(pt.value)).toBe("over the relay");
    a.close();
    b.close();
    ca.close();
    cb.close();
  });

  it("closes when the relay connection drops", async () => {
    const { a, b, ca, cb } = await linkPair();
    ca.close();
    expect((await a.closed).reason).toBe("LOFT_ERR_LINK_CLOSED");
    b.close();
    cb.close();
  });
});
