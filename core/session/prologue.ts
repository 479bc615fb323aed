/**
 * The Noise prologue of a Loft session (Noise Protocol Framework rev 34, §6: "both parties ...
 * confirm [it] is identical", by hashing it into `h` before the first message). It binds what
 * was exchanged in the clear before the handshake — both version headers (SREMP §version) — and
 * the kind of link the session runs over, so that:
 *   - a man in the middle who rewrites a version header (a downgrade) makes the two prologues
 *     differ, and the first encrypted handshake field fails to decrypt (LOFT_ERR_DECRYPT);
 *   - a handshake recorded on one kind of link (say "relay") cannot be replayed on another
 *     ("direct"): the prologues differ.
 *
 * Layout (docs/protocol/session.md, "Prologue"), every field length-prefixed with a u16 BE:
 *   lp("loft/session/v1") ‖ lp(link kind, ASCII) ‖ lp(initiator's version header) ‖
 *   lp(responder's version header)
 * Both sides put the initiator's header first, whichever of them they sent.
 *
 * A session can be bound to a shared secret the two sides must both hold (a room's binding,
 * docs/protocol/rooms.md §4): then a fifth field `lp(binding)` follows. A side that holds another
 * binding (or none) computes another handshake hash, so the first encrypted handshake field fails
 * to decrypt on the other side: neither party learns anything the other protects with it.
 */
import { utf8 } from "../bytes.ts";

export type LinkKind = "direct" | "relay" | "serial";
export const LINK_KINDS: readonly LinkKind[] = ["direct", "relay", "serial"];

export const PROLOGUE_LABEL = "loft/session/v1";

/** u16 BE length ‖ bytes, for each field. */
function lengthPrefixed(fields: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const f of fields) {
    if (f.length > 0xffff) throw new RangeError("prologue field longer than 65535 bytes");
    total += 2 + f.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const f of fields) {
    out[offset] = f.length >>> 8;
    out[offset + 1] = f.length & 0xff;
    out.set(f, offset + 2);
    offset += 2 + f.length;
  }
  return out;
}

export function sessionPrologue(
  kind: LinkKind,
  initiatorVersionHeader: Uint8Array,
  responderVersionHeader: Uint8Array,
  binding?: Uint8Array,
): Uint8Array {
  if (!LINK_KINDS.includes(kind)) throw new RangeError(`unknown link kind ${JSON.stringify(kind)}`);
  if (binding !== undefined && binding.length === 0) throw new RangeError("an empty session binding");
  const fields = [utf8(PROLOGUE_LABEL), utf8(kind), initiatorVersionHeader, responderVersionHeader];
  return lengthPrefixed(binding === undefined ? fields : [...fields, binding]);
}
