/**
 * One-to-one calls in real Chromium through the real server (`npm run build` first;
 * `node scripts/e2e.mjs test/e2e/calls.e2e.ts`), docs/protocol/calls.md.
 *
 * Chromium runs with `--use-fake-device-for-media-stream` (a synthetic camera and a beeping
 * microphone) and `--use-fake-ui-for-media-stream` (permission prompts granted). An init script
 * only *observes*: it keeps a list of the page's RTCPeerConnections so the test can read
 * `getStats()` of the call's media connection (the one with transceivers; the chat's data channel
 * has none) and whether it ever connected. Media is proven by counters that rise — inbound-rtp
 * audio packets and decoded video frames — and muting by outbound audio packets that stop while
 * video frames keep arriving; sync points are conditions, never durations.
 *
 * The refused call: the call's SDP never passes through signaling (it is inside the ratchet
 * session), so the rewriting attacker is modelled where an SDP can still be changed — in Alice's
 * page, between her browser's media stack and what leaves it: her offer's `a=fingerprint` is
 * replaced by another certificate's, as a man in the middle must do to terminate the DTLS himself.
 * Her `fp`, sent inside the session, stays the real one; Bob's app must refuse before any media
 * connection exists.
 */
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import {
  byId,
  createIdentity,
  introduce,
  openChat,
  openChatFromHome,
  openChatHere,
  waitForPresence,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";
import { ip, restoreTestAddress, TEST_ADDR } from "../support/test-network.ts";
import { startTurn, TURN_PASSWORD, TURN_USER, type TurnServer } from "../support/turn-server.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;

/** Records every RTCPeerConnection of the page (and whether it ever reached "connected"). */
const RECORD_PCS = `(() => {
  const Orig = globalThis.RTCPeerConnection;
  if (!Orig) return;
  const pcs = [];
  globalThis.__loftPcs = pcs;
  globalThis.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args);
      // The call's media connection brings its own certificate (calls.md §3); the chat's does not.
      this.__media = Boolean(args[0] && args[0].certificates);
      this.__everConnected = false;
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected") this.__everConnected = true;
      });
      pcs.push(this);
    }
  };
})();`;

interface MediaStats {
  /** Media connections (with transceivers) created so far in the page. */
  connections: number;
  everConnected: number;
  audioIn: number;
  audioOut: number;
  videoOut: number;
  framesDecoded: number;
}

/** Counters of the page's latest media connection (zeros when it is closed or absent). */
function mediaStats(page: Page): Promise<MediaStats> {
  return page.evaluate(async () => {
    type Pc = RTCPeerConnection & { __media: boolean; __everConnected: boolean };
    const media = ((globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? []).filter(
      (pc) => pc.__media,
    );
    const out = { connections: 0, everConnected: 0, audioIn: 0, audioOut: 0, videoOut: 0, framesDecoded: 0 };
    out.connections = media.length;
    out.everConnected = media.filter((pc) => pc.__everConnected).length;
    const last = [...media].reverse().find((pc) => pc.connectionState !== "closed");
    if (!last) return out;
    const report = await last.getStats();
    report.forEach((s: Record<string, unknown>) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") out.audioIn += Number(s.packetsReceived ?? 0);
      if (s.type === "inbound-rtp" && s.kind === "video") out.framesDecoded += Number(s.framesDecoded ?? 0);
      if (s.type === "outbound-rtp" && s.kind === "audio") out.audioOut += Number(s.packetsSent ?? 0);
      if (s.type === "outbound-rtp" && s.kind === "video") out.videoOut += Number(s.packetsSent ?? 0);
    });
    return out;
  });
}

/**
 * The page's media stats once none of its media connections is open (polled, bounded): a closed
 * connection's counts no longer change (no state event, no new "connected"), so a check that a
 * call made or connected none is read when it can no longer become true later, not at once.
 */
async function settledMediaStats(page: Page): Promise<MediaStats> {
  const open = () =>
    page.evaluate(() => {
      type Pc = RTCPeerConnection & { __media: boolean };
      return ((globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? []).filter(
        (pc) => pc.__media && pc.connectionState !== "closed",
      ).length;
    });
  await expect.poll(open).toBe(0);
  return mediaStats(page);
}

/** The label of the track the call's media connection sends for `kind` ("" when none). */
function senderLabel(page: Page, kind: "audio" | "video"): Promise<string> {
  return page.evaluate((kind) => {
    type Pc = RTCPeerConnection & { __media: boolean };
    const pcs = ((globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? []).filter(
      (pc) => pc.__media && pc.connectionState !== "closed",
    );
    const sender = pcs
      .at(-1)
      ?.getTransceivers()
      .find((t) => t.receiver.track.kind === kind)?.sender;
    return sender?.track?.label ?? "";
  }, kind);
}

/** Wait until `pick` of the page's stats exceeds `than` (bounded by the poll's timeout). */
async function risesAbove(page: Page, pick: (s: MediaStats) => number, than: number): Promise<number> {
  let seen = 0;
  await expect
    .poll(
      async () => {
        seen = pick(await mediaStats(page));
        return seen;
      },
      { timeout: 30_000 },
    )
    .toBeGreaterThan(than);
  return seen;
}

const phase = (page: Page) => id(page, "call-screen").getAttribute("data-phase");

async function waitForPhase(page: Page, p: string): Promise<void> {
  // On failure, say what the page shows instead (an ended call's kind and words), so a failure in
  // a loaded CI run can be told apart from a slow one.
  const shown = async () => {
    const ended = id(page, "call-ended");
    if (!(await ended.isVisible().catch(() => false))) return "no call screen and no ended notice";
    return `ended: ${await ended.getAttribute("data-kind")} — ${await id(page, "call-ended-text").textContent()}`;
  };
  await expect
    .poll(async () => (await phase(page).catch(() => null)) ?? (await shown()), { timeout: 45_000 })
    .toBe(p);
}

/**
 * Waits until the page shows the call ended as `kind`, with `text` (the whole of what the person
 * reads) when given: the notice can be on screen before its final kind and words.
 */
async function expectEnded(page: Page, kind: string, text?: string): Promise<void> {
  await id(page, "call-ended").waitFor({ timeout: 45_000 });
  await expect.poll(() => id(page, "call-ended").getAttribute("data-kind")).toBe(kind);
  if (text !== undefined) await expect.poll(() => id(page, "call-ended-text").textContent()).toBe(text);
}

/** The call entries of the open chat: `outcome direction text`. */
function callHistory(page: Page): Promise<string[]> {
  return page
    .locator("[data-testid=message][data-call]")
    .evaluateAll((els) =>
      els.map(
        (e) =>
          `${e.getAttribute("data-call")} ${e.getAttribute("data-direction")} ${e.querySelector("[data-testid=message-text]")?.textContent}`,
      ),
    );
}

/** Inbound audio packets of each connected media connection of the page (a room call's mesh). */
function meshAudioIn(page: Page): Promise<number[]> {
  return page.evaluate(async () => {
    type Pc = RTCPeerConnection & { __media: boolean };
    const pcs = ((globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? []).filter(
      (pc) => pc.__media && pc.connectionState === "connected",
    );
    const out: number[] = [];
    for (const pc of pcs) {
      let n = 0;
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") n += Number(s.packetsReceived ?? 0);
      });
      out.push(n);
    }
    return out;
  });
}

async function closeEnded(page: Page): Promise<void> {
  await id(page, "call-close").click();
  await id(page, "call-ended").waitFor({ state: "detached" });
}

describe("one-to-one calls", () => {
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    env = await startTwoBrowsers({
      initScript: RECORD_PCS,
      chromiumArgs: () => ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
    });
    ({ a, b } = env);
    // Alice and Bob meet and open their chats here, not in the first test: its failure then left
    // the ids unset, the recovery below skipped, and every later test failed on clicks. (Seeing
    // each other online polls, which only a test can: each test waits for it, `bothOnline`.)
    [aliceId, bobId] = await introduce(a, b, env.loft.url);
    await openChatHere(a);
    await openChatFromHome(b, aliceId);
  }, 120_000);
  afterAll(() =>
    tearDown(
      () => restoreTestAddress(),
      () => closeBrowser(env?.browser),
      () => env?.close(),
    ),
  );
  /** Each in its chat with the other, seeing them online: where every test starts. */
  const bothOnline = async () => {
    await waitForPresence(a, /^online/);
    await waitForPresence(b, /^online/);
  };
  // The tests share two pages and run in order: one that fails must not leave its call, its
  // patched page or a missing address to the next (one failure, not a cascade of click timeouts).
  afterEach(async ({ task }) => {
    if (task.result?.state !== "fail") return;
    restoreTestAddress();
    for (const [page, other] of [
      [a, bobId],
      [b, aliceId],
    ] as const) {
      await page.goto(env.loft.url);
      await openChat(page, other);
    }
    await waitForPresence(a, /^online/);
    await waitForPresence(b, /^online/);
  });

  it("A calls B with video: both receive media, mute stops A's audio packets, screen sharing and a microphone switch keep media flowing, hang-up ends both sides", async () => {
    await bothOnline();
    await id(a, "call-video").click();
    await id(b, "call-incoming").waitFor({ timeout: 45_000 });
    await expect
      .poll(() => id(b, "call-incoming").getByRole("heading", { level: 2 }).textContent())
      .toBe("Alice is calling");
    await expect
      .poll(() => id(b, "call-incoming").locator("#call-kind").textContent())
      .toBe("Incoming video call · end-to-end encrypted");
    await waitForPhase(a, "ringing");
    await expectNoAxeViolations(b, "incoming call");
    await id(b, "call-accept-video").click();

    await waitForPhase(a, "active");
    await waitForPhase(b, "active");
    await expectNoAxeViolations(a, "in-call");

    // Both sides receive audio packets and decode video frames, rising.
    for (const page of [a, b]) {
      const first = await mediaStats(page);
      await risesAbove(page, (s) => s.audioIn, first.audioIn);
      await risesAbove(page, (s) => s.framesDecoded, first.framesDecoded);
    }
    // Counted by the connection's own state event, which need not have run when the stats say so.
    await expect.poll(async () => (await mediaStats(a)).everConnected).toBe(1);
    await expect.poll(async () => (await mediaStats(b)).everConnected).toBe(1);

    // Alice mutes: Bob is told, and no audio packet leaves her page while video keeps flowing.
    await id(a, "call-mute").click();
    await expect.poll(() => id(a, "call-mute").getAttribute("aria-pressed")).toBe("true");
    await id(b, "call-remote-muted").waitFor();
    // Let what was in flight arrive: 15 more frames at Bob, then the counters must stand still
    // while another 30 frames arrive (about a second; audio would be ~50 packets).
    let frames = await risesAbove(b, (s) => s.framesDecoded, (await mediaStats(b)).framesDecoded + 15);
    const sentMuted = (await mediaStats(a)).audioOut;
    const receivedMuted = (await mediaStats(b)).audioIn;
    frames = await risesAbove(b, (s) => s.framesDecoded, frames + 30);
    expect((await mediaStats(a)).audioOut).toBe(sentMuted);
    expect((await mediaStats(b)).audioIn).toBe(receivedMuted);
    // Unmuted, audio flows again.
    await id(a, "call-mute").click();
    await id(b, "call-remote-muted").waitFor({ state: "detached" });
    await risesAbove(b, (s) => s.audioIn, receivedMuted);

    // Screen sharing replaces Alice's camera on the same sender; Bob keeps decoding frames.
    await id(a, "call-share").click();
    await expect.poll(() => id(a, "call-share").getAttribute("aria-pressed")).toBe("true");
    await expect.poll(() => senderLabel(a, "video")).toMatch(/^screen/);
    frames = await risesAbove(b, (s) => s.framesDecoded, (await mediaStats(b)).framesDecoded + 10);
    await id(a, "call-share").click();
    await expect.poll(() => senderLabel(a, "video")).toBe("fake_device_0");

    // Another microphone, mid-call: the audio sender switches, Bob keeps receiving audio.
    await a.locator(".call-devices summary").click();
    await expect.poll(() => id(a, "call-mic-select").locator("option").count()).toBeGreaterThan(1);
    await id(a, "call-mic-select").selectOption({ label: "Fake Audio Input 1" });
    await expect.poll(() => senderLabel(a, "audio")).toBe("Fake Audio Input 1");
    await risesAbove(b, (s) => s.audioIn, (await mediaStats(b)).audioIn);

    // Bob hangs up: both sides end, both media connections close, both histories say so.
    await id(b, "call-hangup").click();
    await expectEnded(b, "hangup");
    await expectEnded(a, "hangup", "Call ended.");
    // The notice is under the chat header, in its flow: the name, status and trust badge stay
    // readable above it, on a desktop window and on a phone.
    const size = a.viewportSize();
    for (const [width, height] of [
      [1280, 800],
      [390, 844],
    ] as const) {
      await a.setViewportSize({ width, height });
      expect(await a.locator(".chat-head [data-testid=call-ended]").count()).toBe(1);
      const notice = await id(a, "call-ended").boundingBox();
      for (const above of ["chat-contact", "chat-presence", "chat-trust"]) {
        const box = await id(a, above).boundingBox();
        expect(notice!.y, above).toBeGreaterThanOrEqual(box!.y + box!.height);
      }
    }
    await expectNoAxeViolations(a, "call ended");
    if (size) await a.setViewportSize(size);
    await expect.poll(async () => (await mediaStats(a)).framesDecoded).toBe(0);
    await expect.poll(async () => (await mediaStats(b)).framesDecoded).toBe(0);
    await expect
      .poll(() => callHistory(a))
      .toEqual([expect.stringMatching(/^hangup out Video call · \d+:\d\d$/)]);
    await expect
      .poll(() => callHistory(b))
      .toEqual([expect.stringMatching(/^hangup in Video call · \d+:\d\d$/)]);
    await closeEnded(a);
    await closeEnded(b);
  });

  it("an offer lost with its session goes again on the next one: the call still rings and connects", async () => {
    const before = { a: await mediaStats(a), b: await mediaStats(b) };
    // From now on Alice's chat link swallows what she sends and, once the call's offer (the first
    // frame of kilobytes; pings and candidates are tens of bytes) is swallowed, its connection is
    // torn down under her: Bob redials, and his new session replaces the one the offer was lost
    // with (as when a newer session replaces one with frames in flight).
    await a.evaluate(() => {
      type Pc = RTCPeerConnection & { __media: boolean };
      const proto = RTCDataChannel.prototype;
      const send = proto.send;
      proto.send = function (this: RTCDataChannel, data: unknown) {
        const d = data as { byteLength?: number; size?: number; length?: number };
        if ((d.byteLength ?? d.size ?? d.length ?? 0) < 2048) return;
        proto.send = send;
        const pcs = (globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? [];
        for (const pc of pcs) if (!pc.__media && pc.connectionState !== "closed") pc.close();
      } as typeof send;
    });
    await id(a, "call-voice").click();
    await id(b, "call-incoming").waitFor({ timeout: 45_000 });
    // Alice logs the re-send once all of it went (candidates, media state): after the offer that
    // rings Bob, so waited for, not read at once.
    await expect
      .poll(() =>
        env.logs.some((l) => l.includes("alice: [loft engine] call: signals sent again on a new session")),
      )
      .toBe(true);
    await id(b, "call-accept").click();
    await waitForPhase(a, "active");
    await waitForPhase(b, "active");
    await risesAbove(b, (s) => s.audioIn, 0);
    await risesAbove(a, (s) => s.audioIn, 0);
    await expect.poll(async () => (await mediaStats(a)).everConnected).toBe(before.a.everConnected + 1);
    await expect.poll(async () => (await mediaStats(b)).everConnected).toBe(before.b.everConnected + 1);
    await id(a, "call-hangup").click();
    await expectEnded(b, "hangup");
    await closeEnded(a);
    await closeEnded(b);
  });

  it("a call ringing while the callee's page is in the background shows a notification, gone once it stops ringing", async () => {
    await bothOnline();
    await env.bob.grantPermissions(["notifications"], { origin: env.loft.url });
    const callNotices = (page: Page) =>
      page.evaluate(async () => {
        const reg = await navigator.serviceWorker.getRegistration("/");
        return ((await reg?.getNotifications()) ?? [])
          .filter((n) => n.tag.startsWith("call:"))
          .map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
      });
    const front = await env.bob.newPage();
    const cdp = await env.bob.newCDPSession(b);
    try {
      // Bob's Loft page is open but another of his tabs is in front.
      await front.goto(`${env.loft.url}/health`);
      await cdp.send("Emulation.setFocusEmulationEnabled", { enabled: false });
      await b.bringToFront();
      await front.bringToFront();
      await expect.poll(() => b.evaluate(() => document.hasFocus())).toBe(false);
      // What Bob's page asks of its notifications, seen from inside it: a show once the browser
      // took it, and each close. The browser's list is read only once the show is done, as the
      // app itself reads it to close one only then (app/model.ts `#callNotice`): Chromium's
      // getNotifications() deletes from its records a notification it finds there but not on
      // display, which one being shown at that moment is not yet — polled from the click on, the
      // list could lose it for good (the test once saw none in 45 s; this Chromium, by hand: 53 of
      // 100 shows gone from a list read in a loop while they ran, none from a read after).
      await b.evaluate(() => {
        const w = window as unknown as { notices: string[] };
        w.notices = [];
        const show = ServiceWorkerRegistration.prototype.showNotification;
        ServiceWorkerRegistration.prototype.showNotification = async function (
          this: ServiceWorkerRegistration,
          title: string,
          options?: NotificationOptions,
        ) {
          await show.call(this, title, options);
          w.notices.push(`shown ${options?.tag}: ${title} — ${options?.body}`);
        };
        const close = Notification.prototype.close;
        Notification.prototype.close = function (this: Notification) {
          w.notices.push(`closed ${this.tag}`);
          close.call(this);
        };
      });
      const notices = () => b.evaluate(() => (window as unknown as { notices: string[] }).notices);
      const shown = `shown call:${aliceId}: Alice — Incoming voice call`;
      await id(a, "call-voice").click();
      await expect.poll(notices, { timeout: 45_000 }).toEqual([shown]);
      await expect
        .poll(() => callNotices(front))
        .toEqual([{ title: "Alice", body: "Incoming voice call", tag: `call:${aliceId}` }]);
      await id(a, "call-hangup").click();
      await expectEnded(a, "cancelled");
      await expect.poll(notices).toEqual([shown, `closed call:${aliceId}`]);
      await expect.poll(() => callNotices(front)).toEqual([]);
    } finally {
      await cdp.detach().catch(() => {});
      await front.close();
    }
    await b.bringToFront();
    await expectEnded(b, "missed");
    // Both histories have this call last (the test before ended with a connected call), so the
    // next test's snapshot of them is taken once they hold it.
    await expect.poll(async () => (await callHistory(a)).at(-1)).toBe("cancelled out Cancelled voice call");
    await expect.poll(async () => (await callHistory(b)).at(-1)).toBe("missed in Missed voice call");
    await closeEnded(a);
    await closeEnded(b);
  });

  it("a call nobody answers is a missed call in the callee's history; a declined call says so", async () => {
    const before = { a: await mediaStats(a), b: await mediaStats(b) };
    // Earlier calls left the same entries ("missed in Missed voice call" too): the lists are
    // compared whole, so an entry this test adds is never mistaken for an old one.
    const history = { a: await callHistory(a), b: await callHistory(b) };
    await id(a, "call-voice").click();
    await id(b, "call-incoming").waitFor({ timeout: 45_000 });
    await waitForPhase(a, "ringing");
    await expectNoAxeViolations(a, "outgoing call");
    await id(a, "call-hangup").click(); // Alice gives up before Bob answers
    await expectEnded(a, "cancelled", "Call cancelled.");
    await expectEnded(b, "missed", "Missed call from Alice.");
    await expectNoAxeViolations(b, "call ended");
    await expect.poll(() => callHistory(b)).toEqual([...history.b, "missed in Missed voice call"]);
    await expect.poll(() => callHistory(a)).toEqual([...history.a, "cancelled out Cancelled voice call"]);
    await closeEnded(a);
    await closeEnded(b);

    await id(a, "call-voice").click();
    await id(b, "call-incoming").waitFor({ timeout: 45_000 });
    await id(b, "call-decline").click();
    await expectEnded(a, "declined", "Bob declined the call.");
    await expect
      .poll(() => callHistory(b))
      .toEqual([...history.b, "missed in Missed voice call", "declined in Declined voice call"]);
    await expect
      .poll(() => callHistory(a))
      .toEqual([...history.a, "cancelled out Cancelled voice call", "declined out Declined voice call"]);
    await closeEnded(a);
    await closeEnded(b);
    // None of these calls made a media connection that connected (read once every one is closed).
    expect((await settledMediaStats(a)).everConnected).toBe(before.a.everConnected);
    expect((await settledMediaStats(b)).everConnected).toBe(before.b.everConnected);
  });

  it("an offer whose SDP names another DTLS certificate than the session's is refused: clear words, no media", async () => {
    await a.evaluate(() => {
      // The getter lives on the browser's own prototype, below the recording subclass.
      let proto: object | null = RTCPeerConnection.prototype;
      while (proto && !Object.getOwnPropertyDescriptor(proto, "localDescription"))
        proto = Object.getPrototypeOf(proto);
      if (!proto) throw new Error("no localDescription");
      const desc = Object.getOwnPropertyDescriptor(proto, "localDescription");
      if (!desc?.get) throw new Error("no localDescription getter");
      const real = desc.get;
      Object.defineProperty(proto, "localDescription", {
        configurable: true,
        get(this: RTCPeerConnection) {
          const d = real.call(this) as RTCSessionDescription | null;
          // The chat's data channel is left alone: only the call's media connection is attacked.
          if (!d || !(this as unknown as { __media?: boolean }).__media) return d;
          const sdp = d.sdp.replace(
            /a=fingerprint:(\S+) ([0-9A-F:]+)/g,
            (_m, alg: string, hex: string) =>
              `a=fingerprint:${alg} ${hex.replace(/[0-9A-F]/g, (ch) => ((Number.parseInt(ch, 16) + 1) % 16).toString(16).toUpperCase())}`,
          );
          return { type: d.type, sdp, toJSON: () => ({ type: d.type, sdp }) };
        },
      });
    });
    const before = await mediaStats(b);
    const beforeA = await mediaStats(a);
    await id(a, "call-voice").click();
    await expectEnded(
      b,
      "fingerprint",
      "Call refused: the media connection did not present the key Alice sent inside your encrypted chat, so someone may be trying to listen in. No audio or video was exchanged.",
    );
    await expectEnded(
      a,
      "refused",
      "Bob's app refused the call: the media connection did not match what was agreed inside your encrypted chat. No audio or video was exchanged.",
    );
    // Bob never even made a media connection; Alice's never connected. Read once both are done
    // with the call — Bob's history has it, Alice's connection is closed — not at once: a
    // connection made or connected after Bob refused would be missed by a read right then.
    await expect
      .poll(() => callHistory(b))
      .toContain("fingerprint in Voice call refused: the media key did not match");
    expect((await settledMediaStats(b)).connections).toBe(before.connections);
    expect((await settledMediaStats(a)).everConnected).toBe(beforeA.everConnected);
    await closeEnded(a);
    await closeEnded(b);
    await a.reload(); // Alice's page without the rewriting
    await openChat(a, bobId);
    await waitForPresence(a, /^online/);
  });

  it("a callee whose microphone permission is denied: both sides are told in words", async () => {
    // Bob's browser refuses the microphone, as after "Block" on the permission prompt.
    await b.evaluate(() => {
      navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
    });
    await id(a, "call-voice").click();
    await id(b, "call-accept").click({ timeout: 45_000 });
    await expectEnded(
      b,
      "permission",
      "Loft isn't allowed to use your microphone. Allow it for this site in your browser's settings, then call again.",
    );
    await expectEnded(a, "unavailable", "Bob can't take the call: their microphone isn't available.");
    await closeEnded(a);
    await closeEnded(b);
    await b.reload(); // Bob's page with its real getUserMedia again
    await openChat(b, aliceId);
    await waitForPresence(b, /^online/);
  });

  it("a network drop mid-call shows Reconnecting on both sides; an ICE restart brings the media back", async () => {
    await id(a, "call-voice").click();
    await id(b, "call-accept").click({ timeout: 45_000 });
    await waitForPhase(a, "active");
    await waitForPhase(b, "active");
    await risesAbove(b, (s) => s.audioIn, 0);

    // The media's only path (the test address) disappears; nothing tells the pages.
    ip("addr", "del", `${TEST_ADDR}/24`, "dev", "loft0");
    try {
      await waitForPhase(a, "reconnecting");
      await waitForPhase(b, "reconnecting");
      await expect
        .poll(() => id(a, "call-status").textContent())
        .toBe("Reconnecting… the network dropped; the call resumes when it is back.");
      // The caller restarts ICE while the path is still gone (sent through the chat session).
      await expect
        .poll(() => env.logs.some((l) => l.includes("alice: [loft engine] call: ICE restart")), {
          timeout: 30_000,
        })
        .toBe(true);
    } finally {
      restoreTestAddress();
    }
    await waitForPhase(a, "active");
    await waitForPhase(b, "active");
    const after = (await mediaStats(b)).audioIn;
    await risesAbove(b, (s) => s.audioIn, after);
    await id(a, "call-hangup").click();
    await expectEnded(b, "hangup");
    await closeEnded(a);
    await closeEnded(b);
  });

  it("a voice note: recorded from the microphone, sent as an encrypted file, played inline with its duration", async () => {
    await id(a, "voice-note").click();
    await id(a, "voice-recorder").waitFor();
    // Two seconds of the fake microphone's beeps (the recorder shows whole seconds since its own
    // start event): the half second asserted below is well inside what was recorded.
    await expect
      .poll(() => id(a, "voice-recorder").textContent(), { timeout: 30_000 })
      .toMatch(/^Recording… 0:0[2-9] Send Cancel$/);
    await id(a, "voice-note-send").click();
    // The note is named for its length and format, matched whole.
    const bobsNote = b.locator("[data-testid=file][data-direction=in]", {
      has: b.locator("[data-testid=file-name]", { hasText: /^\s*Voice note 0:0[2-9]\.(webm|ogg|m4a)\s*$/ }),
    });
    await bobsNote.getByTestId("file-accept").click({ timeout: 45_000 });
    const player = bobsNote.getByTestId("voice-note-player");
    await player.waitFor({ timeout: 45_000 });
    await expect.poll(() => player.getByTestId("voice-note-duration").textContent()).toMatch(/^0:0[2-9]$/);
    // The received recording is real audio the browser plays: its time runs past half a second.
    const audio = player.locator("audio");
    await audio.evaluate((el: HTMLAudioElement) => {
      el.muted = true;
      void el.play();
    });
    await expect
      .poll(() => audio.evaluate((el: HTMLAudioElement) => (el.error ? -1 : el.currentTime)))
      .toBeGreaterThan(0.5);
    await expectNoAxeViolations(b, "voice note");
  });

  it("calling a contact who is offline says so at once", async () => {
    await b.goto("about:blank");
    await waitForPresence(a, /^offline/);
    await id(a, "call-voice").click();
    await expectEnded(
      a,
      "offline",
      "Bob is offline, so the call can't ring. Send a message instead: it waits in their mailbox.",
    );
    // Instead of the call, a voice note: the recorder opens in Bob's chat.
    await id(a, "call-voice-note").click();
    await id(a, "call-ended").waitFor({ state: "detached" });
    await id(a, "voice-recorder").waitFor();
    await id(a, "voice-note-cancel").click();
    await id(a, "voice-note").waitFor();
    await b.goto(env.loft.url);
    await openChat(b, aliceId);
  });

  it("a room call among three members: everyone receives everyone, mute shows on the others, leaving ends the mesh", async () => {
    // Cat and Dan: two more members who are nobody's contacts (Alice's page is shared).
    const contexts = [await env.browser.newContext(), await env.browser.newContext()];
    try {
      const [b, c] = await Promise.all(
        contexts.map(async (ctx, i) => {
          await ctx.addInitScript(RECORD_PCS);
          const p = await ctx.newPage();
          env.watch(i ? "dan" : "cat", p);
          await createIdentity(p, env.loft.url, i ? "Dan" : "Cat");
          return p;
        }),
      );
      if (!b || !c) throw new Error("no pages");
      await a.goto(env.loft.url);
      await id(a, "nav-new-room").click();
      const link = await id(a, "room-link").inputValue({ timeout: 45_000 });
      await id(a, "open-room").click();
      for (const p of [b, c]) await p.goto(link);
      const pages = [a, b, c];
      const online = (p: Page) => p.locator("[data-testid=room-member][data-state=online]").count();
      // On failure the message tells a rendezvous that never showed the others (no members) from
      // links that never came up (members "connecting").
      const members = (p: Page) =>
        p
          .locator("[data-testid=room-member]")
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-state")).join(","));
      for (const [i, p] of pages.entries())
        await expect
          .poll(async () => `${await online(p)} online of [${await members(p)}] at ${p.url()}`, {
            timeout: 45_000,
            message: `page ${i}`,
          })
          .toMatch(/^2 /);

      // Ann starts the call; the others see it going and join.
      await id(a, "room-call-join").click();
      for (const p of [b, c]) {
        await expect.poll(() => id(p, "room-call-join").textContent()).toBe("Join the call (1 in it)");
      }
      // Why one cannot join (a full call) or what failed is said in a live region drawn with the
      // call's panel, empty: a screen reader announces words that come into it, not those of a
      // region inserted already filled.
      expect(await id(c, "room-call-news").getAttribute("role")).toBe("status");
      expect(await id(c, "room-call-news").textContent()).toBe("");
      // Cat's first try finds the microphone refused (once): said in that region, in words.
      await c.evaluate(() => {
        const media = navigator.mediaDevices;
        const original = media.getUserMedia.bind(media);
        media.getUserMedia = async () => {
          media.getUserMedia = original;
          throw new DOMException("Permission denied", "NotAllowedError");
        };
      });
      await id(c, "room-call-join").click();
      await expect
        .poll(() => id(c, "room-call-news").textContent())
        .toBe(
          "Loft isn't allowed to use your microphone. Allow it for this site in your browser's settings, then join again.",
        );
      await expectNoAxeViolations(c, "room call (the microphone refused)");
      await id(b, "room-call-join").click();
      await expect.poll(() => id(c, "room-call-join").textContent()).toBe("Join the call (2 in it)");
      await id(c, "room-call-join").click();
      const connected = (p: Page) => p.locator("[data-testid=room-call-member][data-connected=true]").count();
      for (const p of pages) await expect.poll(() => connected(p), { timeout: 45_000 }).toBe(2);

      // Everyone receives everyone: on each page, two connected media connections, each with
      // inbound audio packets rising.
      for (const p of pages) {
        // The member entries can say connected a moment before both connections report it.
        let first: number[] = [];
        await expect
          .poll(async () => {
            first = await meshAudioIn(p);
            return first.length;
          })
          .toBe(2);
        await expect
          .poll(async () => {
            const now = await meshAudioIn(p);
            return now.length === 2 && now.every((n, i) => n > (first[i] ?? 0));
          })
          .toBe(true);
      }

      // Alice mutes: the others see it on her entry.
      await id(a, "room-call-mute").click();
      const aliceOn = (p: Page) => p.locator("[data-testid=room-call-member][data-mic=false]").count();
      for (const p of [b, c]) await expect.poll(() => aliceOn(p)).toBe(1);
      await expectNoAxeViolations(b, "room call");

      // Cat leaves: the others' meshes shrink to one connection; Cat's closes.
      await id(c, "room-call-leave").click();
      for (const p of [a, b]) await expect.poll(() => connected(p)).toBe(1);
      await expect.poll(async () => (await meshAudioIn(c)).length).toBe(0);
      for (const p of [a, b]) await id(p, "room-call-leave").click();
      await expect.poll(async () => (await meshAudioIn(a)).length).toBe(0);
    } finally {
      for (const ctx of contexts) await ctx.close();
    }
  });
});

describe("a call through a TURN relay only", () => {
  let turn: TurnServer;
  let env: TwoBrowsers;

  beforeAll(async () => {
    turn = await startTurn();
    env = await startTwoBrowsers({
      initScript: RECORD_PCS,
      chromiumArgs: () => ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
    });
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(env?.browser),
      () => env?.close(`--- coturn ---\n${turn?.output()}`),
      () => turn?.stop(),
    ),
  );

  it("relay/relay candidates only, media flows both ways", async () => {
    const { a, b } = env;
    const [aliceId, bobId] = await introduce(a, b, env.loft.url, ["Alice", "Bob"], async (page) => {
      await id(page, "nav-settings").click();
      await id(page, "ice-servers").fill(`${turn.url} ${TURN_USER} ${TURN_PASSWORD}`);
      await id(page, "ice-relay-only").check();
      await id(page, "save-endpoints").click();
      await expect
        .poll(() => id(page, "endpoints-result").textContent())
        .toBe("Saved. They are used from the next start of the app.");
      await page.reload();
      await id(page, "back").click();
    });
    await openChat(a, bobId);
    await openChat(b, aliceId);
    await waitForPresence(a, /^online/);
    await waitForPresence(b, /^online/);

    await id(a, "call-voice").click();
    await id(b, "call-accept").click({ timeout: 45_000 });
    await waitForPhase(a, "active");
    await waitForPhase(b, "active");
    for (const page of [a, b]) await risesAbove(page, (s) => s.audioIn, 0);

    // The media's selected candidate pair is TURN relay on both ends, on both sides.
    for (const page of [a, b]) {
      const pair = await page.evaluate(async () => {
        type Pc = RTCPeerConnection & { __media: boolean };
        const pcs = ((globalThis as unknown as { __loftPcs?: Pc[] }).__loftPcs ?? []).filter(
          (pc) => pc.__media && pc.connectionState !== "closed",
        );
        const pc = pcs.at(-1);
        if (!pc) return "no media connection";
        const stats: Record<string, unknown>[] = [];
        (await pc.getStats()).forEach((s: Record<string, unknown>) => {
          stats.push(s);
        });
        const transport = stats.find((s) => s.type === "transport");
        const selected = stats.find((s) => s.id === transport?.selectedCandidatePairId);
        const local = stats.find((s) => s.id === selected?.localCandidateId);
        const remote = stats.find((s) => s.id === selected?.remoteCandidateId);
        return `${local?.candidateType}/${remote?.candidateType}`;
      });
      expect(pair).toBe("relay/relay");
    }
    await expect.poll(() => turn.output()).toMatch(/incoming packet CREATE_PERMISSION processed, success/);
    await id(a, "call-hangup").click();
    await expectEnded(b, "hangup");
  });
});
