"""Backups, written from docs/protocol/backup.md (§1 the AAD, §3 the `local` entries and the names
that travel), with the records themselves from localnotes.py (chat.md §9, rooms.md §7), to replay
docs/vectors/backup-v3.json."""
import re

from localnotes import draft_record, read_draft, read_room_name, room_name_record
from mpack import pack, unpack
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


# §3, "Reading a version 3 file": the bounds of `local` and of each value.
MAX_LOCAL_ENTRIES = 20_000
MAX_LOCAL_VALUE = 32 * 1024 * 1024
MAX_STORE_RECORD = 64 * 1024 * 1024
MAX_SAFE = 2**53 - 1


def is_uint(x, top=MAX_SAFE):
    whole = (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
    return whole and 0 <= x <= top


def is_bin(x, lo, hi=None):
    return isinstance(x, bytes) and lo <= len(x) <= (lo if hi is None else hi)


def is_strs(x, pattern=None):
    return isinstance(x, list) and all(isinstance(s, str) and (pattern is None or re.fullmatch(pattern, s)) for s in x)


# §3: the shapes of a `rooms` record and of a `room-log/…` entry (rooms.md §7), no other key.
ROOM_RECORD = ({"id": lambda x: is_bin(x, 16), "k": lambda x: is_bin(x, 32), "h": lambda x: is_bin(x, 32),
                "joinedAt": is_uint, "read": is_uint},
               {"hk": lambda x: is_bin(x, 32), "mk": lambda x: is_bin(x, 32), "st": lambda x: is_bin(x, 1, 16384),
                "e": lambda x: is_uint(x, 2**32 - 1), "pk": lambda x: is_bin(x, 32),
                "ok": lambda x: isinstance(x, list) and len(x) <= 7 and all(is_bin(k, 32) for k in x),
                "vf": lambda x: is_strs(x, "[0-9a-f]{64}"), "gone": lambda x: isinstance(x, bool)})
LOG_ENTRY = ({"id": lambda x: isinstance(x, str), "at": is_uint, "text": lambda x: isinstance(x, str)},
             {"from": lambda x: isinstance(x, str), "name": lambda x: isinstance(x, str),
              "to": is_strs, "got": is_strs, "rl": is_strs})


def fits(m, shape):
    required, optional = shape
    tests = dict(required, **optional)
    return (isinstance(m, dict) and all(k in m for k in required) and all(k in tests and tests[k](v) for k, v in m.items()))


def read_list(value, shape):
    """The records of a `rooms` or `room-log/…` value, or None when it does not read."""
    if len(value) > MAX_STORE_RECORD:
        return None
    try:
        items = unpack(value, {"map": 16, "array": 1 << 20})
    except Exception:  # not MessagePack, bytes after it, past a bound, a str that is not UTF-8
        return None
    return items if isinstance(items, list) and all(fits(x, shape) for x in items) else None


def list_reads(value, shape):
    """A `rooms` or `room-log/…` value reads when it holds at least one record, or is `90` exactly."""
    return value == b"\x90" or bool(read_list(value, shape))


CHECKS = [
    ("rooms", lambda v: list_reads(v, ROOM_RECORD)),
    ("room-log/" + ID_HEX, lambda v: list_reads(v, LOG_ENTRY)),
    ("room-name/" + ID_HEX, lambda v: read_room_name(v) is not None),
    ("draft/room:" + ID_HEX, lambda v: read_draft(v) is not None),
    ("draft/chat:[0-9a-f]{64}", lambda v: read_draft(v) is not None),
]


def check_local(local, contacts):
    """§3: None when the file is damaged, else (the places of the entries kept, the count left out)."""
    if not isinstance(local, list) or len(local) > MAX_LOCAL_ENTRIES:
        return None
    kept, seen = [], set()
    for at, e in enumerate(local):
        n, v = (e.get("n"), e.get("v")) if isinstance(e, dict) else (None, None)
        if (isinstance(n, str) and isinstance(v, bytes) and len(v) <= MAX_LOCAL_VALUE and n not in seen
                and any(re.fullmatch(p, n) and ok(v) for p, ok in CHECKS)):
            seen.add(n)
            kept.append((at, n, v))
    rooms = next((v for _, n, v in kept if n == "rooms"), None)
    room_ids = {r["id"].hex() for r in (read_list(rooms, ROOM_RECORD) or [])} if rooms is not None else set()

    def belongs(n):
        room = re.fullmatch("(?:room-log/|room-name/|draft/room:)(" + ID_HEX + ")", n)
        chat = re.fullmatch("draft/chat:(.+)", n)
        return room.group(1) in room_ids if room else chat.group(1) in contacts if chat else True

    places = [at for at, n, _ in kept if belongs(n)]
    return places, len(local) - len(places)


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
    for i, x in enumerate(doc["locals"]):
        read = check_local(unpack(h(x["local"])), x["contacts"])
        said = None if x.get("damaged") else (x["kept"], x["dropped"])
        expect("locals[%d] (%s) reads" % (i, x["label"]), read, said)
    return "%d AADs, %d local entries, %d names, %d local sections read" % (
        len(doc["aad"]), len(doc["local"]), len(doc["names"]), len(doc["locals"]))
