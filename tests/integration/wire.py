"""A stand-in federation peer for tests: speaks the wire protocol
(proto/federation.proto) by hand, so tests can send what a real daemon
never would: tampered, misaddressed, replayed, out-of-order or oversized
messages. Signs with the openssl command line."""

import hashlib
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import time


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    """A protobuf field: ints as varints, bytes/str length-delimited."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value) if value else b""
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value if value else b""


def hello(bank, last_applied=0, recovery=False):
    return field(1, field(1, 1) + field(2, bank) + field(3, last_applied)
                 + (field(4, 1) if recovery else b""))


def test_body(n, text="test"):
    return field(16, field(1, n) + field(2, text) or b"")


def raw_public_key(key_path):
    der = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return der[-32:]


def key_id(key_path):
    return hashlib.sha256(raw_public_key(key_path)).hexdigest()[:16]


def sign(key_path, data):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key_path, "-rawin",
                               "-in", f.name], capture_output=True, check=True).stdout


def envelope(key_path, sender, receiver, seq, prev, body, kid=None):
    signed = (field(1, sender) + field(2, receiver) + field(3, seq) + field(4, prev) +
              field(5, int(time.time() * 1000)) + field(6, body))
    sig = sign(key_path, signed)
    return field(1, signed) + field(2, kid or key_id(key_path)) + field(3, sig)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def new_signing_key(directory):
    path = os.path.join(directory, f"stranger-{os.urandom(4).hex()}.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", path], check=True)
    return path


def tls_connect(port, cert, key, ca, max_version=None, timeout=10):
    """A TLS client showing cert, trusting ca for the server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    if max_version is not None:
        ctx.maximum_version = max_version
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(sock)


def closed_by_peer(sock, timeout=10):
    """True once the other side has closed the connection."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ssl.SSLError, ConnectionError):
        return True
    except socket.timeout:
        return False


class Impostor:
    """A peer that speaks for `bank` to the daemon `to` on port."""

    def __init__(self, port, pki, bank, to, sign_key=None, last_applied=0):
        self.sock = tls_connect(port, f"{pki}/{bank}/{bank}.crt", f"{pki}/{bank}/{bank}.key",
                                f"{pki}/ca/ca.crt")
        self.bank, self.to = bank, to
        self.key = sign_key or f"{pki}/{bank}/{bank}.sign.key"
        self.send_raw(frame(envelope(self.key, bank, to, 0, b"", hello(bank, last_applied))))

    def session_message(self, body):
        """A signed session message (sequence 0) of body, sent."""
        self.send_raw(frame(envelope(self.key, self.bank, self.to, 0, b"", body)))

    def send_raw(self, data):
        self.sock.sendall(data)

    def message(self, seq, prev, n, receiver=None, key=None, kid=None):
        """A signed test message; returns (envelope bytes, its hash)."""
        env = envelope(key or self.key, self.bank, receiver or self.to, seq, prev,
                       test_body(n), kid=kid)
        return env, hashlib.sha256(env).digest()

    def close(self):
        self.sock.close()


def proposals(items):
    """An ExchangeProposals body; items are (xid, earner, minutes, category, date)."""
    out = b""
    for xid, earner, minutes, category, date in items:
        out += field(1, field(1, xid) + field(2, earner) + field(3, minutes) +
                     field(4, category) + field(5, date))
    return field(17, out)


def answers(items):
    """An ExchangeAnswers body; items are (xid, accepted, reason)."""
    out = b""
    for xid, accepted, reason in items:
        out += field(1, field(1, xid) + field(2, int(accepted)) + field(3, reason))
    return field(18, out)
