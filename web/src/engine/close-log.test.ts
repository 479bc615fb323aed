/**
 * What a peer wrote in its CLOSE frame (core/session/frames.ts: any text up to MAX_CLOSE_REASON
 * bytes) never reaches the debug log, neither when the live session closes (session.ts
 * `sessionClosed`) nor when an attempt ends (dialing.ts `attemptFailed`): our own reasons are
 * logged by name, anything else by its length (errors.ts `closeDetailForLog`). Real Noise
 * sessions over test links; the peer closes with the words it chose.
 */
import { afterEach, describe, expect, it } from "vitest";
import { LoftError } from "../../../core/errors.ts";
import type { Session } from "../../../core/session/index.ts";
import { sessionPair, TestLink } from "../../../test/support/engine.ts";
import { DEFAULT_ENGINE_CONFIG } from "./config.ts";
import type { Attempt, EngineContext, Peer } from "./context.ts";
import { attemptFailed } from "./dialing.ts";
import { sessionClosed } from "./session.ts";

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close("stopped");
});

/** A stopped engine's context (each step logs, then does nothing more) and what it logged. */
function stoppedCtx(): { ctx: EngineContext; logs: string[] } {
  const logs: string[] = [];
  const ctx = { cfg: { ...DEFAULT_ENGINE_CONFIG, log: (l: string) => logs.push(l) }, stopped: true };
  return { ctx: ctx as unknown as EngineContext, logs };
}

const peer = { id: "ab".repeat(32), name: "Alice" } as Partial<Peer> as Peer;

/** Bob's side once Alice closed with `reason`: his session's close and his link's. */
async function closedBy(reason: string) {
  const links: [TestLink, TestLink] = [new TestLink(), new TestLink()];
  const [alice, bob] = await sessionPair({}, links);
  open.push(alice, bob);
  alice.close(reason);
  const info = await bob.closed;
  await links[1].closed;
  return { info, link: links[1] };
}

describe("a peer's CLOSE reason in the debug log", () => {
  const words = "PEER-WROTE-THIS\nsession 00000000 closed: a forged line";

  it("the live session's close logs its length, not the words", async () => {
    const { info } = await closedBy(words);
    expect(info).toMatchObject({ reason: "remote-closed", detail: words });
    const { ctx, logs } = stoppedCtx();
    sessionClosed(ctx, peer, info.reason, info.detail);
    expect(logs).toEqual([
      `session abababab closed: remote-closed (a reason of ${words.length} bytes, not shown)`,
    ]);
  });

  it("an attempt whose link the peer's CLOSE ended logs its length, not the words", async () => {
    const { link } = await closedBy(words);
    expect(await link.closed).toMatchObject({ reason: "remote-closed", detail: words });
    const { ctx, logs } = stoppedCtx();
    const attempt: Attempt = { link, direction: "in", path: "direct", startedAt: 0 };
    await attemptFailed(ctx, peer, attempt, new LoftError("LOFT_ERR_LINK_CLOSED", "closed"));
    expect(logs).toEqual([
      `attempt in abababab ended: remote-closed (a reason of ${words.length} bytes, not shown)`,
    ]);
  });

  it("one of our own reasons is logged by name", async () => {
    const { info } = await closedBy("stopped");
    const { ctx, logs } = stoppedCtx();
    sessionClosed(ctx, peer, info.reason, info.detail);
    expect(logs).toEqual(["session abababab closed: remote-closed (stopped)"]);
  });

  it("an attempt that failed with a LoftError logs its code once, then its words", async () => {
    const { ctx, logs } = stoppedCtx();
    const attempt: Attempt = { link: new TestLink(), direction: "out", path: "direct", startedAt: 0 };
    await attemptFailed(ctx, peer, attempt, new LoftError("LOFT_ERR_HANDSHAKE_STATE", "out of turn"));
    expect(logs).toEqual(["attempt out abababab ended: LOFT_ERR_HANDSHAKE_STATE (out of turn)"]);
  });
});
