/**
 * Two headless peers (cli/peer.ts) in Node against the real signaling server and the real relay
 * (LMDB store, real WebSockets), each with its own sealed state file: a first contact from a link
 * through the relay, the request accepted, a reply over the live relay session, and both peers
 * restarted from their files carrying on with the same ratchets. The state file refuses a second
 * process, another identity's key and a damaged file, each with a clear error.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { createUserIdentity, encodeIdentity, type UserIdentity } from "../core/identity/identity.ts";
import { bytesBody, readAll } from "../core/proxy/body.ts";
import { SignalingClient } from "../core/signaling/client.ts";
import { startTestRelay, type TestRelay } from "../relay-ws/testing.ts";
import { type RunningSignaling, startSignaling, wsFactory } from "../signaling/testing.ts";
import { until } from "../test/support/engine.ts";
import type { EngineEvent, StoredMessage } from "../web/src/engine/api.ts";
import type { EngineConfig } from "../web/src/engine/engine.ts";
import { contactIdOf } from "../web/src/identity.ts";
import {
  decodeSignalPayload,
  encodeSignalPayload,
  type SignalPayload,
} from "../web/src/net/signal-payload.ts";
import { handOver, macOf, sendKeyOf, serveSends, socketPathOf } from "./duplex.ts";
import { exposeOrigin } from "./expose.ts";
import { printable } from "./output.ts";
import { HeadlessPeer, PeerError } from "./peer.ts";
import { fixedLookup, parseResolve } from "./resolve.ts";
import { StateFile, StateFileError, stateKeyOf } from "./state-file.ts";

const FAST: Partial<EngineConfig> = {
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 10_000,
  backoffInitialMs: 100,
  backoffMaxMs: 1_000,
  glareDelayMs: 100,
  mailboxDelayMs: 300,
  relayBackoffInitialMs: 100,
  relayBackoffMaxMs: 1_000,
};

interface Running {
  peer: HeadlessPeer;
  received: StoredMessage[];
  events: EngineEvent[];
}

describe("headless peers, Node to Node, through the relay", () => {
  let signaling: RunningSignaling;
  let relay: TestRelay;
  let dir: string;
  const running: HeadlessPeer[] = [];

  const open = async (user: UserIdentity, file: string): Promise<Running> => {
    const storage = await StateFile.open(join(dir, file), stateKeyOf(user.privateIdentityKey));
    await storage.lock();
    await storage.setSettings({ signalingUrl: signaling.url, relayUrls: [relay.url] });
    const peer = await HeadlessPeer.create({
      user,
      storage,
      config: FAST,
      crypto: nobleCrypto,
      ...(process.env.PEER_LOG ? { log: (l: string) => console.error(`[${file}] ${l}`) } : {}),
    });
    const r: Running = { peer, received: [], events: [] };
    peer.subscribe((e) => {
      r.events.push(e);
      if (e.type === "message") r.received.push(e.message);
    });
    await peer.start();
    running.push(peer);
    return r;
  };
  const stop = async (r: Running) => {
    await r.peer.stop();
    await r.peer.storage.close();
    running.splice(running.indexOf(r.peer), 1);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loft-peer-"));
    signaling = await startSignaling();
    relay = await startTestRelay();
  });
  afterAll(async () => {
    for (const p of running.splice(0)) {
      await p.stop().catch(() => {});
      await p.storage.close().catch(() => {});
    }
    await relay?.close();
    await signaling?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("first contact from a link, a reply, and both restarted from their files", async () => {
    const aliceUser = createUserIdentity({ username: "alice-bot", now: Date.now() });
    const bobUser = createUserIdentity({ username: "bob-bot", now: Date.now() });
    let alice = await open(aliceUser, "alice.state");
    let bob = await open(bobUser, "bob.state");

    // Waits for the relay's contact address, which a loaded machine may take longer than the default 10 s to give.
    const { url: bobLink, refs } = await bob.peer.link(60_000);
    expect(refs).toBe(true);
    expect(bobLink).toContain("#c=");
    const added = await alice.peer.acceptLink(bobLink);
    expect(added).toMatchObject({ id: bob.peer.id, name: "bob-bot", added: true });
    // Accepting the same link again changes nothing; its own link is refused.
    expect((await alice.peer.acceptLink(bobLink)).added).toBe(false);
    await expect(alice.peer.acceptLink((await alice.peer.link()).url)).rejects.toThrow(PeerError);

    // Bob does not know Alice: her first message is a contact request through his relay address.
    const first = await alice.peer.send("bob-bot", "hello from alice");
    expect(["sent", "relayed", "delivered"]).toContain(first.state);
    await until(() => bob.received.some((m) => m.text === "hello from alice"), "bob receives the request");
    const request = await bob.peer.contact("alice-bot");
    expect(request.request).toBeDefined();
    await expect(bob.peer.send("alice-bot", "too early")).rejects.toThrow(/request/i);
    await bob.peer.acceptRequest(alice.peer.id.slice(0, 12));

    const reply = await bob.peer.send("alice-bot", "hi alice, from bob", "delivered");
    expect(reply.state).toBe("delivered");
    await until(
      () => alice.received.some((m) => m.text === "hi alice, from bob"),
      "alice receives the reply",
    );
    await until(() => alice.peer.engine.presence(bob.peer.id).status === "online", "a live session");
    expect(alice.peer.engine.presence(bob.peer.id).path).toBe("relay");

    // Both stop; their files hold contacts, ratchets and mailbox keys: a new run carries on.
    await stop(alice);
    await stop(bob);
    alice = await open(aliceUser, "alice.state");
    bob = await open(bobUser, "bob.state");
    const again = await alice.peer.send(bob.peer.id, "after a restart", "delivered");
    expect(again.state).toBe("delivered");
    await until(() => bob.received.some((m) => m.text === "after a restart"), "bob receives after restart");
    // The ratchet carried over: no "started a new secure session" on either side.
    const rebootstrap = (r: Running) =>
      r.events.some((e) => e.type === "error" && /new secure session/.test(e.error.message));
    expect(rebootstrap(alice) || rebootstrap(bob)).toBe(false);
    expect(bob.peer.storage.messages(alice.peer.id).map((m) => m.text)).toEqual([
      "hello from alice",
      "hi alice, from bob",
      "after a restart",
    ]);
    await stop(alice);
    await stop(bob);
  });

  it("expose: a contact it names gets the local service through the relay session; another contact is refused", async () => {
    const origin = createServer((req, res) => {
      if (req.url === "/hello")
        return void res.writeHead(200, { "content-type": "text/plain" }).end("hi there");
      if (req.method === "POST") return void req.pipe(res);
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
    const users = ["dora", "erin", "finn"].map((n) => createUserIdentity({ username: n, now: Date.now() }));
    const [dora, erin, finn] = await Promise.all(users.map((u, i) => open(u, `expose-${i}.state`)));
    try {
      // Dora knows Erin and Finn, and they know her (links both ways: no requests).
      for (const other of [erin!, finn!]) {
        await dora!.peer.acceptLink((await other.peer.link()).url);
        await other.peer.acceptLink((await dora!.peer.link()).url);
      }
      const access: string[] = [];
      const stop = exposeOrigin(
        dora!.peer,
        `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
        [await dora!.peer.contact("erin")],
        true,
        (line) => access.push(line),
      );
      const clientOf = async (r: Running) => {
        r.peer.engine.connect(dora!.peer.id);
        await until(() => r.peer.engine.proxyClient(dora!.peer.id) !== undefined, "a live session with dora");
        expect(r.peer.engine.presence(dora!.peer.id).path).toBe("relay");
        return r.peer.engine.proxyClient(dora!.peer.id)!;
      };
      const erinClient = await clientOf(erin!);
      const res = await erinClient.request({ method: "GET", path: "/hello", headers: [] });
      expect(res.status).toBe(200);
      expect(new TextDecoder().decode(await readAll(res.body))).toBe("hi there");
      const upload = randomBytes(300 * 1024);
      const echoed = await erinClient.request(
        { method: "POST", path: "/echo", headers: [] },
        bytesBody(upload),
      );
      expect(Buffer.from(await readAll(echoed.body)).equals(Buffer.from(upload))).toBe(true);
      // Traversal never reaches the origin.
      await expect(
        erinClient.request({ method: "GET", path: "/../etc/passwd", headers: [] }),
      ).rejects.toThrow();

      const finnClient = await clientOf(finn!);
      await expect(finnClient.request({ method: "GET", path: "/hello", headers: [] })).rejects.toMatchObject({
        code: "not_shared",
      });
      const lines = access.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ type: "access", name: "erin", path: "/hello", status: 200 }),
          expect.objectContaining({ type: "access", name: "erin", method: "POST", status: 200 }),
          expect.objectContaining({
            type: "access",
            peer: finn!.peer.id,
            outcome: "refused",
            refused: "not_shared",
          }),
        ]),
      );
      // Stopped: Erin is refused too.
      stop();
      await expect(erinClient.request({ method: "GET", path: "/hello", headers: [] })).rejects.toMatchObject({
        code: "not_shared",
      });
    } finally {
      for (const r of [dora, erin, finn]) if (r) await stop(r);
      origin.close();
    }
  });

  it("loft send while the identity is in use: handed to the running peer over its 0600 socket, with proof of the identity", async () => {
    const aUser = createUserIdentity({ username: "duplex-a", now: Date.now() });
    const bUser = createUserIdentity({ username: "duplex-b", now: Date.now() });
    const a = await open(aUser, "duplex-a.state");
    const b = await open(bUser, "duplex-b.state");
    await a.peer.acceptLink((await b.peer.link(60_000)).url);
    const path = socketPathOf(a.peer.storage.path);
    const key = stateKeyOf(aUser.privateIdentityKey);
    // What `loft send` does while `loft listen` runs: the state is locked…
    await expect((await StateFile.open(a.peer.storage.path, key)).lock()).rejects.toMatchObject({
      code: "locked",
    });
    // …and nobody takes sends yet.
    await expect(
      handOver(path, key, { to: "duplex-b", text: "x", wait: "left", timeout: 5 }),
    ).rejects.toMatchObject({
      code: "absent",
    });
    const stopSends = await serveSends(a.peer, path, key);
    /** One raw exchange: the hello, then `line` (built from the hello's nonce), then every answer line. */
    const raw = (line: (nonce: string) => string) =>
      new Promise<string[]>((resolve, reject) => {
        const socket = connect(path);
        let got = "";
        let sent = false;
        socket.setEncoding("utf8");
        socket.on("data", (d: string) => {
          got += d;
          if (!sent && got.includes("\n")) {
            sent = true;
            socket.write(`${line(JSON.parse(got.split("\n")[0]!).nonce)}\n`);
          }
        });
        socket.on("close", () => resolve(got.trim().split("\n").slice(1)));
        socket.on("error", reject);
      });
    try {
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const r = await handOver(path, key, { to: "duplex-b", text: "handed over", wait: "left", timeout: 30 });
      expect(r).toMatchObject({ type: "sent", to: b.peer.id });
      expect(["sent", "relayed", "delivered"]).toContain(r.state);
      await until(
        () => b.received.some((m) => m.text === "handed over"),
        "b receives the handed-over message",
      );
      // Sent by the running peer itself: its history and outbox have it.
      expect(a.peer.storage.messages(b.peer.id).map((m) => m.text)).toContain("handed over");

      // Another identity's key (a process that did not open this identity file): refused.
      const other = stateKeyOf(
        createUserIdentity({ username: "mallory", now: Date.now() }).privateIdentityKey,
      );
      await expect(
        handOver(path, other, { to: "duplex-b", text: "forged", wait: "left", timeout: 5 }),
      ).rejects.toThrow(/not sent by this identity/);
      // The listener's own refusal words come back.
      await expect(
        handOver(path, key, { to: "nobody", text: "x", wait: "left", timeout: 5 }),
      ).rejects.toThrow(/no contact "nobody"/);
      // A request made for another connection's nonce (replayed): refused.
      const request = { to: "duplex-b", text: "replayed", wait: "left" as const, timeout: 5 };
      const replayed = JSON.stringify({
        type: "send",
        ...request,
        mac: macOf(sendKeyOf(key), "00".repeat(16), request),
      });
      expect(await raw(() => replayed)).toEqual([expect.stringContaining("not sent by this identity")]);
      // Malformed and oversized requests get an error line, not a crash.
      expect(await raw(() => "{not json")).toEqual([expect.stringContaining("refused: not JSON")]);
      expect(await raw(() => JSON.stringify({ type: "send", to: "duplex-b" }))).toEqual([
        expect.stringContaining("missing fields"),
      ]);
      expect(await raw(() => "x".repeat(70_000))).toEqual([expect.stringContaining("a line over")]);
      expect(b.received.map((m) => m.text)).not.toContain("forged");
      expect(b.received.map((m) => m.text)).not.toContain("replayed");
    } finally {
      await stopSends();
      await stop(a);
      await stop(b);
    }
    await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a message sent over the live relay session right before the peer stops reaches the contact", async () => {
    const aUser = createUserIdentity({ username: "stop-a", now: Date.now() });
    const bUser = createUserIdentity({ username: "stop-b", now: Date.now() });
    const a = await open(aUser, "stop-a.state");
    const b = await open(bUser, "stop-b.state");
    try {
      await a.peer.acceptLink((await b.peer.link(60_000)).url);
      await b.peer.acceptLink((await a.peer.link(60_000)).url);
      a.peer.engine.connect(b.peer.id);
      await until(
        () =>
          a.peer.engine.presence(b.peer.id).status === "online" &&
          b.peer.engine.presence(a.peer.id).status === "online",
        "a live session",
        60_000,
      );
      const r = await a.peer.send("stop-b", "the last words before stopping");
      expect(r.state).toBe("sent");
      await stop(a);
      await until(
        () => b.received.some((m) => m.text === "the last words before stopping"),
        "b receives what a sent before stopping",
        20_000,
      );
    } finally {
      if (running.includes(a.peer)) await stop(a);
      await stop(b);
    }
  });

  it("a contact's direct (WebRTC) offer gets bye no-direct at once, on the offer's connection id", async () => {
    const botUser = createUserIdentity({ username: "nodirect-bot", now: Date.now() });
    const bot = await open(botUser, "nodirect.state");
    // A browser's signaling client, as its direct transport uses it (web/src/net/direct.ts).
    const browserUser = createUserIdentity({ username: "browser", now: Date.now() });
    const browser = new SignalingClient({
      url: signaling.url,
      user: browserUser,
      connect: wsFactory(),
      crypto: nobleCrypto,
      reconnect: false,
    });
    const byes: SignalPayload[] = [];
    browser.on((e) => {
      if (e.type !== "signal" || e.envelope.kind !== "bye") return;
      const p = decodeSignalPayload("bye", e.envelope.payload);
      if (p.ok) byes.push(p.value);
    });
    // The browser is the bot's contact (the bot registers for its contacts only).
    const now = Date.now();
    await bot.peer.engine.changeContact(contactIdOf(browserUser.identity), {
      kind: "add",
      contact: {
        id: contactIdOf(browserUser.identity),
        identity: encodeIdentity(browserUser.identity),
        username: "browser",
        trust: "unknown",
        firstSeen: now,
        lastSeen: now,
        endpoints: { signaling: [signaling.url], relay: [relay.url] },
      },
    });
    try {
      await browser.start();
      const botKey = botUser.identity.verified.identity_key;
      const conn = randomBytes(8);
      const offer = encodeSignalPayload({ kind: "offer", conn, sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n" });
      // Until the bot's registration is open to its new contact (PEER_OFFLINE before that).
      await until(
        () =>
          browser.signal(botKey, "offer", offer).then(
            () => true,
            () => false,
          ),
        "the offer reaches the bot",
      );
      await until(() => byes.length > 0, "the bot's bye");
      expect(byes).toEqual([{ kind: "bye", conn: new Uint8Array(conn), reason: "no-direct" }]);
    } finally {
      browser.close();
      await stop(bot);
    }
  });

  it("the state file: one process, its own identity, not damaged", async () => {
    const user = createUserIdentity({ username: "carol-bot", now: Date.now() });
    const key = stateKeyOf(user.privateIdentityKey);
    const path = join(dir, "carol.state");
    const first = await StateFile.open(path, key);
    await first.lock();
    await first.setSettings({ signalingUrl: "ws://127.0.0.1:1/signal", relayUrls: [] });
    const second = await StateFile.open(path, key);
    await expect(second.lock()).rejects.toMatchObject({ code: "locked" });
    await first.close();
    await second.lock(); // released: the next process may take it
    await second.close();
    // A lock left by a process that is gone is taken over.
    await writeFile(`${path}.lock`, "999999999");
    const third = await StateFile.open(path, key);
    await third.lock();
    await third.close();

    const other = createUserIdentity({ username: "mallory", now: Date.now() });
    await expect(StateFile.open(path, stateKeyOf(other.privateIdentityKey))).rejects.toMatchObject({
      code: "wrong_key",
    });
    const bytes = await readFile(path);
    bytes[bytes.length - 1]! ^= 1;
    await writeFile(path, bytes);
    await expect(StateFile.open(path, key)).rejects.toBeInstanceOf(StateFileError);
    await writeFile(path, "not a state file");
    await expect(StateFile.open(path, key)).rejects.toMatchObject({ code: "malformed" });
  });
});

