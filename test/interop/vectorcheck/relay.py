"""Relay mailbox formats, written from docs/protocol/relay.md (§Command authorization, §Padding and
the 1.2 size bucket, §Server→recipient layer, §At rest, §Batches), to replay relay-auth-v1.1.json,
relay-delivery-v1.2.json, relay-at-rest-v1.json and relay-batch-v1.3.json."""
import hashlib
import re
import struct

from mpack import pack, unpack
from prims import (aesgcm_open, aesgcm_seal, ed25519_public, expect, hkdf, hmac256, x25519, x25519_public,
                   xchacha_open, xchacha_seal)

P = 2**255 - 19


def version_header(minor):
    return pack({"protocol_name": "SREMP", "t": "VERSION_HEADER", "version_major": 1, "version_minor": minor})


def montgomery_u(ed_public):
    """§Command authorization: u = (1 + y) / (1 − y) mod p, y = the low 255 bits, little-endian."""
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow(1 - y, P - 2, P) % P).to_bytes(32, "little")


def check_auth(doc):
    h = bytes.fromhex
    expect("clientVersionHeader", version_header(1), h(doc["clientVersionHeader"]))
    sid, x = h(doc["sessionId"]), h(doc["relayConnectionKey"])
    expect("relayConnectionKey", x25519_public(h(doc["relayConnectionSecret"])), x)
    hello = unpack(h(doc["hello"]))
    expect("hello", (hello["k"], hello["s"], hello["x"]), ("HELLO", sid, x))
    expect("hello canonical", pack(hello), h(doc["hello"]))
    seed = h(doc["queueAuthSeed"])
    p = ed25519_public(seed)
    expect("queueAuthKey", p, h(doc["queueAuthKey"]))
    scalar = hashlib.sha512(seed).digest()[:32]  # RFC 8032 §5.1.5, clamped by X25519
    expect("queueDhScalar", scalar, h(doc["queueDhScalar"]))
    u = montgomery_u(p)
    expect("queueDhU", u, h(doc["queueDhU"]))
    dh = x25519(scalar, x)
    expect("dh (client side)", dh, h(doc["dh"]))
    expect("dh (relay side)", x25519(h(doc["relayConnectionSecret"]), u), h(doc["dh"]))
    info = b"loft-relay/1.1 auth" + x + p
    expect("hkdfInfo", info, h(doc["hkdfInfo"]))
    k = hkdf(sid, dh, info, 32)
    expect("authKey", k, h(doc["authKey"]))
    for c in doc["cases"]:
        w = "cases %s i=%d" % (c["command"], c["i"])
        t = h(c["t"])
        cmd = unpack(t)
        expect(w + " t", (cmd["k"], cmd["i"], pack(cmd)), (c["command"], c["i"], t))
        a = hmac256(k, t)
        expect(w + " a", a, h(c["a"]))
        expect(w + " frame", pack({"a": a, "t": t}), h(c["frame"]))
    return "%d authenticated commands" % len(doc["cases"])


def bucket(n, top):
    """§At rest / §Padding 1.2: min(top, max(256, 2^⌈log2(n + 2)⌉))."""
    return min(top, max(256, 1 << (n + 1).bit_length()))


def block(body, size):
    return struct.pack(">H", len(body)) + body + b"\0" * (size - 2 - len(body))


def check_delivery(doc):
    h = bytes.fromhex
    expect("clientVersionHeader", version_header(2), h(doc["clientVersionHeader"]))
    key = h(doc["rcvKey"])
    ts = struct.pack(">Q", doc["timestamp"])
    for c in doc["cases"]:
        w = "case of %d bytes" % c["bodyLength"]
        body = h(c["body"])
        expect(w + " length", len(body), c["bodyLength"])
        expect(w + " bucket", bucket(len(body), 16384), c["bucket"])
        b = xchacha_seal(key, h(c["msgId"]), b"", ts + block(body, c["bucket"]))
        expect(w + " b", b, h(c["b"]))
        expect(w + " opened", xchacha_open(key, h(c["msgId"]), b"", h(c["b"])), ts + block(body, c["bucket"]))
        b11 = xchacha_seal(key, h(c["msgId"]), b"", ts + block(body, 16384))
        expect(w + " blockSha256 (the 1.1 b)", hashlib.sha256(b11).digest(), h(c["blockSha256"]))
        if "msg" in c:
            expect(w + " msg", pack({"b": b, "k": "MSG", "m": h(c["msgId"]), "q": h(doc["recipientId"])}), h(c["msg"]))
    return "%d deliveries" % len(doc["cases"])


