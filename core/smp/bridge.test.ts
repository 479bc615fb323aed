/**
 * Property tests of the bridge's client side (docs/protocol/smp.md, "The bridge"): the frame and
 * address decoders take any input and return a value or undefined, never throw, and round-trip;
 * the client session fed any block or hello fails with a typed SmpClientError, never anything else.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { equalBytes, toHex } from "../bytes.ts";
import {
  formatSmpQueueAddress,
  formatSmpServerAddress,
  parseSmpQueueAddress,
  parseSmpServerAddress,
  smpHosts,
} from "./address.ts";
import {
  BRIDGE_ERRORS,
  type BridgeErrorName,
  type BridgeFrame,
  decodeBridgeFrame,
  encodeBridgeFrame,
} from "./bridge-frames.ts";
import { SmpClient, SmpClientError } from "./client.ts";
import { encodeBlock, encodeServerHello, SMP_BLOCK_SIZE } from "./transport.ts";

const hostArb = fc.oneof(
  fc.constantFrom("localhost", "relay.example", "a-1.b.example", "xn--80ak6aa92e.example"),
  fc.ipV4(),
  fc.constantFrom("::1", "2001:db8::5", "fe80::1:2:3:4"),
);
/** Strings made of what addresses are made of, so that the parsers get past their first checks. */
const addressish = fc
  .array(
    fc.constantFrom(
      ..."smp:/@[]#?&=.,-_0123456789abcdefABCDEF".split(""),
      "smp://",
      "#/?v=",
      "&dh=",
      "MCowBQYDK2VuAyEA",
    ),
    {
      maxLength: 60,
    },
  )
  .map((parts) => parts.join(""));
const passwordArb = fc
  .array(fc.integer({ min: 0x21, max: 0x7e }), { minLength: 1, maxLength: 40 })
  .map((cs) => String.fromCharCode(...cs).replace(/[@:/]/g, "x"));
/** One host or several (tried in order), with a password or not. */
const serverArb = fc
  .record({
    fingerprint: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    hosts: fc.array(
      hostArb.map((h) => h.toLowerCase()),
      { minLength: 1, maxLength: 4 },
    ),
    port: fc.integer({ min: 1, max: 65535 }),
    password: fc.option(passwordArb, { nil: undefined }),
  })
  .map(({ hosts, password, ...rest }) => ({
    ...rest,
    host: hosts[0]!,
    ...(hosts.length > 1 ? { hosts } : {}),
    ...(password !== undefined ? { password } : {}),
  }));

describe("bridge frames", () => {
  it("decode any bytes without throwing; what decodes re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 700 }),
          fc
            .tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 300 }))
            .map(([k, b]) => Uint8Array.of(k, ...b)),
        ),
        (bytes) => {
          const f = decodeBridgeFrame(bytes);
          if (f && !equalBytes(encodeBridgeFrame(f), bytes)) throw new Error("frame does not round-trip");
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("round-trip every kind", () => {
    const block = new Uint8Array(SMP_BLOCK_SIZE).fill(0x23);
    const frames: BridgeFrame[] = [
      { kind: "OPEN", address: "smp://abc@host:5223" },
      { kind: "BLOCK", block },
      { kind: "READY", tls: "TLSv1.3" },
      ...Object.keys(BRIDGE_ERRORS).map((e) => ({
        kind: "ERROR" as const,
        error: e as BridgeErrorName,
        detail: "why",
      })),
    ];
    for (const f of frames) expect(decodeBridgeFrame(encodeBridgeFrame(f))).toEqual(f);
    expect(decodeBridgeFrame(Uint8Array.of(2, ...new Uint8Array(100)))).toBeUndefined();
    expect(decodeBridgeFrame(Uint8Array.of(4, 99))).toBeUndefined();
  });
});

