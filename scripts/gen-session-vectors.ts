/**
 * Generates the detached-frame vectors (docs/protocol/session.md §5, "Detached frames"):
 *
 *   docs/vectors/session-detached-v1.json  link messages of a session that negotiated
 *                               `session.detached`, each with the transport key and nonce that
 *                               sealed it, its frame plaintext and the message the receiver
 *                               delivers — two DETACHED frames carrying ratchet messages of
 *                               docs/vectors/ratchet-v2.json (the chat path), one under each
 *                               Noise suite, a DATA and a CLOSE frame with the length prefix —
 *                               and invalid link messages with the code each must give.
 *
 * core/session/detached.test.ts opens every committed link message with the session's own code
 * (CipherState, splitLinkMessage, FrameAssembler) and checks every invalid one's code; the
 * independent checker is test/interop/vectorcheck/session.py.
 *
 *   npx tsx scripts/gen-session-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-session-vectors.ts --check  # exit 1 if the committed file differs
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { concatBytes, fromHex, toHex, utf8 } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { CipherState } from "../core/noise/cipher-state.ts";
import { TAGLEN } from "../core/noise/primitives.ts";
import { type SuiteName, suiteByName } from "../core/noise/suite.ts";
import { MESSAGE_PREFIX_LEN } from "../core/ratchet/message.ts";
import {
  closeFrame,
  DETACHED_EXTENSION,
  DETACHED_EXTENSION_VALUE,
  dataFrameOf,
  detachedFrameOf,
  FrameAssembler,
  linkMessageOf,
  MAX_DETACHED_MESSAGE,
  splitLinkMessage,
} from "../core/session/frames.ts";
import { announcesDetached } from "../core/session/session.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const SESSION_VECTOR_FILE = fileURLToPath(
  new URL("../docs/vectors/session-detached-v1.json", import.meta.url),
);
const RATCHET_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/ratchet-v2.json", import.meta.url));

/** The RATCHET frame's type byte (web/src/engine/wire.ts FRAME.RATCHET; docs/protocol/chat.md). */
const RATCHET_TYPE = 0x02;

/** A transport CipherState of `suite` at key `k` and nonce `n` (Noise §5.1 SetNonce). */
export function cipherAt(suite: SuiteName, k: Uint8Array, n: number): CipherState {
  const s = suiteByName(suite)!;
  const c = new CipherState(k, s.aead(nobleCrypto), s.writeNonce);
  c.setNonce(BigInt(n));
  return c;
}

/**
 * What a receiver of a detached-framing session makes of one link message at key `k`, nonce `n`:
 * the message it delivers (hex), "partial", "close:<reason>", or the error code.
 */
export async function receiveLinkMessage(
  suite: SuiteName,
  k: Uint8Array,
  n: number,
  linkMessage: Uint8Array,
  maxMessageBytes = 16 * 1024 * 1024,
): Promise<string> {
  const split = splitLinkMessage(linkMessage.slice());
  if (!split.ok) return split.error.code;
  const opened = await cipherAt(suite, k, n).decryptWithAd(new Uint8Array(0), split.value.sealed);
  if (!opened.ok) return opened.error.code;
  // As the session does: the head may be written over the opened Noise bytes (a copy is passed).
  const r = new FrameAssembler(maxMessageBytes).push(opened.value, split.value.rest, split.value.sealed);
  if (!r.ok) return r.error.code;
  if (r.value.kind === "close") return `close:${r.value.reason}`;
  if (r.value.kind === "partial") return "partial";
  return toHex(r.value.message);
}

async function seal(suite: SuiteName, k: Uint8Array, n: number, frame: Uint8Array, detached?: Uint8Array) {
  const sealed = await cipherAt(suite, k, n).encryptWithAd(
    new Uint8Array(0),
    frame.subarray(0, frame.length - TAGLEN),
  );
  if (!sealed.ok) throw sealed.error;
  return linkMessageOf(sealed.value, detached);
}