describe("the CLI's small parts", () => {
  it("prints a contact's text without control characters that could rewrite the terminal", () => {
    expect(printable("hi\u001b[2J\u0007 there\nnext\u009b")).toBe("hi\\u{1b}[2J\\u{7} there\\nnext\\u{9b}");
    expect(printable("plain ünïcode ✓")).toBe("plain ünïcode ✓");
  });

  it("LOFT_RESOLVE: fixed names answer with their address, anything malformed is refused", async () => {
    const map = parseResolve("loft.example=127.0.0.1, Other.Example=::1");
    expect([...map]).toEqual([
      ["loft.example", "127.0.0.1"],
      ["other.example", "::1"],
    ]);
    for (const bad of ["loft.example", "loft.example=not-an-ip", "a=1.2.3.4=5", "=1.2.3.4"])
      expect(() => parseResolve(bad), bad).toThrow(TypeError);
    const lookup = fixedLookup(map);
    const one = await new Promise((resolve) =>
      lookup("LOFT.example", {}, (e, address, family) => resolve({ e, address, family })),
    );
    expect(one).toEqual({ e: null, address: "127.0.0.1", family: 4 });
    const all = await new Promise((resolve) =>
      lookup("other.example", { all: true }, (_e, address) => resolve(address)),
    );
    expect(all).toEqual([{ address: "::1", family: 6 }]);
  });
});