describe("the vectors in docs/protocol/smp.md", () => {
  const address = "smp://Q34zM9LmX6yrN3gaWOOW17B4u3cZaV9oGSA-asve0wc=@relay.example:5223";
  it("bridge frames", () => {
    expect(toHex(encodeBridgeFrame({ kind: "OPEN", address }))).toBe(
      "01736d703a2f2f5133347a4d394c6d583679724e336761574f4f57313742347533635a6156396f4753412d617376653077633d4072656c61792e6578616d706c653a35323233",
    );
    expect(toHex(encodeBridgeFrame({ kind: "READY", tls: "TLSv1.3" }))).toBe("03544c5376312e33");
    expect(toHex(encodeBridgeFrame({ kind: "ERROR", error: "FINGERPRINT", detail: "" }))).toBe("0406");
    expect(toHex(encodeBridgeFrame({ kind: "ERROR", error: "LIMIT", detail: "at most 8 per user" }))).toBe(
      "04046174206d6f73742038207065722075736572",
    );
  });
  it("a queue address", () => {
    const q = {
      server: parseSmpServerAddress(address)!,
      senderId: new Uint8Array(24).fill(0x11),
      versions: { min: 6, max: 7 },
      dhKey: new Uint8Array(32).fill(0x22),
    };
    const text =
      "smp://Q34zM9LmX6yrN3gaWOOW17B4u3cZaV9oGSA-asve0wc=@relay.example:5223/ERERERERERERERERERERERERERERERER#/?v=6-7&dh=MCowBQYDK2VuAyEAIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";
    expect(formatSmpQueueAddress(q)).toBe(text);
    expect(parseSmpQueueAddress(text)).toEqual(q);
  });
});

describe("SMP addresses", () => {
  it("server and queue addresses round-trip", () => {
    fc.assert(
      fc.property(
        serverArb,
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 1, max: 20 }),
        (server, senderId, dhKey, min) => {
          const text = formatSmpServerAddress(server);
          const back = parseSmpServerAddress(text);
          if (
            !back ||
            formatSmpServerAddress(back) !== text ||
            back.host !== server.host ||
            smpHosts(back).join(" ") !== smpHosts(server).join(" ") ||
            back.password !== server.password ||
            back.port !== server.port ||
            !equalBytes(back.fingerprint, server.fingerprint)
          )
            throw new Error(`server address does not round-trip: ${text}`);
          // IPv6 hosts are bracketed, everything else is not.
          for (const h of smpHosts(server))
            if (text.includes(`[${h}]`) !== h.includes(":")) throw new Error(`${h} in ${text}`);
          const q = { server, senderId, dhKey, versions: { min, max: min + 1 } };
          const qText = formatSmpQueueAddress(q);
          const qBack = parseSmpQueueAddress(qText);
          // A queue address never carries the password.
          if (
            !qBack ||
            qBack.server.password !== undefined ||
            formatSmpQueueAddress(qBack) !== qText ||
            !equalBytes(qBack.senderId, senderId) ||
            !equalBytes(qBack.dhKey, dhKey)
          )
            throw new Error(`queue address does not round-trip: ${qText}`);
        },
      ),
      { numRuns: FUZZ_RUNS / 10 },
    );
  });

  it("any string parses or is undefined, never throws", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          addressish,
          addressish.map((s) => `smp://${"A".repeat(43)}=@${s}`),
        ),
        (s) => {
          parseSmpServerAddress(s);
          parseSmpQueueAddress(s);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("refuses near misses", () => {
    const fp = "Q34zM9LmX6yrN3gaWOOW17B4u3cZaV9oGSA-asve0wc=";
    expect(parseSmpServerAddress(`smp://${fp}@relay.example:5223`)?.host).toBe("relay.example");
    expect(parseSmpServerAddress(`smp://${fp}@[::1]:5223`)?.host).toBe("::1");
    expect(parseSmpServerAddress(`smp://${fp}:pw@a.example,[2001:db8::1],b.onion:5224`)).toMatchObject({
      host: "a.example",
      hosts: ["a.example", "2001:db8::1", "b.onion"],
      port: 5224,
      password: "pw",
    });
    expect(parseSmpServerAddress(`smp://${fp}@[2001:db8::1]`)?.port).toBe(5223);
    for (const bad of [
      `smp://${fp}@relay.example:0`,
      `smp://${fp}@relay.example:65536`,
      `smp://${fp.slice(4)}@relay.example`,
      `smp://${fp}@relay_example`,
      `smp://${fp}@a:1:2`,
      `smp://${fp}@`,
      `smps://${fp}@relay.example`,
      `smp://${fp}@relay.example/q`,
      `smp://${fp}@a.example,,b.example`,
      `smp://${fp}@a.example,`,
      `smp://${fp}@2001:db8::1`,
      `smp://${fp}@[2001:db8::1`,
      `smp://${fp}@a.example:1,b.example:2`,
      `smp://${fp}@${Array(9).fill("h.example").join(",")}`,
      `smp://${fp}:@relay.example`,
      `smp://${fp}:pass word@relay.example`,
      `smp://${fp}:a:b@relay.example`,
      `smp://${fp}:${"p".repeat(256)}@relay.example`,
    ])
      expect(parseSmpServerAddress(bad), bad).toBeUndefined();
    // A queue address is shared with senders: a password in it is refused.
    const queue = `/ERERERERERERERERERERERERERERERER#/?v=6-7&dh=MCowBQYDK2VuAyEAIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=`;
    expect(parseSmpQueueAddress(`smp://${fp}@relay.example:5223${queue}`)).toBeDefined();
    expect(parseSmpQueueAddress(`smp://${fp}:pw@relay.example:5223${queue}`)).toBeUndefined();
  });
});

