"""Rooms, written from docs/protocol/rooms.md (§1 the link and how it is read, §2 the room hash, §4
the binding, §5 room frames and the order of their errors, §8 the host-signed room state and its
hand-overs), to replay docs/vectors/rooms-v1.json."""
import re

from mpack import pack, unpack
from prims import (
    b64url,
    ed25519_public,
    ed25519_sign,
    ed25519_verify,
    expect,
    hkdf,
    JS_SPACE,
    pad_bucket,
    sha256,
    unb64url,
    unpad_bucket,
)

# §1
LINK_FIELDS = (("room", "id", 16), ("k", "secret", 32), ("h", "host", 32))
MAX_LINK_CHARS = 512


def fragment_of(id_, secret, host):
    return "room=%s&k=%s&h=%s" % (b64url(id_), b64url(secret), b64url(host))


def parse_link(text):
    """(id, secret, host), or None (LOFT_ERR_MALFORMED): §1's reading."""
    if len(text.encode("utf-16-le")) // 2 > MAX_LINK_CHARS:
        return None
    fragment = text[text.index("#") + 1 :] if "#" in text else text.strip(JS_SPACE)
    seen = {}
    for part in fragment.split("&"):
        name, eq, value = part.partition("=")
        if not eq or not name or name in seen:
            return None
        seen[name] = value
    out = {}
    for name, field, size in LINK_FIELDS:
        if name not in seen:
            return None
        raw = unb64url(seen.pop(name), canonical=True)
        if raw is None or len(raw) != size:
            return None
        out[field] = raw
    if seen:
        return None
    return out["id"], out["secret"], out["host"]


# §2, §4
def room_hash(id_):
    return sha256(b"loft/room/rendezvous/v1\0", id_)


def binding(id_, secret, host):
    return hkdf(id_, secret, b"loft/room/binding/v1" + host, 32)


# §8
def u32(n):
    return n.to_bytes(4, "big")


def commitment(id_, e, secret):
    return sha256(b"loft/room/secret/v1\0", id_, u32(e), secret)


def handover_message(id_, i, k):
    return b"loft/room/handover/v1\0" + id_ + u32(i) + k


# §5: each `t`'s fields, (name, required, check)
ROOM_FRAME = 0x40
MAX_SAFE = 2**53 - 1
ID = re.compile(r"[A-Za-z0-9_-]{22}")


def units(s):
    """Length in UTF-16 code units (§5 counts characters so)."""
    return len(s.encode("utf-16-le")) // 2


