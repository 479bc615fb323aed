"""The outbox journal, written from docs/protocol/chat.md §9 ("The outbox journal": the key, the
AD, the plaintext layout and its padding, the value and the decoding errors), to replay
docs/vectors/journal-v1.json."""
import struct

from prims import b64url, bucket, expect, hkdf, pad_bucket, unb64url, unpad_bucket, xchacha_open, xchacha_seal

VERSION = 2  # padded plaintext; written
VERSION_UNPADDED = 1  # the first version: read only
NONCE = 24
TAG = 16
MAX_TEXT_UNITS = 16_000


# The longest value: version, nonce, the padded bucket of (at, contact id length and room (255),
# text length, the longest text: 16 000 UTF-16 units at 3 UTF-8 bytes each), tag; in base64url
# without padding.
MAX_ENTRY_CHARS = -(-((1 + NONCE + bucket(8 + 1 + 255 + 4 + 3 * MAX_TEXT_UNITS) + TAG) * 4) // 3)


class JournalError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def journal_key(identity, private):
    return hkdf(identity, private, b"loft/outbox-journal/v1 key", 32)


def ad_of(identity, msg_id):
    return b"loft/outbox-journal/v1\0" + identity + msg_id.encode()


def layout_of(at, contact, text):
    c, t = contact.encode(), text.encode()
    return struct.pack(">QB", at, len(c)) + c + struct.pack(">I", len(t)) + t


def plaintext_of(at, contact, text):
    return pad_bucket(layout_of(at, contact, text))


def open_value(key, identity, msg_id, value):
    if len(value) > MAX_ENTRY_CHARS:
        raise JournalError("LOFT_ERR_FRAME_TOO_LARGE")
    raw = unb64url(value)
    if raw is None or len(raw) < 1 + NONCE + TAG + 13:
        raise JournalError("LOFT_ERR_MALFORMED")
    if raw[0] not in (VERSION, VERSION_UNPADDED):
        raise JournalError("LOFT_ERR_UNSUPPORTED_VERSION")
    pt = xchacha_open(key, raw[1 : 1 + NONCE], ad_of(identity, msg_id), raw[1 + NONCE :])
    if pt is None:
        raise JournalError("LOFT_ERR_DECRYPT")
    if raw[0] == VERSION:
        pt = unpad_bucket(pt)
        if pt is None:
            raise JournalError("LOFT_ERR_PADDING")
    if len(pt) < 13:
        raise JournalError("LOFT_ERR_SCHEMA")
    at, n = struct.unpack(">QB", pt[:9])
    if at > 2**53 - 1 or n == 0 or len(pt) < 13 + n:
        raise JournalError("LOFT_ERR_SCHEMA")
    (m,) = struct.unpack(">I", pt[9 + n : 13 + n])
    if len(pt) != 13 + n + m:
        raise JournalError("LOFT_ERR_SCHEMA")
    try:
        contact = pt[9 : 9 + n].decode("utf-8")
        text = pt[13 + n :].decode("utf-8")
    except UnicodeDecodeError:
        raise JournalError("LOFT_ERR_SCHEMA") from None
    units = len(text.encode("utf-16-le")) // 2
    if units == 0 or units > MAX_TEXT_UNITS:
        raise JournalError("LOFT_ERR_SCHEMA")
    return at, contact, text


def check(doc, name):
    h = bytes.fromhex
    identity, private = h(doc["identityKey"]), h(doc["privateIdentityKey"])
    key = journal_key(identity, private)
    expect("key", key, h(doc["key"]))
    expect("maxEntryChars", MAX_ENTRY_CHARS, doc["maxEntryChars"])
    for i, e in enumerate(doc["entries"]):
        w = "entries[%d] (%s)" % (i, e["label"])
        ad = ad_of(identity, e["id"])
        expect(w + " ad", ad, h(e["ad"]))
        pt = plaintext_of(e["at"], e["contactId"], e["text"])
        expect(w + " plaintext", pt, h(e["plaintext"]))
        nonce = h(e["nonce"])
        value = b64url(bytes([VERSION]) + nonce + xchacha_seal(key, nonce, ad, pt))
        expect(w + " value", value, e["value"])
        expect(w + " opened", open_value(key, identity, e["id"], value), (e["at"], e["contactId"], e["text"]))
    for i, e in enumerate(doc["unpadded"]):
        w = "unpadded[%d] (%s)" % (i, e["label"])
        pt = layout_of(e["at"], e["contactId"], e["text"])
        expect(w + " plaintext", pt, h(e["plaintext"]))
        nonce = h(e["nonce"])
        value = b64url(bytes([VERSION_UNPADDED]) + nonce + xchacha_seal(key, nonce, ad_of(identity, e["id"]), pt))
        expect(w + " value", value, e["value"])
        expect(w + " opened", open_value(key, identity, e["id"], value), (e["at"], e["contactId"], e["text"]))
    for i, v in enumerate(doc["invalid"]):
        w = "invalid[%d] (%s)" % (i, v["label"])
        try:
            open_value(key, identity, v["id"], v["value"])
            code = "ok"
        except JournalError as e:
            code = e.code
        expect(w + " code", code, v["code"])
    return "%d entries, %d unpadded, %d invalid values" % (
        len(doc["entries"]),
        len(doc["unpadded"]),
        len(doc["invalid"]),
    )
