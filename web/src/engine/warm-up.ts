/**
 * The crypto warm-up: once per page, when the page is idle after the engine started and before
 * any real session, the code of a first contact's session runs once between two throwaway
 * identities over an in-memory link — the Noise XXhfs+ML-KEM-768
 * handshake with the engine's suites, extensions and detached frames (dialing.ts `handshake`), the
 * ratchet bootstrap from it (ratchet-store.ts), and one ratchet message each way in the version
 * the engine writes to a current peer (peer-ratchet.ts), sealed as a flush seals, sent detached
 * and read back through the sessions, opened as a receive opens. Nothing is stored, nothing leaves
 * the page, every secret is wiped.
 *
 * Why: on a page that has run no session yet, the first one runs this code cold — JavaScript not
 * yet compiled (ML-KEM-768 in JavaScript above all, docs/protocol/noise.md; the Noise and ratchet
 * state machines) — and a contact link accepted on a fresh page, the usual way a first contact
 * starts, pays it on the path to the first message: in three pairs under load its handshake took
 * 18–39 ms cold and 12–20 ms after the warm-up (bench/README-chat.md, "Session 20 (issue #10,
 * e2ee): where the E2EE batch waits, the first message cold and warm"). The warm-up costs the page one
 * in-memory session of CPU (17–77 ms on cold code under load, `warm_up_ms`), at an idle moment
 * (`PageWarmUp`), and not at all when a real session began first: that one compiles the same
 * code, and the warm-up would only take the page's thread from it.
 */
