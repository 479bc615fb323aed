/**
 * The attacker of relay-ws/abuse.test.ts, in its own process so that generating the flood does
 * not stall the event loop whose latency the test measures. Forked with an IPC channel:
 *
 *   argv: <relay ws url> <frames per connection> <tries per source> <source address>…
 *   → { k: "ready", held: { [address]: n }, refused: { [address]: n } } once connected
 *   ← "go"
 *   → { k: "done", refusedForCost: { [address]: boolean } } after the flood, then exits.
 *
 * Each connection sends, in batches, a mix of PINGs, badly signed GETs on made-up queue ids (each
 * costs the relay a key parse and a verification) and validly signed NEWs (the costliest command).
 * Bounded: a fixed number of frames per connection, and the parent kills it after its test.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { authInput, decodeServerFrame, encodeClientFrame, encodeCommand } from "../core/relay/protocol.ts";
import { ed25519Signer } from "../server/node-ed25519.ts";
import { RawSocket } from "./testing.ts";

const [url = "", framesArg = "400", triesArg = "80", ...sources] = process.argv.slice(2);
const FRAMES = Number(framesArg);
const TRIES = Number(triesArg);
const BATCH = 40;

function publicKeyOf(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  const x = createPublicKey(priv).export({ format: "jwk" }).x ?? "";
  return new Uint8Array(Buffer.from(x, "base64url"));
}

function attackFrames(s: RawSocket): Uint8Array[] {
  const seed = new Uint8Array(randomBytes(32));
  const sign = ed25519Signer(seed);
  const rk = publicKeyOf(seed);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 30; i++) {
    frames.push(encodeClientFrame(encodeCommand({ k: "PING", i: 1 })));
    const get = encodeCommand({ k: "GET", i: 2, q: new Uint8Array(randomBytes(24)) });
    frames.push(encodeClientFrame(get, new Uint8Array(randomBytes(64))));
    const t = encodeCommand({ k: "NEW", i: 3, rk, dk: new Uint8Array(randomBytes(32)), sub: false });
    frames.push(encodeClientFrame(t, sign(authInput(s.sessionId, t))));
  }
  return frames;
}

async function main(): Promise<void> {
  const held: Record<string, RawSocket[]> = {};
  const refused: Record<string, number> = {};
  for (const address of sources) {
    held[address] = [];
    refused[address] = 0;
    for (let i = 0; i < TRIES; i++) {
      try {
        held[address].push(await RawSocket.open(url, true, { localAddress: address }));
      } catch {
        refused[address]++;
      }
    }
  }
  const all = Object.values(held).flat();
  const frames = new Map(all.map((s) => [s, attackFrames(s)]));
  process.send?.({
    k: "ready",
    held: Object.fromEntries(Object.entries(held).map(([a, l]) => [a, l.length])),
    refused,
  });
  await new Promise<void>((resolve) => process.once("message", () => resolve()));
  for (let sent = 0; sent < FRAMES; sent += BATCH) {
    for (const s of all) {
      if (s.closeCode !== undefined) continue;
      const f = frames.get(s)!;
      for (let i = 0; i < BATCH; i++) s.send(f[(sent + i) % f.length]!);
    }
    await new Promise((r) => setImmediate(r));
  }
  // Until every connection is closed or answered every frame (bounded: 1000 × 20 ms).
  for (let i = 0; i < 1000; i++) {
    if (all.every((s) => s.closeCode !== undefined || s.frames.length >= FRAMES)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const refusedForCost: Record<string, boolean> = {};
  for (const [address, list] of Object.entries(held))
    refusedForCost[address] = list.some(
      (s) =>
        s.closeCode === 1008 ||
        s.frames.some((f) => {
          const d = decodeServerFrame(f);
          return d.ok && d.value.k === "ERR" && d.value.e === "SOURCE_RATE";
        }),
    );
  process.send?.({ k: "done", refusedForCost }, () => process.exit(0));
}

void main();
