"""Double Ratchet with header encryption, written from Signal DR rev 1 §3-§5 and
docs/protocol/ratchet.md (KDFs, message layout, limits, state serialization), to replay
docs/vectors/ratchet-v1.json, ratchet-v2.json and ratchet-v3.json: every key, message, plaintext, error and
serialized state is recomputed and compared."""
import struct

from mpack import Fail, pack
from prims import (aesgcm_open, aesgcm_seal, expect, hkdf, hmac256, x25519, x25519_public,
                   xchacha_open, xchacha_seal)

MAX_SKIPPED_CHAINS = 16  # ratchet.md "Limits"
MAX_MESSAGE = 16 << 20
OVERHEAD = 1 + 24 + 56 + 16


class RatchetError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def split_bootstrap(secret):
    """ratchet.md "Starting a session": SK ‖ shared_hka ‖ shared_nhkb."""
    o = hkdf(b"\0" * 32, secret, b"LoftDoubleRatchet/v1/bootstrap", 96)
    return o[:32], o[32:64], o[64:]


def kdf_rk_he(rk, dh_out):
    """DR §4.2 KDF_RK_HE with ratchet.md's HKDF parameters: RK ‖ CK ‖ NHK."""
    o = hkdf(rk, dh_out, b"LoftDoubleRatchet/v1/root", 96)
    return o[:32], o[32:64], o[64:]


def kdf_ck(ck):
    """DR §5.2 KDF_CK: (next chain key, message key)."""
    return hmac256(ck, b"\x02"), hmac256(ck, b"\x01")


def dh(secret, public, code="LOFT_ERR_MALFORMED"):
    """ratchet.md: a low-order key (all-zero output) is refused: MALFORMED at initialisation,
    DECRYPT for a peer ratchet key in a received header."""
    try:
        return x25519(secret, public)
    except Exception:
        raise RatchetError(code)


class State:
    FIELDS = ("ad", "dhs", "dhsPub", "dhr", "rk", "cks", "ckr", "hks", "hkr", "nhks", "nhkr", "ns", "nr", "pn", "skipped", "limits")

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.get(f))

    def copy(self):
        s = State(**{f: getattr(self, f) for f in self.FIELDS})
        s.skipped = [list(e) for e in self.skipped]
        return s

    def serialize(self):
        """ratchet.md "Stored state": canonical MessagePack map, skipped oldest first."""
        d = {f: getattr(self, f) for f in self.FIELDS}
        d["v"] = 1
        d["limits"] = list(self.limits)
        return pack(d)


def init_alice(sk, hka, nhkb, bob_public, ad, limits, dhs_secret):
    """DR §4.4 RatchetInitAliceHE."""
    rk, cks, nhks = kdf_rk_he(sk, dh(dhs_secret, bob_public))
    return State(ad=ad, dhs=dhs_secret, dhsPub=x25519_public(dhs_secret), dhr=bob_public, rk=rk, cks=cks, ckr=None,
                 hks=hka, hkr=None, nhks=nhks, nhkr=nhkb, ns=0, nr=0, pn=0, skipped=[], limits=limits)


def init_bob(sk, hka, nhkb, bob_secret, ad, limits):
    """DR §4.4 RatchetInitBobHE."""
    return State(ad=ad, dhs=bob_secret, dhsPub=x25519_public(bob_secret), dhr=None, rk=sk, cks=None, ckr=None,
                 hks=None, hkr=None, nhks=nhkb, nhkr=hka, ns=0, nr=0, pn=0, skipped=[], limits=limits)


def _expire(s, now):
    # ratchet.md "Limits": a key stored at t still opens at t + TTL, is gone at t + TTL + 1
    ttl = s.limits[2]
    s.skipped = [e for e in s.skipped if now - e[3] <= ttl]


def encrypt(state, pt, now, version, nonce):
    """DR §4.5 RatchetEncryptHE with ratchet.md's layout; returns (new state, message)."""
    if state.cks is None:
        raise Fail("encrypt step on a state that cannot send")
    s = state.copy()
    _expire(s, now)
    s.cks, mk = kdf_ck(s.cks)
    header = s.dhsPub + struct.pack(">II", s.pn, s.ns)
    v = bytes([version])
    prefix = v + nonce + _seal_header(version, s.hks, nonce, v, header)
    body = _seal_body(version, mk, nonce, s.ad + prefix, pt)
    s.ns += 1
    return s, prefix + body


