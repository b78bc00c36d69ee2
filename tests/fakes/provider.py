"""Fake upstream LLM provider served over real HTTP on loopback.

Built on the stdlib threaded HTTP server (not ASGI) so tests own the raw socket: fault modes
can drop a connection before or in the middle of a response, and the server keeps working no
matter which asyncio loop, if any, the test is running in.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, urlsplit

from tests.fakes.provider_anthropic import AnthropicRoutes
from tests.fakes.provider_gemini import GeminiRoutes
from tests.fakes.provider_jobs import JobsRoutes
from tests.fakes.provider_openai import OpenAIRoutes
from tests.fakes.provider_wire import (
    VIDEO_CONTENT_BYTES,
    Body,
    Job,
    JobOutcome,
    Server,
    error_body,
    fake_video_bytes,
    flavor_for,
)

FaultKind = Literal[
    "latency", "status", "drop", "drop_mid_stream", "malformed", "slow_stream", "slow_answer"
]


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
        # Job creation (POST /jobs, POST /v1/videos) replays the job first created under an
        # `Idempotency-Key`, as Stripe-style APIs do; switched off, every POST is a new job.
        self.honour_idempotency_keys = True
        self.answers_held = 0  # `slow_answer` replies being held right now
        self._faults: list[Fault] = []
        self._jobs: dict[str, Job] = {}
        self._keys: dict[tuple[str, str], str] = {}  # (api, idempotency key) -> job id
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        server = Server(("127.0.0.1", 0), _Handler)
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
            self.honour_idempotency_keys = True
            self.answers_held = 0
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

    def _add_job(self, job: Job) -> tuple[Job, bool]:
        """Stores the job, or returns the one already created under its idempotency key
        (then False: nothing new was created)."""
        with self._lock:
            key = job.idempotency_key
            if key and self.honour_idempotency_keys:
                existing = self._keys.get((job.api, key))
                if existing is not None:
                    return Job(**vars(self._jobs[existing])), False
                self._keys[(job.api, key)] = job.id
            self._jobs[job.id] = job
            return job, True

    def _find_jobs(self, api: str, reference: str) -> list[Job]:
        with self._lock:
            return [
                Job(**vars(j))
                for j in self._jobs.values()
                if j.api == api and j.client_reference == reference
            ]

    def _cancel_job(self, job_id: str, api: str) -> Job | None:
        """Cancels a job still running; a finished one is returned unchanged."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.api != api:
                return None
            if not job.finished:
                job.canceled = True
            return Job(**vars(job))

    def _hold_answer(self, delay_s: float) -> None:
        with self._lock:
            self.answers_held += 1
        try:
            time.sleep(delay_s)
        finally:
            with self._lock:
                self.answers_held -= 1

    def _poll_job(self, job_id: str, api: str) -> Job | None:
        """Returns a snapshot so the handler can render it without holding the lock."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.api != api:
                return None
            job.polls += 1
            return Job(**vars(job))

    def _peek_job(self, job_id: str, api: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None or job.api != api else Job(**vars(job))

    def _count_video_abort(self) -> None:
        with self._lock:
            self.video_content_aborts += 1


_Route = Callable[[Body], None]


class _Handler(OpenAIRoutes, AnthropicRoutes, GeminiRoutes, JobsRoutes):
    """Records each request, applies the first matching fault, then routes it to its flavour."""

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

        self._flavor = flavor_for(path)
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
                body = fault.body or error_body(
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

    # -- routing ---------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[_Route, bool] | None:
        """Resolves (handler, needs_json_body); None means 404."""
        if method == "POST":
            exact: dict[str, _Route] = {
                "/v1/chat/completions": self._openai_chat,
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


__all__ = ["VIDEO_CONTENT_BYTES", "FakeProvider", "Fault", "RecordedRequest", "fake_video_bytes"]
