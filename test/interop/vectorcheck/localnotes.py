"""What a device keeps for its person and never sends, written from docs/protocol/chat.md §9
("Drafts": the draft record and how it is read) and docs/protocol/rooms.md §7 (the room-name
record, how a name is cleaned and read), to replay docs/vectors/local-notes-v1.json."""
import re

from mpack import pack, unpack
from prims import JS_SPACE, expect

MAX_DRAFT_CHARS = 64_000
MAX_ROOM_NAME_CHARS = 64
MAX_SAFE = 2**53 - 1
# The reader's bounds (chat.md §9, "Drafts"): past them a record reads as none.
MAX_RECORD = 4 * MAX_DRAFT_CHARS + 64
MAX_FIELDS = 16


def draft_record(text, at):
    return pack({"at": at, "t": text, "v": 1})


def clean_name(name):
    """rooms.md §7: white space runs made one space, trimmed, the first 64 code points, trimmed."""
    name = re.sub("[%s]+" % JS_SPACE, " ", name).strip(JS_SPACE)
    return name[:MAX_ROOM_NAME_CHARS].strip(JS_SPACE)


def room_name_record(name):
    return pack({"n": clean_name(name), "v": 1})


def units(s):
    return len(s.encode("utf-16-le")) // 2


def is_number(x):
    return (isinstance(x, int) and not isinstance(x, bool)) or isinstance(x, float)


def is_version_1(x):
    return is_number(x) and x == 1


def read_map(record):
    """The record's map, or None when it is not one within the bounds."""
    if not record or len(record) > MAX_RECORD:
        return None
    try:  # a map's entries are counted as written: a key twice counts twice
        m = unpack(record, {"map": MAX_FIELDS, "array": MAX_FIELDS})
    except Exception:  # not MessagePack, truncated, bytes after the value, past the bounds
        return None
    return m if isinstance(m, dict) else None


def read_draft(record):
    """{text, at}, or None: a record that does not read, another `v`, a `t` that is not a non-empty
    string of at most 64 000 UTF-16 units, an `at` that is not a whole number 0..2^53 - 1."""
    m = read_map(record)
    if m is None or not is_version_1(m.get("v")):
        return None
    t, at = m.get("t"), m.get("at")
    if not isinstance(t, str) or not 0 < units(t) <= MAX_DRAFT_CHARS:
        return None
    if not is_number(at) or at != int(at) or not 0 <= at <= MAX_SAFE:
        return None
    return {"text": t, "at": int(at)}


def read_room_name(record):
    m = read_map(record)
    if m is None or not is_version_1(m.get("v")) or not isinstance(m.get("n"), str):
        return None
    return clean_name(m["n"]) or None


def check(doc, name):
    h = bytes.fromhex
    expect("maxDraftChars", MAX_DRAFT_CHARS, doc["maxDraftChars"])
    expect("maxRoomNameChars", MAX_ROOM_NAME_CHARS, doc["maxRoomNameChars"])
    for i, d in enumerate(doc["drafts"]):
        w = "drafts[%d] (%s)" % (i, d["label"])
        expect(w + " record", draft_record(d["text"], d["at"]), h(d["record"]))
        expect(w + " read", read_draft(h(d["record"])), {"text": d["text"], "at": d["at"]})
    for i, d in enumerate(doc["draftReads"]):
        expect("draftReads[%d] (%s)" % (i, d["label"]), read_draft(h(d["record"])), d["reads"])
    for i, n in enumerate(doc["roomNames"]):
        w = "roomNames[%d] (%s)" % (i, n["label"])
        expect(w + " record", room_name_record(n["name"]), h(n["record"]))
        expect(w + " read", read_room_name(h(n["record"])), clean_name(n["name"]) or None)
    for i, n in enumerate(doc["roomNameReads"]):
        expect("roomNameReads[%d] (%s)" % (i, n["label"]), read_room_name(h(n["record"])), n["reads"])
    return "%d drafts, %d draft records read, %d room names, %d room-name records read" % (
        len(doc["drafts"]), len(doc["draftReads"]), len(doc["roomNames"]), len(doc["roomNameReads"]))