def is_uint(x, top):
    # §5: a MessagePack float is read as a number, so a whole one passes the field check where a
    # uint is expected; it then fails the canonical check (has_float: wire.md writes no floats).
    ok = (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
    return ok and 0 <= x <= top


def has_float(v):
    """Whether a float is anywhere in `v`: never canonical (wire.md, "Canonical MessagePack")."""
    if isinstance(v, dict):
        return any(map(has_float, v.values()))
    if isinstance(v, list):
        return any(map(has_float, v))
    return isinstance(v, float)


def canonical(v, data):
    return not has_float(v) and pack(v) == data


def text(lo, hi):
    return lambda x: isinstance(x, str) and lo <= units(x) <= hi


def binary(lo, hi=None):
    return lambda x: isinstance(x, bytes) and lo <= len(x) <= (lo if hi is None else hi)


def msg_id(x):
    return isinstance(x, str) and ID.fullmatch(x) is not None


def queue_url(x):
    return isinstance(x, str) and units(x) <= 256 and re.fullmatch(r"wss?://[^%s]+" % JS_SPACE, x) is not None


FIELDS = {
    "room.hi": {"name": (True, text(1, 40)), "rk": (False, binary(32))},
    "room.msg": {"id": (True, msg_id), "at": (True, lambda x: is_uint(x, MAX_SAFE)), "text": (True, text(1, 16000))},
    "room.rcpt": {"ids": (True, lambda x: isinstance(x, list) and 1 <= len(x) <= 64 and all(map(msg_id, x)))},
    "room.bye": {},
    "room.state": {"s": (True, binary(1, 16384))},
    "room.key": {"e": (True, lambda x: is_uint(x, 2**32 - 1)), "k": (True, binary(32))},
    "room.host": {"k": (True, binary(32)), "sig": (True, binary(64))},
    "room.rs": {"ri": (False, binary(16))},
    "room.dr": {"d": (True, binary(1, 2048))},
    "room.mbox": {
        "u": (True, queue_url),
        "s": (True, binary(24)),
        "k": (True, binary(32)),
        "n": (False, lambda x: is_uint(x, MAX_SAFE)),
    },
}
# The reader's bounds (§5): past them the MessagePack is refused before its shape is looked at; a
# map's entries are counted as written (a key twice counts twice).
MAX_BODY = 4 * 16000 + 256
FRAME_BOUNDS = {"map": 5, "array": 64, "str": 4 * 16000, "bin": 16384}


class FrameError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def encode_frame(message):
    return bytes([ROOM_FRAME]) + pad_bucket(pack(message))


def decode_frame(frame):
    """The message, or FrameError with the code of the first check that fails, in §5's order."""
    if len(frame) < 2 or frame[0] != ROOM_FRAME:
        raise FrameError("LOFT_ERR_UNKNOWN_TYPE")
    body = unpad_bucket(frame[1:])
    if body is None:
        raise FrameError("LOFT_ERR_PADDING")
    if len(body) > MAX_BODY:
        raise FrameError("LOFT_ERR_FRAME_TOO_LARGE")
    try:
        m = unpack(body, FRAME_BOUNDS)
    except Exception:  # not MessagePack, truncated, bytes after the value, a type Loft never writes,
        raise FrameError("LOFT_ERR_MALFORMED") from None  # past the reader's bounds
    fields = FIELDS.get(m.get("t")) if isinstance(m, dict) and isinstance(m.get("t"), str) else None
    if fields is None or any(k != "t" and k not in fields for k in m):
        raise FrameError("LOFT_ERR_SCHEMA")
    for name, (required, good) in fields.items():
        if (name in m and not good(m[name])) or (required and name not in m):
            raise FrameError("LOFT_ERR_SCHEMA")
    if not canonical(m, body):
        raise FrameError("LOFT_ERR_MALFORMED")
    return m


# §8, "Verifying": the reader's bounds, then each record's fields, then the signatures
MAX_STATE = 16384
STATE_BOUNDS = {"map": 8, "array": 256, "str": 8, "bin": 16384}


class StateError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def read_canonical(data, shape):
    """A map of exactly `shape`'s fields, each passing its check; canonical bytes only."""
    if not data:
        raise StateError("LOFT_ERR_MALFORMED")
    try:
        m = unpack(data, STATE_BOUNDS)
    except Exception:  # as for a frame, the reader's bounds included
        raise StateError("LOFT_ERR_MALFORMED") from None
    if not isinstance(m, dict) or set(m) != set(shape) or not all(shape[k](m[k]) for k in shape):
        raise StateError("LOFT_ERR_SCHEMA")
    if not canonical(m, data):
        raise StateError("LOFT_ERR_MALFORMED")
    return m


def ascending(keys):
    """§8: the one order the host writes `m` and `x` in: by bytes, each key once."""
    return all(a < b for a, b in zip(keys, keys[1:]))


def key_list(n, most):
    return lambda x: isinstance(x, list) and len(x) <= most and all(binary(n)(k) for k in x)


RECORD = {
    "ho": lambda x: isinstance(x, list) and len(x) <= 16 and all(
        isinstance(o, dict) and set(o) == {"k", "sig"} and binary(32)(o["k"]) and binary(64)(o["sig"]) for o in x),
    "s": binary(1, MAX_STATE),
    "sig": binary(64),
}
BODY = {
    "c": binary(32), "e": lambda x: is_uint(x, 2**32 - 1), "hid": binary(32), "host": binary(32),
    "id": binary(16), "m": key_list(32, 64), "v": lambda x: is_uint(x, 2**32 - 1) and x >= 1, "x": key_list(32, 256),
}


def verify_state(data, id_, h):
    """The verified body, or StateError with the code of the first check that fails (§8)."""
    if len(data) > MAX_STATE:
        raise StateError("LOFT_ERR_FRAME_TOO_LARGE")
    record = read_canonical(data, RECORD)
    body = read_canonical(record["s"], BODY)
    if not ascending(body["m"]) or not ascending(body["x"]):
        raise StateError("LOFT_ERR_MALFORMED")
    if body["id"] != id_:
        raise StateError("LOFT_ERR_SCHEMA")
    key = h
    for i, ho in enumerate(record["ho"]):
        if not ed25519_verify(key, ho["sig"], handover_message(id_, i, ho["k"])):
            raise StateError("LOFT_ERR_BAD_SIGNATURE")
        key = ho["k"]
    if key != body["host"] or not ed25519_verify(key, record["sig"], b"loft/room/state/v1\0" + record["s"]):
        raise StateError("LOFT_ERR_BAD_SIGNATURE")
    return body


def from_json(v):
    """The vector file's message form: byte strings are { bin: hex }."""
    if isinstance(v, dict):
        return bytes.fromhex(v["bin"]) if set(v) == {"bin"} else {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def check(doc, name):
    h = bytes.fromhex
    for i, c in enumerate(doc["links"]):
        w = "links[%d] (%s)" % (i, c["label"])
        id_, secret, host = h(c["id"]), h(c["secret"]), h(c["host"])
        expect(w + " fragment", fragment_of(id_, secret, host), c["fragment"])
        expect(w + " link", doc["origin"] + "/#" + fragment_of(id_, secret, host), c["link"])
        expect(w + " parsed", parse_link(c["link"]), (id_, secret, host))
        expect(w + " hash", room_hash(id_), h(c["hash"]))
        expect(w + " binding", binding(id_, secret, host), h(c["binding"]))
    for i, c in enumerate(doc["parse"]):
        w = "parse[%d] (%s)" % (i, c["label"])
        want = "LOFT_ERR_MALFORMED" if "code" in c else (h(c["id"]), h(c["secret"]), h(c["host"]))
        expect(w, parse_link(c["text"]) or "LOFT_ERR_MALFORMED", c.get("code") or want)
    for i, s in enumerate(doc["states"]):
        w = "states[%d] (%s)" % (i, s["label"])
        id_ = h(s["id"])
        seeds = [h(x) for x in s["hostSeeds"]]
        keys = [ed25519_public(x) for x in seeds]
        expect(w + " host keys", keys, [h(x) for x in s["hostKeys"]])
        ho = []
        for j, k in enumerate(keys[1:]):
            sig = ed25519_sign(seeds[j], handover_message(id_, j, k))
            expect(w + " handovers[%d].sig" % j, sig, h(s["handovers"][j]["sig"]))
            ho.append({"k": k, "sig": sig})
        expect(w + " handovers", len(ho), len(s["handovers"]))
        f = from_json(s["fields"])
        c = commitment(id_, f["e"], h(s["secret"]))
        expect(w + " c", c, h(s["c"]))
        body = pack({
            "c": c, "e": f["e"], "hid": f["hid"], "host": keys[-1], "id": id_,
            "m": sorted(set(f["m"])), "v": f["v"], "x": sorted(set(f["x"])),
        })
        expect(w + " body", body, h(s["body"]))
        sig = ed25519_sign(seeds[-1], b"loft/room/state/v1\0" + body)
        expect(w + " state", pack({"ho": ho, "s": body, "sig": sig}), h(s["state"]))
        expect(w + " verifies", verify_state(h(s["state"]), id_, keys[0])["v"], f["v"])
    docs_id, docs_h = h(doc["states"][0]["id"]), h(doc["states"][0]["hostKeys"][0])
    expect("maxStateBytes", MAX_STATE, doc["maxStateBytes"])
    for i, v in enumerate(doc["verify"]):
        w = "verify[%d] (%s)" % (i, v["label"])
        try:
            verify_state(h(v["state"]), docs_id, docs_h)
            code = "verifies"
        except StateError as e:
            code = e.code
        expect(w, code, v.get("code", "verifies"))
    try:
        verify_state(bytes(MAX_STATE + 1), docs_id, docs_h)
        code = "verifies"
    except StateError as e:
        code = e.code
    expect("a state one byte past maxStateBytes: code", code, "LOFT_ERR_FRAME_TOO_LARGE")
    for i, f in enumerate(doc["frames"]):
        w = "frames[%d] (%s)" % (i, f["label"])
        m = from_json(f["message"])
        frame = encode_frame(m)
        expect(w + " frame", frame, h(f["frame"]))
        expect(w + " decoded", decode_frame(frame), m)
    for i, f in enumerate(doc["invalidFrames"]):
        w = "invalidFrames[%d] (%s)" % (i, f["label"])
        try:
            decode_frame(h(f["frame"]))
            code = "decodes"
        except FrameError as e:
            code = e.code
        expect(w + " code", code, f["code"])
    return "%d links, %d link texts, %d states, %d states verified, %d frames, %d invalid frames" % (
        len(doc["links"]), len(doc["parse"]), len(doc["states"]), len(doc["verify"]), len(doc["frames"]),
        len(doc["invalidFrames"]))
