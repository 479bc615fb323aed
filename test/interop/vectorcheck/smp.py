"""SMP v6-v7 wire, written from docs/protocol/smp.md (blocks, hellos, transmissions, commands,
answers, the server→recipient layer), to replay docs/vectors/smp-v6-v7.json."""
import hashlib
import struct

from mpack import Fail
from prims import ed25519_public, ed25519_sign, expect, x25519, x25519_public
from salsa import hsalsa20, secretbox

BLOCK = 16_384
SPKI = {"ed25519": bytes.fromhex("302a300506032b6570032100"), "x25519": bytes.fromhex("302a300506032b656e032100")}


def short(b):
    """shortString: one length byte, then the bytes."""
    if len(b) > 255:
        raise Fail("shortString over 255 bytes")
    return bytes([len(b)]) + b


def w16(n):
    return struct.pack(">H", n)


def pad(content, size):
    """SMP paddedString: Word16 length ‖ content ‖ "#" up to size."""
    return w16(len(content)) + content + b"#" * (size - 2 - len(content))


def covered(session, corr, entity, command):
    return short(session) + short(corr) + short(entity) + command


def transmission(version, auth, session, corr, entity, command):
    sent = covered(session, corr, entity, command) if version == 6 else short(corr) + short(entity) + command
    return short(auth) + sent


class Reader:
    def __init__(self, b):
        self.b, self.at = b, 0

    def take(self, n):
        if self.at + n > len(self.b):
            raise Fail("SMP transmission runs past its end")
        v = self.b[self.at : self.at + n]
        self.at += n
        return v

    def short(self):
        return self.take(self.take(1)[0])

    def rest(self):
        return self.take(len(self.b) - self.at)


def parse_answer(version, t, session):
    """A server transmission: (corrId, entityId, answer bytes); checks the empty authorization and,
    at v6, the session id."""
    r = Reader(t)
    if r.short() != b"":
        raise Fail("server transmission with an authorization")
    if version == 6 and r.short() != session:
        raise Fail("v6 server transmission with another session id")
    return r.short(), r.short(), r.rest()