def _seal_header(version, hk, nonce, v, header):
    # ratchet.md "Version 0x03": AES-256-GCM under HK, IV = the nonce's last 12 bytes
    if version == 3:
        return aesgcm_seal(hk, nonce[12:], v, header)
    return xchacha_seal(hk, nonce, v, header)


def _open_header(version, hk, nonce, v, ehdr):
    if version == 3:
        return aesgcm_open(hk, nonce[12:], v, ehdr)
    return xchacha_open(hk, nonce, v, ehdr)


def _seal_body(version, mk, nonce, ad, pt):
    if version == 1:
        return xchacha_seal(mk, nonce, ad, pt)
    return aesgcm_seal(mk, nonce[:12], ad, pt)


def _open_body(version, mk, nonce, ad, ct):
    pt = xchacha_open(mk, nonce, ad, ct) if version == 1 else aesgcm_open(mk, nonce[:12], ad, ct)
    if pt is None:
        raise RatchetError("LOFT_ERR_DECRYPT")
    return pt


def _skip(s, until, now):
    """DR §4.6 SkipMessageKeysHE, with Loft's bounds (maxSkip per chain, maxSkippedKeys total)."""
    if s.nr + s.limits[0] < until:
        raise RatchetError("LOFT_ERR_TOO_MANY_SKIPPED")
    if s.ckr is None:
        return
    while s.nr < until:
        s.ckr, mk = kdf_ck(s.ckr)
        s.skipped.append([s.hkr, s.nr, mk, now])
        s.nr += 1
    s.skipped = s.skipped[max(0, len(s.skipped) - s.limits[1]):]


def _bound_chains(s):
    # ratchet.md "Limits": keys of at most the MAX_SKIPPED_CHAINS most recent receiving chains
    chains = []
    for e in s.skipped:
        if e[0] not in chains:
            chains.append(e[0])
    keep = set(chains[-MAX_SKIPPED_CHAINS:])
    s.skipped = [e for e in s.skipped if e[0] in keep]


def decrypt(state, msg, now, draw):
    """DR §4.6 RatchetDecryptHE in ratchet.md's order ("Receiving"); returns (new state, plaintext).
    `draw(n)` supplies the random bytes of the new DH key, only after the body authenticated."""
    if len(msg) > MAX_MESSAGE:
        raise RatchetError("LOFT_ERR_FRAME_TOO_LARGE")
    if len(msg) < OVERHEAD:
        raise RatchetError("LOFT_ERR_MALFORMED")
    version = msg[0]
    if version not in (1, 2, 3):
        raise RatchetError("LOFT_ERR_UNSUPPORTED_VERSION")
    v, nonce, ehdr, body = msg[:1], msg[1:25], msg[25:81], msg[81:]
    s = state.copy()
    _expire(s, now)
    ad = s.ad + msg[:81]

    def header(hk):
        if hk is None:
            return None
        h = _open_header(version, hk, nonce, v, ehdr)
        return None if h is None else (h[:32], *struct.unpack(">II", h[32:]))

    def take_skipped(hk, n):
        for i, e in enumerate(s.skipped):
            if e[0] == hk and e[1] == n:
                del s.skipped[i]
                return e[2]
        return None

    # 1. the current receiving chain
    h = header(s.hkr)
    if h is not None:
        _, _, n = h
        mk = take_skipped(s.hkr, n)
        if mk is None:
            if n < s.nr:
                raise RatchetError("LOFT_ERR_REPLAY")
            _skip(s, n, now)
            s.ckr, mk = kdf_ck(s.ckr)
            s.nr += 1
        pt = _open_body(version, mk, nonce, ad, body)
        _bound_chains(s)
        return s, pt
    # 2. the next receiving header key: the peer stepped its DH ratchet (DR §4.6 DHRatchetHE)
    h = header(s.nhkr)
    if h is not None:
        dhr, pn, n = h
        _skip(s, pn, now)
        s.pn, s.ns, s.nr = s.ns, 0, 0
        s.hks, s.hkr, s.dhr = s.nhks, s.nhkr, dhr
        s.rk, s.ckr, s.nhkr = kdf_rk_he(s.rk, dh(s.dhs, dhr, "LOFT_ERR_DECRYPT"))
        _skip(s, n, now)
        s.ckr, mk = kdf_ck(s.ckr)
        s.nr += 1
        pt = _open_body(version, mk, nonce, ad, body)
        s.dhs = draw(32)
        s.dhsPub = x25519_public(s.dhs)
        s.rk, s.cks, s.nhks = kdf_rk_he(s.rk, dh(s.dhs, s.dhr))
        _bound_chains(s)
        return s, pt
    # 3. older chains that still have skipped keys
    for hk in dict.fromkeys(e[0] for e in s.skipped):
        h = header(hk)
        if h is not None:
            mk = take_skipped(hk, h[2])
            if mk is None:
                raise RatchetError("LOFT_ERR_REPLAY")
            pt = _open_body(version, mk, nonce, ad, body)
            return s, pt
    raise RatchetError("LOFT_ERR_DECRYPT")


