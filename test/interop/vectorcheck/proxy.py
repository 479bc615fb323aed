"""E2EE fetch proxy frames, written from docs/protocol/proxy.md ("Frames", "Decoding", "DATA size",
"Body-less requests"),
to replay docs/vectors/proxy-v1.json: each frame encoded from its fields and decoded back, the DATA
size each `proxy.data` value gives, and the error code of each invalid frame."""
import re
import struct

from prims import expect

TYPES = {"request": 1, "response": 2, "data": 3, "end": 4, "credit": 5, "reset": 6}
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
RESETS = ["cancelled", "not_a_contact", "not_shared", "rate_limited", "too_large", "too_many_requests",
          "timeout", "origin_error", "protocol_error", "contact_offline", "internal"]
REQUEST_HEADERS = {"accept", "accept-language", "cache-control", "content-type", "if-match", "if-modified-since",
                   "if-none-match", "if-range", "if-unmodified-since", "range"}
RESPONSE_HEADERS = {"accept-ranges", "cache-control", "content-disposition", "content-language", "content-length",
                    "content-range", "content-type", "etag", "expires", "last-modified", "location", "vary"}
TOKEN = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
VALUE = re.compile(r"^[\t\x20-\x7e]*$")
MAX_WINDOW = 1 << 20
MAX_DATA = 65_510


class ProxyError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def encode_headers(hs):
    out = bytes([len(hs)])
    for name, value in hs:
        out += bytes([len(name)]) + name.encode() + struct.pack(">H", len(value)) + value.encode()
    return out


def encode(f):
    head = bytes([1, TYPES[f["type"]]]) + struct.pack(">I", f["id"])
    t = f["type"]
    if t == "request":
        path = f["path"].encode()
        method = METHODS.index(f["method"]) + 1 + (0x80 if f.get("noBody") else 0)
        return head + bytes([method]) + struct.pack(">IH", f["window"], len(path)) + path + encode_headers(f["headers"])
    if t == "response":
        return head + struct.pack(">H", f["status"]) + encode_headers(f["headers"])
    if t == "data":
        return head + bytes.fromhex(f["bytes"])
    if t == "end":
        return head
    if t == "credit":
        return head + struct.pack(">I", f["bytes"])
    return head + bytes([RESETS.index(f["code"])]) + f["reason"].encode()


class Reader:
    def __init__(self, b, at):
        self.b, self.at = b, at

    def take(self, n):
        if self.at + n > len(self.b):
            raise ProxyError("LOFT_ERR_MALFORMED")
        v = self.b[self.at : self.at + n]
        self.at += n
        return v

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def text(self, n):
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProxyError("LOFT_ERR_MALFORMED")


def headers(r, allow):
    n = r.u(1)
    if n > 32:
        raise ProxyError("LOFT_ERR_SCHEMA")
    out = []
    for _ in range(n):
        name = r.text(r.u(1))
        value = r.text(r.u(2))
        if not TOKEN.match(name) or name not in allow or not VALUE.match(value):
            raise ProxyError("LOFT_ERR_SCHEMA")
        out.append([name, value])
    return out


def decode(b):
    """proxy.md "Decoding", steps 1-4."""
    if len(b) < 6:
        raise ProxyError("LOFT_ERR_MALFORMED")
    if b[0] != 1:
        raise ProxyError("LOFT_ERR_UNSUPPORTED_VERSION")
    t = b[1]
    if (t in (1, 2) and len(b) > 8192) or (t == 3 and len(b) - 6 > MAX_DATA):
        raise ProxyError("LOFT_ERR_FRAME_TOO_LARGE")
    fid = struct.unpack(">I", b[2:6])[0]
    if fid == 0:
        raise ProxyError("LOFT_ERR_SCHEMA")
    r = Reader(b, 6)
    if t == 1:
        m = r.u(1)
        no_body = m & 0x80  # NO_BODY ("Body-less requests")
        m &= 0x7F
        if not 1 <= m <= 7:
            raise ProxyError("LOFT_ERR_SCHEMA")
        window = r.u(4)
        if window > MAX_WINDOW:
            raise ProxyError("LOFT_ERR_SCHEMA")
        n = r.u(2)
        if n == 0 or n > 2048:
            raise ProxyError("LOFT_ERR_SCHEMA")
        f = {"type": "request", "id": fid, "method": METHODS[m - 1], "window": window, "path": r.text(n),
             "headers": headers(r, REQUEST_HEADERS)}
        if no_body:
            f["noBody"] = True
    elif t == 2:
        status = r.u(2)
        if not 100 <= status <= 599:
            raise ProxyError("LOFT_ERR_SCHEMA")
        f = {"type": "response", "id": fid, "status": status, "headers": headers(r, RESPONSE_HEADERS)}
    elif t == 3:
        if len(b) == 6:
            raise ProxyError("LOFT_ERR_SCHEMA")
        f = {"type": "data", "id": fid, "bytes": r.take(len(b) - 6).hex()}
    elif t == 4:
        f = {"type": "end", "id": fid}
    elif t == 5:
        n = r.u(4)
        if n == 0 or n > MAX_WINDOW:
            raise ProxyError("LOFT_ERR_SCHEMA")
        f = {"type": "credit", "id": fid, "bytes": n}
    elif t == 6:
        c = r.u(1)
        if c >= len(RESETS):
            raise ProxyError("LOFT_ERR_SCHEMA")
        if len(b) - r.at > 256:
            raise ProxyError("LOFT_ERR_FRAME_TOO_LARGE")
        f = {"type": "reset", "id": fid, "code": RESETS[c], "reason": r.text(len(b) - r.at)}
    else:
        raise ProxyError("LOFT_ERR_UNKNOWN_TYPE")
    if r.at != len(b):
        raise ProxyError("LOFT_ERR_MALFORMED")
    return f


def data_size(value):
    """proxy.md "DATA size", on a direct link."""
    if value is not None and len(value) == 4 and int.from_bytes(value, "big") != 0:
        return min(int.from_bytes(value, "big"), MAX_DATA)
    return 16_384


def reads_no_body(value):
    """proxy.md "Body-less requests": exactly one byte with bit 0x01."""
    return value is not None and len(value) == 1 and (value[0] & 1) != 0


def check(doc, name):
    for i, x in enumerate(doc["frames"]):
        w = "frames[%d] (%s)" % (i, x["label"])
        expect(w + " bytes", encode(x["frame"]), bytes.fromhex(x["bytes"]))
        expect(w + " decoded", decode(bytes.fromhex(x["bytes"])), x["frame"])
    for i, x in enumerate(doc["data_size"]):
        v = None if x["value"] is None else bytes.fromhex(x["value"])
        expect("data_size[%d] (%s)" % (i, x["label"]), data_size(v), x["data_size"])
    for i, x in enumerate(doc["no_body"]):
        v = None if x["value"] is None else bytes.fromhex(x["value"])
        expect("no_body[%d] (%s)" % (i, x["label"]), reads_no_body(v), x["reads_no_body"])
    for i, x in enumerate(doc["invalid"]):
        try:
            decode(bytes.fromhex(x["bytes"]))
            got = "accepted"
        except ProxyError as e:
            got = e.code
        expect("invalid[%d] (%s)" % (i, x["label"]), got, x["code"])
    return "%d frames, %d DATA sizes, %d proxy.flags values, %d invalid frames" % (
        len(doc["frames"]), len(doc["data_size"]), len(doc["no_body"]), len(doc["invalid"]))
