"""Canonical MessagePack (msgpack spec, github.com/msgpack/msgpack/blob/master/spec.md), as the
Loft docs use it: shortest integer form, bin for byte strings, str for text, map keys sorted by
their UTF-8 bytes (docs/protocol/wire.md, "Canonical MessagePack"). Written here so the checker does not share
a codec with core/: the docs' byte layouts are the only common ground."""
import struct


class Fail(Exception):
    """A mismatch between the vector file and this implementation: the checker stops on it."""


def pack(v):
    out = bytearray()
    _pack(v, out)
    return bytes(out)


def _pack(v, out):
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        if 0 <= v < 0x80:
            out.append(v)
        elif -32 <= v < 0:
            out.append(v & 0xFF)
        elif v >= 0:
            for tag, fmt, lim in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16), (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if v < lim:
                    out.append(tag)
                    out += struct.pack(fmt, v)
                    return
            raise ValueError("integer too large")
        else:
            for tag, fmt, lim in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15), (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)):
                if v >= -lim:
                    out.append(tag)
                    out += struct.pack(fmt, v)
                    return
            raise ValueError("integer too small")
    elif isinstance(v, float):
        out.append(0xCB)
        out += struct.pack(">d", v)
    elif isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n < 0x100:
            out += bytes([0xC4, n])
        elif n < 0x10000:
            out.append(0xC5)
            out += struct.pack(">H", n)
        else:
            out.append(0xC6)
            out += struct.pack(">I", n)
        out += v
    elif isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes([0xD9, n])
        elif n < 0x10000:
            out.append(0xDA)
            out += struct.pack(">H", n)
        else:
            out.append(0xDB)
            out += struct.pack(">I", n)
        out += b
    elif isinstance(v, (list, tuple)):
        _head(len(v), 0x90, 0xDC, out)
        for x in v:
            _pack(x, out)
    elif isinstance(v, dict):
        _head(len(v), 0x80, 0xDE, out)
        for k in sorted(v, key=lambda k: k.encode()):
            _pack(k, out)
            _pack(v[k], out)
    else:
        raise TypeError(type(v))


def _head(n, fix, tag16, out):
    if n < 16:
        out.append(fix | n)
    elif n < 0x10000:
        out.append(tag16)
        out += struct.pack(">H", n)
    else:
        out.append(tag16 + 1)
        out += struct.pack(">I", n)


def unpack(b, bounds=None):
    """Decode one complete value (used to read vector inputs: bundles, stores, frames). `bounds`
    ({"map", "array", "str", "bin"}, each optional) refuses, as it is read, a map of more entries
    than its bound (counted as written: a key written twice counts twice, though the value keeps
    the last), an array of more items, a str or bin of more bytes, map keys included."""
    v, i = _unpack(memoryview(bytes(b)), 0, bounds or {})
    if i != len(b):
        raise Fail("trailing bytes after MessagePack value")
    return v


def _bound(bounds, kind, n):
    if kind in bounds and n > bounds[kind]:
        raise Fail("MessagePack %s of %d past the reader's bound of %d" % (kind, n, bounds[kind]))
    return n


def _unpack(b, i, bounds):
    t = b[i]
    i += 1
    if t < 0x80:
        return t, i
    if t >= 0xE0:
        return t - 0x100, i
    if 0x80 <= t <= 0x8F:
        return _map(b, i, _bound(bounds, "map", t & 0x0F), bounds)
    if 0x90 <= t <= 0x9F:
        return _arr(b, i, _bound(bounds, "array", t & 0x0F), bounds)
    if 0xA0 <= t <= 0xBF:
        n = _bound(bounds, "str", t & 0x1F)
        return bytes(b[i : i + n]).decode(), i + n
    if t == 0xC0:
        return None, i
    if t in (0xC2, 0xC3):
        return t == 0xC3, i
    sizes = {0xC4: 1, 0xC5: 2, 0xC6: 4}
    if t in sizes:
        n = _bound(bounds, "bin", int.from_bytes(b[i : i + sizes[t]], "big"))
        i += sizes[t]
        return bytes(b[i : i + n]), i + n
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCB: ">d", 0xCA: ">f"}
    if t in ints:
        n = struct.calcsize(ints[t])
        return struct.unpack(ints[t], bytes(b[i : i + n]))[0], i + n
    strs = {0xD9: 1, 0xDA: 2, 0xDB: 4}
    if t in strs:
        n = _bound(bounds, "str", int.from_bytes(b[i : i + strs[t]], "big"))
        i += strs[t]
        return bytes(b[i : i + n]).decode(), i + n
    if t in (0xDC, 0xDD):
        w = 2 if t == 0xDC else 4
        return _arr(b, i + w, _bound(bounds, "array", int.from_bytes(b[i : i + w], "big")), bounds)
    if t in (0xDE, 0xDF):
        w = 2 if t == 0xDE else 4
        return _map(b, i + w, _bound(bounds, "map", int.from_bytes(b[i : i + w], "big")), bounds)
    raise Fail("MessagePack type 0x%02x not used by Loft" % t)


def _arr(b, i, n, bounds):
    out = []
    for _ in range(n):
        v, i = _unpack(b, i, bounds)
        out.append(v)
    return out, i


def _map(b, i, n, bounds):
    out = {}
    for _ in range(n):
        k, i = _unpack(b, i, bounds)
        v, i = _unpack(b, i, bounds)
        out[k] = v
    return out, i
