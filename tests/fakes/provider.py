"""Fake upstream LLM provider served over real HTTP on loopback.

Built on the stdlib threaded HTTP server (not ASGI) so tests own the raw socket: fault modes
can drop a connection before or in the middle of a response, and the server keeps working no
matter which asyncio loop, if any, the test is running in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import parse_qs, urlsplit

from domain.providers.media_demo import demo_png
from tests.fakes.responses import ResponseBuilder, not_found_previous

FaultKind = Literal[
    "latency", "status", "drop", "drop_mid_stream", "malformed", "slow_stream", "slow_answer"
]
JobOutcome = Literal["succeeded", "failed"]
_Flavor = Literal["openai", "anthropic", "gemini"]
_Body = dict[str, Any]

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


def fake_file(path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a result file at `path` on the fake: a real PNG for
    images, MP4-headed bytes for videos, ID3-headed bytes for audio."""
    seed = hashlib.sha256(path.encode()).digest()
    if path.endswith(".png"):
        return 200, "image/png", demo_png(seed)
    if path.endswith(".mp4"):
        return 200, "video/mp4", fake_video_bytes(path)
    return 200, "audio/mpeg", b"ID3\x04\x00" + seed * 8


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: Any  # parsed body, None when empty or not valid JSON
    raw: bytes


@dataclass
class Fault:
    """`latency` sleeps before the route runs (a job is created late); `slow_answer` runs the
    route (the job exists) and holds the answer for `delay_s`, the window in which a client's
    read timeout or a killed worker loses it. `method` narrows `path` ("" matches any)."""

    kind: FaultKind
    path: str = ""
    method: str = ""
    times: int | None = 1
    status: int = 503
    retry_after: str = "1"
    delay_s: float = 0.0
    after_chunks: int = 1
    body: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind: {self.kind!r}")


@dataclass
class _Job:
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


@dataclass(frozen=True)
class JobRecord:
    """What a test sees of an upstream job: enough to count live and cancelled ones."""

    id: str
    api: str
    client_reference: str | None
    idempotency_key: str | None
    canceled: bool


