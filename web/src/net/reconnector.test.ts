/**
 * The Reconnector's bookkeeping (web/src/net/reconnector.ts; docs/protocol/mailbox.md §3): a
 * server that fails is tried again after its backoff while it is wanted — also when it became
 * wanted only during the backoff (a request failed while nobody held the server, then it was
 * kept up or subscribed): before, that request failed at once and armed nothing, so a relay kept
 * up after one failed SEND was never tried again. One reconnect timer per server; `stop` cancels
 * it. The clock is vitest's: the backoffs below are walked through, not waited for. The opening
 * is a function that fails or succeeds as told — what is under test is when it is called.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LoftError } from "../../../core/errors.ts";
import { type PooledConn, Reconnector } from "./reconnector.ts";

interface Client {
  closed: boolean;
  close(): void;
}

interface Conn extends PooledConn<Client> {
  wanted: boolean;
}

/** Past any backoff of these tests: `reconnectDelay` is at most `backoffMaxMs` + 200 ms. */
const PAST_BACKOFF_MS = 1_000 + 200 + 1;

function setup(outcomes: ("fail" | "open")[]) {
  const opens: number[] = [];
  const states: string[] = [];
  const r = new Reconnector<Client, Conn>({
    backoffInitialMs: 500,
    backoffMaxMs: 1_000,
    onState: (_url, state) => states.push(state),
    open: async () => {
      opens.push(Date.now());
      if ((outcomes.shift() ?? "fail") === "fail") throw new LoftError("LOFT_ERR_TIMEOUT", "no answer");
      return { closed: false, close() {} };
    },
    asError: (e) => e as LoftError,
    opened: () => {},
    wanted: (c) => c.wanted,
  });
  const c: Conn = { url: "wss://relay.test/relay", failures: 0, retryAt: 0, wanted: false };
  return { r, c, opens, states };
}

const failed = (p: Promise<unknown>) =>
  p.then(
    () => "opened",
    (e: LoftError) => e.code,
  );

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Reconnector: a server wanted during its backoff", () => {
  it("a request during the backoff of a server kept up since the failure fails at once and arms the reconnect for retryAt", async () => {
    const { r, c, opens } = setup(["fail", "open"]);
    expect(await failed(r.client(c))).toBe("LOFT_ERR_TIMEOUT"); // not wanted: no timer
    expect(c.timer).toBeUndefined();
    c.wanted = true; // kept up now (the pool's keep, or a subscription)
    expect(await failed(r.client(c))).toBe("LOFT_ERR_TIMEOUT"); // still backing off: at once
    expect(opens).toHaveLength(1);
    const due = c.retryAt;
    await vi.advanceTimersByTimeAsync(due - Date.now() - 1);
    expect(opens).toHaveLength(1); // not before the backoff is over
    await vi.advanceTimersByTimeAsync(1);
    expect(opens).toHaveLength(2);
    expect(opens[1]).toBe(due);
    expect(c.client?.closed).toBe(false);
  });

  it("many requests during one backoff arm one reconnect, and a reconnect already armed is not doubled", async () => {
    const { r, c, opens } = setup(["fail", "fail", "open"]);
    await failed(r.client(c));
    c.wanted = true;
    for (let i = 0; i < 5; i++) await failed(r.client(c));
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(c.retryAt - Date.now());
    // The second opening failed while wanted: its own backoff armed the next, and requests during
    // it add none.
    expect(opens).toHaveLength(2);
    for (let i = 0; i < 5; i++) await failed(r.client(c));
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(c.retryAt - Date.now());
    expect(opens).toHaveLength(3);
    expect(c.client?.closed).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stop cancels an armed reconnect: nothing is opened after it", async () => {
    const { r, c, opens } = setup(["fail", "open"]);
    await failed(r.client(c));
    c.wanted = true;
    await failed(r.client(c));
    expect(c.timer).toBeDefined();
    r.stop([c]);
    expect(c.timer).toBeUndefined();
    await vi.advanceTimersByTimeAsync(PAST_BACKOFF_MS * 4);
    expect(opens).toHaveLength(1);
    expect(await failed(r.client(c))).toBe("LOFT_ERR_LINK_CLOSED");
  });

  it("a server no longer wanted when its reconnect is due is not opened (the next request opens it)", async () => {
    const { r, c, opens } = setup(["fail", "open"]);
    c.wanted = true;
    await failed(r.client(c));
    expect(c.timer).toBeDefined();
    c.wanted = false;
    await vi.advanceTimersByTimeAsync(PAST_BACKOFF_MS);
    expect(opens).toHaveLength(1);
    expect(await failed(r.client(c))).toBe("opened");
    expect(opens).toHaveLength(2);
  });
});
