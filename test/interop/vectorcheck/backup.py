"""Backups, written from docs/protocol/backup.md (§1 the AAD, §3 the `local` entries and the names
that travel), with the records themselves from localnotes.py (chat.md §9, rooms.md §7), to replay
docs/vectors/backup-v3.json."""
import re

from localnotes import draft_record, room_name_record
from mpack import pack
from prims import expect

# §3's table: <id hex> is 32 lower-case hex digits (a 16-byte room id), <contact id> 64.
ID_HEX = "[0-9a-f]{32}"
TRAVELS = [
    "rooms",
    "room-log/" + ID_HEX,
    "room-name/" + ID_HEX,
    "draft/room:" + ID_HEX,
    "draft/chat:[0-9a-f]{64}",
]


def aad(version, kdf, header):
    params = "m=%d,t=%d,p=%d" % (header["m"], header["t"], header["p"]) if kdf == "Argon2id" else str(header["iterations"])
    return "loft-backup/v%d/%s/%s" % (version, kdf, params)


def travels(name):
    return any(re.fullmatch(p, name) for p in TRAVELS)


def check(doc, name):
    h = bytes.fromhex
    for i, a in enumerate(doc["aad"]):
        expect("aad[%d]" % i, aad(a["version"], a["kdf"], a), a["aad"])
    for i, e in enumerate(doc["local"]):
        w = "local[%d] (%s)" % (i, e["label"])
        v = room_name_record(e["name"]) if "name" in e else draft_record(e["text"], e["at"])
        expect(w + " v", v, h(e["v"]))
        expect(w + " travels", travels(e["n"]), True)
        expect(w + " entry", pack({"n": e["n"], "v": v}), h(e["entry"]))
    for i, n in enumerate(doc["names"]):
        expect("names[%d] (%s) travels" % (i, n["n"]), travels(n["n"]), n["travels"])
    return "%d AADs, %d local entries, %d names" % (len(doc["aad"]), len(doc["local"]), len(doc["names"]))
