"""Chat, written from docs/protocol/chat.md (§1 the signaling payloads and how they are read, §3
session frames and HELLO, §5 application messages and how they are read), to replay
docs/vectors/chat-v1.json."""
import re

from mpack import pack, unpack
from prims import JS_SPACE, expect, pad_bucket, unpad_bucket

MAX_SAFE = 2**53 - 1
BYE_REASONS = ("refused", "glare", "cancelled", "busy", "no-direct")
MESSAGE_ID = re.compile("[A-Za-z0-9_-]{22}")
# §1: a relay link's `ru`, ws:// or wss:// and no white space (JS `\s`) after it.
RELAY_URL = re.compile("wss?://[^%s]+" % JS_SPACE)


class Refused(Exception):
    """An input the reader refuses, with its error code."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def units(s):
    """Lengths of text count UTF-16 code units (§1, §5)."""
    return len(s.encode("utf-16-le")) // 2


def is_uint(x, top=MAX_SAFE):
    whole = (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
    return whole and 0 <= x <= top


def is_bin(x, lo, hi=None):
    return isinstance(x, bytes) and lo <= len(x) <= (lo if hi is None else hi)


def is_str(x, lo, hi, pattern=None):
    return isinstance(x, str) and lo <= units(x) <= hi and (pattern is None or pattern.fullmatch(x) is not None)


def shape(m, required, optional=()):
    """A map with exactly these keys (the optional ones may be absent), each value passing its test."""
    if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
        return False
    if any(k not in m for k in required) or any(k not in required and k not in optional for k in m):
        return False
    tests = dict(required, **dict(optional))
    return all(tests[k](v) for k, v in m.items())


def read(data, max_bytes, bounds, fits):
    """The reading order of §1, §3 and §5: the size, then MessagePack within the reader's bounds
    (and strict UTF-8, nothing after the value), then the shape, then canonical bytes."""
    if len(data) > max_bytes:
        raise Refused("LOFT_ERR_FRAME_TOO_LARGE")
    try:
        value = unpack(data, bounds)
    except Exception:  # empty, truncated, past a bound, a string that is not UTF-8, bytes after it
        raise Refused("LOFT_ERR_MALFORMED")
    if not fits(value):
        raise Refused("LOFT_ERR_SCHEMA")
    # A whole float passes a number field, but is never canonical (wire.md, "Canonical
    # MessagePack": no floats), though it packs back to the same bytes.
    if has_float(value) or pack(value) != data:
        raise Refused("LOFT_ERR_MALFORMED")
    return value


def has_float(v):
    if isinstance(v, dict):
        return any(map(has_float, v.values()))
    if isinstance(v, list):
        return any(map(has_float, v))
    return isinstance(v, float)


# ---- §1 signaling payloads ----------------------------------------------------------------------

C = lambda x: is_bin(x, 8)
SIGNAL_BOUNDS = {"map": 4, "array": 0, "str": 12_000}
DESCRIPTION = {"c": C, "sdp": lambda x: is_str(x, 0, 12_000)}
ROOM = {"rm": lambda x: is_bin(x, 32)}
RELAY_OFFER = {"c": C, "rs": lambda x: is_bin(x, 24), "ru": lambda x: is_str(x, 0, 256, RELAY_URL)}
RELAY_ANSWER = {"c": C, "rs": lambda x: is_bin(x, 24)}
ICE = {"c": C, "cand": lambda x: is_str(x, 0, 1024)}
ICE_OPTIONAL = {"mid": lambda x: is_str(x, 0, 64), "idx": lambda x: is_uint(x, 65_535)}
BYE = {"c": C, "r": lambda x: x in BYE_REASONS}


def read_signal(kind, data):
    """What a payload of envelope `kind` reads as: offer, answer, relay-offer, relay-answer, ice, bye."""
    seen = []

    def fits(m):
        if kind == "bye":
            seen.append("bye")
            return shape(m, BYE)
        if kind == "ice":
            seen.append("ice")
            return shape(m, ICE, ICE_OPTIONAL)
        if shape(m, DESCRIPTION, ROOM):
            if "rm" in m and kind != "offer":
                return False  # only an offer names a room
            seen.append(kind)
            return True
        relay = shape(m, RELAY_OFFER, ROOM) if kind == "offer" else shape(m, RELAY_ANSWER)
        seen.append("relay-" + kind)
        return relay

    read(data, 16_384, SIGNAL_BOUNDS, fits)
    return seen[-1]


# ---- §3 session frames --------------------------------------------------------------------------

HELLO = {"v": lambda x: is_uint(x, 65_535), "send": lambda x: isinstance(x, bool)}
HELLO_OPTIONAL = {"rid": lambda x: is_bin(x, 16)}


def read_frame(frame):
    if not frame:
        raise Refused("LOFT_ERR_MALFORMED")
    t, body = frame[0], frame[1:]
    if t == 0x01:
        read(body, 256, {"map": 3, "array": 0}, lambda m: shape(m, HELLO, HELLO_OPTIONAL))
        return "hello"
    if t in (0x03, 0x04):
        if len(body) != 8:
            raise Refused("LOFT_ERR_MALFORMED")
        return "ping" if t == 0x03 else "pong"
    if t in (0x02, 0x20):
        return "ratchet" if t == 0x02 else "proxy"
    raise Refused("LOFT_ERR_UNKNOWN_TYPE")


# ---- §5 application messages --------------------------------------------------------------------

MAX_TEXT = 16_000
IDS = lambda x: isinstance(x, list) and 1 <= len(x) <= 64 and all(is_str(i, 22, 22, MESSAGE_ID) for i in x)
MAILBOX = {"u": lambda x: is_str(x, 1, 256), "s": lambda x: is_bin(x, 24), "k": lambda x: is_bin(x, 32)}
APPS = {
    "msg": {"id": lambda x: is_str(x, 22, 22, MESSAGE_ID), "at": is_uint, "text": lambda x: is_str(x, 1, MAX_TEXT)},
    "rcpt": {"ids": IDS},
    "sync": {},
    "mbox": MAILBOX,
    "intro": dict(MAILBOX, i=lambda x: is_bin(x, 1, 8192)),
}
APP_BOUNDS = {"str": 4 * MAX_TEXT, "array": 64, "map": 9}


APPS_OPTIONAL = {"mbox": {"n": is_uint}}  # mailbox.md §1, "The order of announcements"


def app_fits(m):
    if not isinstance(m, dict) or m.get("t") not in APPS:
        return False
    return shape(m, dict(APPS[m["t"]], t=lambda x: True), APPS_OPTIONAL.get(m["t"], {}))


def read_app(padded):
    body = unpad_bucket(padded)
    if body is None:
        raise Refused("LOFT_ERR_PADDING")
    return read(body, 4 * MAX_TEXT + 256, APP_BOUNDS, app_fits)


MAX_BUNDLE = 65_400  # chat.md §5, "Bundles": one detached frame with the ratchet's 97 bytes


def read_bundle(data):
    """chat.md §5, "Bundles": 00 ‖ k ‖ e_1 … e_k ‖ the padded messages; refused whole."""
    if len(data) > MAX_BUNDLE:
        raise Refused("LOFT_ERR_FRAME_TOO_LARGE")
    if len(data) < 2 or data[0] != 0 or not 2 <= data[1] <= 64:
        raise Refused("LOFT_ERR_MALFORMED")
    k = data[1]
    if len(data) < 2 + k or any(not 8 <= e <= 15 for e in data[2 : 2 + k]):
        raise Refused("LOFT_ERR_MALFORMED")
    sizes = [1 << e for e in data[2 : 2 + k]]
    if 2 + k + sum(sizes) != len(data):
        raise Refused("LOFT_ERR_MALFORMED")
    out, at = [], 2 + k
    for size in sizes:
        m = read_app(data[at : at + size])
        if m.get("t") != "msg":
            raise Refused("LOFT_ERR_SCHEMA")
        out.append(m)
        at += size
    return out


def code_of(reader, *args):
    try:
        reader(*args)
        return "reads"
    except Refused as e:
        return e.code


def fields(v):
    """The vector's fields, byte strings (named in `bin`) as bytes."""
    return {k: bytes.fromhex(x) if k in v.get("bin", ()) else x for k, x in v["fields"].items()}


