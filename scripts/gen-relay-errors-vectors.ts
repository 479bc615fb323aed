/**
 * Generates the relay's `ERR` vectors (docs/protocol/relay.md §Relay → client frames, §Errors) from
 * core/relay/protocol.ts (`encodeServerFrame`, the encoder relay-ws/connection.ts sends every ERR
 * with; `decodeServerFrame` and `unknownServerError`, the client's reading) and core/relay/errors.ts:
 *
 *   docs/vectors/relay-errors-v1.json  every wire code as an ERR frame, with a request id and without
 *                                      (a frame-level error), request ids of every integer width,
 *                                      and the client code each is read as; ERR frames the client
 *                                      reads as a newer relay's unknown code, and ones it refuses,
 *                                      with the error code.
 *
 * test/unit/relay-errors-vectors.test.ts checks that relay.md prints what the file holds, that a real
 * relay on loopback sends some of these frames byte for byte, that the client reads each as the file
 * says and that this script regenerates the file; test/interop/vectorcheck/relay.py recomputes it
 * from relay.md.
 *
 *   npx tsx scripts/gen-relay-errors-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-relay-errors-vectors.ts --check  # exit 1 if the committed file differs
 */
import { fileURLToPath } from "node:url";
import { encode } from "@msgpack/msgpack";
import { fromHex, toHex } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { codeForWire, WIRE_ERROR_CODES } from "../core/relay/errors.ts";
import { decodeServerFrame, encodeServerFrame, unknownServerError } from "../core/relay/protocol.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const RELAY_ERRORS_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/relay-errors-v1.json", import.meta.url),
);

/** What the client makes of a frame: the code it settles or reports, with the request id it names. */
export function clientRead(frame: Uint8Array): { code: string; i?: number; wire?: string } {
  const d = decodeServerFrame(frame);
  if (d.ok) {
    if (d.value.k !== "ERR") return { code: `not an ERR: ${d.value.k}` };
    return { code: codeForWire(d.value.e), ...(d.value.i === undefined ? {} : { i: d.value.i }) };
  }
  const unknown = unknownServerError(frame);
  if (unknown)
    return {
      code: "LOFT_ERR_RELAY_UNRECOGNIZED",
      ...(unknown.i === undefined ? {} : { i: unknown.i }),
      wire: unknown.e,
    };
  return { code: d.error.code };
}

const ERR = (e: string, i?: number) => ({ k: "ERR", ...(i === undefined ? {} : { i }), e });
const READS: { label: string; frame: Uint8Array }[] = [
  { label: "a newer relay's code, with i", frame: encodeCanonical(ERR("NEW_CODE", 7)) },
  { label: "a newer relay's code, without i", frame: encodeCanonical(ERR("NEW_CODE")) },
  { label: "a newer relay's code of one letter", frame: encodeCanonical(ERR("X", 9)) },
  { label: "a newer relay's code of 16 characters", frame: encodeCanonical(ERR("ABCDEFGHIJ_12345", 9)) },
  {
    label: "a code of 17 characters (past the reader's 16 bytes)",
    frame: encodeCanonical(ERR("ABCDEFGHIJ_123456", 9)),
  },
  { label: "a code in lower case", frame: encodeCanonical(ERR("auth", 9)) },
  { label: "a code starting with _", frame: encodeCanonical(ERR("_AUTH", 9)) },
  { label: "a code starting with a digit", frame: encodeCanonical(ERR("9AUTH", 9)) },
  { label: "an empty code", frame: encodeCanonical(ERR("", 9)) },
  { label: "a code as bin", frame: encodeCanonical({ e: new TextEncoder().encode("AUTH"), i: 9, k: "ERR" }) },
  { label: "no code", frame: encodeCanonical({ i: 9, k: "ERR" }) },
  { label: "a key more", frame: encodeCanonical({ e: "AUTH", i: 9, k: "ERR", x: 0 }) },
  {
    label: "a newer relay's code and a key more",
    frame: encodeCanonical({ e: "NEW_CODE", i: 9, k: "ERR", x: 0 }),
  },
  { label: "keys out of order (not canonical)", frame: encode({ k: "ERR", i: 2, e: "AUTH" }) },
  {
    label: "i as a uint 16 (not canonical)",
    frame: fromHex("83a165a441555448a169cd0007a16ba3455252"),
  },
  {
    label: "i as a float 64 (not canonical)",
    frame: fromHex("83a165a441555448a169cb401c000000000000a16ba3455252"),
  },
  {
    label: "a newer relay's code, keys out of order (not canonical)",
    frame: encode({ k: "ERR", i: 2, e: "NEW_CODE" }),
  },
  {
    label: "a newer relay's code, i as a uint 16 (not canonical)",
    frame: fromHex("83a165a84e45575f434f4445a169cd0007a16ba3455252"),
  },
  {
    label: "a newer relay's code, i as a float 64 (not canonical)",
    frame: fromHex("83a165a84e45575f434f4445a169cb401c000000000000a16ba3455252"),
  },
  { label: "i of 2^32", frame: encodeCanonical(ERR("AUTH", 2 ** 32)) },
  { label: "i of -1", frame: encodeCanonical(ERR("AUTH", -1)) },
  { label: "i of -1 with a newer relay's code", frame: encodeCanonical(ERR("NEW_CODE", -1)) },
  { label: "k in lower case", frame: encodeCanonical({ e: "AUTH", i: 9, k: "err" }) },
  {
    label: "trailing bytes",
    frame: fromHex("83a165a441555448a16902a16ba3455252c0"),
  },
  { label: "truncated", frame: fromHex("83a165a441555448a16902a16ba34552") },
];

export function buildRelayErrorsVectors() {
  const frame = (e: string, i?: number) => {
    const f = encodeServerFrame(ERR(e, i) as Parameters<typeof encodeServerFrame>[0]);
    return { e, ...(i === undefined ? {} : { i }), frame: toHex(f), client: clientRead(f).code };
  };
  return {
    description:
      "The relay's ERR frames (docs/protocol/relay.md §Relay → client frames, §Errors): canonical MessagePack { e: wire code, i?: request id, k: 'ERR' }, i absent for a frame-level error; `client` is the LOFT_ERR code the client raises. `reads`: what the client makes of other ERR frames — the code it settles or reports (with the request id and the relay's code for one it does not know), or the error it refuses the frame with.",
    errors: WIRE_ERROR_CODES.flatMap((e) => [frame(e, 7), frame(e)]),
    requestIds: [0, 2, 127, 128, 255, 256, 65_535, 65_536, 0xffff_ffff].map((i) => frame("AUTH", i)),
    reads: READS.map(({ label, frame: f }) => ({ label, frame: toHex(f), ...clientRead(f) })),
  };
}

export const relayErrorsVectorText = () => `${JSON.stringify(buildRelayErrorsVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[RELAY_ERRORS_VECTOR_FILE, relayErrorsVectorText()]]);
