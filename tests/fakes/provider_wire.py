"""The fake provider's HTTP plumbing and wire helpers, shared by its flavours' routes.

The stdlib threaded server keeps a set of its open connections so `stop()` can wake idle
keep-alive threads; `BaseHandler` frames requests and answers (JSON, bytes, SSE) and applies
the request's fault (a drop mid-answer, a slow stream, a held answer).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from tests.fakes.provider import FakeProvider, Fault

JobOutcome = Literal["succeeded", "failed"]
Flavor = Literal["openai", "anthropic", "gemini"]
Body = dict[str, Any]

VIDEO_CONTENT_BYTES = 48 * 1024 + 123  # a few KB, not a multiple of any chunk size
VIDEO_CONTENT_CHUNKS = 4
DEFAULT_REPLY_WORDS = 8
LONG_REPLY_WORDS = 40
MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "gpt-long-test", "o3-mini")


def fake_video_bytes(job_id: str) -> bytes:
    """What `GET /v1/videos/{id}/content` serves: an MP4 `ftyp` box, then bytes derived from
    the job id, so each video is distinct and a test can check every byte arrived."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    seed = hashlib.sha256(job_id.encode()).digest()
    body = bytearray(head)
    counter = 0
    while len(body) < VIDEO_CONTENT_BYTES:
        body += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(body[:VIDEO_CONTENT_BYTES])


@dataclass
class Job:
    id: str
    api: Literal["openai", "generic"]
    model: str
    kind: str
    polls_needed: int
    outcome: JobOutcome
    units: int
    urls: list[str]
    seconds: str = "4"
    created: int = field(default_factory=lambda: int(time.time()))
    polls: int = 0
    client_reference: str | None = None
    idempotency_key: str | None = None
    canceled: bool = False

    @property
    def finished(self) -> bool:
        return self.canceled or self.polls > self.polls_needed


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the stdlib default of 5 resets bursts of concurrent connects
    provider: FakeProvider

    def __init__(
        self, address: tuple[str, int], handler: Callable[..., BaseHTTPRequestHandler]
    ) -> None:
        super().__init__(address, handler)
        self.conn_lock = threading.Lock()
        self.connections: set[socket.socket] = set()

    def close_open_connections(self) -> None:
        """Idle keep-alive handler threads block in recv; shutting the sockets wakes them."""
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response is routine here (fault tests, cancelled streams).
        pass


ERROR_TYPES: dict[Flavor, dict[int, str]] = {
    "openai": {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
    },
    "anthropic": {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    },
    "gemini": {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    },
}
OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}


def error_body(flavor: Flavor, status: int, message: str) -> Body:
    if flavor == "anthropic":
        kind = ERROR_TYPES["anthropic"].get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if flavor == "gemini":
        kind = ERROR_TYPES["gemini"].get(status, "UNKNOWN")
        return {"error": {"code": status, "message": message, "status": kind}}
    kind = ERROR_TYPES["openai"].get(status, "server_error")
    code = OPENAI_CODES.get(status, kind)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def flavor_for(path: str) -> Flavor:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/"):
        return "gemini"
    return "openai"


def words(value: Any) -> int:
    """Counts words in a plain string or in the text parts of a content/parts list."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(
            len(part["text"].split())
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def message_words(messages: Any, key: str) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(words(m.get(key)) for m in messages if isinstance(m, dict))


def reply(model: str, cap: Any) -> tuple[list[str], bool]:
    """Returns the reply pieces (joined they form the text) and whether the cap cut it short."""
    default = LONG_REPLY_WORDS if "long" in model else DEFAULT_REPLY_WORDS
    capped = isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap < default
    n = cast(int, cap) if capped else default
    return [f"w{i}" if i == 0 else f" w{i}" for i in range(n)], capped


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def replayed(created: bool) -> dict[str, str] | None:
    """Marks an answer replayed from an earlier request with the same idempotency key."""
    return None if created else {"Idempotent-Replayed": "true"}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def data_event(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def named_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


class BaseHandler(BaseHTTPRequestHandler):
    """The fake's HTTP plumbing: connection bookkeeping, request framing and the writes
    every flavour's routes answer with (honouring the current request's fault)."""

    protocol_version = "HTTP/1.1"
    # SSE events are small separate writes; Nagle + delayed ACK would stall each by ~40 ms.
    disable_nagle_algorithm = True
    server: Server

    _flavor: Flavor = "openai"
    _request_id: str = ""
    _mid_stream: Fault | None = None
    _event_delay_s: float = 0.0
    _answer_delay_s: float = 0.0
    _query: dict[str, str]
    _headers: dict[str, str]

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self, headers: dict[str, str], key: str) -> bool:
        if self._flavor == "anthropic":
            return headers.get("x-api-key") == key and bool(headers.get("anthropic-version"))
        if self._flavor == "gemini":
            return headers.get("x-goog-api-key") == key or self._query.get("key") == key
        return headers.get("authorization") == f"Bearer {key}"

    def _abort(self) -> None:
        """FIN rather than RST so a client still reads whatever was sent before the drop."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _head(
        self,
        status: int,
        content_type: str,
        length: int | None,
        extra: dict[str, str] | None = None,
    ) -> bytes:
        """Built by hand so head and body leave in one write (fewer syscalls per request)."""
        reason = self.responses.get(status, ("Unknown",))[0]
        framing = (
            [("Transfer-Encoding", "chunked"), ("Cache-Control", "no-cache")]
            if length is None
            else [("Content-Length", str(length))]
        )
        headers = [
            ("Date", self.date_time_string()),
            ("Content-Type", content_type),
            *framing,
            ("x-request-id", self._request_id),
            *([("request-id", self._request_id)] if self._flavor == "anthropic" else []),
            ("cf-ray", f"{secrets.token_hex(8)}-SJC"),
            *(extra or {}).items(),
        ]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_bytes(
        self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        if self._answer_delay_s:
            self.server.provider._hold_answer(self._answer_delay_s)
        head = self._head(status, content_type, len(body), extra)
        if self._mid_stream is not None:
            self.wfile.write(head + body[: len(body) // 2])
            self._abort()
            return
        self.wfile.write(head + body)

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        self._send_bytes(status, "application/json", dumps(obj), extra)

    def _send_sse(self, events: list[bytes]) -> None:
        """One write per event so clients observe a genuine incremental stream."""
        self.wfile.write(self._head(200, "text/event-stream", None))
        fault = self._mid_stream
        for event in events if fault is None else events[: fault.after_chunks]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            if self._event_delay_s:
                time.sleep(self._event_delay_s)  # a slow generator: time to hang up mid-way
        if fault is not None:
            self._abort()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, error_body(self._flavor, status, message))
