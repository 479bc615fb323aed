/**
 * Property tests for every core/wire decoder: random bytes, damaged valid frames, wrong-typed
 * fields, random MessagePack values and oversized input. Only typed errors may come back, and a
 * frame that decodes must re-encode to exactly its own bytes (one byte form per value).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChunkReassembler, chunkCodec, chunkMessage } from "../../core/codec/chunk.ts";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { MAX_FRAME_BYTES } from "../../core/codec/envelope.ts";
import { decodeVersionHeader, encodeVersionHeader } from "../../core/codec/version.ts";
import { type SrempMessage, srempCodec } from "../../core/wire/sremp.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { expectTyped, fieldSwapArb, mutate, mutationArb } from "./mutations.ts";
import { EXAMPLE_NOW, exampleMessages } from "./sremp-examples.ts";

const examples = await exampleMessages();
const frames = examples.map((m) => srempCodec.encode(m));
const versionFrame = encodeVersionHeader();
const chunkFrames = [
  ...chunkMessage(1, new Uint8Array(300).fill(7), 128),
  ...chunkMessage(Number.MAX_SAFE_INTEGER, new Uint8Array(0)),
];
const pool = [...frames, versionFrame, ...chunkFrames];

const WIRE = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_UNKNOWN_TYPE",
  "LOFT_ERR_FRAME_TOO_LARGE",
] as const;
const VERSION = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_SCHEMA",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_UNSUPPORTED_VERSION",
] as const;
const CHUNK = [...WIRE, "LOFT_ERR_CHUNK_LIMIT", "LOFT_ERR_CHUNK_TIMEOUT"] as const;

/** The decoders under test; each also checks the canonical-form property on success. */
function allDecoders(bytes: Uint8Array): void {
  const s = expectTyped(() => srempCodec.decode(bytes), WIRE);
  if (s.ok) expect(srempCodec.encode(s.value)).toEqual(bytes);
  const h = expectTyped(() => decodeVersionHeader(bytes), VERSION);
  if (h.ok) expect(encodeVersionHeader(h.value)).toEqual(bytes);
  const c = expectTyped(() => chunkCodec.decode(bytes), WIRE);
  if (c.ok) expect(chunkCodec.encode(c.value)).toEqual(bytes);
  const r = new ChunkReassembler({
    maxMessageBytes: 4096,
    maxChunks: 64,
    maxPartialMessages: 2,
    timeoutMs: 1000,
  });
  expectTyped(() => r.acceptFrame(bytes, EXAMPLE_NOW), CHUNK);
}

