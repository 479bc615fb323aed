"""File transfer, written from docs/protocol/files.md (§1 messages and the file hash, §2 frames and
their decoding, §3 the chunk AEAD), to replay docs/vectors/files-v1.json."""
import hashlib
import struct

from mpack import pack
from prims import aesgcm_open, aesgcm_seal, expect

PLAIN_CHUNK = 65_024
CHUNK_SIZE = PLAIN_CHUNK + 16  # §2: the sealed size of a full chunk
BIN_FIELDS = ("hash", "key", "thumb")


class FileError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def file_hash(data):
    """§1: SHA-256("loft/file-hash/v1" ‖ SHA-256(chunk_0) ‖ …); an empty file is one empty chunk."""
    chunks = [data[i : i + PLAIN_CHUNK] for i in range(0, len(data), PLAIN_CHUNK)] or [b""]
    return hashlib.sha256(b"loft/file-hash/v1" + b"".join(hashlib.sha256(c).digest() for c in chunks)).digest()


def chunk_aead(msg_id, index, total, chunk_size):
    """§3: (nonce, aad)."""
    header = struct.pack(">IHHH", msg_id, index, total, chunk_size)
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
    if t != 0x10:
        raise FileError("LOFT_ERR_UNKNOWN_TYPE")
    if len(frame) < 11 + 16:
        raise FileError("LOFT_ERR_MALFORMED")
    if len(frame) > 11 + CHUNK_SIZE:
        raise FileError("LOFT_ERR_FRAME_TOO_LARGE")
    msg_id, index, total, size = struct.unpack(">IHHH", frame[1:11])
    sealed = frame[11:]
    if msg_id == 0 or total == 0 or size != CHUNK_SIZE:
        raise FileError("LOFT_ERR_MALFORMED")
    if index >= total:
        raise FileError("LOFT_ERR_CHUNK_LIMIT")
    if index < total - 1 and len(sealed) != CHUNK_SIZE:  # every chunk but the last is full
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
        expect(w + " total", max(1, -(-c["size"] // PLAIN_CHUNK)), hd["total"])
        expect(w + " plaintext length", len(h(c["plaintext"])), c["size"] - PLAIN_CHUNK * hd["index"])
        nonce, aad = chunk_aead(hd["id"], hd["index"], hd["total"], hd["chunkSize"])
        expect(w + " nonce", nonce, h(c["nonce"]))
        expect(w + " aad", aad, h(c["aad"]))
        frame = b"\x10" + aad[len(b"loft/file/v1"):] + aesgcm_seal(key, nonce, aad, h(c["plaintext"]))
        expect(w + " frame", frame, h(c["frame"]))
        kind, *_, sealed = decode(h(c["frame"]))
        expect(w + " opened", aesgcm_open(key, nonce, aad, sealed), h(c["plaintext"]))
    for i, x in enumerate(doc["hashes"]):
        data = h(x["file"]) if "file" in x else bytes(j % 251 for j in range(x["size"]))
        expect("hashes[%d] (%s)" % (i, x["label"]), file_hash(data), h(x["hash"]))
    for i, a in enumerate(doc["acks"]):
        frame = b"\x11" + struct.pack(">IH", a["ack"]["id"], a["ack"]["next"])
        expect("acks[%d] (%s)" % (i, a["label"]), frame, h(a["frame"]))
        expect("acks[%d] decoded" % i, decode(frame), ("ack", a["ack"]["id"], a["ack"]["next"]))
    for i, x in enumerate(doc["invalid"]):
        try:
            decode(h(x["bytes"]))
            got = "accepted"
        except FileError as e:
            got = e.code
        expect("invalid[%d] (%s)" % (i, x["label"]), got, x["code"])
    n = sum(len(doc[k]) for k in ("messages", "chunks", "hashes", "acks", "invalid"))
    return "%d messages, chunks, hashes, acks and invalid frames" % n