class FakeProvider:
    def __init__(self, *, api_key: str = "sk-fake-upstream") -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.job_polls_until_done: int = 2
        self.job_outcome: JobOutcome = "succeeded"
        # Video downloads: expired content answers 404; chunked drops Content-Length; a gate,
        # while set and not yet open, holds the body after its first chunk; aborts count
        # downloads the client cut short.
        self.video_content_expired = False
        self.video_content_chunked = False
        self.video_content_gate: threading.Event | None = None
        self.video_content_aborts = 0
        # Result files (image and job URLs point at `/files/...` on this server): expired ones
        # answer 404. With `files_redirect` set to a base URL, result files and OpenAI video
        # content answer 302 to `{files_redirect}/files/r/...`, which serves the bytes.
        self.files_expired = False
        self.files_redirect: str | None = None
        # Job creation (POST /jobs, POST /v1/videos) replays the job first created under an
        # `Idempotency-Key`, as Stripe-style APIs do; switched off, every POST is a new job.
        self.honour_idempotency_keys = True
        self.answers_held = 0  # `slow_answer` replies being held right now
        # Responses this fake answered (`POST /v1/responses`): a `previous_response_id` not
        # among them is refused with a 400 naming the field, as OpenAI does.
        self.response_ids: set[str] = set()
        self._faults: list[Fault] = []
        self._jobs: dict[str, _Job] = {}
        self._keys: dict[tuple[str, str], str] = {}  # (api, idempotency key) -> job id
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.provider = self
        self._server = server
        # Short poll interval keeps stop() quick; serve_forever only checks for shutdown then.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-provider-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeProvider is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls ---------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Stores a copy: `times` is decremented in place and callers may reuse their Fault."""
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Also restores the job knobs so one test's settings never leak into the next."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self._jobs.clear()
            self.job_polls_until_done = 2
            self.job_outcome = "succeeded"
            self.video_content_expired = False
            self.video_content_chunked = False
            self.video_content_gate = None
            self.video_content_aborts = 0
            self.files_expired = False
            self.files_redirect = None
            self.honour_idempotency_keys = True
            self.answers_held = 0
            self.response_ids.clear()
            self._keys.clear()

    def calls(self, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def video_ids(self) -> list[str]:
        """The OpenAI video jobs created so far, oldest first."""
        with self._lock:
            return [j.id for j in self._jobs.values() if j.api == "openai"]

    def jobs(self) -> list[JobRecord]:
        """Every async job created so far (both APIs), oldest first."""
        with self._lock:
            return [
                JobRecord(j.id, j.api, j.client_reference, j.idempotency_key, j.canceled)
                for j in self._jobs.values()
            ]

    def live_jobs(self) -> list[JobRecord]:
        """Jobs nobody cancelled: each one is work the platform pays for."""
        return [j for j in self.jobs() if not j.canceled]

    # -- used by the handler threads -------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if not path.startswith(fault.path) or fault.method not in ("", method):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                return fault
        return None

    def _add_job(self, job: _Job) -> tuple[_Job, bool]:
        """Stores the job, or returns the one already created under its idempotency key
        (then False: nothing new was created)."""
        with self._lock:
            key = job.idempotency_key
            if key and self.honour_idempotency_keys:
                existing = self._keys.get((job.api, key))
                if existing is not None:
                    return _Job(**vars(self._jobs[existing])), False
                self._keys[(job.api, key)] = job.id
            self._jobs[job.id] = job
            return job, True

    def _find_jobs(self, api: str, reference: str) -> list[_Job]:
        with self._lock:
            return [
                _Job(**vars(j))
                for j in self._jobs.values()
                if j.api == api and j.client_reference == reference
            ]

    def _cancel_job(self, job_id: str, api: str) -> _Job | None:
        """Cancels a job still running; a finished one is returned unchanged."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.api != api:
                return None
            if not job.finished:
                job.canceled = True
            return _Job(**vars(job))

    def _hold_answer(self, delay_s: float) -> None:
        with self._lock:
            self.answers_held += 1
        try:
            time.sleep(delay_s)
        finally:
            with self._lock:
                self.answers_held -= 1

    def _poll_job(self, job_id: str, api: str) -> _Job | None:
        """Returns a snapshot so the handler can render it without holding the lock."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.api != api:
                return None
            job.polls += 1
            return _Job(**vars(job))

    def _peek_job(self, job_id: str, api: str) -> _Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None or job.api != api else _Job(**vars(job))

    def _count_video_abort(self) -> None:
        with self._lock:
            self.video_content_aborts += 1


class _Server(ThreadingHTTPServer):
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


_ERROR_TYPES: dict[_Flavor, dict[int, str]] = {
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
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}


def _error_body(flavor: _Flavor, status: int, message: str) -> _Body:
    if flavor == "anthropic":
        kind = _ERROR_TYPES["anthropic"].get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if flavor == "gemini":
        kind = _ERROR_TYPES["gemini"].get(status, "UNKNOWN")
        return {"error": {"code": status, "message": message, "status": kind}}
    kind = _ERROR_TYPES["openai"].get(status, "server_error")
    code = _OPENAI_CODES.get(status, kind)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _flavor_for(path: str) -> _Flavor:
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/"):
        return "gemini"
    return "openai"


def _words(value: Any) -> int:
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


def _message_words(messages: Any, key: str) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(_words(m.get(key)) for m in messages if isinstance(m, dict))


def _reply(model: str, cap: Any) -> tuple[list[str], bool]:
    """Returns the reply pieces (joined they form the text) and whether the cap cut it short."""
    default = LONG_REPLY_WORDS if "long" in model else DEFAULT_REPLY_WORDS
    capped = isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap < default
    n = cast(int, cap) if capped else default
    return [f"w{i}" if i == 0 else f" w{i}" for i in range(n)], capped


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _replayed(created: bool) -> dict[str, str] | None:
    """Marks an answer replayed from an earlier request with the same idempotency key."""
    return None if created else {"Idempotent-Replayed": "true"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _data_event(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _named_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


_Route = Callable[[_Body], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # SSE events are small separate writes; Nagle + delayed ACK would stall each by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    _flavor: _Flavor = "openai"
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

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        provider = self.server.provider
        url = urlsplit(self.path)
        path = url.path
        self._query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._headers = headers
        raw = self._read_body()
        try:
            payload: Any = json.loads(raw) if raw else None
            parsed_ok = raw != b""
        except ValueError:
            payload, parsed_ok = None, False
        provider._record(RecordedRequest(self.command, path, self._query, headers, payload, raw))

        self._flavor = _flavor_for(path)
        self._request_id = f"req_{uuid.uuid4().hex}"
        self._mid_stream = None
        self._event_delay_s = 0.0
        self._answer_delay_s = 0.0

        fault = provider._take_fault(self.command, path)
        if fault is not None:
            if fault.kind == "drop":
                self._abort()
                return
            if fault.kind == "status":
                time.sleep(fault.delay_s)  # 0 unless a test needs the failure to be slow
                extra = {"Retry-After": fault.retry_after} if fault.status == 429 else None
                body = fault.body or _error_body(
                    self._flavor, fault.status, f"injected upstream error {fault.status}"
                )
                self._send_json(fault.status, body, extra)
                return
            if fault.kind == "malformed":
                self._send_bytes(200, "application/json", b'{"id": "broken", "choices": [{"mess')
                return
            if fault.kind == "latency":
                time.sleep(fault.delay_s)
            elif fault.kind == "drop_mid_stream":
                self._mid_stream = fault
            elif fault.kind == "slow_stream":
                self._event_delay_s = fault.delay_s
            elif fault.kind == "slow_answer":
                self._answer_delay_s = fault.delay_s

        if self.command == "GET" and path.startswith("/files/"):
            self._file(path)  # public, like a provider's CDN: no key needed
            return
        route = self._route(self.command, path)
        if route is None:
            self._error(404, f"Unknown route: {self.command} {path}")
            return
        handler, needs_body = route
        if not self._authorized(headers, provider.api_key):
            self._error(401, "Invalid or missing API key.")
            return
        if needs_body and not (parsed_ok and isinstance(payload, dict)):
            self._error(400, "Request body is not a valid JSON object.")
            return
        handler(payload if isinstance(payload, dict) else {})

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
        self._send_bytes(status, "application/json", _dumps(obj), extra)

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
        self._send_json(status, _error_body(self._flavor, status, message))

    # -- routing ---------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[_Route, bool] | None:
        """Resolves (handler, needs_json_body); None means 404."""
        if method == "POST":
            exact: dict[str, _Route] = {
                "/v1/chat/completions": self._openai_chat,
                "/v1/responses": self._openai_responses,
                "/v1/embeddings": self._openai_embeddings,
                "/v1/messages": self._anthropic_messages,
                "/v1/images/generations": self._openai_images,
                "/v1/audio/speech": self._openai_speech,
                "/v1/videos": self._openai_video_create,
                "/jobs": self._job_create,
            }
            if path in exact:
                return exact[path], True
            if path.startswith("/v1beta/models/"):
                model, sep, action = path.removeprefix("/v1beta/models/").rpartition(":")
                if sep and model and action in ("generateContent", "streamGenerateContent"):
                    return partial(self._gemini, model, action == "streamGenerateContent"), True
            ident = path.removeprefix("/jobs/").removesuffix("/cancel")
            is_cancel = path.startswith("/jobs/") and path.endswith("/cancel")
            if is_cancel and ident and "/" not in ident:
                return partial(self._job_cancel, ident), False
            return None
        if method == "DELETE":
            ident = path.removeprefix("/v1/videos/")
            if path.startswith("/v1/videos/") and ident and "/" not in ident:
                return partial(self._openai_video_delete, ident), False
            return None
        if method == "GET":
            if path == "/v1/models":
                return self._openai_models, False
            if path == "/jobs":
                return self._job_list, False
            ident = path.removeprefix("/v1/videos/").removesuffix("/content")
            if path.startswith("/v1/videos/") and path.endswith("/content") and "/" not in ident:
                return partial(self._openai_video_content, ident), False
            for prefix, getter in (
                ("/v1/videos/", self._openai_video_get),
                ("/jobs/", self._job_get),
            ):
                ident = path.removeprefix(prefix)
                if path.startswith(prefix) and ident and "/" not in ident:
                    return partial(getter, ident), False
        return None

    # -- OpenAI ----------------------------------------------------------------------------

    def _openai_chat(self, body: _Body) -> None:
        model = str(body.get("model", ""))
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        pieces, capped = _reply(model, cap)
        prompt = max(1, _message_words(body.get("messages"), "content"))
        finish = "length" if capped else "stop"
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n", 0) > 0 else 1
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": n * len(pieces),  # every choice's tokens, as OpenAI counts
            "total_tokens": prompt + n * len(pieces),
        }
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
            choices = [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ]
            self._send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                },
            )
            return
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

        def chunk(choices: list[_Body], **extra: Any) -> bytes:
            obj: _Body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return _data_event(obj)

        events: list[bytes] = []
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            for index in range(n):
                events.append(chunk([{"index": index, "delta": delta, "finish_reason": None}]))
        for index in range(n):
            events.append(chunk([{"index": index, "delta": {}, "finish_reason": finish}]))
        if include_usage:
            events.append(chunk([], usage=usage))
        events.append(b"data: [DONE]\n\n")
        self._send_sse(events)

    def _openai_responses(self, body: _Body) -> None:
        """OpenAI's Responses API, JSON or typed events (`tests.fakes.responses`)."""
        provider = self.server.provider
        previous = body.get("previous_response_id")
        if previous is not None and previous not in provider.response_ids:
            self._send_json(400, not_found_previous(str(previous)))
            return
        pieces, capped = _reply(str(body.get("model", "")), body.get("max_output_tokens"))
        built = ResponseBuilder(body, pieces, capped)
        with provider._lock:
            provider.response_ids.add(built.id)
        if not body.get("stream"):
            self._send_json(200, built.answer())
            return
        self._send_sse([_named_event(kind, event) for kind, event in built.events()])

    def _openai_embeddings(self, body: _Body) -> None:
        """One vector per input, a pure function of the text: `dimensions` (default 4)
        floats; prompt tokens = the words of every input."""
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else [str(x) for x in raw or []]
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 4
        data = [
            {"object": "embedding", "index": i,
             "embedding": [round((len(t) + i + d) / 100, 2) for d in range(dims)]}
            for i, t in enumerate(texts)
        ]  # fmt: skip
        tokens = sum(max(1, len(t.split())) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        model = str(body.get("model", ""))
        self._send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    def _openai_models(self, body: _Body) -> None:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in MODEL_IDS
        ]
        self._send_json(200, {"object": "list", "data": data})

    def _openai_images(self, body: _Body) -> None:
        n = body.get("n", 1)
        count = n if isinstance(n, int) and n > 0 else 1
        base = f"{self.server.provider.base_url}/files/img/{uuid.uuid4().hex}"
        data = [{"url": f"{base}/{i}.png"} for i in range(count)]
        self._send_json(200, {"created": int(time.time()), "data": data})

    def _file(self, path: str) -> None:
        """A result file, as a provider's CDN serves it: bytes derived from the path."""
        provider = self.server.provider
        if provider.files_redirect is not None and not path.startswith("/files/r/"):
            self._redirect_file(path.removeprefix("/files/"))
            return
        if provider.files_expired:
            self._error(404, "This file has expired.")
            return
        self._send_bytes(*fake_file(path))

    def _openai_speech(self, body: _Body) -> None:
        text = str(body.get("input", ""))
        # Fake MP3: ID3 tag then 32 bytes per input character.
        size = 32 * len(text)
        audio = b"ID3\x04\x00" + (bytes(range(256)) * (size // 256 + 1))[:size]
        self._send_bytes(200, "audio/mpeg", audio)

    def _openai_video_create(self, body: _Body) -> None:
        provider = self.server.provider
        outcome = body.get("fake_outcome", provider.job_outcome)
        job = _Job(
            id=f"video_{uuid.uuid4().hex}",
            api="openai",
            model=str(body.get("model", "")),
            kind="video",
            polls_needed=provider.job_polls_until_done,
            outcome="failed" if outcome == "failed" else "succeeded",
            units=1,
            urls=[],
            seconds=str(body.get("seconds", "4")),
            idempotency_key=self._headers.get("idempotency-key"),
        )
        job, created = provider._add_job(job)
        self._send_json(200, self._video_view(job, "queued", 0), _replayed(created))

    def _openai_video_get(self, job_id: str, body: _Body) -> None:
        job = self.server.provider._poll_job(job_id, "openai")
        if job is None or job.canceled:
            self._error(404, f"Video {job_id} not found.")
            return
        if job.polls <= job.polls_needed:
            progress = min(99, 100 * job.polls // (job.polls_needed + 1))
            self._send_json(200, self._video_view(job, "in_progress", progress))
            return
        view = self._video_view(job, "completed" if job.outcome == "succeeded" else "failed", 100)
        if job.outcome == "failed":
            view["error"] = {"code": "moderation_blocked", "message": "Fake video job failed."}
        else:
            view["completed_at"] = job.created + 1
        self._send_json(200, view)

    def _openai_video_content(self, job_id: str, body: _Body) -> None:
        """The finished video's bytes, in several writes (a real download arrives in pieces)."""
        provider = self.server.provider
        job = provider._peek_job(job_id, "openai")
        if job is None:
            self._error(404, f"Video {job_id} not found.")
            return
        if job.polls <= job.polls_needed or job.outcome != "succeeded":
            self._error(400, f"Video {job_id} is not completed.")
            return
        if provider.video_content_expired:
            self._error(404, f"The content of video {job_id} has expired.")
            return
        if provider.files_redirect is not None:
            self._redirect_file(f"videos/{job_id}.mp4")
            return
        data = fake_video_bytes(job_id)
        chunked = provider.video_content_chunked
        if self._mid_stream is not None and not chunked:
            self._send_bytes(200, "video/mp4", data)  # half the promised bytes, then FIN
            return
        size = -(-len(data) // VIDEO_CONTENT_CHUNKS)
        pieces = [data[i : i + size] for i in range(0, len(data), size)]

        def frame(piece: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece

        try:
            head = self._head(200, "video/mp4", None if chunked else len(data))
            self.wfile.write(head + frame(pieces[0]))
            self.wfile.flush()
            if self._mid_stream is not None:  # chunked: one piece, then FIN without the end
                self._abort()
                return
            gate = provider.video_content_gate
            if gate is not None:
                gate.wait(timeout=10)
            for piece in pieces[1:]:
                self.wfile.write(frame(piece))
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up mid-download
            provider._count_video_abort()
            self.close_connection = True

    def _redirect_file(self, name: str) -> None:
        target = f"{self.server.provider.files_redirect}/files/r/{name}"
        self._send_bytes(302, "text/plain", b"", {"Location": target})

    def _openai_video_delete(self, job_id: str, body: _Body) -> None:
        """Deleting a video that is still rendering stops it (and its bill)."""
        job = self.server.provider._cancel_job(job_id, "openai")
        if job is None:
            self._error(404, f"Video {job_id} not found.")
            return
        self._send_json(200, {"id": job.id, "object": "video.deleted", "deleted": True})

    @staticmethod
    def _video_view(job: _Job, status: str, progress: int) -> _Body:
        return {
            "id": job.id,
            "object": "video",
            "status": status,
            "model": job.model,
            "seconds": job.seconds,
            "progress": progress,
            "created_at": job.created,
        }

    # -- Anthropic -------------------------------------------------------------------------

    def _anthropic_messages(self, body: _Body) -> None:
        model = str(body.get("model", ""))
        pieces, capped = _reply(model, body.get("max_tokens"))
        prompt = max(
            1, _words(body.get("system")) + _message_words(body.get("messages"), "content")
        )
        stop = "max_tokens" if capped else "end_turn"
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        message: _Body = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(pieces)}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": len(pieces)},
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        block = {"type": "text", "text": ""}
        events = [
            _named_event("message_start", {"type": "message_start", "message": start}),
            _named_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
        ]
        for piece in pieces:
            delta = {"type": "text_delta", "text": piece}
            events.append(
                _named_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            )
        events += [
            _named_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _named_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                },
            ),
            _named_event("message_stop", {"type": "message_stop"}),
        ]
        self._send_sse(events)

    # -- Gemini ----------------------------------------------------------------------------

    def _gemini(self, model: str, stream: bool, body: _Body) -> None:
        config = body.get("generationConfig")
        cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
        pieces, capped = _reply(model, cap)
        system = body.get("systemInstruction")
        prompt = _message_words(body.get("contents"), "parts")
        if isinstance(system, dict):
            prompt += _words(system.get("parts"))
        prompt = max(1, prompt)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(pieces),
            "totalTokenCount": prompt + len(pieces),
        }
        finish = "MAX_TOKENS" if capped else "STOP"

        def response(text: str, last: bool) -> _Body:
            candidate: _Body = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
            out: _Body = {"candidates": [candidate], "modelVersion": model}
            if last:
                candidate["finishReason"] = finish
                out["usageMetadata"] = usage
            return out

        if not stream:
            self._send_json(200, response("".join(pieces), True))
            return
        chunks = [response(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if self._query.get("alt") == "sse":
            self._send_sse([_data_event(c) for c in chunks])
        else:  # without alt=sse Gemini streams one JSON array
            self._send_json(200, chunks)

    # -- generic async media jobs ----------------------------------------------------------

    def _job_create(self, body: _Body) -> None:
        provider = self.server.provider
        kind = body.get("type")
        inputs = body.get("input", {})
        if kind not in ("image", "video", "audio") or not isinstance(inputs, dict):
            self._error(400, "type must be image|video|audio and input an object.")
            return
        if kind == "image":
            units = int(inputs.get("n", 1))
        elif kind == "video":
            units = int(inputs.get("seconds", 4))
        else:
            units = max(1, math.ceil(len(str(inputs.get("text", ""))) / 1000))
        ident = f"job_{uuid.uuid4().hex}"
        ext = {"image": "png", "video": "mp4", "audio": "mp3"}[kind]
        count = units if kind == "image" else 1
        outcome = inputs.get("fake_outcome", provider.job_outcome)
        job = _Job(
            id=ident,
            api="generic",
            model=str(body.get("model", "")),
            kind=kind,
            polls_needed=provider.job_polls_until_done,
            outcome="failed" if outcome == "failed" else "succeeded",
            units=units,
            urls=[f"{provider.base_url}/files/jobs/{ident}/{i}.{ext}" for i in range(count)],
            client_reference=_opt_str(body.get("client_reference")),
            idempotency_key=self._headers.get("idempotency-key"),
        )
        job, created = provider._add_job(job)
        view = {"id": job.id, "status": "queued", "model": job.model, "type": job.kind,
                "client_reference": job.client_reference}  # fmt: skip
        self._send_json(201 if created else 200, view, _replayed(created))

    def _job_list(self, body: _Body) -> None:
        """`GET /jobs?client_reference=...`: the jobs created with that reference, oldest
        first, without advancing them (a lookup is not a poll)."""
        reference = self._query.get("client_reference")
        if not reference:
            self._error(400, "client_reference is required.")
            return
        jobs = self.server.provider._find_jobs("generic", reference)
        self._send_json(200, {"object": "list", "data": [self._job_view(j) for j in jobs]})

    def _job_cancel(self, job_id: str, body: _Body) -> None:
        job = self.server.provider._cancel_job(job_id, "generic")
        if job is None:
            self._error(404, f"Job {job_id} not found.")
        elif not job.canceled:
            self._error(409, f"Job {job_id} already finished.")
        else:
            self._send_json(200, self._job_view(job))

    @staticmethod
    def _job_view(job: _Job) -> _Body:
        if job.canceled:
            status = "canceled"
        elif job.polls <= job.polls_needed:
            status = "processing"
        else:
            status = job.outcome
        return {"id": job.id, "status": status, "client_reference": job.client_reference}

    def _job_get(self, job_id: str, body: _Body) -> None:
        job = self.server.provider._poll_job(job_id, "generic")
        if job is None:
            self._error(404, f"Job {job_id} not found.")
            return
        if job.canceled:
            self._send_json(200, self._job_view(job))
        elif job.polls <= job.polls_needed:
            progress = min(99, 100 * job.polls // (job.polls_needed + 1))
            self._send_json(200, {"id": job.id, "status": "processing", "progress": progress})
        elif job.outcome == "failed":
            error = {"code": "content_policy", "message": "Fake job rejected by content policy."}
            self._send_json(200, {"id": job.id, "status": "failed", "error": error})
        else:
            result = {"urls": job.urls}
            self._send_json(
                200, {"id": job.id, "status": "succeeded", "result": result, "units": job.units}
            )
