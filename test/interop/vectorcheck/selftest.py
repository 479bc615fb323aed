"""Known-answer tests of the primitives written here, from their specs, run before any vector."""
import hashlib
import os

import mlkem
import salsa
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
    salsa_kat()
    # ML-KEM-768 against C2SP CCTV's intermediate values: every step of FIPS 203 but the k byte
    # key generation appends to d (they follow the ipd there); `mlkem_accumulated` proves that one
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


def salsa_kat():
    """XSalsa20-Poly1305 (salsa.py) against published answers, typed in from the papers: the
    Salsa20 hash and expansion examples of Bernstein's "Salsa20 specification" §8 and §9, and the
    examples of "Cryptography in NaCl" (Bernstein, 2009): §9 HSalsa20 of the Alice/Bob shared
    secret to `firstkey`, then of `firstkey` and the nonce's first 16 bytes to `secondkey`, and §10
    the crypto_secretbox of the 131-byte message under `firstkey` (also NaCl's tests core1, core2,
    core4 and secretbox). Checking the SMP file alone would pass a misreading shared by both
    implementations (e.g. which words HSalsa20 outputs)."""
    h = bytes.fromhex
    if salsa.salsa20_hash(bytes(64)) != bytes(64):
        raise Fail("selftest: Salsa20 hash of zero (Salsa20 specification §8)")
    if salsa.salsa20_hash(h(
            "d39f0d734c3752b70375de25bfbbea8831edb330016ab2dbafc7a6305610b3cf"
            "1ff0203f0f535da174933071ee37cc244fc9eb4f03519c2fcb1af4f358766836")) != h(
            "6d2ab2a89cf0f8eea8c4becb1a6eaa9a1d1d961a961eebf9bea3fb3045903339"
            "7628989db4391b5e6b2aec231b6f7272dbece8876f9b6e1218e85f9eb31330ca"):
        raise Fail("selftest: Salsa20 hash (Salsa20 specification §8)")
    # §9: k0 = 1…16, k1 = 201…216, n = 101…116
    if salsa.salsa20_expand(bytes([*range(1, 17), *range(201, 217)]), bytes(range(101, 117))) != h(
            "45254427290f6bc1ff8b7a06aae9d9625990b66a1533c841ef31de22d772287e"
            "68c507e1c5991f02664e4cb054f5f6b8b1a0858206489577c0c384ecea67f64a"):
        raise Fail("selftest: Salsa20 expansion (Salsa20 specification §9)")
    shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    firstkey = h("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
    nonce = h("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
    if salsa.hsalsa20(shared, bytes(16)) != firstkey:
        raise Fail("selftest: HSalsa20 firstkey (Cryptography in NaCl §9)")
    if salsa.hsalsa20(firstkey, nonce[:16]) != h(
            "dc908dda0b9344a953629b733820778880f3ceb421bb61b91cbd4c3e66256ce4"):
        raise Fail("selftest: HSalsa20 secondkey (Cryptography in NaCl §9)")
    m = h("be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129"
          "6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde"
          "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705")
    box = h("f3ffc7703f9400e52a7dfb4b3d3305d9"  # Poly1305 tag, then the ciphertext
            "8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c972"
            "71d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da"
            "99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5")
    if len(m) != 131 or salsa.secretbox(firstkey, nonce, m) != box:
        raise Fail("selftest: crypto_secretbox (Cryptography in NaCl §10)")


def mlkem_accumulated(final=True):
    """FIPS 203 (final) ML-KEM-768 over 100 deterministic cases, hashed as C2SP CCTV's "accumulated"
    vectors and Go's crypto/internal mlkem TestAccumulated do (seed d ‖ z, m, a random
    ciphertext for implicit rejection, all from one SHAKE-128 stream; outputs into another). The
    one published answer that proves the final standard's key generation (G(d ‖ k)), which the
    intermediate values above cannot (docs/vectors/README.md, "The checker"). 2–3 s here, so
    `--all` runs it once and a run on named files does not. `final=False` (ipd key generation)
    must fail: what shows the check tells the two apart."""
    n = 100
    expected = "1114b1b6699ed191734fa339376afa7e285c9e6acf6ff0177d346696ce564415"
    s = hashlib.shake_128(b"").digest(n * (64 + 32 + 1088))
    o = hashlib.shake_128()
    p = 0
    for _ in range(n):
        ek, dk = mlkem.keygen(s[p : p + 32], s[p + 32 : p + 64], final)
        o.update(ek)
        key, c = mlkem.encaps(ek, s[p + 64 : p + 96])
        if mlkem.decaps(dk, c) != key:
            raise Fail("ML-KEM-768 accumulated: Decaps(Encaps) differs")
        o.update(c + key + mlkem.decaps(dk, s[p + 96 : p + 96 + 1088]))
        p += 64 + 32 + 1088
    got = o.hexdigest(32)
    what = "ML-KEM-768 accumulated (FIPS 203%s key generation), 100 cases" % ("" if final else " ipd")
    if got != expected:
        raise Fail("%s: %s, expected %s" % (what, got, expected))
    return "%s: %s" % (what, got)
