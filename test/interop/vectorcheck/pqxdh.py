"""Offline first contact, written from docs/protocol/prekeys.md (PQXDH rev 2 adapted; Signal PQXDH
§2-§4) and ratchet.md, to replay docs/vectors/pqxdh-v1.json: both prekey stores from their draws,
every signature, each bundle, Alice's key agreement (DH1..DH3, ML-KEM-768 Encaps, H0, the sealed
sender block, H1, S), her initial message and ratchet state, Bob's acceptance (Decaps, the
sealed sender, his store after and his ratchet state), the replay and the stale bundle."""
import struct

import mlkem
import ratchet
from mpack import Fail, pack, unpack
from prims import (chacha_open, chacha_seal, ed25519_public, ed25519_sign, ed25519_verify, expect, hkdf,
                   sha256, x25519, x25519_public)

DAY = 86_400_000
MAX_BUNDLE_AGE_MS = 30 * DAY
MAX_BUNDLE_CLOCK_SKEW_MS = DAY
DEFAULT_LIMITS = [1000, 2000, 14 * DAY]  # ratchet.md "Limits"
F = b"\xff" * 32  # PQXDH §2.2
u32 = lambda n: struct.pack(">I", n)


class PqxdhError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def prekey_sig(ik_secret, kind, payload):
    """prekeys.md "Prekey signatures": Ed25519(IK, "loft/prekey/v1" ‖ 0x00 ‖ kind ‖ payload)."""
    return ed25519_sign(ik_secret, b"loft/prekey/v1\x00" + bytes([kind]) + payload)


def time_message(t, spk_id, spk, kpk_id, kpk):
    return b"loft/prekey/v1\x00\x04" + struct.pack(">Q", t) + u32(spk_id) + spk + u32(kpk_id) + kpk


def create_store(ik_secret, draws, now):
    """prekeys.md "Bob's prekey store": SPK (32), PQSPK seed (64), then one-time keys; ids from 1.
    The draws' lengths say which one-time key each is (32: X25519, 64: ML-KEM seed d ‖ z)."""
    ik = ed25519_public(ik_secret)
    spk_secret, kpk_seed, rest = draws[0], draws[1], draws[2:]
    spk = x25519_public(spk_secret)
    kpk, _ = mlkem.keygen(kpk_seed[:32], kpk_seed[32:])
    opks, okpks = [], []
    nxt = 3
    for d in rest:
        if len(d) == 32:
            opks.append([nxt, d, x25519_public(d)])
        else:
            pk, _ = mlkem.keygen(d[:32], d[32:])
            okpks.append([nxt, d, pk, prekey_sig(ik_secret, 3, u32(nxt) + pk)])
        nxt += 1
    tsig = ed25519_sign(ik_secret, time_message(now, 1, spk, 2, kpk))
    return {
        "v": 2, "ik": ik, "next": nxt,
        "spks": [[1, spk_secret, spk, prekey_sig(ik_secret, 1, u32(1) + spk), now, tsig, []]],
        "kpks": [[2, kpk_seed, kpk, prekey_sig(ik_secret, 2, u32(2) + kpk), now]],
        "opks": opks, "okpks": okpks,
    }


def bundle_of(store):
    """prekeys.md "Bundle": the current public bundle of a store."""
    s, k = store["spks"][0], store["kpks"][0]
    return {
        "v": 2, "ik": store["ik"],
        "spk": {"id": s[0], "pk": s[2], "sig": s[3]},
        "kpk": {"id": k[0], "pk": k[2], "sig": k[3]},
        "opks": [{"id": o[0], "pk": o[2]} for o in store["opks"]],
        "okpks": [{"id": o[0], "pk": o[2], "sig": o[3]} for o in store["okpks"]],
        "t": s[4], "ts": s[5],
    }


def verify_bundle(b):
    ik = b["ik"]

    def ok(kind, e):
        return ed25519_verify(ik, e["sig"], b"loft/prekey/v1\x00" + bytes([kind]) + u32(e["id"]) + e["pk"])

    if b["v"] != 2:
        raise PqxdhError("LOFT_ERR_STALE_PREKEY" if b["v"] == 1 else "LOFT_ERR_UNSUPPORTED_VERSION")
    good = ok(1, b["spk"]) and ok(2, b["kpk"]) and all(ok(3, e) for e in b["okpks"])
    good = good and ed25519_verify(ik, b["ts"], time_message(b["t"], b["spk"]["id"], b["spk"]["pk"], b["kpk"]["id"], b["kpk"]["pk"]))
    if not good:
        raise PqxdhError("LOFT_ERR_BAD_SIGNATURE")


def transcript(ik_b, spk_id, spk, kpk_id, kpk, opk, ek, ct):
    """H0 of prekeys.md "Key agreement" step 6."""
    opk_field = b"\x00" if opk is None else b"\x01" + u32(opk[0]) + opk[1]
    return sha256(b"LoftPQXDH/v1", ik_b, u32(spk_id), spk, u32(kpk_id), kpk, opk_field, ek, ct)


