import { describe, expect, it, vi } from "vitest";
import { HEAD_TIMEOUT_MS } from "./client.ts";
import { hasContentOrigin, headWait, isPortRequest, SW_HEAD_MS } from "./port.ts";

describe("hasContentOrigin", () => {
  it("is true for a name, false for an IP address or localhost (no same-site peer. subdomain)", () => {
    for (const h of ["loft.example.com", "example.org", "chat.loft.example"])
      expect(hasContentOrigin(h), h).toBe(true);
    for (const h of [
      "127.0.0.1",
      "198.18.0.1",
      "[::1]",
      "[2001:db8::1]",
      "localhost",
      "LOCALHOST",
      "app.localhost",
    ])
      expect(hasContentOrigin(h), h).toBe(false);
  });
});

describe("isPortRequest", () => {
  const base = { type: "loft-proxy", contact: "a".repeat(64), method: "POST", path: "/echo", headers: [] };
  it("takes a request with no body, a whole body, or a streamed upload — never both", () => {
    expect(isPortRequest(base)).toBe(true);
    expect(isPortRequest({ ...base, body: new Uint8Array(3) })).toBe(true);
    expect(isPortRequest({ ...base, upload: true })).toBe(true);
    expect(isPortRequest({ ...base, upload: true, body: new Uint8Array(3) })).toBe(false);
    expect(isPortRequest({ ...base, upload: "yes" })).toBe(false);
    expect(isPortRequest({ ...base, contact: "A".repeat(64) })).toBe(false);
    expect(isPortRequest({ ...base, path: "echo" })).toBe(false);
  });
});

describe("headWait (the Service Worker's wait for a response head, sw/peer-proxy.ts)", () => {
  // Fake timers: time moves only as the test says.
  const faked = (f: () => void) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      f();
    } finally {
      vi.useRealTimers();
    }
  };

  it("outlasts the requester's own bound, so that the requester's reason is the one seen", () => {
    expect(SW_HEAD_MS).toBeGreaterThan(HEAD_TIMEOUT_MS);
  });

  it("ends a request with no head at SW_HEAD_MS, once", () =>
    faked(() => {
      let fired = 0;
      headWait(() => fired++);
      vi.advanceTimersByTime(SW_HEAD_MS - 1);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
      vi.advanceTimersByTime(4 * SW_HEAD_MS);
      expect(fired).toBe(1);
    }));

  it("runs again from each piece handed over: an upload taken all along, four bounds long, is not ended", () =>
    faked(() => {
      let fired = 0;
      const wait = headWait(() => fired++);
      for (let i = 0; i < 5; i++) {
        vi.advanceTimersByTime(SW_HEAD_MS * 0.9); // the window (its serving side's credit) sets the pace
        wait.pulled();
        wait.handed(); // the page held the piece already
      }
      expect(fired).toBe(0);
      // The last piece (the upload's end) is handed over: the head is due SW_HEAD_MS after it.
      vi.advanceTimersByTime(SW_HEAD_MS - 1);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
    }));

  it("is stopped while the page's body is read: pauses of twice the bound between pieces end nothing", () =>
    faked(() => {
      let fired = 0;
      const wait = headWait(() => fired++);
      for (let i = 0; i < 3; i++) {
        wait.pulled();
        vi.advanceTimersByTime(2 * SW_HEAD_MS); // the user is still typing or recording
        expect(fired).toBe(0);
        expect(vi.getTimerCount()).toBe(0);
        wait.handed();
      }
      // The upload's end handed over: a bound from it, not a moment more.
      vi.advanceTimersByTime(SW_HEAD_MS - 1);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
    }));

  it("waits for every piece asked for: two pulls, one piece handed over, the wait still stopped", () =>
    faked(() => {
      let fired = 0;
      const wait = headWait(() => fired++);
      wait.pulled();
      wait.pulled();
      wait.handed();
      vi.advanceTimersByTime(2 * SW_HEAD_MS);
      expect(fired).toBe(0);
      wait.handed();
      // A stray hand-over with none owed starts the wait afresh, never a second timer.
      wait.handed();
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(SW_HEAD_MS);
      expect(fired).toBe(1);
    }));

  it("is over at the head: a pull after it (an answer before the whole body went up) starts nothing", () =>
    faked(() => {
      let fired = 0;
      const wait = headWait(() => fired++);
      vi.advanceTimersByTime(SW_HEAD_MS / 2);
      wait.over();
      wait.pulled();
      wait.handed();
      vi.advanceTimersByTime(4 * SW_HEAD_MS);
      expect(fired).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    }));
});