def key_record(epoch, epoch_key, iv, dk, key_key):
    """§At rest "Key record": u32 N ‖ iv ‖ AES-GCM(K_N, DK, aad = "loft-relay/1 dk" ‖ u32 N ‖ key-key)."""
    n = struct.pack(">I", epoch)
    return n + iv + aesgcm_seal(epoch_key, iv, b"loft-relay/1 dk" + n + key_key, dk)


def check_at_rest(doc):
    h = bytes.fromhex
    kek = hkdf(b"loft-relay/1 keyring", h(doc["masterKey"]), b"kek", 32)
    expect("kek", kek, h(doc["kek"]))
    kr = doc["keyring"]
    entries = b"".join(struct.pack(">IQ", e["id"], e["startMs"]) + h(e["key"]) for e in kr["epochs"])
    head = b"LOFTKR1\n" + struct.pack(">QH", kr["generation"], len(kr["epochs"])) + h(kr["iv"])
    slot = head + aesgcm_seal(kek, h(kr["iv"]), head[:18], entries)
    expect("keyring slotUsed", len(slot), kr["slotUsed"])
    expect("keyring slot", slot, h(kr["slot"]))
    expect("keyring slot opens", aesgcm_open(kek, h(kr["iv"]), head[:18], h(kr["slot"])[30:]), entries)
    epoch_keys = {e["id"]: h(e["key"]) for e in kr["epochs"]}
    for x in doc["blobs"]:
        w = "blob (%s)" % x["label"]
        body = h(x["body"])
        top = 4096 if x["keyKey"].startswith("6f") else 16384  # one-time prekeys: 4096
        expect(w + " bucket", bucket(len(body), top), x["bucket"])
        kk, dk, iv = h(x["keyKey"]), h(x["dataKey"]), h(x["blobIv"])
        expect(w + " sealed", iv + aesgcm_seal(dk, iv, kk, block(body, x["bucket"])), h(x["sealed"]))
        expect(w + " keyRecord", key_record(x["epoch"], epoch_keys[x["epoch"]], h(x["wrapIv"]), dk, kk), h(x["keyRecord"]))
    q = doc["queueRcvKey"]
    kk, dk, iv = h(q["keyKey"]), h(q["dataKey"]), h(q["blobIv"])
    expect("queueRcvKey sealed", iv + aesgcm_seal(dk, iv, kk, h(q["rcvKey"])), h(q["sealed"]))
    expect("queueRcvKey keyRecord", key_record(q["epoch"], epoch_keys[q["epoch"]], h(q["wrapIv"]), dk, kk), h(q["keyRecord"]))
    # §At rest "Message record": format 2 = 0x02 ‖ send id(16) ‖ format 1; format 1 = msgId(24) ‖
    # u64 timestamp s ‖ u64 expiry ms ‖ key record(64) ‖ sealed blob. Lengths: 149 + bucket (odd)
    # and 132 + bucket (even), so a reader tells them apart.
    for name in ("messageRecord", "messageRecordFormat1"):
        m = doc[name]
        blob = next(x for x in doc["blobs"] if x["label"] == m["blob"])
        expect(name + " key-key", b"m" + h(m["recordKey"]), h(blob["keyKey"]))
        rec = h(m["msgId"]) + struct.pack(">QQ", int(m["timestamp"]), int(m["expiresAt"])) + h(blob["keyRecord"]) + h(blob["sealed"])
        if m["format"] == 2:
            rec = b"\x02" + h(m["sendId"]) + rec
            expect(name + " length", len(rec), 149 + blob["bucket"])
        else:
            expect(name + " format", m["format"], 1)
            expect(name + " length", len(rec), 132 + blob["bucket"])
        expect(name + " record", rec, h(m["record"]))
    return "KEK, keyring slot, %d blobs, rcv key, message record (formats 2 and 1)" % len(doc["blobs"])


