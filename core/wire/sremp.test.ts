import { Encoder } from "@msgpack/msgpack";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { exampleMessages } from "../../test/fuzz/sremp-examples.ts";
import { concatBytes } from "../bytes.ts";
import { createWireCodec, defineMessage, MAX_FRAME_BYTES, messageSchema } from "../codec/envelope.ts";
import { errorReply, MAX_ENCRYPTED_BLOB_BYTES, SREMP_MESSAGES, srempCodec } from "./sremp.ts";

const enc = new Encoder({ sortKeys: true });
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);

const examples = await exampleMessages();

describe("SREMP messages through the envelope codec", () => {
  it("covers every registered SREMP type", () => {
    expect(new Set(examples.map((m) => m.t))).toEqual(new Set(SREMP_MESSAGES.map((d) => d.t)));
  });

  it.each(examples.map((m) => [m.t, m] as const))("%s round-trips byte-exactly", (_t, m) => {
    const bytes = srempCodec.encode(m);
    const back = srempCodec.decode(bytes);
    expect(back.ok).toBe(true);
    if (!back.ok) return;
    expect(back.value).toEqual(m);
    expect(back.id).toBe(m.id);
    expect(srempCodec.encode(back.value)).toEqual(bytes);
  });

  it("unknown type → LOFT_ERR_UNKNOWN_TYPE, echoing the request id", () => {
    const r = srempCodec.decode(enc.encode({ t: "FETCH_EVERYTHING", id: 77 }));
    expect(codeOf(r)).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(r.id).toBe(77);
  });

  it("no tag, a non-string tag or a non-map → LOFT_ERR_SCHEMA", () => {
    expect(codeOf(srempCodec.decode(enc.encode({ id: 1 })))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(srempCodec.decode(enc.encode({ t: 5 })))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(srempCodec.decode(enc.encode(["REGISTER_REQUEST"])))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(srempCodec.decode(enc.encode(new Uint8Array(3))))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(srempCodec.decode(enc.encode("ERROR")))).toBe("LOFT_ERR_SCHEMA");
  });

  it("bad shapes → LOFT_ERR_SCHEMA, with the id still echoed", () => {
    const cases: unknown[] = [
      { t: "LOOKUP_REQUEST", id: 3, list_all: false }, // neither target nor list_all
      { t: "LOOKUP_REQUEST", id: 3, list_all: true, target_identity: new Uint8Array(32) }, // both
      { t: "LOOKUP_REQUEST", id: 3, target_identity: new Uint8Array(31), list_all: false },
      { t: "REGISTER_RESPONSE", id: 3, success: "yes", expires_at: 1, renewal_interval: 1 },
      { t: "STORE_RESPONSE", id: 3, success: true, stored_at: -1, message_id: 1 },
      { t: "STORE_RESPONSE", id: 3, success: true, stored_at: 1.5, message_id: 1 },
      { t: "LIST_SERVERS_RESPONSE", id: 3, servers: ["ftp://x"], timestamp: 1 },
      { t: "LIST_SERVERS_RESPONSE", id: 3, servers: ["wss://a b"], timestamp: 1 },
      { t: "ERROR", id: 3, code: "lower_case", message: "x" },
      { t: "ERROR", id: 3, code: "X", message: "x", extra: true }, // unknown field
      { t: "LIST_SERVERS_REQUEST", id: 3, servers: [] },
      {
        t: "RETRIEVE_MESSAGES",
        id: 3,
        identity: new Uint8Array(32),
        timestamp: 1,
        nonce: new Uint8Array(16),
        auth_signature: new Uint8Array(64),
        since: null,
      },
    ];
    for (const c of cases) {
      const r = srempCodec.decode(enc.encode(c));
      expect(
        codeOf(r),
        JSON.stringify(c, (_k, x) => (x instanceof Uint8Array ? `bin${x.length}` : x)),
      ).toBe("LOFT_ERR_SCHEMA");
      expect(r.id).toBe(3);
    }
  });

  it("an out-of-range request id is a schema error (and is not echoed)", () => {
    const r = srempCodec.decode(enc.encode({ t: "LIST_SERVERS_REQUEST", id: 2 ** 32 }));
    expect(codeOf(r)).toBe("LOFT_ERR_SCHEMA");
    expect(r.id).toBeUndefined();
  });

  it("bad bytes → LOFT_ERR_MALFORMED; non-canonical bytes too", () => {
    const good = srempCodec.encode({ t: "LIST_SERVERS_REQUEST", id: 4 });
    expect(codeOf(srempCodec.decode(good.subarray(0, good.length - 1)))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(srempCodec.decode(concatBytes(good, new Uint8Array([0xc0]))))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(srempCodec.decode(new Uint8Array([0xc1])))).toBe("LOFT_ERR_MALFORMED"); // never-used byte
    expect(codeOf(srempCodec.decode(new Uint8Array()))).toBe("LOFT_ERR_MALFORMED");
    const unsorted = new Encoder().encode({ t: "LIST_SERVERS_REQUEST", id: 4 });
    expect(codeOf(srempCodec.decode(unsorted))).toBe("LOFT_ERR_MALFORMED");
    // id 4 as uint 32 (ce 00 00 00 04) instead of fixint 04
    const wide = new Uint8Array([
      0x82,
      0xa2,
      0x69,
      0x64,
      0xce,
      0,
      0,
      0,
      4,
      0xa1,
      0x74,
      0xb4,
      ...new TextEncoder().encode("LIST_SERVERS_REQUEST"),
    ]);
    const r = srempCodec.decode(wide);
    expect(codeOf(r)).toBe("LOFT_ERR_MALFORMED");
    expect(r.ok ? "" : r.error.message).toMatch(/canonical/);
    expect(r.id).toBe(4);
  });

  it("oversize frames → LOFT_ERR_FRAME_TOO_LARGE before parsing", () => {
    expect(codeOf(srempCodec.decode(new Uint8Array(MAX_FRAME_BYTES + 1)))).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const blob = new Uint8Array(MAX_ENCRYPTED_BLOB_BYTES + 1);
    const r = srempCodec.decode(
      enc.encode({ t: "STORE_RESPONSE", id: 1, success: true, stored_at: 0, message_id: 0, pad: blob }),
    );
    expect(codeOf(r)).toBe("LOFT_ERR_SCHEMA"); // within the frame limit, so the schema decides
  });

  it("a full-size STORE_MESSAGE fits in one frame", () => {
    const [, , , , , , , , store] = examples;
    if (store?.t !== "STORE_MESSAGE") throw new Error("example order changed");
    const big = { ...store, encrypted_blob: new Uint8Array(MAX_ENCRYPTED_BLOB_BYTES) };
    expect(srempCodec.encode(big).length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
  });

  it("encode refuses invalid messages (programming errors throw)", () => {
    expect(() => srempCodec.encode({ t: "LOOKUP_REQUEST", list_all: false })).toThrow(RangeError);
    expect(() =>
      srempCodec.encode({ t: "ERROR", code: "X", message: "y", nope: 1 } as unknown as Parameters<
        typeof srempCodec.encode
      >[0]),
    ).toThrow(RangeError);
  });

  it("errorReply truncates long messages and echoes ids", () => {
    const r = errorReply("LOFT_ERR_SCHEMA", "é".repeat(1000), 12);
    expect(r.message.length).toBe(256);
    const astral = errorReply("X", "😀".repeat(200));
    expect(astral.message.length).toBe(256); // 128 whole surrogate pairs
    expect(errorReply("X", `a${"😀".repeat(200)}`).message.length).toBe(255); // never half a pair
    expect(srempCodec.decode(srempCodec.encode(astral)).ok).toBe(true);
    expect(errorReply("X", "a\ud800b").message).toBe("a\ufffdb");
    expect(srempCodec.decode(srempCodec.encode(r))).toMatchObject({ ok: true, id: 12 });
  });
});

describe("extending the envelope with a module's own types", () => {
  const ping = messageSchema("SIGNAL.PING", { seq: v.pipe(v.number(), v.integer()) });
  const small = messageSchema("SMALL", { data: v.instance(Uint8Array) });
  const codec = srempCodec.extend([defineMessage(ping), defineMessage(small, 64)]);

  it("decodes both SREMP and the new types, and the base codec does not know the new ones", () => {
    const bytes = codec.encode({ t: "SIGNAL.PING", seq: 3 });
    expect(codec.decode(bytes)).toMatchObject({ ok: true, value: { t: "SIGNAL.PING", seq: 3 } });
    expect(codeOf(srempCodec.decode(bytes))).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(codec.decode(srempCodec.encode({ t: "LIST_SERVERS_REQUEST" })).ok).toBe(true);
  });

  it("enforces a type's own size limit", () => {
    expect(codeOf(codec.decode(enc.encode({ t: "SMALL", data: new Uint8Array(100) })))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    expect(() => codec.encode({ t: "SMALL", data: new Uint8Array(100) })).toThrow(RangeError);
  });

  it("refuses a tag defined twice and malformed tags", () => {
    expect(() => srempCodec.extend([defineMessage(messageSchema("ERROR", {}))])).toThrow(RangeError);
    expect(() => messageSchema("lower", {})).toThrow(RangeError);
    expect(() => createWireCodec([], { maxFrameBytes: 0 })).toThrow(RangeError);
  });
});
