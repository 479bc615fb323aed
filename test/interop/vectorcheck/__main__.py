"""Independent checker of Loft's published vectors (docs/vectors/*.json): written from the specs
and docs/protocol/*.md, not from core/.
Usage: python3 test/interop/vectorcheck FILE.json... | --all | --mlkem-accumulated[=ipd]
Every run first runs the quick self-test (selftest.py); --all then also the FIPS 203 ML-KEM-768
accumulated check (2–3 s) before every file; --mlkem-accumulated runs only that check, and
--mlkem-accumulated=ipd runs it with FIPS 203 ipd key generation, which must fail.
Prints "ok FILE: summary" per file; on the first mismatch prints "FAIL FILE: what" and exits 1."""
import json
import os
import sys

sys.dont_write_bytecode = True
import selftest  # noqa: E402
from mpack import Fail  # noqa: E402

FAMILIES = {
    "ratchet-v1.json": "ratchet",
    "ratchet-v2.json": "ratchet",
    "ratchet-v3.json": "ratchet",
    "pqxdh-v1.json": "pqxdh",
    "files-v1.json": "files",
    "proxy-v1.json": "proxy",
    "device-v1.json": "device",
    "relay-auth-v1.1.json": "relay",
    "relay-delivery-v1.2.json": "relay",
    "relay-at-rest-v1.json": "relay",
    "relay-batch-v1.3.json": "relay",
    "relay-errors-v1.json": "relay",
    "smp-v6-v7.json": "smp",
    "identity-vectors.json": "identity",
    "identity-safety-codes.json": "identity",
    "identity-contact-links.json": "identity",
    "identity-signed-requests.json": "identity",
    "journal-v1.json": "journal",
    "draft-copy-v1.json": "draftcopy",
    "session-detached-v1.json": "session",
    "rooms-v1.json": "rooms",
    "local-notes-v1.json": "localnotes",
    "backup-v3.json": "backup",
    "chat-v1.json": "chat",
}


def main(argv):
    try:
        selftest.run()
        if argv in (["--mlkem-accumulated"], ["--mlkem-accumulated=ipd"], ["--all"]):
            print("ok " + selftest.mlkem_accumulated(final=argv != ["--mlkem-accumulated=ipd"]))
        if argv in (["--mlkem-accumulated"], ["--mlkem-accumulated=ipd"]):
            return 0
    except Fail as e:
        print("FAIL %s" % e)
        return 1
    if argv == ["--all"]:
        here = os.path.dirname(os.path.abspath(__file__))
        vectors = os.path.join(here, "..", "..", "..", "docs", "vectors")
        argv = [os.path.normpath(os.path.join(vectors, name)) for name in sorted(FAMILIES)]
    if not argv:
        print(__doc__)
        return 2
    status = 0
    for path in argv:
        name = os.path.basename(path)
        family = FAMILIES.get(name)
        if family is None:
            print("FAIL %s: no checker for this file (known: %s)" % (path, ", ".join(sorted(FAMILIES))))
            return 2
        with open(path) as f:
            doc = json.load(f)
        try:
            module = __import__(family)
            summary = module.check(doc, name)
        except Fail as e:
            print("FAIL %s: %s" % (path, e))
            return 1
        except Exception as e:  # a malformed vector file is a failure too, never a pass
            print("FAIL %s: %s: %s" % (path, type(e).__name__, e))
            return 1
        print("ok %s: %s" % (path, summary))
    return status


sys.exit(main(sys.argv[1:]))
