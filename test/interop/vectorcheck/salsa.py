"""XSalsa20-Poly1305 (NaCl secretbox / crypto_box after beforenm), for SMP's server→recipient
layer: Salsa20 and HSalsa20 written from Bernstein's "Salsa20 specification" and "Extending the
Salsa20 nonce" (HSalsa20: words 0, 5, 10, 15, 6, 7, 8, 9 of the rounds, no feed-forward), Poly1305
from python3-cryptography. secretbox: the first 32 keystream bytes key Poly1305, the message is
XORed with the keystream from byte 32 on, the output is tag ‖ ciphertext."""
import struct

from cryptography.hazmat.primitives.poly1305 import Poly1305

SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _rounds(x):
    def qr(a, b, c, d):
        x[b] ^= _rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
        x[c] ^= _rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
        x[d] ^= _rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
        x[a] ^= _rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)

    for _ in range(10):
        qr(0, 4, 8, 12)  # columns
        qr(5, 9, 13, 1)
        qr(10, 14, 2, 6)
        qr(15, 3, 7, 11)
        qr(0, 1, 2, 3)  # rows
        qr(5, 6, 7, 4)
        qr(10, 11, 8, 9)
        qr(15, 12, 13, 14)
    return x


def _state(key, n16):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", n16)
    return [SIGMA[0], *k[:4], SIGMA[1], *n, SIGMA[2], *k[4:], SIGMA[3]]


def hsalsa20(key, n16):
    x = _rounds(_state(key, n16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def salsa20_hash(b64):
    """The Salsa20 hash function of 64 bytes (Salsa20 specification §8): 20 rounds, then each
    input word added back."""
    s = list(struct.unpack("<16I", b64))
    x = _rounds(list(s))
    return struct.pack("<16I", *((a + b) & 0xFFFFFFFF for a, b in zip(x, s)))


def salsa20_expand(key, n16):
    """The Salsa20 expansion function of a 32-byte key and a 16-byte input (specification §9)."""
    return salsa20_hash(struct.pack("<16I", *_state(key, n16)))


def salsa20_stream(key, nonce8, length):
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += salsa20_expand(key, nonce8 + struct.pack("<Q", counter))
        counter += 1
    return bytes(out[:length])


def secretbox(key, nonce24, msg):
    sub = hsalsa20(key, nonce24[:16])
    stream = salsa20_stream(sub, nonce24[16:], 32 + len(msg))
    ct = bytes(a ^ b for a, b in zip(msg, stream[32:]))
    return Poly1305.generate_tag(stream[:32], ct) + ct
