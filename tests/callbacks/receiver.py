"""A real HTTP(S) callback receiver on loopback, scripted reply by reply.

It runs in its own threads so a receiver that stalls or streams forever really does, without
blocking the event loop that the delivery code runs on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line
    endless: bool = False  # stream body chunks until the client hangs up
    drip_s: float | None = None  # after the headers, one byte per drip_s


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        receiver = self.server.receiver
        reply = receiver.record(
            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        with contextlib.suppress(OSError):  # the client gave up, as several tests want
            self._answer(reply)

    def _answer(self, reply: Reply) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.endless:
            self.end_headers()
            chunk = b"x" * 16384
            stop = time.monotonic() + 10
            while time.monotonic() < stop:
                self.wfile.write(chunk)
            return
        if reply.drip_s is not None:
            self.end_headers()
            stop = time.monotonic() + 10
            while time.monotonic() < stop:
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(reply.drip_s)
            return
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class Receiver:
    """Replies in order; the last reply repeats for every further request."""

    def __init__(
        self,
        replies: Sequence[Reply] = (Reply(),),
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.replies = list(replies)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = _Server((host, 0), _Handler)
        self._server.receiver = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if tls else "http"
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def record(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            return self.replies[min(len(self.received), len(self.replies)) - 1]

    def url(
        self, path: str = "/hook", *, host: str | None = None, scheme: str | None = None
    ) -> str:
        return f"{scheme or self.scheme}://{host or self.host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class SelfSignedCert:
    cert_file: Path
    key_file: Path
    pem: bytes

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this certificate, and checks host names as production does."""
        return ssl.create_default_context(cadata=self.pem.decode())


def make_cert(directory: Path, dns_name: str) -> SelfSignedCert:
    """A self-signed certificate valid for `dns_name` only (no IP SAN), so a client that
    verified against the IP it connected to would fail."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file = directory / f"{dns_name}.crt"
    key_file = directory / f"{dns_name}.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSignedCert(cert_file, key_file, pem)


def loopback_v4_reachable_as(name: str) -> bool:
    """Whether `name` resolves to 127.0.0.1 on this machine (it does for `localhost`)."""
    try:
        infos = socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(ipaddress.ip_address(i[4][0]) == ipaddress.ip_address("127.0.0.1") for i in infos)


def receiver_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What an off-the-shelf Standard Webhooks receiver decides about one delivery."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True
