/**
 * Fuzz of the listener's entry point over real TLS: mutated transmissions (flipped, cut, extended)
 * in well-formed batches, and garbage blocks, on one connection. Every transmission of a block
 * that parses as a batch gets exactly one answer, every block that does not gets one ERR BLOCK,
 * nothing closes the connection, and it still answers PING afterwards.
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeBatch } from "../../core/smp/transport.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { BLOCK, bytes, cmd, padded, parseIds, SmpTestClient, short } from "./client.ts";
import { type SmpTestServer, startSmpTestServer } from "./testing.ts";

let server: SmpTestServer;
beforeAll(async () => {
  // No per-connection rate (no backpressure pauses) and no fsync: the fuzz measures parsing.
  server = await startSmpTestServer({ ratePerSecond: 0, sync: false, queueQuota: 64 });
});
afterAll(async () => {
  await server?.close();
});

it("the listener answers every transmission once and survives mutated and garbage input", async () => {
  const c = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
  const rcvAuth = ed25519.utils.randomSecretKey();
  const newQ = await c.command(
    new Uint8Array(0),
    cmd.new(ed25519.getPublicKey(rcvAuth), x25519.getPublicKey(x25519.utils.randomSecretKey())),
    { ed25519: rcvAuth },
  );
  const q = parseIds(newQ.params);
  const corr = new Uint8Array(24).fill(1);
  const seeds = [
    c.transmission(corr, new Uint8Array(0), cmd.ping()),
    c.transmission(corr, q.sndId, cmd.send(bytes("fuzz"))),
    c.transmission(corr, q.rcvId, cmd.get(), { ed25519: rcvAuth }),
    c.transmission(corr, q.rcvId, cmd.ack(new Uint8Array(24)), { ed25519: rcvAuth }),
    c.transmission(corr, q.rcvId, bytes("KEY ", short(new Uint8Array(44))), { ed25519: rcvAuth }),
  ];
  const mutated = fc
    .tuple(
      fc.constantFrom(...seeds),
      fc.constantFrom("flip", "cut", "extend", "none"),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ maxLength: 40 }),
    )
    .map(([seed, how, at, byte, extra]) => {
      const t = seed.slice();
      if (how === "flip") t[at % t.length] = byte;
      if (how === "cut") return t.subarray(0, at % t.length);
      if (how === "extend") return bytes(t, extra);
      return t;
    });
  const batches = fc.sample(fc.array(mutated, { minLength: 1, maxLength: 12 }), Math.ceil(FUZZ_RUNS / 6));
  const garbage = fc.sample(
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 200 })).map(([len, rest]) => {
      const b = new Uint8Array(BLOCK);
      b[0] = len >> 8;
      b[1] = len & 255;
      b.set(rest, 2);
      return b;
    }),
    200,
  );
  let expected = 0;
  let sent = 0;
  for (const [i, batch] of batches.entries()) {
    const content = bytes([batch.length], ...batch.map((t) => bytes([t.length >> 8, t.length & 255], t)));
    c.sendRaw(padded(content));
    expected += batch.length;
    sent += batch.length;
    const g = garbage[i % garbage.length]!;
    if (i < garbage.length) {
      c.sendRaw(g);
      expected += decodeBatch(g)?.length ?? 1;
    }
    // Keep the client's own output bounded: wait for answers now and then.
    if (i % 50 === 49) await c.command(new Uint8Array(0), cmd.ping());
  }
  expect(sent).toBeGreaterThanOrEqual(FUZZ_RUNS / 2);
  // Answers arrive in order: once this PING is answered, every earlier transmission has been.
  const pong = await c.command(new Uint8Array(0), cmd.ping());
  expect(pong.tag).toBe("PONG");
  expect(c.closed).toBe(false);
  expect(c.pushes.length).toBe(expected);
  c.close();
});

it("garbage client hellos close their connection and leave the listener serving", async () => {
  const { connect } = await import("node:tls");
  const port = Number(new URL(server.address.replace("smp://", "http://")).port);
  const hellos = fc.sample(
    fc.oneof(
      fc.uint8Array({ minLength: BLOCK, maxLength: BLOCK }),
      fc
        .tuple(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 40 }))
        .map(([v, rest]) => padded(bytes([0, v], rest))),
    ),
    40,
  );
  for (const hello of hellos) {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["smp/1"] });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    socket.on("data", () => {});
    socket.write(hello);
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000);
      socket.once("close", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    expect(closed).toBe(true);
  }
  const c = await SmpTestClient.connect(server.address, { connectHost: "127.0.0.1" });
  expect((await c.command(new Uint8Array(0), cmd.ping())).tag).toBe("PONG");
  c.close();
});