def check(doc, name):
    h = bytes.fromhex
    for i, s in enumerate(doc["signals"]):
        w = "signals[%d] (%s)" % (i, s["label"])
        payload = pack(fields(s))
        expect(w + " payload", payload, h(s["payload"]))
        expect(w + " reads as", read_signal(s["kind"], payload), s["reads"])
    for i, s in enumerate(doc["signalReads"]):
        expect("signalReads[%d] (%s) code" % (i, s["label"]), code_of(read_signal, s["kind"], h(s["payload"])), s["code"])
    for i, x in enumerate(doc["hellos"]):
        w = "hellos[%d] (%s)" % (i, x["label"])
        frame = b"\x01" + pack(fields(x))
        expect(w + " frame", frame, h(x["frame"]))
        expect(w + " reads", read_frame(frame), "hello")
        expect(w + " supported", x["fields"]["v"] == 1, x["supported"])  # §3: v = 1, else closed
    nonce = bytes(range(1, 9))
    expect("pings[0] frame", b"\x03" + nonce, h(doc["pings"][0]["frame"]))
    expect("pings[1] frame", b"\x04" + nonce, h(doc["pings"][1]["frame"]))
    for i, x in enumerate(doc["frameReads"]):
        expect("frameReads[%d] (%s) code" % (i, x["label"]), code_of(read_frame, h(x["frame"])), x["code"])
    for i, a in enumerate(doc["apps"]):
        w = "apps[%d] (%s)" % (i, a["label"])
        message = pack(fields(a))
        expect(w + " message", message, h(a["message"]))
        expect(w + " padded", pad_bucket(message), h(a["padded"]))
        expect(w + " reads", code_of(read_app, h(a["padded"])), "reads")
    for i, a in enumerate(doc["appReads"]):
        expect("appReads[%d] (%s) code" % (i, a["label"]), code_of(read_app, h(a["padded"])), a["code"])
    for i, b in enumerate(doc["bundles"]):
        w = "bundles[%d] (%s)" % (i, b["label"])
        parts = [h(doc["apps"][j]["padded"]) for j in b["of"]]
        bundle = bytes([0, len(parts)] + [len(p).bit_length() - 1 for p in parts]) + b"".join(parts)
        expect(w + " bundle", bundle, h(b["bundle"]))
        expect(w + " reads", [m["id"] for m in read_bundle(bundle)], [doc["apps"][j]["fields"]["id"] for j in b["of"]])
    for i, b in enumerate(doc["bundleReads"]):
        data = h(b["bundle"]) if "bundle" in b else bytes(b["zeros"])
        expect("bundleReads[%d] (%s) code" % (i, b["label"]), code_of(read_bundle, data), b["code"])
    return "%d signaling payloads (%d read), %d HELLOs, %d frames read, %d app messages (%d read), %d bundles (%d read)" % (
        len(doc["signals"]),
        len(doc["signalReads"]),
        len(doc["hellos"]),
        len(doc["frameReads"]),
        len(doc["apps"]),
        len(doc["appReads"]),
        len(doc["bundles"]),
        len(doc["bundleReads"]),
    )
