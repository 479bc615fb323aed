/**
 * Generates the E2EE fetch proxy's frame vectors (docs/protocol/proxy.md §Vectors):
 *
 *   docs/vectors/proxy-v1.json  one frame of each type (REQUEST with headers and a Range,
 *                               RESPONSE 206, DATA, END, CREDIT, RESET) as its fields and its
 *                               bytes; the `proxy.data` handshake extension's values and the
 *                               DATA size each gives; the
 *                               `proxy.flags` extension's values and whether each reads NO_BODY;
 *                               and invalid frames with the error code
 *                               each must give.
 *
 * core/proxy/vectors.test.ts decodes every committed frame to its fields, encodes the fields back
 * to the same bytes, checks every invalid frame's code, and checks that this script regenerates
 * the file byte for byte.
 *
 *   npx tsx scripts/gen-proxy-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-proxy-vectors.ts --check  # exit 1 if the committed file differs
 */
import { fileURLToPath } from "node:url";
import { toHex } from "../core/bytes.ts";
import {
  PROXY_DATA_EXTENSION,
  PROXY_FLAGS_EXTENSION,
  peerChunkLimit,
  peerReadsNoBody,
  proxyDataExtension,
  proxyFlagsExtension,
} from "../core/proxy/endpoint.ts";
import { decodeFrame, encodeFrame, type ProxyFrame } from "../core/proxy/frames.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const PROXY_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/proxy-v1.json", import.meta.url));

export const VALID_FRAMES: { label: string; frame: ProxyFrame }[] = [
  {
    label: "REQUEST: GET a video, seeking",
    frame: {
      type: "request",
      id: 1,
      method: "GET",
      window: 262144,
      path: "/clip.webm?t=1",
      headers: [
        ["accept", "*/*"],
        ["range", "bytes=1000-1499"],
      ],
    },
  },
  {
    label: "RESPONSE: 206 with its range",
    frame: {
      type: "response",
      id: 1,
      status: 206,
      headers: [
        ["content-type", "video/webm"],
        ["content-range", "bytes 1000-1499/4096"],
        ["content-length", "500"],
      ],
    },
  },
  {
    label: "DATA: five bytes of body",
    frame: { type: "data", id: 1, bytes: Uint8Array.from([0x1a, 0x45, 0xdf, 0xa3, 0x9f]) },
  },
  { label: "END", frame: { type: "end", id: 1 } },
  { label: "CREDIT: 128 KiB more", frame: { type: "credit", id: 1, bytes: 131072 } },
  {
    label: "RESET: nothing shared there",
    frame: { type: "reset", id: 2, code: "not_shared", reason: "nothing is shared at that path" },
  },
  {
    label: "REQUEST: HEAD, no headers, id 2^32-1",
    frame: { type: "request", id: 0xffffffff, method: "HEAD", window: 0, path: "/", headers: [] },
  },
  {
    label: "REQUEST: GET with NO_BODY (no END follows)",
    frame: {
      type: "request",
      id: 3,
      method: "GET",
      window: 1048576,
      path: "/big",
      headers: [["accept", "*/*"]],
      noBody: true,
    },
  },
];

const cat = (...parts: string[]) => parts.join("");
const ascii = (t: string) => Buffer.from(t).toString("hex");

export const INVALID_FRAMES: { label: string; hex: string }[] = [
  { label: "truncated prefix", hex: "010100" },
  { label: "unknown version 2", hex: "020400000001" },
  { label: "unknown type 0x07", hex: "010700000001" },
  { label: "request id 0", hex: "010400000000" },
  { label: "END with a trailing byte", hex: "01040000000100" },
  { label: "empty DATA", hex: "010300000001" },
  { label: "CREDIT of 0", hex: "01050000000100000000" },
  { label: "CREDIT over the 1 MiB window", hex: "01050000000100100001" },
  { label: "RESET with an unknown code", hex: "010600000001ff" },
  { label: "REQUEST with method 0", hex: cat("0101000000010000000000000001", "2f", "00") },
  {
    label: "REQUEST with a cookie header",
    hex: cat("01010000000101000000000001", "2f", "01", "06", ascii("cookie"), "0001", "61"),
  },
  {
    label: "RESPONSE header value with CR LF",
    hex: cat("010200000001", "00c8", "01", "08", ascii("location"), "0002", "0d0a"),
  },
  { label: "RESPONSE status 99", hex: "010200000001006300" },
  { label: "REQUEST with NO_BODY and method 0", hex: cat("0101000000018000000000000001", "2f", "00") },
  { label: "REQUEST with NO_BODY and method 8", hex: cat("0101000000018800000000000001", "2f", "00") },
];

