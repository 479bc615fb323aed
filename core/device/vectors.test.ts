import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildDeviceVectors, DEVICE_VECTORS_FILE } from "../../scripts/gen-device-vectors.ts";
import { serialise } from "../../scripts/gen-identity-vectors.ts";
import { fromHex, toHex } from "../bytes.ts";
import { cobsDecode } from "./cobs.ts";
import { decodeHello } from "./hello.ts";
import { checkPairingCommit } from "./pairing-code.ts";

describe("docs/vectors/device-v1.json", () => {
  const file = readFileSync(DEVICE_VECTORS_FILE, "utf8");
  const v = JSON.parse(file) as ReturnType<typeof buildDeviceVectors>;

  it("is exactly what the generator builds today", () => {
    expect(file).toBe(serialise(buildDeviceVectors()));
  });

  it("agrees with itself: COBS decodes back, HELLOs decode to their fields, commits check, codes are 6 digits", () => {
    for (const c of v.cobs) {
      const d = cobsDecode(fromHex(c.encoded));
      expect(d.ok && toHex(d.value)).toBe(c.input);
    }
    for (const side of [v.hello.owner, v.hello.device]) {
      const h = decodeHello(fromHex(side.bytes));
      expect(h.ok && h.value).toEqual(side.fields);
    }
    for (const p of v.pairing) {
      expect(checkPairingCommit(fromHex(p.commit), fromHex(p.handshake_hash), fromHex(p.device_nonce))).toBe(
        true,
      );
      expect(p.code).toMatch(/^\d{6}$/);
      const x = BigInt(`0x${p.digest.slice(0, 16)}`) % 1_000_000n;
      expect(p.code).toBe(x.toString().padStart(6, "0"));
    }
    expect(v.crc32.find((c) => c.input === "313233343536373839")?.crc).toBe("cbf43926");
  });
});