def derive(h0, dh1, dh2, dh3, ss):
    """Step 6: seal key, then (after the sealed block) S; returns a function of the block."""
    tail = dh2 + (dh3 or b"") + ss
    seal_key = hkdf(b"\0" * 32, F + tail, b"LoftPQXDH/v1/sealed-sender" + h0, 32)

    def s_of(sealed):
        h1 = sha256(h0, sealed)
        return h1, hkdf(b"\0" * 32, F + dh1 + tail, b"LoftPQXDH/v1/CURVE25519_SHA-256_ML-KEM-768" + h1, 32)

    return seal_key, s_of


def initiate(alice_store, alice_ik_secret, bundle_bytes, expected_ik, plaintext, now, draw):
    b = unpack(bundle_bytes)
    verify_bundle(b)
    if b["ik"] != expected_ik:
        raise PqxdhError("LOFT_ERR_BAD_IDENTITY")
    if now - b["t"] > MAX_BUNDLE_AGE_MS or b["t"] - now > MAX_BUNDLE_CLOCK_SKEW_MS:
        raise PqxdhError("LOFT_ERR_STALE_PREKEY")
    ek_secret = draw(32)
    ek = x25519_public(ek_secret)
    opk = okpk = None
    if b["opks"]:
        opk = b["opks"][int.from_bytes(draw(4), "big") % len(b["opks"])]
    if b["okpks"]:
        okpk = b["okpks"][int.from_bytes(draw(4), "big") % len(b["okpks"])]
    kem = okpk or b["kpk"]
    if not mlkem.ek_valid(kem["pk"]):
        raise PqxdhError("LOFT_ERR_MALFORMED")
    ss, ct = mlkem.encaps(kem["pk"], draw(32))
    spk_a = alice_store["spks"][0]
    spk_b = b["spk"]
    v = {"dh1": x25519(spk_a[1], spk_b["pk"]), "dh2": x25519(ek_secret, spk_b["pk"]),
         "dh3": x25519(ek_secret, opk["pk"]) if opk else None, "ss": ss}
    v["h0"] = transcript(b["ik"], spk_b["id"], spk_b["pk"], kem["id"], kem["pk"], opk and (opk["id"], opk["pk"]), ek, ct)
    v["seal_key"], s_of = derive(v["h0"], v["dh1"], v["dh2"], v["dh3"], ss)
    v["sender_block"] = alice_store["ik"] + u32(spk_a[0]) + spk_a[2] + spk_a[3]
    sealed = chacha_seal(v["seal_key"], b"\0" * 12, v["h0"], v["sender_block"])
    v["h1"], v["sk"] = s_of(sealed)
    ad = alice_store["ik"] + b["ik"]  # ratchet.md "Associated data"
    sk, hka, nhkb = ratchet.split_bootstrap(v["sk"])
    state = ratchet.init_alice(sk, hka, nhkb, spk_b["pk"], ad, DEFAULT_LIMITS, draw(32))
    state, msg = ratchet.encrypt(state, plaintext, now, 1, draw(24))
    header = {"v": 1, "spk": spk_b["id"], "kpk": kem["id"], "ek": ek, "ct": ct, "sender": sealed, "msg": msg}
    if opk:
        header["opk"] = opk["id"]
    return pack(header), state, v


def accept(store, message_bytes, now, draw):
    """prekeys.md "Bob": steps 1-9; returns (store after, ratchet state, plaintext, IK_A, values)."""
    m = unpack(message_bytes)
    if m.get("v") != 1:
        raise PqxdhError("LOFT_ERR_UNSUPPORTED_VERSION")
    spk = next((s for s in store["spks"] if s[0] == m["spk"]), None)
    if spk is None:
        raise PqxdhError("LOFT_ERR_HANDSHAKE_STATE")
    opk = None
    if "opk" in m:
        opk = next((o for o in store["opks"] if o[0] == m["opk"]), None)
        if opk is None:
            raise PqxdhError("LOFT_ERR_REPLAY")
    kem = next((k for k in store["okpks"] + store["kpks"] if k[0] == m["kpk"]), None)
    if kem is None:
        raise PqxdhError("LOFT_ERR_REPLAY" if m["kpk"] < store["next"] else "LOFT_ERR_HANDSHAKE_STATE")
    if any(e[:32] == m["ek"] for e in spk[6]):
        raise PqxdhError("LOFT_ERR_REPLAY")
    _, dk = mlkem.keygen(kem[1][:32], kem[1][32:])
    v = {"ss": mlkem.decaps(dk, m["ct"]), "dh2": x25519(spk[1], m["ek"]),
         "dh3": x25519(opk[1], m["ek"]) if opk else None}
    v["h0"] = transcript(store["ik"], spk[0], spk[2], kem[0], kem[2], opk and (opk[0], opk[2]), m["ek"], m["ct"])
    v["seal_key"], s_of = derive(v["h0"], b"", v["dh2"], v["dh3"], v["ss"])
    block = chacha_open(v["seal_key"], b"\0" * 12, v["h0"], m["sender"])
    if block is None:
        raise PqxdhError("LOFT_ERR_DECRYPT")
    ik_a, spk_a_id, spk_a, sig = block[:32], struct.unpack(">I", block[32:36])[0], block[36:68], block[68:]
    if not ed25519_verify(ik_a, sig, b"loft/prekey/v1\x00\x01" + u32(spk_a_id) + spk_a):
        raise PqxdhError("LOFT_ERR_BAD_SIGNATURE")
    v["sender_block"] = block
    v["dh1"] = x25519(spk[1], spk_a)
    _, s_of = derive(v["h0"], v["dh1"], v["dh2"], v["dh3"], v["ss"])
    v["h1"], v["sk"] = s_of(m["sender"])
    sk, hka, nhkb = ratchet.split_bootstrap(v["sk"])
    state = ratchet.init_bob(sk, hka, nhkb, spk[1], ik_a + store["ik"], DEFAULT_LIMITS)
    try:
        state, pt = ratchet.decrypt(state, m["msg"], now, draw)
    except ratchet.RatchetError as e:
        raise PqxdhError(e.code)
    # step 9: commit
    after = dict(store)
    after["opks"] = [o for o in store["opks"] if not (opk and o[0] == opk[0])]
    after["okpks"] = [o for o in store["okpks"] if o[0] != kem[0]]
    entry = None
    if opk is None and kem in store["kpks"]:
        entry = m["ek"] + sha256(b"loft/prekey/seen-sender/v1", ik_a)[:8]
        after["spks"] = [s[:6] + [s[6] + [entry]] if s is spk else s for s in store["spks"]]
    return after, state, pt, ik_a, v, entry


