import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { toHex } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import {
  CAP_TELEMETRY,
  CAP_XXHFS,
  decodeHello,
  encodeHello,
  type Hello,
  negotiatedProtocol,
  ROLE_DEVICE,
  ROLE_OWNER,
} from "./hello.ts";
import { decodeDeviceMessage, encodeDeviceMessage } from "./messages.ts";
import { checkPairingCommit, pairingCode, pairingCommit } from "./pairing-code.ts";

const device: Hello = {
  version: 1,
  role: ROLE_DEVICE,
  linkId: 0x01020304,
  caps: CAP_XXHFS | CAP_TELEMETRY,
  maxPayload: 240,
  window: 4,
  state: 0,
  maxMessage: 0xffff,
  name: "esp32 loft-fw 0.1",
};

describe("HELLO", () => {
  it("has the documented layout and round-trips", () => {
    const bytes = encodeHello(device);
    expect(toHex(bytes.subarray(0, 18))).toBe(
      "4c4f4654" + "01" + "02" + "01020304" + "0003" + "00f0" + "04" + "00" + "ffff",
    );
    const back = decodeHello(bytes);
    expect(back.ok && back.value).toEqual(device);
  });

  it("another protocol version is LOFT_ERR_UNSUPPORTED_VERSION (wrong firmware)", () => {
    const bytes = encodeHello(device);
    bytes[4] = 2;
    const r = decodeHello(bytes);
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });

  it("refuses bad fields with LOFT_ERR_MALFORMED", () => {
    const cases: [number, number][] = [
      [0, 0x4d], // magic
      [5, 3], // role
      [13, 10], // max payload 0x000a < 64
      [14, 0], // window 0
      [14, 33], // window > 32
      [15, 2], // state
      [16, 0], // max message < 2048
    ];
    for (const [offset, value] of cases) {
      const bytes = encodeHello(device);
      bytes[offset] = value;
      const r = decodeHello(bytes);
      expect(!r.ok && r.error.code, `offset ${offset}`).toBe("LOFT_ERR_MALFORMED");
    }
    expect(decodeHello(new Uint8Array(17)).ok).toBe(false);
  });

  it("negotiates XXhfs only when both sides offer it", () => {
    const owner = { ...device, role: ROLE_OWNER, caps: CAP_XXHFS } as Hello;
    expect(negotiatedProtocol(owner, device)).toBe("XXhfs");
    expect(negotiatedProtocol(owner, { ...device, caps: CAP_TELEMETRY })).toBe("XX");
    expect(negotiatedProtocol({ ...owner, caps: 0 }, device)).toBe("XX");
  });

  it("decodes arbitrary bytes to a value or a typed error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, magic) => {
        if (magic && bytes.length >= 5) bytes.set([0x4c, 0x4f, 0x46, 0x54, 1]);
        const r = decodeHello(bytes);
        if (r.ok) expect(decodeHello(encodeHello(r.value)).ok).toBe(true);
        else expect(["LOFT_ERR_MALFORMED", "LOFT_ERR_UNSUPPORTED_VERSION"]).toContain(r.error.code);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("pairing code", () => {
  const input = {
    handshakeHash: new Uint8Array(32).fill(0x11),
    ownerNonce: new Uint8Array(32).fill(0x22),
    deviceNonce: new Uint8Array(32).fill(0x33),
    ownerHello: encodeHello({ ...device, role: ROLE_OWNER, caps: CAP_XXHFS, state: 0, name: "owner" }),
    deviceHello: encodeHello(device),
  };

  it("is six digits that depend on every input", () => {
    const code = pairingCode(input);
    expect(code).toMatch(/^\d{6}$/);
    for (const key of Object.keys(input) as (keyof typeof input)[]) {
      const changed = { ...input, [key]: input[key].slice() };
      changed[key][changed[key].length - 1]! ^= 1;
      expect(pairingCode(changed), key).not.toBe(code);
    }
  });

  it("commit binds the device nonce and the handshake", () => {
    const c = pairingCommit(input.handshakeHash, input.deviceNonce);
    expect(checkPairingCommit(c, input.handshakeHash, input.deviceNonce)).toBe(true);
    expect(checkPairingCommit(c, input.handshakeHash, input.ownerNonce)).toBe(false);
    expect(checkPairingCommit(c, input.ownerNonce, input.deviceNonce)).toBe(false);
  });
});

describe("device messages", () => {
  it("round-trip; refuse non-canonical, unknown and ill-shaped messages with their codes", () => {
    const m = { t: "nonce" as const, n: new Uint8Array(32).fill(5) };
    const bytes = encodeDeviceMessage(m);
    const back = decodeDeviceMessage(bytes);
    expect(back.ok && back.value).toEqual(m);
    const unknown = decodeDeviceMessage(encodeCanonical({ t: "launch" }));
    expect(!unknown.ok && unknown.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    const shape = decodeDeviceMessage(encodeCanonical({ t: "nonce", n: new Uint8Array(31) }));
    expect(!shape.ok && shape.error.code).toBe("LOFT_ERR_SCHEMA");
    // The same map with its keys out of order.
    const unsorted = new Uint8Array([
      0x82,
      0xa1,
      0x74,
      0xa7,
      ...new TextEncoder().encode("confirm"),
      0xa1,
      0x78,
      0x01,
    ]);
    expect(decodeDeviceMessage(unsorted).ok).toBe(false);
    const notCanonical = new Uint8Array([
      0x81,
      0xa1,
      0x74,
      0xd9,
      0x07,
      ...new TextEncoder().encode("confirm"),
    ]);
    const nc = decodeDeviceMessage(notCanonical);
    expect(!nc.ok && nc.error.code).toBe("LOFT_ERR_MALFORMED");
    const wifi = decodeDeviceMessage(
      encodeCanonical({ t: "provision", owner: new Uint8Array(8), wifi: { ssid: "x".repeat(33), psk: "" } }),
    );
    expect(!wifi.ok && wifi.error.code).toBe("LOFT_ERR_SCHEMA");
    const big = decodeDeviceMessage(new Uint8Array(5000));
    expect(!big.ok && big.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("console messages: cmd and out round-trip; an empty or overlong command, an overlong answer are LOFT_ERR_SCHEMA", () => {
    for (const m of [
      { t: "cmd", id: 1, c: "led on" },
      { t: "cmd", id: 0xffffffff, c: "é".repeat(64) },
      { t: "out", id: 7, ok: true, m: "" },
      { t: "out", id: 7, ok: false, m: "x".repeat(1024) },
    ] as const) {
      const r = decodeDeviceMessage(encodeDeviceMessage(m));
      expect(r.ok && r.value).toEqual(m);
    }
    for (const bad of [
      { t: "cmd", id: 1, c: "" },
      { t: "cmd", id: 1, c: "x".repeat(129) },
      { t: "cmd", id: -1, c: "help" },
      { t: "out", id: 1, ok: "yes", m: "" },
      { t: "out", id: 1, ok: true, m: "x".repeat(1025) },
    ]) {
      const r = decodeDeviceMessage(encodeCanonical(bad));
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_SCHEMA");
    }
  });

  it("decodes arbitrary and mutated bytes to a value or a typed error", () => {
    const seeds = [
      encodeDeviceMessage({ t: "telemetry", n: 3, at: 1_700_000_000_000, r: { "temp.c": 21.5 } }),
      encodeDeviceMessage({ t: "cmd", id: 3, c: "led on" }),
      encodeDeviceMessage({ t: "out", id: 3, ok: true, m: "led on" }),
      encodeDeviceMessage({
        t: "provision",
        owner: new Uint8Array(40).fill(1),
        wifi: { ssid: "lab", psk: "secret-psk" },
        queue: {
          u: "wss://r.example/relay",
          rid: new Uint8Array(24),
          rk: new Uint8Array(32),
          sid: new Uint8Array(24),
          sk: new Uint8Array(32),
        },
      }),
      // Through the relay (docs/device.md §13).
      encodeDeviceMessage({
        t: "link",
        q: {
          u: "wss://r.example/relay",
          r: new Uint8Array(24),
          s: new Uint8Array(24).fill(1),
          a: new Uint8Array(32).fill(2),
          k: new Uint8Array(32).fill(3),
        },
        m: { u: "wss://r.example/relay", s: new Uint8Array(24).fill(4), k: new Uint8Array(32).fill(5) },
      }),
      encodeDeviceMessage({ t: "linked", k: new Uint8Array(32).fill(6) }),
      encodeDeviceMessage({ t: "relay-in", b: new Uint8Array(300).fill(7) }),
      encodeDeviceMessage({ t: "relay-took" }),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.boolean(),
        (seed, flips, junk, useJunk) => {
          const bytes = useJunk ? junk : seed.slice();
          if (!useJunk) for (const f of flips) bytes[f.at % bytes.length]! ^= f.xor;
          const r = decodeDeviceMessage(bytes);
          if (r.ok) expect(decodeDeviceMessage(encodeDeviceMessage(r.value)).ok).toBe(true);
          else
            expect([
              "LOFT_ERR_MALFORMED",
              "LOFT_ERR_SCHEMA",
              "LOFT_ERR_UNKNOWN_TYPE",
              "LOFT_ERR_FRAME_TOO_LARGE",
            ]).toContain(r.error.code);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
