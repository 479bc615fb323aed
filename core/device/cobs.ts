/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999), the byte stuffing of the serial
 * framing (docs/device.md §2). The encoding contains no 0x00, so 0x00 delimits frames: a receiver
 * that joins mid-stream, reads garbage or sees a sender reset mid-frame is back in step at the
 * next 0x00. Overhead: one byte per 254 bytes of input, plus one.
 */
import { err, ok, type Result } from "../errors.ts";

/** Largest encoded size of `n` input bytes (without the 0x00 delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1;
}

export function cobsEncode(input: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxEncodedLength(input.length));
  let codeAt = 0;
  let code = 1;
  let o = 1;
  for (let i = 0; i < input.length; i++) {
    const b = input[i]!;
    if (b === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
      continue;
    }
    out[o++] = b;
    code++;
    if (code === 0xff) {
      out[codeAt] = code;
      // A full block that ends the input needs no empty block after it.
      if (i === input.length - 1) return out.subarray(0, o);
      codeAt = o++;
      code = 1;
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

/**
 * Decode one COBS block (delimiter already removed). A 0x00 inside, or a code byte that points
 * past the end, is LOFT_ERR_MALFORMED.
 */
export function cobsDecode(input: Uint8Array): Result<Uint8Array> {
  const out = new Uint8Array(input.length);
  let o = 0;
  let i = 0;
  while (i < input.length) {
    const code = input[i]!;
    if (code === 0) return err("LOFT_ERR_MALFORMED", "COBS: 0x00 inside a frame");
    const end = i + code;
    if (end > input.length) return err("LOFT_ERR_MALFORMED", "COBS: code byte runs past the frame");
    for (let k = i + 1; k < end; k++) {
      const b = input[k]!;
      if (b === 0) return err("LOFT_ERR_MALFORMED", "COBS: 0x00 inside a frame");
      out[o++] = b;
    }
    i = end;
    // A group shorter than 0xFF ends with an implicit zero, except at the very end.
    if (code !== 0xff && i < input.length) out[o++] = 0;
  }
  return ok(out.subarray(0, o));
}