def check(doc, name):
    h = bytes.fromhex
    draws = lambda hexes: [h(x) for x in hexes]
    created = doc["cases"][0]["bundle_time"]["created_at"]
    people = {}
    for who in ("alice", "bob"):
        p = doc[who]
        expect(who + " identity_key", ed25519_public(h(p["identity_secret"])), h(p["identity_key"]))
        st = create_store(h(p["identity_secret"]), draws(p["store_random"]), created)
        expect(who + " store", pack(st), h(p["store"]))
        people[who] = st
    bob_bare = create_store(h(doc["bob"]["identity_secret"]), draws(doc["bob"]["store_without_one_time_keys_random"]), created)
    expect("bob store_without_one_time_keys", pack(bob_bare), h(doc["bob"]["store_without_one_time_keys"]))
    bob_stores = [people["bob"], bob_bare]
    alice_ik = h(doc["alice"]["identity_secret"])
    for i, c in enumerate(doc["cases"]):
        w = "case %d (%s)" % (i, c["name"])
        store_b = bob_stores[i]
        expect(w + " bob_store_before", pack(store_b), h(c["bob_store_before"]))
        expect(w + " bundle", pack(bundle_of(store_b)), h(c["bundle"]))
        bt = c["bundle_time"]
        s, k = store_b["spks"][0], store_b["kpks"][0]
        expect(w + " bundle_time.signed_message", time_message(bt["created_at"], s[0], s[2], k[0], k[2]), h(bt["signed_message"]))
        expect(w + " bundle_time.signature", store_b["spks"][0][5], h(bt["signature"]))
        d = ratchet.Draws(c["initiate_random"], w + " initiate")
        msg, alice_state, va = initiate(people["alice"], alice_ik, h(c["bundle"]), store_b["ik"], h(c["plaintext"]), c["now"], d)
        d.done()
        for name, val in c["derivation"].items():
            expect("%s derivation.%s (Alice)" % (w, name), va[name], None if val is None else h(val))
        expect(w + " initial_message", msg, h(c["initial_message"]))
        expect(w + " alice_state", alice_state.serialize(), h(c["alice_state"]))
        d = ratchet.Draws(c["accept_random"], w + " accept")
        after, bob_state, pt, ik_a, vb, entry = accept(store_b, h(c["initial_message"]), c["now"], d)
        d.done()
        for name, val in c["derivation"].items():
            expect("%s derivation.%s (Bob)" % (w, name), vb[name], None if val is None else h(val))
        expect(w + " plaintext", pt, h(c["plaintext"]))
        expect(w + " sender_identity_key", ik_a, h(c["sender_identity_key"]))
        expect(w + " replay_cache_entry", entry, None if c["replay_cache_entry"] is None else h(c["replay_cache_entry"]))
        expect(w + " bob_store_after", pack(after), h(c["bob_store_after"]))
        expect(w + " bob_state", bob_state.serialize(), h(c["bob_state"]))
        try:
            accept(unpack(h(c["bob_store_after"])), h(c["initial_message"]), c["now"], lambda n: b"\0" * n)
            got = "accepted"
        except PqxdhError as e:
            got = e.code
        expect(w + " replay", got, c["replay_error"])
    sb = doc["stale_bundle"]
    try:
        initiate(people["alice"], alice_ik, h(sb["bundle"]), unpack(h(sb["bundle"]))["ik"], b"x", sb["now"],
                 ratchet.Draws([], "stale_bundle"))
        got = "accepted"
    except PqxdhError as e:
        got = e.code
    expect("stale_bundle", got, sb["error"])
    return "%d stores, %d cases, stale bundle" % (3, len(doc["cases"]))
