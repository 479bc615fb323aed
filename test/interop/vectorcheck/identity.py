"""SREMP identities, written from docs/protocol/identity.md and wire.md ("Signed requests"), to
replay docs/vectors/identity-*.json: keys from seeds, the canonical IdentityVerifiedData, signed
bytes and signatures, updates, safety codes (Signal NumericFingerprint), contact links and the
signed request frames."""
import base64
import hashlib
import os
import unicodedata

from mpack import Fail, pack, unpack
from prims import ed25519_public, ed25519_sign, ed25519_verify, expect, hkdf, x25519_public

SEED_SALT = b"loft/identity-seed/v1"
FLAG_KEYS = ("is_machine_account", "is_relay_server", "prefers_async", "uses_relay")


def keys_from_seed(seed):
    """identity.md "Keys": HKDF-SHA256(salt, IKM = seed, info), 32 bytes each."""
    return hkdf(SEED_SALT, seed, b"ed25519 identity key", 32), hkdf(SEED_SALT, seed, b"x25519 noise key", 32)


def verified_map(v, identity_key, noise_key):
    m = {"created": v["created"], "flags": {k: v["flags"][k] for k in FLAG_KEYS}, "identity_key": identity_key,
         "noise_key": noise_key, "username": v["username"], "version": v["version"]}
    ext = v.get("extensions")
    if ext:
        e = {}
        if "profile_picture" in ext:
            e["profile_picture"] = bytes.fromhex(ext["profile_picture"])
        if "additional_metadata" in ext:
            e["additional_metadata"] = {k: bytes.fromhex(x) for k, x in ext["additional_metadata"].items()}
        m["extensions"] = e
    return m


def check_identity(v, sk, nk_secret, where):
    h = bytes.fromhex
    ik, nk = ed25519_public(sk), x25519_public(nk_secret)
    expect(where + " private_identity_key", sk, h(v["private_identity_key"]))
    expect(where + " private_noise_key", nk_secret, h(v["private_noise_key"]))
    expect(where + " identity_key", ik, h(v["identity_key"]))
    expect(where + " noise_key", nk, h(v["noise_key"]))
    vm = verified_map(v, ik, nk)
    data = pack(vm)
    expect(where + " verified_data", data, h(v["verified_data"]))
    signed = b"loft/sremp/identity/v1\x00" + data
    expect(where + " signed_bytes", signed, h(v["signed_bytes"]))
    sig = ed25519_sign(sk, signed)
    expect(where + " signature", sig, h(v["signature"]))
    expect(where + " identity", pack({"signature": sig, "verified": vm}), h(v["identity"]))


def check_vectors(doc):
    people = {}
    for v in doc["identities"]:
        w = "identity " + v["name"]
        expect(w + " username (NFC of the input)", unicodedata.normalize("NFC", v["username_input"]), v["username"])
        expect(w + " created", v["created"], v["now"])
        sk, nk = keys_from_seed(bytes.fromhex(v["seed"]))
        check_identity(v, sk, nk, w)
        people[v["name"]] = (v, sk, nk)
    for u in doc["updates"]:
        w = "update " + u["name"]
        old, sk, nk = people[u["from"]]
        ch = u["changes"]
        if "noise_seed" in ch:  # identity.md "Keys": a rotation from a seed
            nk = hkdf(SEED_SALT, bytes.fromhex(ch["noise_seed"]), b"x25519 rotated noise key", 32)
        expect(w + " username", ch.get("username", old["username"]), u["username"])
        expect(w + " version", old["version"] + 1, u["version"])
        expect(w + " created", u["now"], u["created"])
        check_identity(u, sk, nk, w)
    return "%d identities, %d updates" % (len(doc["identities"]), len(doc["updates"]))


def fingerprint(key, iterations):
    """identity.md "Safety code": Signal NumericFingerprint with key = stableId."""
    d = hashlib.sha512(b"\x00\x00" + key + key + key).digest()
    for _ in range(iterations - 1):
        d = hashlib.sha512(d + key).digest()
    return d


def digits(h):
    return "".join("%05d" % (int.from_bytes(h[i : i + 5], "big") % 100000) for i in range(0, 30, 5))


