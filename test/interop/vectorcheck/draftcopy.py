"""Draft copies, written from docs/protocol/chat.md §9 ("Draft copies": the key, the store key,
the AD, the fields and their padding, the value, and the order of the decoding errors), to replay
docs/vectors/draft-copy-v1.json."""
import struct

from prims import b64url, bucket, expect, hkdf, pad_bucket, unb64url, unpad_bucket, xchacha_open, xchacha_seal

VERSION = 0x01
NONCE = 24
TAG = 16
TIME = 8
MAX_TEXT_UNITS = 64_000


# The longest value: version, nonce, the bucket of the time and the longest text (64 000 UTF-16
# units at 3 UTF-8 bytes each), tag; in base64url without padding.
MAX_COPY_CHARS = -(-((1 + NONCE + bucket(TIME + 3 * MAX_TEXT_UNITS) + TAG) * 4) // 3)


class CopyError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def copy_key(identity, private):
    return hkdf(identity, private, b"loft/draft-copy/v1 key", 32)


def store_key(identity, draft_key):
    return "loft.draft-copy." + identity.hex() + "." + draft_key


def ad_of(identity, draft_key):
    return b"loft/draft-copy/v1\0" + identity + draft_key.encode()


def plaintext_of(at, text):
    """The fields (at u64 BE, text UTF-8), then 0x80 and zeros to their bucket."""
    return pad_bucket(struct.pack(">Q", at) + text.encode())


def seal(key, identity, draft_key, at, text, nonce):
    pt = plaintext_of(at, text)
    return b64url(bytes([VERSION]) + nonce + xchacha_seal(key, nonce, ad_of(identity, draft_key), pt))


def open_value(key, identity, draft_key, value):
    """(at, text), or CopyError with the code of the first check that fails, in the docs' order."""
    if len(value) > MAX_COPY_CHARS:
        raise CopyError("LOFT_ERR_FRAME_TOO_LARGE")
    raw = unb64url(value)
    if raw is None or len(raw) < 1 + NONCE + TAG + TIME:
        raise CopyError("LOFT_ERR_MALFORMED")
    if raw[0] != VERSION:
        raise CopyError("LOFT_ERR_UNSUPPORTED_VERSION")
    pt = xchacha_open(key, raw[1 : 1 + NONCE], ad_of(identity, draft_key), raw[1 + NONCE :])
    if pt is None:
        raise CopyError("LOFT_ERR_DECRYPT")
    fields = unpad_bucket(pt)
    if fields is None:
        raise CopyError("LOFT_ERR_PADDING")
    if len(fields) < TIME:
        raise CopyError("LOFT_ERR_SCHEMA")
    (at,) = struct.unpack(">Q", fields[:TIME])
    if at > 2**53 - 1:
        raise CopyError("LOFT_ERR_SCHEMA")
    try:
        text = fields[TIME:].decode("utf-8")  # strict: no overlong forms, no surrogates
    except UnicodeDecodeError:
        raise CopyError("LOFT_ERR_SCHEMA") from None
    if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_UNITS:
        raise CopyError("LOFT_ERR_SCHEMA")
    return at, text


def check(doc, name):
    h = bytes.fromhex
    identity, private = h(doc["identityKey"]), h(doc["privateIdentityKey"])
    key = copy_key(identity, private)
    expect("key", key, h(doc["key"]))
    expect("maxCopyChars", MAX_COPY_CHARS, doc["maxCopyChars"])
    for i, c in enumerate(doc["copies"]):
        w = "copies[%d] (%s)" % (i, c["label"])
        expect(w + " store key", store_key(identity, c["draftKey"]), c["storeKey"])
        expect(w + " ad", ad_of(identity, c["draftKey"]), h(c["ad"]))
        expect(w + " plaintext", plaintext_of(c["at"], c["text"]), h(c["plaintext"]))
        value = seal(key, identity, c["draftKey"], c["at"], c["text"], h(c["nonce"]))
        expect(w + " value", unb64url(value), unb64url(c["value"]))
        expect(w + " value", value, c["value"])
        expect(w + " opened", open_value(key, identity, c["draftKey"], c["value"]), (c["at"], c["text"]))
    for i, v in enumerate(doc["invalid"]):
        w = "invalid[%d] (%s)" % (i, v["label"])
        try:
            open_value(key, identity, v["draftKey"], v["value"])
            code = "opens"
        except CopyError as e:
            code = e.code
        expect(w + " code", code, v["code"])
    # The limit, past which a value is refused before it is decoded (FRAME_TOO_LARGE).
    try:
        open_value(key, identity, "chat:", "A" * (MAX_COPY_CHARS + 1))
        code = "opens"
    except CopyError as e:
        code = e.code
    expect("a value one character past maxCopyChars: code", code, "LOFT_ERR_FRAME_TOO_LARGE")
    return "%d copies, %d invalid values" % (len(doc["copies"]), len(doc["invalid"]))
