"""Known-answer tests of the primitives written here, from their specs, run before any vector."""
from mpack import Fail
from prims import hchacha20, xchacha_seal


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