export async function buildVectors(): Promise<string> {
  const ratchet = JSON.parse(readFileSync(RATCHET_VECTOR_FILE, "utf8")) as {
    steps: { party: string; op: string; version?: number; message?: string }[];
  };
  const kAes = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
  const kChacha = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const frames: Record<string, unknown>[] = [];
  const ratchetSteps = [0, 2];
  const built: Uint8Array[] = [];
  for (const [i, step] of ratchetSteps.entries()) {
    const m = fromHex(ratchet.steps[step]!.message!);
    const head = [Uint8Array.of(RATCHET_TYPE), m.subarray(0, MESSAGE_PREFIX_LEN)];
    const detached = m.subarray(MESSAGE_PREFIX_LEN);
    const suite: SuiteName = i === 0 ? "AESGCM_SHA256" : "ChaChaPoly_BLAKE2s";
    const k = i === 0 ? kAes : kChacha;
    const n = i === 0 ? 0 : 5;
    const frame = detachedFrameOf(head, detached);
    const link = await seal(suite, k, n, frame, detached);
    built.push(link);
    frames.push({
      label: `DETACHED: the RATCHET frame of ratchet-v2.json steps[${step}], body detached (${suite})`,
      suite,
      k: toHex(k),
      n,
      ratchet_vector: { file: "ratchet-v2.json", step },
      head: toHex(concatBytes(...head)),
      detached: toHex(detached),
      plaintext: toHex(frame.subarray(0, frame.length - TAGLEN)),
      link_message: toHex(link),
      delivers: toHex(concatBytes(...head, detached)),
    });
  }
  const data = dataFrameOf([utf8("plain frame")], 11);
  const dataLink = await seal("AESGCM_SHA256", kAes, 1, data);
  frames.push({
    label: "DATA in a detached-framing session: the prefix, nothing after the Noise message",
    suite: "AESGCM_SHA256",
    k: toHex(kAes),
    n: 1,
    plaintext: toHex(data.subarray(0, data.length - TAGLEN)),
    link_message: toHex(dataLink),
    delivers: toHex(utf8("plain frame")),
  });
  const close = closeFrame("bye");
  frames.push({
    label: "CLOSE in a detached-framing session",
    suite: "AESGCM_SHA256",
    k: toHex(kAes),
    n: 2,
    plaintext: toHex(close.subarray(0, close.length - TAGLEN)),
    link_message: toHex(await seal("AESGCM_SHA256", kAes, 2, close)),
    delivers: "close:bye",
  });
  for (const f of frames) {
    const got = await receiveLinkMessage(
      f.suite as SuiteName,
      fromHex(f.k as string),
      f.n as number,
      fromHex(f.link_message as string),
    );
    if (got !== f.delivers) throw new Error(`${f.label}: receiver gives ${got}`);
  }

  const first = built[0]!;
  const n0 = (first[0]! << 8) | first[1]!;
  const flip = (b: Uint8Array, at: number) => {
    const c = b.slice();
    c[at]! ^= 0x01;
    return c;
  };
  /**
   * A DETACHED frame plaintext (16 spare bytes) with a `headLength`-byte head announcing a
   * `d`-byte part, and that part; its tail is the part's last bytes, zero-padded to 16.
   */
  const handMade = (headLength: number, d: number, partLength = d): [Uint8Array, Uint8Array] => {
    const part = Uint8Array.from({ length: partLength }, (_, i) => (0xa0 + i) & 0xff);
    const frame = new Uint8Array(1 + 4 + 16 + headLength + TAGLEN);
    frame[0] = 0x03;
    new DataView(frame.buffer).setUint32(1, d);
    frame.set(part.subarray(Math.max(0, partLength - 16)), 5);
    frame.fill(0x02, 21, 21 + headLength);
    return [frame, part];
  };
  const prefixed = (len: number, rest: Uint8Array) => concatBytes(Uint8Array.of(len >>> 8, len & 0xff), rest);
  const invalidCases: { label: string; link: Uint8Array; max?: number }[] = [
    { label: "shorter than prefix + Noise tag (17 bytes)", link: new Uint8Array(17) },
    { label: "length prefix under the Noise tag length (15)", link: prefixed(15, first.subarray(2)) },
    {
      label: "length prefix past the end of the link message",
      link: prefixed(first.length, first.subarray(2)),
    },
    {
      label: "length prefix one byte longer (the split moves): the Noise message fails",
      link: prefixed(n0 + 1, first.subarray(2)),
    },
    { label: "DETACHED part one byte short", link: first.subarray(0, first.length - 1) },
    { label: "DETACHED part one byte long", link: concatBytes(first, Uint8Array.of(0)) },
    { label: "DETACHED part's last byte (the tag) changed", link: flip(first, first.length - 1) },
    { label: "the Noise message changed", link: flip(first, 2 + 3) },
    {
      label: "a byte after a DATA frame",
      link: concatBytes(await seal("AESGCM_SHA256", kAes, 0, data), Uint8Array.of(0)),
    },
    { label: "DETACHED announcing more than the receiver's maxMessageBytes (64)", link: first, max: 64 },
    {
      label: "a body byte changed (not its tag): the session delivers it, the ratchet's AEAD refuses it",
      link: flip(first, 2 + n0 + 1),
    },
    // Frames detachedFrameOf refuses to write, sealed by hand: what a faulty peer could send.
    {
      label: "DETACHED frame without a head (21 bytes)",
      link: await seal("AESGCM_SHA256", kAes, 0, ...handMade(0, 16)),
    },
    {
      label: "DETACHED part under its tail length (D = 15)",
      link: await seal("AESGCM_SHA256", kAes, 0, ...handMade(1, 15)),
    },
    {
      // The sender's limit holds on receive too (session.md §5 step 4): head 1 + D 65 498 is one
      // byte over MAX_DETACHED_MESSAGE, refused on the authenticated lengths before the part is
      // even measured (16 bytes follow here), whatever the receiver's maxMessageBytes.
      label: "head + D one byte over 65498 (head 1, D = 65498, a 16-byte part)",
      link: await seal("AESGCM_SHA256", kAes, 0, ...handMade(1, MAX_DETACHED_MESSAGE, 16)),
    },
  ];
  const invalid: Record<string, unknown>[] = [];
  for (const c of invalidCases) {
    const got = await receiveLinkMessage("AESGCM_SHA256", kAes, 0, c.link, c.max);
    const code = /^[0-9a-f]+$/.test(got) ? "delivered" : got;
    invalid.push({
      label: c.label,
      suite: "AESGCM_SHA256",
      k: toHex(kAes),
      n: 0,
      ...(c.max === undefined ? {} : { max_message_bytes: c.max }),
      link_message: toHex(c.link),
      code,
    });
  }
  // Whether a handshake payload carrying the extension with each value announces the layout:
  // only the exact value 01 does (session.md §5), on both sides alike.
  const announcements = ["01", "", "00", "02", "0101", "0102", "0201", "0001"].map((value) => ({
    value,
    announces: announcesDetached({ [DETACHED_EXTENSION]: fromHex(value) }),
  }));
  const doc = {
    description:
      "Loft session detached frames (docs/protocol/session.md §5, 'Detached frames'): in a session where both handshake payloads carry the extension below, every link message is u16 BE len(N) ‖ N ‖ rest, N a Noise transport message (EncryptWithAd(empty, plaintext), Noise §5.1, the suite's nonce encoding §12.3/§12.4) at the given k and n; rest is empty except after a DETACHED frame 0x03 ‖ u32 BE len(rest) ‖ last 16 bytes of rest ‖ head, whose receiver delivers head ‖ rest. invalid: what a receiver at k, n returns for each link message ('delivered' where the session accepts it).",
    generator: "scripts/gen-session-vectors.ts",
    extension: { name: DETACHED_EXTENSION, value: toHex(DETACHED_EXTENSION_VALUE) },
    announcements,
    frames,
    invalid,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

if (isScript(import.meta.url)) writeOrCheck([[SESSION_VECTOR_FILE, await buildVectors()]]);