describe("wire decoders under hostile input (property)", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => allDecoders(bytes)),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("random bytes behind a plausible map header", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 200 }), (head, tail) =>
        allDecoders(new Uint8Array([head, 0xa1, 0x74, ...tail])),
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("truncated, bit-flipped, spliced and extended valid frames", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (which, mutations) => {
        let bytes = pool[which % pool.length]!;
        for (const m of mutations) bytes = mutate(bytes, m, pool);
        allDecoders(bytes);
        const r = srempCodec.decode(bytes);
        seen.add(r.ok ? "ok" : r.error.code);
      }),
      { numRuns: FUZZ_RUNS },
    );
    // the mutations reach every stage of the decoder, not just the parser
    for (const stage of ["ok", "LOFT_ERR_MALFORMED", "LOFT_ERR_SCHEMA", "LOFT_ERR_UNKNOWN_TYPE"])
      expect(seen).toContain(stage);
  });

  it("valid messages with one field replaced by a wrong type, removed, or added", () => {
    fc.assert(
      fc.property(fieldSwapArb(examples as unknown as Record<string, unknown>[]), (bytes) =>
        allDecoders(bytes),
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("arbitrary MessagePack values", () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3, withNullPrototype: false }), (value) => {
        let bytes: Uint8Array;
        try {
          bytes = encodeCanonical(value);
        } catch {
          return; // not encodable (symbols, functions): nothing to decode
        }
        allDecoders(bytes);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("oversized input is refused before parsing with LOFT_ERR_FRAME_TOO_LARGE", () => {
    const big = new Uint8Array(MAX_FRAME_BYTES + 1).fill(0x90);
    for (const r of [srempCodec.decode(big), chunkCodec.decode(big), decodeVersionHeader(big)])
      expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    // deeply nested arrays inside the limit are a parse error, not a stack overflow
    const deep = new Uint8Array(60_000).fill(0x91);
    for (const r of [srempCodec.decode(deep), chunkCodec.decode(deep)]) expect(r.ok).toBe(false);
  });
});

// --- round trips over generated valid messages --------------------------------------------------

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const sig = fc.uint8Array({ minLength: 64, maxLength: 64 });
const nonce = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const id = fc.option(u32, { nil: undefined });
const text = fc.string({ maxLength: 256, unit: "grapheme" }).filter((s) => s.length <= 256);
const host = fc.domain().filter((d) => d.length <= 253);
const url = fc
  .tuple(fc.constantFrom("wss", "ws", "https", "http"), fc.domain(), fc.webPath())
  .map(([scheme, domain, path]) => `${scheme}://${domain}${path}`)
  .filter((u) => u.length <= 512);
const withId = <T extends object>(arb: fc.Arbitrary<T>) =>
  fc.tuple(arb, id).map(([m, i]) => (i === undefined ? m : { ...m, id: i }));
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const dropUndefined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;

const messageArb: fc.Arbitrary<SrempMessage> = fc
  .oneof(
    withId(
      fc.record({
        t: fc.constant("REGISTER_REQUEST" as const),
        identity: fc.uint8Array({ minLength: 1, maxLength: 400 }),
        endpoint: opt(fc.record({ host, port: fc.integer({ min: 0, max: 65535 }) })),
        ttl_seconds: u32,
        timestamp: u64,
        nonce,
        audience: opt(text.filter((s) => s.length >= 1)),
        signature: sig,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("REGISTER_RESPONSE" as const),
        success: fc.boolean(),
        expires_at: u64,
        renewal_interval: u32,
        error_message: opt(text),
      }),
    ),
    withId(
      fc.oneof(
        fc.record({
          t: fc.constant("LOOKUP_REQUEST" as const),
          target_identity: key,
          list_all: fc.constant(false),
        }),
        fc.record({ t: fc.constant("LOOKUP_REQUEST" as const), list_all: fc.constant(true) }),
      ),
    ),
    withId(
      fc.record({
        t: fc.constant("LOOKUP_RESPONSE" as const),
        peers: fc.array(
          fc.record({
            identity: fc.uint8Array({ minLength: 1, maxLength: 300 }),
            endpoint: opt(fc.record({ host, port: fc.integer({ min: 0, max: 65535 }) })),
            last_seen: u64,
            online: fc.boolean(),
          }),
          { maxLength: 5 },
        ),
        error_message: opt(text),
      }),
    ),
    withId(fc.record({ t: fc.constant("LIST_SERVERS_REQUEST" as const) })),
    withId(
      fc.record({
        t: fc.constant("LIST_SERVERS_RESPONSE" as const),
        servers: fc.array(url, { maxLength: 8 }),
        timestamp: u64,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("RELAY_REGISTER" as const),
        identity: key,
        capabilities: fc.record({ max_message_size: u32, max_storage_duration: u32 }),
        timestamp: u64,
        nonce,
        audience: opt(text.filter((s) => s.length >= 1)),
        auth_signature: sig,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("STORE_MESSAGE" as const),
        recipient: key,
        encrypted_blob: fc.uint8Array({ maxLength: 2000 }),
        sender_signature: sig,
        message_id: u64,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("STORE_RESPONSE" as const),
        success: fc.boolean(),
        stored_at: u64,
        message_id: u64,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("RETRIEVE_MESSAGES" as const),
        identity: key,
        since: opt(u64),
        timestamp: u64,
        nonce,
        audience: opt(text.filter((s) => s.length >= 1)),
        auth_signature: sig,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("MESSAGE_BATCH" as const),
        messages: fc.array(
          fc.record({
            message_id: u64,
            sender: key,
            timestamp: u64,
            encrypted_blob: fc.uint8Array({ maxLength: 300 }),
          }),
          { maxLength: 5 },
        ),
        has_more: fc.boolean(),
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("DELIVERY_CONFIRMATION" as const),
        message_id: u64,
        delivered_to: key,
        timestamp: u64,
        signature: sig,
      }),
    ),
    withId(
      fc.record({
        t: fc.constant("ERROR" as const),
        code: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,63}$/),
        message: text,
      }),
    ),
  )
  .map((m) => dropUndefined(m) as SrempMessage);

describe("wire round trips (property)", () => {
  it("every generated SREMP message encodes, decodes to an equal value, and re-encodes to the same bytes", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const bytes = srempCodec.encode(m);
        const back = srempCodec.decode(bytes);
        expect(back.ok).toBe(true);
        if (!back.ok) return;
        expect(back.value).toEqual(m);
        expect(back.id).toBe(m.id);
        expect(srempCodec.encode(back.value)).toEqual(bytes);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("version headers round-trip or are refused as unsupported", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        (name, major, minor) => {
          const h = { protocol_name: name, version_major: major, version_minor: minor };
          const r = decodeVersionHeader(encodeVersionHeader(h));
          const supported = name === "SREMP" && major === 1 && minor === 0;
          expect(r.ok ? "ok" : r.error.code).toBe(supported ? "ok" : "LOFT_ERR_UNSUPPORTED_VERSION");
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
