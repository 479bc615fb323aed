/**
 * The crypto warm-up: once per engine, just after start, the code of a first contact's session runs
 * once between two throwaway identities over an in-memory link — the Noise XXhfs+ML-KEM-768
 * handshake with the engine's suites, extensions and detached frames (dialing.ts `handshake`), the
 * ratchet bootstrap from it (ratchet-store.ts), and one ratchet message each way in the version
 * the engine writes to a current peer (peer-ratchet.ts), sealed as a flush seals, sent detached
 * and read back through the sessions, opened as a receive opens. Nothing is stored, nothing leaves the page, every secret is wiped.
 *
 * Why: on a page that has run no session yet, the first one runs this code cold — JavaScript not
 * yet compiled (ML-KEM-768 in JavaScript above all, docs/protocol/noise.md; the Noise and ratchet
 * state machines) — and a contact link accepted on a fresh page, the usual way a first contact
 * starts, paid it on the path to the first message: 25–300 ms more than on a warm page under
 * load (bench/README-chat.md, "Session 20: the first message, cold and warm"). The warm-up costs
 * the page one in-memory session of CPU at start (a few ms on a warm page), off any path that waits.
 */
import { wipe } from "../../../core/bytes.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { createUserIdentityWith, type UserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import { ratchetDecrypt, ratchetEncryptBatch } from "../../../core/ratchet/index.ts";
import type { RatchetState } from "../../../core/ratchet/state.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import { offeredSuites, suitesExtension } from "./noise-suites.ts";
import { liveMessageVersion, ratchetVersionsExtension } from "./peer-ratchet.ts";
import { bootstrapChatRatchet, freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from "./ratchet-store.ts";
import { decodeSessionFrame, RATCHET_FRAME_TYPE } from "./wire.ts";

/** What one warm-up did (the engine logs it; engine tests read it). */
export interface WarmUp {
  /** The Noise protocol name the two sessions agreed on. */
  protocol: string;
  /** The ratchet message version of the two messages. */
  messageVersion: number;
  ms: number;
}

/** Zero a throwaway ratchet state's secrets (core/ratchet/state.ts `secretsOf`: the same buffers). */
function wipeState(s: RatchetState): void {
  for (const b of [s.dhSelfSecret, s.rootKey, s.nextSendHeaderKey, s.nextRecvHeaderKey]) b.fill(0);
  for (const b of [s.sendChainKey, s.recvChainKey, s.sendHeaderKey, s.recvHeaderKey]) b?.fill(0);
  for (const k of s.skipped) {
    k.headerKey.fill(0);
    k.messageKey.fill(0);
  }
}

function wipeUser(u: UserIdentity | undefined): void {
  if (!u) return;
  wipe(u.privateIdentityKey);
  wipe(u.privateNoiseKey);
}

/**
 * One session between two throwaway identities, in memory (see the module comment). Rejects if
 * any step fails — the caller logs it; nothing depends on it.
 */
export async function warmUpCrypto(crypto: CryptoProvider): Promise<WarmUp> {
  const start = performance.now();
  const now = Date.now();
  let a: UserIdentity | undefined;
  let b: UserIdentity | undefined;
  const sessions: Session[] = [];
  const states: RatchetState[] = [];
  const kp = await freshRatchetKeyPair(crypto);
  try {
    [a, b] = await Promise.all([
      createUserIdentityWith(crypto, { username: "warm-up-a", now }),
      createUserIdentityWith(crypto, { username: "warm-up-b", now }),
    ]);
    const [la, lb] = memoryLinkPair();
    const extensions = { ...suitesExtension(), ...ratchetVersionsExtension() };
    const [sa, sb] = await Promise.all([
      establishSession({
        link: la,
        role: "initiator",
        kind: "direct",
        self: a,
        expectedIdentityKey: b.identity.verified.identity_key,
        extensions,
        detachedFrames: true,
        crypto,
        ...offeredSuites(crypto, {}, "initiator"),
      }),
      establishSession({
        link: lb,
        role: "responder",
        kind: "direct",
        self: b,
        extensions: { ...extensions, [RATCHET_KEY_EXTENSION]: kp.publicKey },
        detachedFrames: true,
        crypto,
      }),
    ]);
    sessions.push(sa, sb);
    const [ra, rb] = await Promise.all([
      bootstrapChatRatchet(sa, a.identity.verified.identity_key, undefined, crypto),
      bootstrapChatRatchet(sb, b.identity.verified.identity_key, kp, crypto),
    ]);
    if (!ra.ok) throw ra.error;
    if (!rb.ok) throw rb.error;
    const messageVersion = liveMessageVersion(sa.remoteExtensions);
    const options = { crypto, messageVersion };
    // The initiator's ratchet sends first (chat.md §4, "Who can send"); then the answer.
    let [from, to] = [ra.value.state, rb.value.state];
    for (let i = 0; i < 2; i++) {
      const [out, into] = i === 0 ? [sa, sb] : [sb, sa];
      const sealed = await ratchetEncryptBatch(from, [new Uint8Array(64)], now, options);
      const m = sealed.messages[0]!;
      out.sendDetached([RATCHET_FRAME_TYPE, m.prefix], m.body);
      const frame = decodeSessionFrame(await into.receive());
      if (!frame.ok) throw frame.error;
      if (frame.value.type !== "ratchet") throw new Error(`warm-up: a ${frame.value.type} frame`);
      const opened = await ratchetDecrypt(to, frame.value.message, now, options);
      if (!opened.ok) throw opened.error;
      wipe(opened.value.plaintext);
      [from, to] = [opened.value.state, sealed.state];
    }
    states.push(from, to);
    return { protocol: sa.protocolName, messageVersion, ms: performance.now() - start };
  } finally {
    for (const s of sessions) s.close("warm-up-done");
    for (const s of states) wipeState(s);
    wipeUser(a);
    wipeUser(b);
    wipe(kp.secretKey);
  }
}
