"""Primitives from python3-cryptography (OpenSSL), plus the two it lacks, written from their specs:
HChaCha20 / XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2.2, §2.3) and ML-KEM-768 (mlkem.py);
and the two encodings several pages share: base64url without padding (RFC 4648 §5) and the
power-of-two padding buckets (docs/design.md, "Padding")."""
import base64
import hashlib
import re
import hmac as _hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpack import Fail

RAW = serialization.Encoding.Raw


def sha256(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def hmac256(key, data):
    return _hmac.new(key, data, hashlib.sha256).digest()


def hkdf(salt, ikm, info, length):
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def x25519_public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(RAW, serialization.PublicFormat.Raw)


def x25519(secret, public):
    """RFC 7748 X25519; OpenSSL refuses an all-zero output (a low-order peer key)."""
    return X25519PrivateKey.from_private_bytes(secret).exchange(X25519PublicKey.from_public_bytes(public))


def ed25519_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(RAW, serialization.PublicFormat.Raw)


def ed25519_sign(seed, msg):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(msg)


def ed25519_verify(public, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
        return True
    except Exception:
        return False


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _qr(s, a, b, c, d):
    # RFC 8439 §2.1 quarter round
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    """draft-irtf-cfrg-xchacha §2.2: the ChaCha20 block function's 20 rounds on
    constants ‖ key ‖ 16-byte nonce, without the final addition; output words 0..3 and 12..15."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12)
        _qr(s, 1, 5, 9, 13)
        _qr(s, 2, 6, 10, 14)
        _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15)
        _qr(s, 1, 6, 11, 12)
        _qr(s, 2, 7, 8, 13)
        _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def _xsub(key, nonce24):
    # §2.3: subkey = HChaCha20(key, nonce[0..15]); ChaCha20-Poly1305 nonce = 4 zero bytes ‖ nonce[16..23]
    return ChaCha20Poly1305(hchacha20(key, nonce24[:16])), b"\0\0\0\0" + nonce24[16:]


def xchacha_seal(key, nonce24, ad, pt):
    c, n = _xsub(key, nonce24)
    return c.encrypt(n, pt, ad)


def xchacha_open(key, nonce24, ad, ct):
    """None when the tag does not verify."""
    c, n = _xsub(key, nonce24)
    try:
        return c.decrypt(n, ct, ad)
    except InvalidTag:
        return None


def chacha_seal(key, nonce12, ad, pt):
    return ChaCha20Poly1305(key).encrypt(nonce12, pt, ad)


def chacha_open(key, nonce12, ad, ct):
    try:
        return ChaCha20Poly1305(key).decrypt(nonce12, ct, ad)
    except InvalidTag:
        return None


def aesgcm_seal(key, iv, ad, pt):
    return AESGCM(key).encrypt(iv, pt, ad)


def aesgcm_open(key, iv, ad, ct):
    try:
        return AESGCM(key).decrypt(iv, ct, ad)
    except InvalidTag:
        return None


def b64url(raw):
    """RFC 4648 §5 base64url, without `=` padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(value, canonical=False):
    """The bytes of base64url text without padding, or None when it is not: a character outside
    `A-Z a-z 0-9 - _`, or a length of 4n + 1 characters. `canonical` (core/codec/base64url.ts, RFC
    4648 §3.5) also refuses non-zero unused low bits in the last character."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", value) or len(value) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if canonical and b64url(raw) != value:
        return None
    return raw


# What JavaScript's `\s` and `trim()` take for white space (ECMAScript's WhiteSpace and
# LineTerminator): room names are cleaned with it (docs/protocol/rooms.md §7), a room link given
# alone is trimmed with it (§1). Python's str.isspace differs (U+001C..U+001F, no U+FEFF).
JS_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

MIN_BUCKET = 256


def bucket(n):
    """The smallest power of two >= max(n + 1, 256): the padded size of n bytes."""
    size = MIN_BUCKET
    while size < n + 1:
        size *= 2
    return size


def pad_bucket(data):
    """ISO/IEC 7816-4 to a power-of-two bucket: 0x80, then zeros (docs/design.md, "Padding")."""
    return data + b"\x80" + bytes(bucket(len(data)) - len(data) - 1)


def unpad_bucket(padded):
    """What `pad_bucket` padded, or None: a size that is not a power of two >= 256, a last non-zero
    byte that is not 0x80, or a bucket larger than the data needs."""
    n = len(padded)
    if n < MIN_BUCKET or n & (n - 1):
        return None
    body = padded.rstrip(b"\0")
    if not body or body[-1] != 0x80 or bucket(len(body) - 1) != n:
        return None
    return body[:-1]


def expect(what, mine, theirs):
    """Stop on the first mismatch, saying where (for byte strings: the first differing offset)."""
    if mine == theirs:
        return
    if isinstance(mine, (bytes, bytearray)) and isinstance(theirs, (bytes, bytearray)):
        at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
        lo = max(0, at - 16)
        raise Fail("%s differs at byte %d (lengths %d and %d):\n  computed: ...%s\n  vector:   ...%s"
                   % (what, at, len(mine), len(theirs), mine[lo : at + 24].hex(), theirs[lo : at + 24].hex()))
    show = lambda v: v.hex() if isinstance(v, (bytes, bytearray)) else repr(v)
    raise Fail("%s differs:\n  computed: %s\n  vector:   %s" % (what, show(mine)[:400], show(theirs)[:400]))