def auth_key(seed, x, sid):
    """§Command authorization: K = HKDF(DH(scalar, X), salt = sessionId, info = label ‖ X ‖ P)."""
    p = ed25519_public(seed)
    dh = x25519(hashlib.sha512(seed).digest()[:32], x)
    return hkdf(sid, dh, b"loft-relay/1.1 auth" + x + p, 32)


def check_batch(doc):
    """§Batches: SENDS and ACKS under one authenticator each, RES, MSGS of 1.2 deliveries."""
    h = bytes.fromhex
    expect("clientVersionHeader", version_header(3), h(doc["clientVersionHeader"]))
    sid, x = h(doc["sessionId"]), h(doc["relayPublic"])
    expect("relayPublic", x25519_public(h(doc["relaySecret"])), x)
    keys = {"SENDS": auth_key(h(doc["senderSeed"]), x, sid), "ACKS": auth_key(h(doc["recipientSeed"]), x, sid)}
    expect("senderAuthKey", keys["SENDS"], h(doc["senderAuthKey"]))
    expect("recipientAuthKey", keys["ACKS"], h(doc["recipientAuthKey"]))
    for c in doc["commands"]:
        w = "commands %s i=%d" % (c["command"], c["i"])
        t = h(c["t"])
        cmd = unpack(t)
        expect(w + " t canonical", (cmd["k"], cmd["i"], sorted(cmd), pack(cmd)), (c["command"], c["i"], ["i", "k", "ms", "q"], t))
        expect(w + " entries", 1 <= len(cmd["ms"]) <= 32, True)
        if cmd["k"] == "SENDS":
            expect(w + " entry shapes", all(len(e) == 2 and len(e[0]) == 16 and len(e[1]) <= 16382 for e in cmd["ms"]), True)
        else:
            expect(w + " ids", all(len(m) == 24 for m in cmd["ms"]), True)
        a = hmac256(keys[cmd["k"]], t)
        expect(w + " a", a, h(c["a"]))
        expect(w + " frame", pack({"a": a, "t": t}), h(c["frame"]))
    for n, r in enumerate(doc["answers"]):
        res = unpack(h(r["frame"]))
        expect("answers %d" % n, (res["k"], res["r"], pack({"i": res["i"], "k": "RES", "r": r["r"]})), ("RES", r["r"], h(r["frame"])))
    key = h(doc["rcvKey"])
    ts = struct.pack(">Q", doc["timestamp"])
    pairs = []
    for d in doc["deliveries"]:
        w = "delivery %s" % d["msgId"][:8]
        body = h(d["body"])
        expect(w + " bucket", bucket(len(body), 16384), d["bucket"])
        b = xchacha_seal(key, h(d["msgId"]), b"", ts + block(body, d["bucket"]))
        expect(w + " b", b, h(d["b"]))
        pairs.append([h(d["msgId"]), b])
    msgs = unpack(h(doc["msgs"]))
    expect("msgs", pack({"k": "MSGS", "ms": pairs, "q": msgs["q"]}), h(doc["msgs"]))
    return "%d batch commands, %d RES, MSGS of %d" % (len(doc["commands"]), len(doc["answers"]), len(pairs))