import { wipe } from "../../../core/bytes.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { isLoftError } from "../../../core/errors.ts";
import { createUserIdentityWith, type UserIdentity } from "../../../core/identity/identity.ts";
import { memoryLinkPair } from "../../../core/link/memory-link.ts";
import { ratchetDecrypt, ratchetEncryptBatch, wipeRatchetState } from "../../../core/ratchet/index.ts";
import type { RatchetState } from "../../../core/ratchet/state.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import type { EngineWarmUp, WarmUp, WarmUpAsk } from "./config.ts";
import { offeredSuites, suitesExtension } from "./noise-suites.ts";
import { liveMessageVersion, ratchetVersionsExtension } from "./peer-ratchet.ts";
import { bootstrapChatRatchet, freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from "./ratchet-store.ts";
import { decodeSessionFrame, RATCHET_FRAME_TYPE } from "./wire.ts";

/** Calls `run` when the page has a moment to spare. */
export type WhenIdle = (run: () => void) => void;

/**
 * When the page is idle (its start-up rendering and reads done, the user reading a contact link),
 * at most 2 s away so that a page that never idles still warms up; the next task where there is
 * no idle callback (Node: the engine's tests).
 */
export const whenPageIdle: WhenIdle = (run) => {
  if (typeof requestIdleCallback === "function") requestIdleCallback(() => run(), { timeout: 2000 });
  else setTimeout(run, 0);
};

/**
 * The page's crypto warm-up (`EngineConfig.warmUp`): one per page — the page's composition root
 * makes it (web/src/chat-engine.ts), so every engine the page starts shares it and a test's
 * engines share only the one the test made. The JavaScript is compiled once per page: after one
 * run succeeded (or while one runs) an engine restarted in the same page (a changed setting, a
 * tab hand-over) takes that one. Each `request` waits for `whenIdle`, then asks its engine whether
 * it still wants it: `ask` answers undefined when the engine stopped meanwhile (then the next
 * engine's request runs it) or a real session began first (it compiles the same code). A failed
 * run is logged, and the next engine start tries again.
 */
export class PageWarmUp implements EngineWarmUp {
  #run: Promise<WarmUp | undefined> | undefined;
  readonly #whenIdle: WhenIdle;

  constructor(whenIdle: WhenIdle = whenPageIdle) {
    this.#whenIdle = whenIdle;
  }

  /**
   * What the page's warm-up ran, once it has; undefined if this request's engine did not want it,
   * or it failed. An engine that takes the run of an engine before it logs that it did (`log`):
   * every engine started with a warm-up then says what became of its own — warmed up, skipped,
   * failed or taken — and a page that ran it twice shows two "warmed up" lines
   * (test/e2e/engine-restart.e2e.ts counts them).
   */
  request(ask: () => WarmUpAsk | undefined, log: (message: string) => void): Promise<WarmUp | undefined> {
    if (this.#run) return taken(this.#run, log);
    return new Promise((resolve) =>
      this.#whenIdle(() => {
        if (this.#run) return resolve(taken(this.#run, log));
        const wanted = ask();
        if (!wanted) return resolve(undefined);
        this.#run = warmUpCrypto(wanted.crypto).then(
          (w) => {
            log(`crypto warmed up: ${w.protocol}, ratchet 0x0${w.messageVersion}, ${w.ms.toFixed(0)} ms`);
            return w;
          },
          (e: unknown) => {
            log(`crypto warm-up failed: ${(e as Error).message}`);
            this.#run = undefined;
            return undefined;
          },
        );
        resolve(this.#run);
      }),
    );
  }
}

/** `run`, an earlier engine's, taken by this one: said once it succeeded (a failure is the runner's to log). */
function taken(
  run: Promise<WarmUp | undefined>,
  log: (message: string) => void,
): Promise<WarmUp | undefined> {
  return run.then((w) => {
    if (w) log(`crypto warm-up: already run in this page (${w.protocol}), not again`);
    return w;
  });
}

function wipeUser(u: UserIdentity | undefined): void {
  if (!u) return;
  wipe(u.privateIdentityKey);
  wipe(u.privateNoiseKey);
}

/**
 * One session between two throwaway identities, in memory (see the module comment). Rejects if
 * any step fails — the caller logs it; nothing depends on it. Whatever step fails, what was made
 * before it is wiped: a session that came up is closed (its keys wiped) even when the other side's
 * failed, and the ratchet states are zeroed as far as they got.
 */
export async function warmUpCrypto(crypto: CryptoProvider): Promise<WarmUp> {
  const start = performance.now();
  const now = Date.now();
  let a: UserIdentity | undefined;
  let b: UserIdentity | undefined;
  const sessions: Session[] = [];
  /** The two ratchet states as they are now (each step consumes and wipes the one before). */
  const states: (RatchetState | undefined)[] = [undefined, undefined];
  const [la, lb] = memoryLinkPair();
  const kp = await freshRatchetKeyPair(crypto);
  try {
    a = await createUserIdentityWith(crypto, { username: "warm-up-a", now });
    b = await createUserIdentityWith(crypto, { username: "warm-up-b", now });
    const extensions = { ...suitesExtension(), ...ratchetVersionsExtension() };
    const [ia, ib] = await Promise.allSettled([
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
    // Both settled: a side that failed closed its link (core/session/session.ts), which ended the
    // other's; the side that came up is closed below. The failure said is the cause, not the
    // other side's closed link.
    for (const r of [ia, ib]) if (r.status === "fulfilled") sessions.push(r.value);
    const failed = [ia, ib].flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    const cause = failed.find((e) => !isLoftError(e) || e.code !== "LOFT_ERR_LINK_CLOSED") ?? failed[0];
    if (ia.status === "rejected" || ib.status === "rejected") throw cause;
    const [sa, sb] = [ia.value, ib.value];
    // Both settled, so that one side's state is wiped when the other side's bootstrap threw.
    const boots = await Promise.allSettled([
      bootstrapChatRatchet(sa, a.identity.verified.identity_key, undefined, crypto),
      bootstrapChatRatchet(sb, b.identity.verified.identity_key, kp, crypto),
    ]);
    for (const [i, t] of boots.entries())
      if (t.status === "fulfilled" && t.value.ok) states[i] = t.value.value.state;
    for (const t of boots) {
      if (t.status === "rejected") throw t.reason;
      if (!t.value.ok) throw t.value.error;
    }
    const messageVersion = liveMessageVersion(sa.remoteExtensions);
    const options = { crypto, messageVersion };
    // The initiator's ratchet sends first (chat.md §4, "Who can send"); then the answer.
    for (let i = 0; i < 2; i++) {
      const [out, into] = i === 0 ? [sa, sb] : [sb, sa];
      const [from, to] = i === 0 ? [0, 1] : [1, 0];
      const sealed = await ratchetEncryptBatch(states[from]!, [new Uint8Array(64)], now, options);
      states[from] = sealed.state;
      const m = sealed.messages[0]!;
      out.sendDetached([RATCHET_FRAME_TYPE, m.prefix], m.body);
      const frame = decodeSessionFrame(await into.receive());
      if (!frame.ok) throw frame.error;
      if (frame.value.type !== "ratchet") throw new Error(`warm-up: a ${frame.value.type} frame`);
      const opened = await ratchetDecrypt(states[to]!, frame.value.message, now, options);
      if (!opened.ok) throw opened.error;
      states[to] = opened.value.state;
      wipe(opened.value.plaintext);
    }
    return { protocol: sa.protocolName, messageVersion, ms: performance.now() - start };
  } finally {
    for (const s of sessions) s.close("warm-up-done");
    for (const s of states) if (s) wipeRatchetState(s, crypto);
    wipeUser(a);
    wipeUser(b);
    wipe(kp.secretKey);
  }
}
