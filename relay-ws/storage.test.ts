/**
 * The relay's storage limits seen by clients, over real WebSockets to the real relay on loopback:
 * the global byte quota answers SEND with FULL and keeps what is stored; a real disk-full (the
 * relay process under a file-size limit, so LMDB's writes fail with EFBIG) does the same without
 * losing an acknowledged message; idle queues expire; a bad --relay-data-dir is refused at start
 * with a clear message, and a dotted one works.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import { LoftError } from "../core/errors.ts";
import { startLoft } from "../test/support/loft-process.ts";
import { connectRelay, masterKeyFor, startTestRelay, type TestRelay } from "./testing.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DAY = 86_400_000;
let relay: TestRelay | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await relay?.close();
  relay = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return "ok";
  } catch (e) {
    if (e instanceof LoftError) return e.code;
    throw e;
  }
};

describe("relay storage limits", () => {
  it("a full store answers SEND and PKSET with FULL, keeps and delivers what it holds, and takes more once freed", async () => {
    relay = await startTestRelay({ storeQuotaBytes: 24_000, queueQuota: 1000, ratePerSecond: 0 });
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    const sent: string[] = [];
    let code = "ok";
    for (let i = 0; i < 500 && code === "ok"; i++) {
      const body = `${i}:${"x".repeat(900)}`;
      code = await codeOf(bob.send(sender, utf8(body)));
      if (code === "ok") sent.push(body);
    }
    expect(code).toBe("LOFT_ERR_RELAY_FULL");
    expect(sent.length).toBeGreaterThan(5);
    expect(await codeOf(alice.publishPrekeys(q, { bundle: new Uint8Array(8000), oneTimePrekeys: [] }))).toBe(
      "LOFT_ERR_RELAY_FULL",
    );
    // Everything accepted is delivered; acknowledging frees room for new messages.
    for (const body of sent) {
      const m = await alice.get(q);
      expect(new TextDecoder().decode(m!.body)).toBe(body);
      await alice.ack(q, m!.msgId);
    }
    expect(await alice.get(q)).toBeUndefined();
    expect(await codeOf(bob.send(sender, utf8("after")))).toBe("ok");
    expect(relay.service.store.stats().storedBytes).toBeGreaterThan(0);
    alice.close();
    bob.close();
  });

  it("a queue idle for --relay-queue-idle-days is deleted; a used one is kept", async () => {
    let now = Date.UTC(2032, 0, 1);
    relay = await startTestRelay({ queueIdleDays: 30 }, { clock: () => now });
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const idle = await alice.createQueue({ subscribe: false });
    const used = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: idle.senderId });
    for (let day = 0; day < 35; day++) {
      now += DAY;
      if (day % 5 === 0) expect(await alice.get(used)).toBeUndefined();
      await relay.runGcForTest();
    }
    expect(await codeOf(alice.get(idle))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(await codeOf(bob.send(sender, utf8("late")))).toBe("LOFT_ERR_RELAY_AUTH");
    expect(await codeOf(alice.get(used))).toBe("ok");
    alice.close();
    bob.close();
  });

  it("a dotted --relay-data-dir works; a file as --relay-data-dir is refused at start with a clear message", async () => {
    const dotted = mkdtempSync(join(tmpdir(), "loft.relay-"));
    dirs.push(dotted);
    relay = await startTestRelay({}, { dataDir: dotted });
    const c = await connectRelay(relay.url);
    const q = await c.createQueue({ subscribe: false });
    expect(q.recipientId).toHaveLength(24);
    c.close();

    const parent = mkdtempSync(join(tmpdir(), "loft-relay-bad-"));
    dirs.push(parent);
    const file = join(parent, "not-a-dir");
    writeFileSync(file, "x");
    const out = await startLoft({ entry: "relay-ws/main.ts", args: ["--relay-data-dir", file] }).then(
      async (p) => {
        await p.stop();
        return "started";
      },
      (e: Error) => e.message,
    );
    expect(out).toContain("exited (2)");
    expect(out).toContain(`LOFT_ERR_RELAY_DATA_DIR: --relay-data-dir ${file} exists and is not a directory`);
  });

  it("disk full (EFBIG under a file-size limit): SEND gets FULL, nothing acknowledged is lost, the relay keeps serving", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "loft-relay-diskfull-"));
    dirs.push(dataDir);
    const masterKey = masterKeyFor(dataDir).toString("hex");
    // ulimit -f is in KiB blocks: data.mdb may not grow past 3 MiB.
    const child = spawn(
      "/bin/sh",
      [
        "-c",
        'ulimit -f 3072 && exec "$0" "$@"',
        process.execPath,
        "--import",
        "tsx",
        "relay-ws/main.ts",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--relay-data-dir",
        dataDir,
        "--relay-store-quota",
        "0",
        "--relay-min-free-disk",
        "0",
        "--relay-queue-quota",
        "100000",
        "--relay-rate",
        "0",
      ],
      {
        cwd: ROOT,
        env: { ...process.env, LOG_LEVEL: "info", LOFT_RELAY_MASTER_KEY: masterKey },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        const m = /"msg":"relay listening"[^\n]*"port":(\d+)|"port":(\d+)[^\n]*"msg":"relay listening"/.exec(
          output,
        );
        if (m) resolve(Number(m[1] ?? m[2]));
      });
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      void exited.then((c) => reject(new Error(`relay exited (${c}):\n${output}`)));
    });
    let q: Awaited<ReturnType<Awaited<ReturnType<typeof connectRelay>>["createQueue"]>>;
    const accepted: string[] = [];
    const ackCodes = new Set<string>();
    let acked: string | undefined;
    try {
      const url = `ws://127.0.0.1:${port}/relay`;
      const alice = await connectRelay(url);
      const bob = await connectRelay(url);
      q = await alice.createQueue({ subscribe: false });
      const sender = await bob.senderSecure({ senderId: q.senderId });
      let code = "ok";
      // 16 KiB bodies: each takes one full bucket; 3 MiB fill after ~180.
      for (let i = 0; i < 2000 && code === "ok"; i++) {
        const body = `${i}:${"y".repeat(16_000)}`;
        code = await codeOf(bob.send(sender, utf8(body)));
        if (code === "ok") accepted.push(body);
      }
      expect(code).toBe("LOFT_ERR_RELAY_FULL");
      expect(accepted.length).toBeGreaterThan(50);
      // Still serving: what was acknowledged is delivered; an ACK either lands or is refused FULL.
      const m = await alice.get(q);
      expect(new TextDecoder().decode(m!.body)).toBe(accepted[0]);
      const ack = await codeOf(alice.ack(q, m!.msgId));
      ackCodes.add(ack);
      if (ack === "ok") acked = accepted[0];
      expect(await codeOf(bob.send(sender, utf8("still full")))).toBe("LOFT_ERR_RELAY_FULL");
      alice.close();
      bob.close();
      expect(child.exitCode).toBeNull();
      expect(output).toContain("the disk refused a write");
    } catch (e) {
      console.log(output.slice(-4000));
      throw e;
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    expect([...ackCodes].every((c) => c === "ok" || c === "LOFT_ERR_RELAY_FULL")).toBe(true);

    // Restarted without the limit: every acknowledged SEND is there, once, in order.
    relay = await startTestRelay({}, { dataDir });
    const alice = await connectRelay(relay.url);
    const drained: string[] = [];
    for (let i = 0; i < accepted.length + 10; i++) {
      const m = await alice.get(q);
      if (!m) break;
      drained.push(new TextDecoder().decode(m.body));
      await alice.ack(q, m.msgId);
    }
    expect(drained).toEqual(accepted.filter((b) => b !== acked));
    alice.close();
  });
});