def check(doc, name):
    h = bytes.fromhex
    sid, corr = h(doc["sessionId"]), h(doc["corrId"])
    expect("sessionId", sid, hashlib.sha256(b"loft/vectors/smp/session id").digest())
    k, ids = doc["keys"], doc["ids"]
    for who in ("recipientAuth", "senderAuth"):
        expect("keys." + who + "Public", ed25519_public(h(k[who + "Secret"])), h(k[who + "Public"]))
    for who in ("recipientDh", "serverQueueDh"):
        expect("keys." + who + "Public", x25519_public(h(k[who + "Secret"])), h(k[who + "Public"]))
    rid, snd, msg_id = h(ids["recipientId"]), h(ids["senderId"]), h(ids["messageId"])
    # hellos
    sh = doc["serverHello"]
    expect("serverHello.v6", w16(6) + w16(6) + short(sid), h(sh["v6"]))
    expect("serverHello.v6PaddedBlockSha256", hashlib.sha256(pad(h(sh["v6"]), BLOCK)).digest(), h(sh["v6PaddedBlockSha256"]))
    v7 = sh["v7"]
    chain = bytes([len(v7["certChain"])]) + b"".join(w16(len(h(c))) + h(c) for c in v7["certChain"])
    expect("serverHello.v7 content", w16(6) + w16(7) + short(sid) + chain + w16(len(h(v7["signedKey"]))) + h(v7["signedKey"]), h(v7["content"]))
    ch = doc["clientHello"]
    kh = h(ch["keyHash"])
    expect("clientHello.v6", w16(6) + short(kh), h(ch["v6"]))
    expect("clientHello.v7", w16(7) + short(kh), h(ch["v7"]))
    expect("clientHello.v7WithKey", w16(7) + short(kh) + short(SPKI["x25519"] + h(k["recipientDhPublic"])), h(ch["v7WithKey"]))
    # commands, as smp.md "Commands" writes them
    rauth, sauth = SPKI["ed25519"] + h(k["recipientAuthPublic"]), SPKI["ed25519"] + h(k["senderAuthPublic"])
    commands = {
        "PING": b"PING",
        "NEW (create only)": b"NEW " + short(rauth) + short(SPKI["x25519"] + h(k["recipientDhPublic"])) + b"C",
        "KEY": b"KEY " + short(sauth),
        "SEND (unsecured)": b"SEND F hello over SMP",
        "SEND (secured, notify)": b"SEND T hello over SMP",
        "SUB": b"SUB", "GET": b"GET", "ACK": b"ACK " + short(msg_id), "OFF": b"OFF", "DEL": b"DEL",
    }
    signers = {"none": None, "recipient": h(k["recipientAuthSecret"]), "sender": h(k["senderAuthSecret"])}
    by_name = {}
    for t in doc["transmissions"]:
        w = "transmissions %s v%d" % (t["name"], t["version"])
        cmd = commands[t["name"]]
        expect(w + " command", cmd, h(t["command"]))
        entity = h(t["entityId"])
        cov = covered(sid, corr, entity, cmd)
        expect(w + " authorized", cov, h(t["authorized"]))
        seed = signers[t["signedBy"]]
        auth = b"" if seed is None else ed25519_sign(seed, cov)
        expect(w + " authorization", auth, h(t["authorization"]))
        tx = transmission(t["version"], auth, sid, corr, entity, cmd)
        expect(w + " transmission", tx, h(t["transmission"]))
        by_name["%s v%d" % (t["name"], t["version"])] = tx
    # answers: parsed by the grammar, checked against the vector's keys and ids, re-encoded
    answers = {
        "IDS": b"IDS " + short(rid) + short(snd) + short(SPKI["x25519"] + h(k["serverQueueDhPublic"])),
        "OK": b"OK", "PONG": b"PONG", "END": b"END",
        "ERR AUTH": b"ERR AUTH", "ERR CMD SYNTAX": b"ERR CMD SYNTAX", "ERR BLOCK": b"ERR BLOCK",
    }
    for x in doc["responses"]:
        w = "responses %s v%d" % (x["name"], x["version"])
        c, e, a = parse_answer(x["version"], h(x["transmission"]), sid)
        expect(w + " answer", a, answers[x["name"]])
        expect(w + " corrId (empty only in pushes and for a block)", c, b"" if x["name"] in ("END", "ERR BLOCK") else corr)
        expect(w + " entityId", e in (b"", rid), True)
        expect(w + " re-encoded", transmission(x["version"], b"", sid, c, e, a), h(x["transmission"]))
    # a batch in one block
    b = doc["batch"]
    txs = [by_name[n] for n in b["of"]]
    content = bytes([len(txs)]) + b"".join(w16(len(t)) + t for t in txs)
    block = pad(content, BLOCK)
    expect("batch blockHead", block[: len(h(b["blockHead"]))], h(b["blockHead"]))
    expect("batch blockSha256", hashlib.sha256(block).digest(), h(b["blockSha256"]))
    # the server→recipient layer
    d = doc["delivery"]
    rcv = hsalsa20(x25519(h(k["serverQueueDhSecret"]), h(k["recipientDhPublic"])), b"\0" * 16)
    expect("delivery rcvKey (server side)", rcv, h(d["rcvKey"]))
    expect("delivery rcvKey (recipient side)", hsalsa20(x25519(h(k["recipientDhSecret"]), h(k["serverQueueDhPublic"])), b"\0" * 16), rcv)
    plain = struct.pack(">q", d["timestamp"]) + b"F " + h(d["body"])
    expect("delivery rcvMsgBody", plain, h(d["rcvMsgBody"]))
    padded = pad(plain, d["paddedLength"])
    expect("delivery paddedSha256", hashlib.sha256(padded).digest(), h(d["paddedSha256"]))
    sealed = secretbox(rcv, msg_id, padded)
    expect("delivery sealedLength", len(sealed), d["sealedLength"])
    expect("delivery sealedHead", sealed[: len(h(d["sealedHead"]))], h(d["sealedHead"]))
    expect("delivery sealedSha256", hashlib.sha256(sealed).digest(), h(d["sealedSha256"]))
    msg = transmission(7, b"", sid, b"", rid, b"MSG " + short(msg_id) + sealed)
    expect("delivery msgTransmissionV7Head", msg[: len(h(d["msgTransmissionV7Head"]))], h(d["msgTransmissionV7Head"]))
    expect("delivery msgTransmissionV7Sha256", hashlib.sha256(msg).digest(), h(d["msgTransmissionV7Sha256"]))
    return "hellos, %d transmissions, %d answers, a batch, a delivery" % (len(doc["transmissions"]), len(doc["responses"]))