/** `proxy.flags` values (hex; null: absent) and whether the peer then reads NO_BODY (§Body-less requests). */
export const FLAGS_VALUES: { label: string; value: string | null }[] = [
  { label: "ours: NO_BODY read", value: toHex(proxyFlagsExtension()[PROXY_FLAGS_EXTENSION]!) },
  { label: "absent (a peer from before the extension)", value: null },
  { label: "a reserved bit only", value: "02" },
  { label: "every bit: NO_BODY read, the rest ignored", value: "ff" },
  { label: "empty: malformed, read as absent", value: "" },
  { label: "two bytes: malformed, read as absent", value: "0101" },
];

/** `proxy.data` values (hex; null: the extension absent) and the DATA size a sender then uses. */
export const DATA_SIZE_VALUES: { label: string; value: string | null }[] = [
  {
    label: "ours: 65 510, one whole session frame",
    value: toHex(proxyDataExtension()[PROXY_DATA_EXTENSION]!),
  },
  { label: "absent (a peer from before the extension)", value: null },
  { label: "4 096 (a smaller receiver)", value: "00001000" },
  { label: "1 MiB: capped at 65 510", value: "00100000" },
  { label: "zero: malformed, read as absent", value: "00000000" },
  { label: "two bytes: malformed, read as absent", value: "ffe6" },
  { label: "five bytes: malformed, read as absent", value: "000000ffe6" },
];

function buildProxyVectors(): unknown {
  return {
    description:
      "E2EE fetch proxy frames (docs/protocol/proxy.md). `bytes` is the frame as it travels inside one session DATA message; DATA frames' `bytes` field is hex. `data_size`: the `proxy.data` handshake extension's value (hex, null when absent) and the largest DATA a sender then sends on a direct link (§DATA size). `no_body`: the `proxy.flags` extension's value (hex, null when absent) and whether the peer then reads REQUEST's NO_BODY (§Body-less requests). Invalid frames give `code`. Generated by scripts/gen-proxy-vectors.ts.",
    frames: VALID_FRAMES.map(({ label, frame }) => ({
      label,
      frame: frame.type === "data" ? { ...frame, bytes: toHex(frame.bytes) } : frame,
      bytes: toHex(encodeFrame(frame)),
    })),
    data_size: DATA_SIZE_VALUES.map(({ label, value }) => ({
      label,
      extension: PROXY_DATA_EXTENSION,
      value,
      data_size: peerChunkLimit(value === null ? {} : { [PROXY_DATA_EXTENSION]: Buffer.from(value, "hex") }),
    })),
    no_body: FLAGS_VALUES.map(({ label, value }) => ({
      label,
      extension: PROXY_FLAGS_EXTENSION,
      value,
      reads_no_body: peerReadsNoBody(
        value === null ? {} : { [PROXY_FLAGS_EXTENSION]: Uint8Array.from(Buffer.from(value, "hex")) },
      ),
    })),
    invalid: INVALID_FRAMES.map(({ label, hex: h }) => {
      const r = decodeFrame(Buffer.from(h, "hex"));
      if (r.ok) throw new Error(`invalid vector "${label}" decodes`);
      return { label, bytes: h, code: r.error.code };
    }),
  };
}

/** The file's text: what `--check` and core/proxy/vectors.test.ts compare with the committed file. */
export const proxyVectorText = (): string => `${JSON.stringify(buildProxyVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[PROXY_VECTOR_FILE, proxyVectorText()]]);