def expire(state, now):
    s = state.copy()
    _expire(s, now)
    return s


class Draws:
    def __init__(self, hexes, where):
        self.left = [bytes.fromhex(x) for x in hexes]
        self.where = where

    def __call__(self, n):
        if not self.left:
            raise Fail("%s: draws more random bytes than the vector lists" % self.where)
        b = self.left.pop(0)
        if len(b) != n:
            raise Fail("%s: draws %d random bytes, the vector lists %d" % (self.where, n, len(b)))
        return b

    def done(self):
        if self.left:
            raise Fail("%s: the vector lists random draws this implementation did not make" % self.where)


def start_session(sess, where):
    """ratchet.md "From a Noise handshake": both states from the exported secret."""
    h = bytes.fromhex
    sk, hka, nhkb = split_bootstrap(h(sess["exported"]))
    lim = sess["limits"]
    limits = [lim["maxSkip"], lim["maxSkippedKeys"], lim["skippedKeyTtlMs"]]
    ad = h(sess["ad"])
    expect(where + " bob_ratchet_public", x25519_public(h(sess["bob_ratchet_secret"])), h(sess["bob_ratchet_public"]))
    draws = Draws(sess["alice_init_random"], where + " initAlice")
    alice = init_alice(sk, hka, nhkb, h(sess["bob_ratchet_public"]), ad, limits, draws(32))
    draws.done()
    bob = init_bob(sk, hka, nhkb, h(sess["bob_ratchet_secret"]), ad, limits)
    expect(where + " alice_state", alice.serialize(), h(sess["alice_state"]))
    expect(where + " bob_state", bob.serialize(), h(sess["bob_state"]))
    return {"alice": alice, "bob": bob}


def run_steps(parties, steps, where):
    h = bytes.fromhex
    for i, st in enumerate(steps):
        w = "%s step %d (%s %s%s)" % (where, i, st["party"], st["op"], ": " + st["note"] if st.get("note") else "")
        s = parties[st["party"]]
        draws = Draws(st.get("random", []), w)
        if st["op"] == "encrypt":
            s, msg = encrypt(s, h(st["plaintext"]), st["now"], st.get("version", 1), draws(24))
            expect(w + " message", msg, h(st["message"]))
        elif st["op"] == "decrypt":
            try:
                s, pt = decrypt(s, h(st["message"]), st["now"], draws)
                expect(w + " outcome", "plaintext " + pt.hex(), "plaintext " + st["plaintext"] if "plaintext" in st else st["error"])
            except RatchetError as e:
                expect(w + " outcome", e.code, st.get("error", "plaintext " + st.get("plaintext", "")))
        elif st["op"] == "expire":
            s = expire(s, st["now"])
        else:
            raise Fail("%s: unknown op %r" % (w, st["op"]))
        draws.done()
        expect(w + " state", s.serialize(), h(st["state"]))
        parties[st["party"]] = s


def check(doc, name):
    h = bytes.fromhex
    k = doc["kdf"]
    b = k["bootstrap"]
    expect("kdf.bootstrap", b"".join(split_bootstrap(h(b["secret"]))), h(b["sk"] + b["shared_hka"] + b["shared_nhkb"]))
    r = k["kdf_rk"]
    expect("kdf.kdf_rk", b"".join(kdf_rk_he(h(r["rk"]), h(r["dh_out"]))), h(r["root_key"] + r["chain_key"] + r["next_header_key"]))
    c = k["kdf_ck"]
    expect("kdf.kdf_ck", b"".join(kdf_ck(h(c["ck"]))), h(c["next_chain_key"] + c["message_key"]))
    run_steps(start_session(doc["session"], "session"), doc["steps"], "steps")
    count = len(doc["steps"])
    for e in doc["limit_edges"]:
        run_steps(start_session(e["session"], e["name"]), e["steps"], e["name"])
        count += len(e["steps"])
    return "%d steps, %d limit edge sessions" % (count, len(doc["limit_edges"]))