def check_safety_codes(doc):
    for i, p in enumerate(doc["pairs"]):
        w = "pair %d (%s, %s)" % (i, p["a"], p["b"])
        ha = fingerprint(bytes.fromhex(p["identity_key_a"]), doc["iterations"])
        hb = fingerprint(bytes.fromhex(p["identity_key_b"]), doc["iterations"])
        code = "".join(sorted([digits(ha), digits(hb)]))
        expect(w + " code", code, p["code"])
        expect(w + " formatted", " ".join(code[j : j + 5] for j in range(0, 60, 5)), p["formatted"])
        expect(w + " qr_shown_by_a", "LOFT:SC1:" + (ha[:32] + hb[:32]).hex().upper(), p["qr_shown_by_a"])
        expect(w + " qr_shown_by_b", "LOFT:SC1:" + (hb[:32] + ha[:32]).hex().upper(), p["qr_shown_by_b"])
    return "%d pairs" % len(doc["pairs"])


def _identities():
    here = os.path.dirname(os.path.abspath(__file__))
    import json

    with open(os.path.join(here, "..", "..", "..", "docs", "vectors", "identity-vectors.json")) as f:
        doc = json.load(f)
    out = {}
    for v in doc["identities"]:
        sk, _ = keys_from_seed(bytes.fromhex(v["seed"]))
        out[v["name"]] = (sk, bytes.fromhex(v["identity"]))
    return out


def check_contact_links(doc):
    ids = _identities()
    for i, link in enumerate(doc["links"]):
        w = "link %d (%s)" % (i, link["identity"])
        m = {"i": ids[link["identity"]][1], "r": link["relay"], "s": link["signaling"], "v": 1}
        if link.get("refs"):
            m["x"] = {k: bytes.fromhex(x) for k, x in link["refs"].items()}
        payload = base64.urlsafe_b64encode(pack(m)).rstrip(b"=").decode()
        expect(w + " payload", payload, link["payload"])
        expect(w + " url", "https://loft.example/#c=" + payload, link["url"])
    return "%d links" % len(doc["links"])


REQUESTS = {  # wire.md "Signed requests": frame key -> (type, signature field, context)
    "register_request": ("REGISTER_REQUEST", "signature", "register-request"),
    "relay_register": ("RELAY_REGISTER", "auth_signature", "relay-register"),
    "retrieve_messages": ("RETRIEVE_MESSAGES", "auth_signature", "retrieve-messages"),
    "store_message": ("STORE_MESSAGE", "sender_signature", "store-message"),
    "delivery_confirmation": ("DELIVERY_CONFIRMATION", "signature", "delivery-confirmation"),
}


def check_signed_requests(doc):
    h = bytes.fromhex
    vh = {"protocol_name": "SREMP", "t": "VERSION_HEADER", "version_major": 1, "version_minor": 0}
    expect("version_header", pack(vh), h(doc["version_header"]))
    keys = {ed25519_public(sk): sk for sk, _ in _identities().values()}
    for name, (t, field, ctx) in REQUESTS.items():
        frame = h(doc[name])
        m = unpack(frame)
        expect(name + " canonical form", pack(m), frame)
        expect(name + " t", m["t"], t)
        body = {k: v for k, v in m.items() if k not in ("id", field)}
        signed = b"loft/sremp/" + ctx.encode() + b"/v1\x00" + pack(body)
        signer = {"REGISTER_REQUEST": lambda: unpack(m["identity"])["verified"]["identity_key"],
                  "DELIVERY_CONFIRMATION": lambda: m["delivered_to"]}.get(t, lambda: m.get("identity"))()
        if signer is None:  # STORE_MESSAGE names no sender: the one vector identity whose key verifies
            signer = next((k for k in keys if ed25519_verify(k, m[field], signed)), None)
            if signer is None:
                raise Fail(name + ": no vector identity's key verifies sender_signature")
        expect(name + " " + field, ed25519_sign(keys[signer], signed), m[field])
    return "version header, %d signed requests" % len(REQUESTS)


def check(doc, name):
    return {
        "identity-vectors.json": check_vectors,
        "identity-safety-codes.json": check_safety_codes,
        "identity-contact-links.json": check_contact_links,
        "identity-signed-requests.json": check_signed_requests,
    }[name](doc)
