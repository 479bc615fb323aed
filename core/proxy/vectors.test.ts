/**
 * docs/vectors/proxy-v1.json: every committed frame decodes to its fields and encodes back to
 * the same bytes; every `proxy.data` value gives its DATA size, every `proxy.flags` value its
 * NO_BODY reading; every invalid frame gives its error code; scripts/gen-proxy-vectors.ts
 * regenerates the file byte for byte.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PROXY_VECTOR_FILE, proxyVectorText } from "../../scripts/gen-proxy-vectors.ts";
import { toHex } from "../bytes.ts";
import {
  PROXY_DATA_EXTENSION,
  PROXY_FLAGS_EXTENSION,
  peerChunkLimit,
  peerReadsNoBody,
  proxyDataExtension,
  proxyFlagsExtension,
} from "./endpoint.ts";
import { decodeFrame, encodeFrame, type ProxyFrame } from "./frames.ts";

interface Vectors {
  frames: { label: string; frame: Record<string, unknown>; bytes: string }[];
  data_size: { label: string; extension: string; value: string | null; data_size: number }[];
  no_body: { label: string; extension: string; value: string | null; reads_no_body: boolean }[];
  invalid: { label: string; bytes: string; code: string }[];
}

const committed = JSON.parse(readFileSync(PROXY_VECTOR_FILE, "utf8")) as Vectors;
const fromHex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));

describe("proxy vectors (docs/vectors/proxy-v1.json)", () => {
  it("decodes each frame to its fields and encodes them back to the same bytes", () => {
    expect(committed.frames.length).toBeGreaterThanOrEqual(6);
    for (const v of committed.frames) {
      const fields = (
        v.frame.type === "data" ? { ...v.frame, bytes: fromHex(v.frame.bytes as string) } : v.frame
      ) as ProxyFrame;
      const decoded = decodeFrame(fromHex(v.bytes));
      expect(decoded.ok, v.label).toBe(true);
      if (decoded.ok) expect(decoded.value, v.label).toEqual(fields);
      expect(Buffer.from(encodeFrame(fields)).toString("hex"), v.label).toBe(v.bytes);
    }
  });

  it("reads each proxy.data value to its DATA size", () => {
    expect(committed.data_size.map((v) => v.data_size)).toEqual([
      65510, 16384, 4096, 65510, 16384, 16384, 16384,
    ]);
    for (const v of committed.data_size) {
      const extensions = v.value === null ? {} : { [v.extension]: fromHex(v.value) };
      expect(peerChunkLimit(extensions), v.label).toBe(v.data_size);
    }
    expect(toHex(proxyDataExtension()[PROXY_DATA_EXTENSION]!)).toBe(committed.data_size[0]!.value);
  });

  it("reads each proxy.flags value: NO_BODY read or not", () => {
    expect(committed.no_body.map((v) => v.reads_no_body)).toEqual([true, false, false, true, false, false]);
    for (const v of committed.no_body) {
      expect(v.extension).toBe(PROXY_FLAGS_EXTENSION);
      const extensions = v.value === null ? {} : { [v.extension]: fromHex(v.value) };
      expect(peerReadsNoBody(extensions), v.label).toBe(v.reads_no_body);
    }
    expect(toHex(proxyFlagsExtension()[PROXY_FLAGS_EXTENSION]!)).toBe(committed.no_body[0]!.value);
  });

  it("refuses each invalid frame with its code", () => {
    for (const v of committed.invalid) {
      const r = decodeFrame(fromHex(v.bytes));
      expect(r.ok ? "ok" : r.error.code, v.label).toBe(v.code);
    }
  });

  it("is what the generator produces", () => {
    expect(proxyVectorText()).toBe(readFileSync(PROXY_VECTOR_FILE, "utf8"));
  });
});
