"""File transfer, written from docs/protocol/files.md (§1 messages and the file hash, §2 frames and
their decoding — FILE_CHUNK, FILE_CHUNK_WIDE of another chunk size, FILE_ACK, the bulk lane's
messages —, §3 the chunk AEAD, §8 FILE_MSG), to replay docs/vectors/files-v1.json."""
import hashlib
import struct

from mpack import pack
from prims import aesgcm_open, aesgcm_seal, expect

PLAIN_CHUNK = 65_024
CHUNK_SIZE = PLAIN_CHUNK + 16  # §2: the sealed size of a full chunk
LANE_MESSAGE = 256 * 1024  # §2: Chromium's largest data-channel message
MAX_WIDE_SIZE = LANE_MESSAGE - 13  # §2: a wide frame's largest chunk_size (its frame is one lane message)
BIN_FIELDS = ("hash", "key", "thumb")


class FileError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def file_hash(data, cs=PLAIN_CHUNK):
    """§1: SHA-256("loft/file-hash/v1" ‖ SHA-256(chunk_0) ‖ …) over the offer's chunks; an empty file is one empty chunk."""
    chunks = [data[i : i + cs] for i in range(0, len(data), cs)] or [b""]
    return hashlib.sha256(b"loft/file-hash/v1" + b"".join(hashlib.sha256(c).digest() for c in chunks)).digest()


def chunk_aead(msg_id, index, total, chunk_size, wide=False):
    """§3: (nonce, aad); a wide header's chunk_size is a u32 (§2)."""
    header = struct.pack(">IHHI" if wide else ">IHHH", msg_id, index, total, chunk_size)
    return b"\0" * 10 + struct.pack(">H", index), b"loft/file/v1" + header


def decode(frame):
    """§2 "Decoding" (decodeFileFrame): FILE_CHUNK -> (id, index, total, size, sealed); FILE_ACK -> (id, next)."""
    if not frame:
        raise FileError("LOFT_ERR_MALFORMED")
    t = frame[0]
    if t == 0x11:
        if len(frame) != 7:
            raise FileError("LOFT_ERR_MALFORMED")
        msg_id, nxt = struct.unpack(">IH", frame[1:])
        if msg_id == 0:
            raise FileError("LOFT_ERR_MALFORMED")
        return ("ack", msg_id, nxt)
    if t == 0x13:
        return decode_chunk(frame, wide=True)
    if t != 0x10:
        raise FileError("LOFT_ERR_UNKNOWN_TYPE")
    return decode_chunk(frame, wide=False)


def decode_chunk(frame, wide):
    """§2: FILE_CHUNK (its chunk_size a u16, always the default) or FILE_CHUNK_WIDE (a u32, another size)."""
    fmt, max_size = (">IHHI", MAX_WIDE_SIZE) if wide else (">IHHH", CHUNK_SIZE)
    head = 1 + struct.calcsize(fmt)  # 13 wide, 11 narrow
    if len(frame) < head + 16:
        raise FileError("LOFT_ERR_MALFORMED")
    if len(frame) > head + max_size:
        raise FileError("LOFT_ERR_FRAME_TOO_LARGE")
    msg_id, index, total, size = struct.unpack(fmt, frame[1:head])
    sealed = frame[head:]
    if msg_id == 0 or total == 0 or (not wide and size != CHUNK_SIZE):
        raise FileError("LOFT_ERR_MALFORMED")
    if index >= total:
        raise FileError("LOFT_ERR_CHUNK_LIMIT")
    if wide:
        if size == CHUNK_SIZE:  # the default size goes only as FILE_CHUNK
            raise FileError("LOFT_ERR_MALFORMED")
        if size <= 16 or size > MAX_WIDE_SIZE:
            raise FileError("LOFT_ERR_CHUNK_LIMIT")
    # Every chunk but the last is full (a narrow one is never longer than its size: FRAME_TOO_LARGE).
    if len(sealed) > size or (index < total - 1 and len(sealed) != size):
        raise FileError("LOFT_ERR_MALFORMED")
    return ("chunk", msg_id, index, total, size, sealed)


