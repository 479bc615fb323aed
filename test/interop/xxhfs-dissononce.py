#!/usr/bin/env python3
"""Second implementation of the XXhfs token rules (Noise HFS rev 1, section 4), built on
python3-dissononce's SymmetricState / CipherState / X25519 (Noise rev 34 section 5), used to
check docs/vectors/noise-xxhfs-mlkem768.json (ChaChaPoly_BLAKE2s) and
noise-xxhfs-mlkem768-aesgcm.json (AESGCM_SHA256) independently of core/noise.

dissononce has no KEM: the ML-KEM-768 values (the initiator's e1 public key from its seed d || z,
the responder's ciphertext and shared secret from its encapsulation seed m) come from
vectorcheck/mlkem.py, our pure-Python FIPS 203 (checked against C2SP's and Go's vectors, see
docs/vectors/README.md), never from the file: a vector carrying kem_public_key / kem_ciphertext /
kem_shared_secret fails, unless the input says {"override_kem": true} (only the negative test
does, to put a wrong KEM secret in). Otherwise a regenerated file holding those values (an input
of the old interface) would quietly turn the ML-KEM part into a check of our own TypeScript. A
vector without exported secrets fails too (every published one has them). Everything else -- the order of MixHash /
EncryptAndHash / MixKey, every DH, Split, transport encryption, the handshake hash and Loft's
exported secrets (docs/protocol/noise.md) -- is recomputed here and compared with the file.

Input: JSON on stdin, {"vectors": [...]} as in the files (plus "override_kem", see above).
Output: one line "ok <index>" or "FAIL <index> <what>" per vector; exit 1 if any failed.
"""
import json
import os
import sys

from dissononce.cipher.aesgcm import AESGCMCipher
from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.private import PrivateKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.blake2s import Blake2sHash
from dissononce.hash.sha256 import SHA256Hash
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.symmetricstate import SymmetricState

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectorcheck"))
import mlkem  # noqa: E402

SUITES = {"ChaChaPoly_BLAKE2s": (ChaChaPolyCipher, Blake2sHash), "AESGCM_SHA256": (AESGCMCipher, SHA256Hash)}


KEM_KEYS = ("kem_public_key", "kem_ciphertext", "kem_shared_secret")


def kem_values(v, override=False):
    h = bytes.fromhex
    seed = h(v["init_ephemeral_kem_seed"])
    ek, _ = mlkem.keygen(seed[:32], seed[32:])
    ss, ct = mlkem.encaps(ek, h(v["resp_kem_encapsulation_seed"]))
    out = {"kem_public_key": ek.hex(), "kem_ciphertext": ct.hex(), "kem_shared_secret": ss.hex()}
    if override:
        out.update({k: v[k] for k in out if k in v})
    return out


def replay(v, override_kem=False):
    h = bytes.fromhex
    carried = [k for k in KEM_KEYS if k in v]
    if carried and not override_kem:
        return "carries %s: ML-KEM values are computed here, never taken from the file" % ", ".join(carried)
    if not v.get("exported_secrets"):
        return "no exported secrets"
    v = dict(v, **kem_values(v, override_kem))
    dh = X25519DH()
    keys = {
        name: dh.generate_keypair(PrivateKey(h(v[name])))
        for name in ("init_static", "init_ephemeral", "resp_static", "resp_ephemeral")
    }
    suite = v["protocol_name"].split("MLKEM768_", 1)[1]
    if suite not in SUITES:
        return "unknown suite %s" % suite
    cipher, hashfn = SUITES[suite]
    ss = SymmetricState(CipherState(cipher()), hashfn())
    ss.initialize_symmetric(v["protocol_name"].encode())
    ss.mix_hash(h(v["init_prologue"]))
    msgs = v["messages"]
    out = []

    def mix_dh(a, b):
        ss.mix_key(dh.dh(keys[a], keys[b].public))

    # -> e, e1   (no key yet: e1 travels in the clear, EncryptAndHash == MixHash)
    e = keys["init_ephemeral"].public.data
    ss.mix_hash(e)
    m1 = e + ss.encrypt_and_hash(h(v["kem_public_key"])) + ss.encrypt_and_hash(h(msgs[0]["payload"]))
    out.append(m1)
    # <- e, ee, ekem1, s, es
    re = keys["resp_ephemeral"].public.data
    ss.mix_hash(re)
    mix_dh("resp_ephemeral", "init_ephemeral")  # ee
    m2 = re + ss.encrypt_and_hash(h(v["kem_ciphertext"]))
    ss.mix_key(h(v["kem_shared_secret"]))  # HFS section 4: MixKey(kem_output) after sending the ciphertext
    m2 += ss.encrypt_and_hash(keys["resp_static"].public.data)
    mix_dh("resp_static", "init_ephemeral")  # es (responder side: DH(s, re))
    m2 += ss.encrypt_and_hash(h(msgs[1]["payload"]))
    out.append(m2)
    # -> s, se
    m3 = ss.encrypt_and_hash(keys["init_static"].public.data)
    mix_dh("init_static", "resp_ephemeral")  # se (initiator side: DH(s, re))
    m3 += ss.encrypt_and_hash(h(msgs[2]["payload"]))
    out.append(m3)
    c1, c2 = ss.split()
    for i, m in enumerate(msgs[3:], start=3):
        cs = c1 if i % 2 == 0 else c2
        out.append(cs.encrypt_with_ad(b"", h(m["payload"])))
    for i, (mine, m) in enumerate(zip(out, msgs)):
        if mine.hex() != m["ciphertext"]:
            return "message %d differs" % i
    if ss.get_handshake_hash().hex() != v["handshake_hash"]:
        return "handshake hash differs"
    # noise.md "Exported secrets": the first output of HKDF(ck, h || label), at the end of the handshake
    for e in v["exported_secrets"]:
        secret = hashfn().hkdf(ss._ck, ss.get_handshake_hash() + e["label"].encode(), 2)[0]
        if secret.hex() != e["secret"]:
            return "exported secret %r differs" % e["label"]
    return None


def main():
    data = json.load(sys.stdin)
    override_kem = data.get("override_kem") is True
    failed = 0
    for i, v in enumerate(data["vectors"]):
        problem = replay(v, override_kem)
        if problem:
            failed += 1
            print("FAIL %d %s" % (i, problem))
        else:
            print("ok %d" % i)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
