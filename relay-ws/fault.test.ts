/**
 * Fault test: `relay-ws/main.ts` as a child process, SIGKILLed in the middle of a send burst,
 * restarted on the same data dir. Every SEND it acknowledged is delivered, none twice, and no
 * acknowledged (ACKed) message comes back. Afterwards the store files and the logs hold neither a
 * plaintext marker, nor an IP address, nor the master key (raw bytes searched).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import type { LoftError } from "../core/errors.ts";
import type { RecipientQueue, SenderQueue } from "../core/relay/client.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { connectRelay } from "./testing.ts";

const MARKER = "LOFT-PLAINTEXT-MARKER-7f3a";
const dataDir = mkdtempSync(join(tmpdir(), "loft-relay-fault-"));
// The master key on "another disk": a folder of its own, never under the data dir.
const keyDir = mkdtempSync(join(tmpdir(), "loft-relay-fault-key-"));
const masterKey = randomBytes(32);
writeFileSync(join(keyDir, "master.key"), masterKey.toString("hex"), { mode: 0o600 });
const logs: string[] = [];

const start = (): Promise<LoftProcess> =>
  startLoft({
    entry: "relay-ws/main.ts",
    args: [
      "--relay-data-dir",
      dataDir,
      "--relay-master-key-file",
      join(keyDir, "master.key"),
      "--relay-queue-quota",
      "5000",
      "--relay-rate",
      "0",
      "--relay-conn-rate",
      "0",
      // The drain below runs GET + ACK as fast as the client can (authenticators cost it little).
      "--relay-source-rate",
      "0",
    ],
  });
const wsUrl = (p: LoftProcess) => `ws://127.0.0.1:${p.port}/relay`;

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(keyDir, { recursive: true, force: true });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("relay crash safety", () => {
  it("SIGKILL mid-burst: acknowledged SENDs survive, ACKed messages stay deleted, nothing leaks", async () => {
    let relay = await start();
    let alice = await connectRelay(wsUrl(relay));
    let bob = await connectRelay(wsUrl(relay));
    const queue: RecipientQueue = await alice.createQueue({ subscribe: false });
    const sender: SenderQueue = await bob.senderSecure({ senderId: queue.senderId });
    await alice.publishPrekeys(queue, {
      bundle: utf8(`${MARKER}-bundle`),
      oneTimePrekeys: [utf8(`${MARKER}-otk`)],
    });

    // Phase 1: 20 messages, the first 10 received and ACKed.
    for (let i = 0; i < 20; i++) await bob.send(sender, utf8(`${MARKER}-${i}`));
    const acked = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const m = await alice.get(queue);
      const body = new TextDecoder().decode(m!.body);
      expect(body).toBe(`${MARKER}-${i}`);
      await alice.ack(queue, m!.msgId);
      acked.add(body);
    }

    // Phase 2: a pipelined burst spread over event turns; SIGKILL once 200 are acknowledged.
    const accepted = new Set<string>();
    let killed: Promise<number | null> | undefined;
    const burst: Promise<void>[] = [];
    const refusals: string[] = [];
    let afterKill = 0;
    for (let j = 0; j < 3000 && afterKill < 50; j++) {
      if (killed) afterKill++;
      const body = `${MARKER}-${20 + j}`;
      burst.push(
        bob.send(sender, utf8(body)).then(
          () => {
            accepted.add(body);
            if (accepted.size === 200) killed = relay.stop("SIGKILL");
          },
          (e: LoftError) => {
            refusals.push(e.code);
          },
        ),
      );
      if (j % 10 === 9) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(burst);
    await killed;
    logs.push(relay.output());
    const refused = refusals.length;
    expect(new Set(refusals)).toEqual(new Set(["LOFT_ERR_LINK_CLOSED"]));
    expect(accepted.size).toBeGreaterThanOrEqual(200);
    expect(refused).toBeGreaterThanOrEqual(50); // the kill really cut the burst
    expect(accepted.size + refused).toBe(burst.length);
    alice.close();
    bob.close();

    // Restart on the same data dir and drain the queue.
    relay = await start();
    alice = await connectRelay(wsUrl(relay));
    const seen = new Map<string, number>();
    for (;;) {
      const m = await alice.get(queue);
      if (!m) break;
      const body = new TextDecoder().decode(m.body);
      seen.set(body, (seen.get(body) ?? 0) + 1);
      await alice.ack(queue, m.msgId);
    }
    for (const body of accepted) expect(seen.has(body), `${body} acknowledged but lost`).toBe(true);
    for (let i = 10; i < 20; i++) expect(seen.get(`${MARKER}-${i}`)).toBe(1);
    for (const body of acked) expect(seen.has(body), `${body} was ACKed but came back`).toBe(false);
    for (const [body, n] of seen) expect(n, `${body} delivered ${n} times`).toBe(1);
    // The prekeys survived too.
    bob = await connectRelay(wsUrl(relay));
    const pk = await bob.fetchPrekeys(queue.senderId);
    expect(new TextDecoder().decode(pk.bundle)).toBe(`${MARKER}-bundle`);
    expect(new TextDecoder().decode(pk.oneTimePrekey!)).toBe(`${MARKER}-otk`);
    alice.close();
    bob.close();
    expect(await relay.stop("SIGTERM")).toBe(0);
    logs.push(relay.output());

    // No plaintext marker and no IP address in any store file or log line (raw bytes).
    const needles = [
      ...[MARKER, "127.0.0.1", "::ffff:127"].map((s) => Buffer.from(s)),
      masterKey,
      Buffer.from(masterKey.toString("hex")),
    ];
    const files = filesUnder(dataDir);
    expect(files.length).toBeGreaterThan(0);
    // The scan sees the store's real bytes: the sender id (an LMDB key) is there in the clear.
    expect(files.some((f) => readFileSync(f).includes(Buffer.from(queue.senderId)))).toBe(true);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const n of needles) expect(bytes.includes(n), `${n} found in ${f}`).toBe(false);
    }
    const allLogs = Buffer.from(logs.join("\n"));
    expect(allLogs.includes(Buffer.from("relay listening"))).toBe(true);
    for (const n of needles) expect(allLogs.includes(n), `${n} found in the logs`).toBe(false);
    expect(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/.test(logs.join("\n"))).toBe(false);
  });
});