# §Errors: each ERR wire code and the LOFT_ERR code the client raises for it.
WIRE_CODES = {
    "AUTH": "LOFT_ERR_RELAY_AUTH",
    "QUOTA": "LOFT_ERR_RELAY_QUOTA",
    "FULL": "LOFT_ERR_RELAY_FULL",
    "NO_MSG": "LOFT_ERR_RELAY_NO_MSG",
    "PROHIBITED": "LOFT_ERR_RELAY_PROHIBITED",
    "DUPLICATE": "LOFT_ERR_RELAY_DUPLICATE",
    "LIMIT": "LOFT_ERR_RELAY_LIMIT",
    "RATE": "LOFT_ERR_RELAY_RATE",
    "SOURCE_RATE": "LOFT_ERR_RELAY_SOURCE_RATE",
    "STORE_RATE": "LOFT_ERR_RELAY_STORE_RATE",
    "NO_BUNDLE": "LOFT_ERR_RELAY_NO_BUNDLE",
    "INTERNAL": "LOFT_ERR_RELAY_INTERNAL",
    "UNAVAILABLE": "LOFT_ERR_RELAY_UNAVAILABLE",
    "LARGE": "LOFT_ERR_FRAME_TOO_LARGE",
    "MALFORMED": "LOFT_ERR_MALFORMED",
    "SCHEMA": "LOFT_ERR_SCHEMA",
    "UNKNOWN": "LOFT_ERR_UNKNOWN_TYPE",
    "VERSION": "LOFT_ERR_UNSUPPORTED_VERSION",
}
SERVER_KINDS = ("HELLO", "OK", "IDS", "MSG", "END", "PK", "ERR", "RES", "MSGS")
WIRE_CODE_SHAPE = re.compile("[A-Z][A-Z0-9_]{0,15}")


def err_frame(e, i=None):
    """§Relay → client frames: { e, i?, k: "ERR" }, canonical (keys sorted)."""
    return pack({"e": e, "k": "ERR"} if i is None else {"e": e, "i": i, "k": "ERR"})


def is_u32(x):
    whole = (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
    return whole and 0 <= x <= 0xFFFFFFFF


def read_err(frame):
    """§Errors, "Reading an ERR": (code, i, wire) as the client settles or reports it."""
    try:  # the reader's bounds: str 16 bytes, maps 8 entries, arrays 32 items
        m = unpack(frame, {"str": 16, "map": 8, "array": 32})
    except Exception:
        return ("LOFT_ERR_MALFORMED", None, None)
    if not isinstance(m, dict) or not isinstance(m.get("k"), str) or m["k"] not in SERVER_KINDS:
        return ("LOFT_ERR_UNKNOWN_TYPE", None, None)
    i, e = m.get("i"), m.get("e")
    only = set(m) <= {"k", "i", "e"} and "e" in m and m["k"] == "ERR" and (i is None or is_u32(i))
    # A whole float passes as an i, but is never canonical (wire.md, "Canonical MessagePack": no
    # floats); a newer relay's code must be in canonical bytes too (§Errors, "Reading one").
    canonical = only and not isinstance(i, float) and pack(m) == frame
    if only and isinstance(e, str) and e in WIRE_CODES:
        if not canonical:
            return ("LOFT_ERR_MALFORMED", None, None)
        return (WIRE_CODES[e], i, None)
    if canonical and isinstance(e, str) and WIRE_CODE_SHAPE.fullmatch(e):
        return ("LOFT_ERR_RELAY_UNRECOGNIZED", i, e)  # a newer relay's code
    return ("LOFT_ERR_SCHEMA", None, None)


def check_errors(doc):
    h = bytes.fromhex
    for n, group in (("errors", doc["errors"]), ("requestIds", doc["requestIds"])):
        for k, x in enumerate(group):
            w = "%s[%d] (%s, i %s)" % (n, k, x["e"], x.get("i", "absent"))
            frame = err_frame(x["e"], x.get("i"))
            expect(w + " frame", frame, h(x["frame"]))
            expect(w + " client", read_err(frame), (x["client"], x.get("i"), None))
    expect("errors: every wire code, with i and without", sorted(x["e"] for x in doc["errors"]), sorted(list(WIRE_CODES) * 2))
    for k, x in enumerate(doc["reads"]):
        expect("reads[%d] (%s)" % (k, x["label"]), read_err(h(x["frame"])), (x["code"], x.get("i"), x.get("wire")))
    return "%d ERR frames, %d request ids, %d frames read" % (len(doc["errors"]), len(doc["requestIds"]), len(doc["reads"]))


def check(doc, name):
    return {"relay-auth-v1.1.json": check_auth, "relay-delivery-v1.2.json": check_delivery,
            "relay-at-rest-v1.json": check_at_rest, "relay-batch-v1.3.json": check_batch,
            "relay-errors-v1.json": check_errors}[name](doc)
