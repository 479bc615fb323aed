#!/usr/bin/env python3
"""Independent Noise peer for interop tests: Noise_XX_25519_ChaChaPoly_BLAKE2s from Debian's
python3-dissononce, over TCP with every message prefixed by a 2-byte big-endian length (the
framing Noise rev 34 section 13 recommends; server/tcp-link.ts on our side).

Same command line and output as scripts/noise-peer.ts, so the two are interchangeable:
  --role initiator|responder --host H --port P --static-hex HEX [--prologue STR] [--message STR]
  [--repeat N]
prints listening=PORT (responder), remote_static=HEX, handshake_hash=HEX, echo=... (initiator).
The responder echoes every transport message until the initiator closes.
"""
import argparse
import socket
import struct
import sys

from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.private import PrivateKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.blake2s import Blake2sHash
from dissononce.processing.handshakepatterns.interactive.XX import XXHandshakePattern
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState


def send_frame(sock, data):
    sock.sendall(struct.pack(">H", len(data)) + bytes(data))


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def recv_frame(sock):
    header = recv_exact(sock, 2)
    if header is None:
        return None
    (length,) = struct.unpack(">H", header)
    return recv_exact(sock, length)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", required=True, choices=["initiator", "responder"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--static-hex", required=True)
    parser.add_argument("--prologue", default="")
    parser.add_argument("--message", default="hello from dissononce")
    parser.add_argument("--repeat", default=1, type=int)
    args = parser.parse_args()

    dh = X25519DH()
    static = dh.generate_keypair(PrivateKey(bytes.fromhex(args.static_hex)))
    hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), Blake2sHash()), dh)
    initiator = args.role == "initiator"
    hs.initialize(XXHandshakePattern(), initiator, args.prologue.encode("utf-8"), s=static)

    if initiator:
        sock = socket.create_connection((args.host, args.port))
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, args.port))
        listener.listen(1)
        print("listening=%d" % listener.getsockname()[1], flush=True)
        sock, _ = listener.accept()
        listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # XX: -> e / <- e, ee, s, es / -> s, se. write_message/read_message return the Split()
    # pair (initiator->responder, responder->initiator) after the last message.
    cipherstates = None
    writing = initiator
    while cipherstates is None:
        if writing:
            buf = bytearray()
            cipherstates = hs.write_message(b"", buf)
            send_frame(sock, buf)
        else:
            frame = recv_frame(sock)
            if frame is None:
                raise SystemExit("error=closed during handshake")
            cipherstates = hs.read_message(frame, bytearray())
        writing = not writing
    send_cs, recv_cs = cipherstates if initiator else (cipherstates[1], cipherstates[0])

    print("remote_static=%s" % hs.rs.data.hex(), flush=True)
    print("handshake_hash=%s" % hs.symmetricstate.get_handshake_hash().hex(), flush=True)

    if initiator:
        for _ in range(args.repeat):
            send_frame(sock, send_cs.encrypt_with_ad(b"", args.message.encode("utf-8")))
            reply = recv_frame(sock)
            if reply is None:
                raise SystemExit("error=closed before the echo")
            print("echo=%s" % recv_cs.decrypt_with_ad(b"", reply).decode("utf-8"), flush=True)
        sock.close()
    else:
        while True:
            frame = recv_frame(sock)
            if frame is None:
                break
            send_frame(sock, send_cs.encrypt_with_ad(b"", recv_cs.decrypt_with_ad(b"", frame)))
        sock.close()


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # report like noise-peer.ts does
        print("error=%s %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
        sys.exit(1)
