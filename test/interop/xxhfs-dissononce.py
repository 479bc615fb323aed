#!/usr/bin/env python3
"""Second implementation of the XXhfs token rules (Noise HFS rev 1, section 4), built on
python3-dissononce's SymmetricState / CipherState / X25519 (Noise rev 34 section 5), used to
check docs/vectors/noise-xxhfs-mlkem768.json independently of core/noise.

dissononce has no KEM, so the caller supplies, per vector, the ML-KEM-768 values computed from the
vector's seeds by the KEM primitive alone (kem_public_key, kem_ciphertext, kem_shared_secret).
Everything else -- the order of MixHash / EncryptAndHash / MixKey, every DH, Split, transport
encryption, the handshake hash -- is recomputed here and compared with the file.

Input: JSON on stdin, {"vectors": [...]} as in the file plus the three kem_* fields.
Output: one line "ok <index>" or "FAIL <index> <what>" per vector; exit 1 if any failed.
"""
import json
import sys

from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.private import PrivateKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.blake2s import Blake2sHash
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.symmetricstate import SymmetricState


def replay(v):
    h = bytes.fromhex
    dh = X25519DH()
    keys = {
        name: dh.generate_keypair(PrivateKey(h(v[name])))
        for name in ("init_static", "init_ephemeral", "resp_static", "resp_ephemeral")
    }
    ss = SymmetricState(CipherState(ChaChaPolyCipher()), Blake2sHash())
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
    return None


def main():
    data = json.load(sys.stdin)
    failed = 0
    for i, v in enumerate(data["vectors"]):
        problem = replay(v)
        if problem:
            failed += 1
            print("FAIL %d %s" % (i, problem))
        else:
            print("ok %d" % i)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