def check(doc, name):
    h = bytes.fromhex
    key = h(doc["key"])
    for i, m in enumerate(doc["messages"]):
        msg = {k: (h(v) if k in BIN_FIELDS else v) for k, v in m["message"].items()}
        expect("messages[%d] (%s)" % (i, m["label"]), pack(msg), h(m["bytes"]))
    for i, c in enumerate(doc["chunks"]):
        w = "chunks[%d] (%s)" % (i, c["label"])
        hd = c["header"]
        cs = c.get("cs", PLAIN_CHUNK)
        wide = cs != PLAIN_CHUNK
        expect(w + " chunk_size", cs + 16, hd["chunkSize"])
        expect(w + " total", max(1, -(-c["size"] // cs)), hd["total"])
        expect(w + " plaintext length", len(h(c["plaintext"])), min(cs, c["size"] - cs * hd["index"]))
        nonce, aad = chunk_aead(hd["id"], hd["index"], hd["total"], hd["chunkSize"], wide)
        expect(w + " nonce", nonce, h(c["nonce"]))
        expect(w + " aad", aad, h(c["aad"]))
        kind = b"\x13" if wide else b"\x10"
        frame = kind + aad[len(b"loft/file/v1"):] + aesgcm_seal(key, nonce, aad, h(c["plaintext"]))
        expect(w + " frame", frame, h(c["frame"]))
        kind, *_, sealed = decode(h(c["frame"]))
        expect(w + " opened", aesgcm_open(key, nonce, aad, sealed), h(c["plaintext"]))
    for i, x in enumerate(doc["hashes"]):
        data = h(x["file"]) if "file" in x else bytes(j % 251 for j in range(x["size"]))
        expect("hashes[%d] (%s)" % (i, x["label"]), file_hash(data, x.get("cs", PLAIN_CHUNK)), h(x["hash"]))
    for i, a in enumerate(doc["acks"]):
        frame = b"\x11" + struct.pack(">IH", a["ack"]["id"], a["ack"]["next"])
        expect("acks[%d] (%s)" % (i, a["label"]), frame, h(a["frame"]))
        expect("acks[%d] decoded" % i, decode(frame), ("ack", a["ack"]["id"], a["ack"]["next"]))
    lane = doc["lane"]
    expect("lane[0] (BULK_HELLO)", b"\x00loft-bulk/1", h(lane[0]["bytes"]))
    expect("lane[1] (BULK_CHUNKS)", b"\x00loft-bulk/chunks" + struct.pack(">I", lane[1]["max"]), h(lane[1]["bytes"]))
    expect("lane[1] max", LANE_MESSAGE - 13 - 16, lane[1]["max"])
    for i, x in enumerate(lane[2:], 2):
        # §2 rule 3: a lane message not starting with 00 is one frame, FILE_CHUNK or FILE_CHUNK_WIDE.
        frame = h(x["bytes"])
        expect("lane[%d] (%s) type" % (i, x["label"]), frame[0] in (0x10, 0x13), True)
        expect("lane[%d] decoded" % i, decode(frame)[0], "chunk")
    for i, x in enumerate(doc["room"]):
        # §8: 0x12 ‖ the message padded to its bucket (0x80, then zeros to a power of two ≥ 256).
        m = pack(x["message"])
        size = 256
        while size < len(m) + 1:
            size *= 2
        frame = b"\x12" + m + b"\x80" + bytes(size - len(m) - 1)
        expect("room[%d] (%s)" % (i, x["label"]), frame, h(x["bytes"]))
    for i, x in enumerate(doc["invalid"]):
        try:
            decode(h(x["bytes"]))
            got = "accepted"
        except FileError as e:
            got = e.code
        expect("invalid[%d] (%s)" % (i, x["label"]), got, x["code"])
    n = sum(len(doc[k]) for k in ("messages", "chunks", "hashes", "acks", "lane", "room", "invalid"))
    return "%d messages, chunks, hashes, acks, lane and room messages and invalid frames" % n
