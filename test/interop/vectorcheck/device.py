"""The serial device protocol, written from docs/device.md (§2 framing: CRC-32 and COBS, the
deframer; §3 HELLO; §6 pairing commit and code), to replay docs/vectors/device-v1.json."""
import hashlib
import struct
import zlib

from prims import expect

NAMES = ("version", "role", "linkId", "caps", "maxPayload", "window", "state", "maxMessage")


def crc32(b):
    """§2: the IEEE / zlib CRC-32 (Python's zlib, an implementation independent of ours)."""
    return zlib.crc32(b) & 0xFFFFFFFF


def cobs_encode(data):
    """§2: canonical COBS; a final block of 254 non-zero bytes is not followed by an empty one."""
    out = bytearray([0])  # out[at] is the code byte of the open block
    at, code, full = 0, 1, False
    for byte in data:
        full = False
        if byte == 0:
            out[at], at, code = code, len(out), 1
            out.append(0)
        else:
            out.append(byte)
            code += 1
            if code == 0xFF:
                out[at], at, code, full = code, len(out), 1, True
                out.append(0)
    if full:
        out.pop()
    else:
        out[at] = code
    return bytes(out)


def cobs_decode(enc):
    """None for a 0x00 inside or a code byte running past the end (§2 fault `cobs`)."""
    out = bytearray()
    i = 0
    while i < len(enc):
        code = enc[i]
        if code == 0 or i + code > len(enc) or 0 in enc[i + 1 : i + code]:
            return None
        out += enc[i + 1 : i + code]
        i += code
        if code < 0xFF and i < len(enc):
            out.append(0)
    return bytes(out)


def frame_wire(t, seq, payload):
    body = bytes([t]) + struct.pack(">H", seq) + payload
    return cobs_encode(body + struct.pack(">I", crc32(body))) + b"\x00"


def deframe(stream, max_payload):
    """§2 "Deframing": one event per non-empty block before a 0x00."""
    limit = len(cobs_encode(b"\x01" * (max_payload + 7)))
    events = []
    for block in stream.split(b"\x00")[:-1]:
        if not block:
            continue
        if len(block) > limit:
            events.append({"fault": "oversized"})
            continue
        body = cobs_decode(block)
        if body is None:
            events.append({"fault": "cobs"})
        elif len(body) < 7:
            events.append({"fault": "short"})
        elif crc32(body[:-4]) != struct.unpack(">I", body[-4:])[0]:
            events.append({"fault": "crc"})
        elif not 1 <= body[0] <= 5:
            events.append({"fault": "unknown-type"})
        else:
            events.append({"frame": {"type": body[0], "seq": struct.unpack(">H", body[1:3])[0], "payload": body[3:-4].hex()}})
    return events


def hello(f):
    """§3: magic, version, role, link id, caps, max payload, window, state, max message, name."""
    return b"LOFT" + struct.pack(">BBIHHBBH", *(f[k] for k in NAMES)) + f["name"].encode()


def parse_hello(b):
    return dict(zip(NAMES, struct.unpack(">BBIHHBBH", b[4:18])), name=b[18:].decode())


def lp(x):
    return struct.pack(">H", len(x)) + x


def pairing(h, no, nd, owner_hello, device_hello):
    """§6: (commit, t, code)."""
    commit = hashlib.blake2s(lp(b"loft/device/pairing-commit/v1") + h + nd).digest()
    t = hashlib.blake2s(lp(b"loft/device/pairing-code/v1") + h + no + nd + lp(owner_hello) + lp(device_hello)).digest()
    return commit, t, "%06d" % (int.from_bytes(t[:8], "big") % 1_000_000)


def check(doc, name):
    h = bytes.fromhex
    for i, c in enumerate(doc["crc32"]):
        expect("crc32[%d]" % i, "%08x" % crc32(h(c["input"])), c["crc"])
    for i, c in enumerate(doc["cobs"]):
        expect("cobs[%d] encoded" % i, cobs_encode(h(c["input"])), h(c["encoded"]))
        expect("cobs[%d] decoded" % i, cobs_decode(h(c["encoded"])), h(c["input"]))
    for i, f in enumerate(doc["frames"]):
        expect("frames[%d] wire" % i, frame_wire(f["type"], f["seq"], h(f["payload"])), h(f["wire"]))
        expect("frames[%d] deframed" % i, deframe(h(f["wire"]), max(240, len(h(f["payload"])))),
               [{"frame": {"type": f["type"], "seq": f["seq"], "payload": f["payload"]}}])
    s = doc["stream"]
    expect("stream events", deframe(h(s["bytes"]), s["max_payload"]), s["events"])
    for who in ("owner", "device"):
        x = doc["hello"][who]
        expect("hello." + who + " bytes", hello(x["fields"]), h(x["bytes"]))
        expect("hello." + who + " parsed", parse_hello(h(x["bytes"])), x["fields"])
    for i, p in enumerate(doc["pairing"]):
        got = pairing(h(p["handshake_hash"]), h(p["owner_nonce"]), h(p["device_nonce"]), h(p["owner_hello"]), h(p["device_hello"]))
        expect("pairing[%d] (commit, digest, code)" % i, got, (h(p["commit"]), h(p["digest"]), p["code"]))
    return "%d CRCs, %d COBS, %d frames, a stream, 2 HELLOs, %d pairings" % (
        len(doc["crc32"]), len(doc["cobs"]), len(doc["frames"]), len(doc["pairing"]))
