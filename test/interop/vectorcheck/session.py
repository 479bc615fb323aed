"""Session detached frames, written from docs/protocol/session.md §5 ("Detached frames") and Noise
rev 34 (§5.1 EncryptWithAd, §12.3 / §12.4 nonce encodings), to replay
docs/vectors/session-detached-v1.json: each frame plaintext built from its head and detached part,
sealed at its k and n into the link message, and received back; each DETACHED ratchet frame
cross-checked against the ratchet-v2.json message it names; each invalid link message's code."""
import json
import os
import struct

from prims import aesgcm_open, aesgcm_seal, chacha_open, chacha_seal, expect

TAG = 16
DETACHED = 0x03
OVERHEAD = 1 + 4 + TAG
# session.md §5: a sender keeps head + detached part within 65535 - 16 - OVERHEAD bytes (a link
# message is never longer than 2 + 65535), and a receiver holds it to the same limit.
MAX_DETACHED = 65535 - TAG - OVERHEAD
# session.md §5: the extension announces the layout only when its value is exactly this byte.
EXTENSION_VALUE = b"\x01"
TYPES = {0x00: "data", 0x02: "close"}


def nonce(suite, n):
    # Noise §12.4 (AESGCM): 32 zero bits ‖ 64-bit big-endian n; §12.3 (ChaChaPoly): little-endian.
    return b"\0" * 4 + (struct.pack(">Q", n) if suite == "AESGCM_SHA256" else struct.pack("<Q", n))


def seal(suite, k, n, pt):
    f = aesgcm_seal if suite == "AESGCM_SHA256" else chacha_seal
    return f(k, nonce(suite, n), b"", pt)


def open_(suite, k, n, ct):
    f = aesgcm_open if suite == "AESGCM_SHA256" else chacha_open
    return f(k, nonce(suite, n), b"", ct)


def detached_plaintext(head, detached):
    return bytes([DETACHED]) + struct.pack(">I", len(detached)) + detached[-TAG:] + head


def receive(suite, k, n, link, max_message=16 * 1024 * 1024):
    """What the receiver delivers: bytes, "close:<reason>", or an error code (the spec's order)."""
    if len(link) < 2 + TAG:
        return "LOFT_ERR_MALFORMED"
    size = struct.unpack(">H", link[:2])[0]
    if size < TAG or size > len(link) - 2:
        return "LOFT_ERR_MALFORMED"
    sealed, rest = link[2:2 + size], link[2 + size:]
    pt = open_(suite, k, n, sealed)
    if pt is None:
        return "LOFT_ERR_DECRYPT"
    if len(pt) == 0:
        return "LOFT_ERR_MALFORMED"
    if pt[0] == DETACHED:
        if len(pt) <= OVERHEAD:
            return "LOFT_ERR_MALFORMED"
        declared = struct.unpack(">I", pt[1:5])[0]
        head = pt[OVERHEAD:]
        if declared < TAG:
            return "LOFT_ERR_MALFORMED"
        if len(head) + declared > min(max_message, MAX_DETACHED):
            return "LOFT_ERR_FRAME_TOO_LARGE"
        if len(rest) != declared:
            return "LOFT_ERR_MALFORMED"
        if pt[5:OVERHEAD] != rest[-TAG:]:
            return "LOFT_ERR_DECRYPT"
        return head + rest
    if rest:
        return "LOFT_ERR_MALFORMED"
    if pt[0] == 0x02:
        return "close:" + pt[1:].decode("utf-8")
    if pt[0] == 0x00:
        return pt[1:]
    return "unchecked type %d" % pt[0]


def check(doc, name):
    expect("extension", doc["extension"], {"name": "session.detached", "value": "01"})
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "..", "docs", "vectors", "ratchet-v2.json")) as f:
        ratchet = json.load(f)
    for i, x in enumerate(doc["announcements"]):
        expect("announcements[%d] (value %r)" % (i, x["value"]), bytes.fromhex(x["value"]) == EXTENSION_VALUE,
               x["announces"])
    expect("announcements include 01", any(x["announces"] for x in doc["announcements"]), True)
    for i, x in enumerate(doc["frames"]):
        w = "frames[%d] (%s)" % (i, x["label"])
        k, n, suite = bytes.fromhex(x["k"]), x["n"], x["suite"]
        pt = bytes.fromhex(x["plaintext"])
        rest = b""
        if "head" in x:
            head, rest = bytes.fromhex(x["head"]), bytes.fromhex(x["detached"])
            expect(w + " plaintext", detached_plaintext(head, rest), pt)
            step = ratchet["steps"][x["ratchet_vector"]["step"]]
            expect(w + " is a RATCHET frame of ratchet-v2.json", head + rest, b"\x02" + bytes.fromhex(step["message"]))
            expect(w + " head = type + the ratchet prefix (81 bytes)", len(head), 1 + 81)
        sealed = seal(suite, k, n, pt)
        expect(w + " link message", struct.pack(">H", len(sealed)) + sealed + rest, bytes.fromhex(x["link_message"]))
        got = receive(suite, k, n, bytes.fromhex(x["link_message"]))
        want = x["delivers"]
        expect(w + " delivered", got if isinstance(got, str) else got.hex(), want)
    for i, x in enumerate(doc["invalid"]):
        got = receive(x["suite"], bytes.fromhex(x["k"]), x["n"], bytes.fromhex(x["link_message"]),
                      x.get("max_message_bytes", 16 * 1024 * 1024))
        expect("invalid[%d] (%s)" % (i, x["label"]), "delivered" if isinstance(got, bytes) else got, x["code"])
    return "%d link messages, %d invalid, %d announcements" % (
        len(doc["frames"]), len(doc["invalid"]), len(doc["announcements"]))