describe("SMP client session", () => {
  const fingerprint = new Uint8Array(32).fill(9);
  const sink = () => ({
    sent: [] as Uint8Array[],
    closed: false,
    send(b: Uint8Array) {
      this.sent.push(b);
    },
    close() {
      this.closed = true;
    },
  });

  it("a hello of no common version or another identity is a typed error", () => {
    const hello = (min: number, max: number) =>
      encodeBlock(encodeServerHello({ versions: { min, max }, sessionId: new Uint8Array(32) }))!;
    expect(() => SmpClient.handshake(sink(), hello(8, 9), fingerprint)).toThrow(SmpClientError);
    expect(() => SmpClient.handshake(sink(), hello(1, 5), fingerprint)).toThrow(SmpClientError);
    const s = sink();
    const c = SmpClient.handshake(s, hello(6, 9), fingerprint);
    expect(c.version).toBe(7);
    expect(s.sent).toHaveLength(1);
    const other = encodeBlock(
      encodeServerHello({
        versions: { min: 6, max: 7 },
        sessionId: new Uint8Array(32),
        auth: { certChain: [new Uint8Array(10), new Uint8Array(10)], signedKey: new Uint8Array(10) },
      }),
    )!;
    try {
      SmpClient.handshake(sink(), other, fingerprint);
      expect.unreachable();
    } catch (e) {
      expect((e as SmpClientError).code).toBe("IDENTITY");
    }
  });

  it("any hello block: a session or an SmpClientError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (content) => {
        const block = encodeBlock(content) ?? new Uint8Array(SMP_BLOCK_SIZE);
        try {
          SmpClient.handshake(sink(), block, fingerprint);
        } catch (e) {
          expect(e).toBeInstanceOf(SmpClientError);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("any server block: handled or the session fails with MALFORMED; waiting commands are rejected, never left hanging", async () => {
    const hello = encodeBlock(
      encodeServerHello({ versions: { min: 6, max: 7 }, sessionId: new Uint8Array(32).fill(1) }),
    )!;
    let failed = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (content) => {
        const c = SmpClient.handshake(sink(), hello, fingerprint);
        c.receive(encodeBlock(content) ?? new Uint8Array(SMP_BLOCK_SIZE));
        if (c.closed) failed++;
      }),
      { numRuns: FUZZ_RUNS },
    );
    expect(failed).toBeGreaterThan(0);
    const s = sink();
    const c = SmpClient.handshake(s, hello, fingerprint);
    const ping = c.ping();
    c.receive(new Uint8Array(10));
    await expect(ping).rejects.toMatchObject({ code: "MALFORMED" });
    expect(s.closed).toBe(true);
  });
});
