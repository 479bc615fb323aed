"""Known-answer tests of the primitives written here, from their specs, run before any vector."""
import hashlib
import os

import mlkem
from mpack import Fail
from prims import hchacha20, xchacha_seal

HERE = os.path.dirname(os.path.abspath(__file__))


def run():
    # draft-irtf-cfrg-xchacha-03 §2.2.1 and §A.3.1
    k = bytes(range(32))
    if hchacha20(k, bytes.fromhex("000000090000004a0000000031415927")).hex() != \
            "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc":
        raise Fail("selftest: HChaCha20 (draft-irtf-cfrg-xchacha §2.2.1)")
    pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
    ct = xchacha_seal(bytes(range(0x80, 0xA0)), bytes(range(0x40, 0x58)), bytes.fromhex("50515253c0c1c2c3c4c5c6c7"), pt)
    if ct[:8].hex() != "bd6d179d3e83d43b" or ct[-16:].hex() != "c0875924c1c7987947deafd8780acf49":
        raise Fail("selftest: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §A.3.1)")
    # ML-KEM-768 against C2SP CCTV's intermediate values (FIPS 203 ipd key generation)
    v = {}
    with open(os.path.join(HERE, "cctv-mlkem768-intermediate.txt")) as f:
        for line in f:
            if not line.startswith("#"):
                name, _, value = line.strip().partition(" = ")
                v[name] = bytes.fromhex(value)
    ek, dk = mlkem.keygen(v["d"], v["z"], final=False)
    key, c = mlkem.encaps(ek, v["m"])
    if (ek, dk, key, c) != (v["ek"], v["dk"], v["K"], v["c"]) or mlkem.decaps(dk, c) != key:
        raise Fail("selftest: ML-KEM-768 (C2SP CCTV intermediate values)")
    if mlkem.decaps(dk, c[:-1] + bytes([c[-1] ^ 1])) != mlkem.J(v["z"] + c[:-1] + bytes([c[-1] ^ 1])):
        raise Fail("selftest: ML-KEM-768 implicit rejection (FIPS 203 Algorithm 18)")


def mlkem_accumulated(n=100):
    """FIPS 203 (final) ML-KEM-768 over n deterministic cases, hashed as C2SP CCTV's "accumulated"
    vectors and Go's crypto/internal mlkem TestAccumulated do (seed d ‖ z, m, a random
    ciphertext for implicit rejection, all from one SHAKE-128 stream; outputs into another).
    100 cases take ~7 s here, so it is a separate command: --mlkem-accumulated."""
    expected = "1114b1b6699ed191734fa339376afa7e285c9e6acf6ff0177d346696ce564415"
    s = hashlib.shake_128(b"").digest(n * (64 + 32 + 1088))
    o = hashlib.shake_128()
    p = 0
    for _ in range(n):
        ek, dk = mlkem.keygen(s[p : p + 32], s[p + 32 : p + 64])
        o.update(ek)
        key, c = mlkem.encaps(ek, s[p + 64 : p + 96])
        if mlkem.decaps(dk, c) != key:
            raise Fail("ML-KEM-768 accumulated: Decaps(Encaps) differs")
        o.update(c + key + mlkem.decaps(dk, s[p + 96 : p + 96 + 1088]))
        p += 64 + 32 + 1088
    got = o.hexdigest(32)
    if got != expected:
        raise Fail("ML-KEM-768 accumulated (100): %s, expected %s" % (got, expected))
    return "ML-KEM-768 accumulated, 100 cases: %s" % got
