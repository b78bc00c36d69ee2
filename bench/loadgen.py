"""The bench's load generator, run as its own process so its CPU is not the orchestrator's.

Raw asyncio streams, request bytes built once, keep-alive connections and a response parser
that only understands what it needs (status line, Content-Length or chunked bodies): a
general HTTP client costs tens of microseconds per call, which would blur a sub-millisecond
overhead measurement and starve the API of CPU at 32 connections on a 2-core machine. The
same code drives the upstream directly and the relay, so its own cost cancels out of the
overhead figure.

Run: `python -m bench.loadgen < spec.json > result.json` (see `Spec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["sequential", "concurrent", "burst"]
MAX_HEAD_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Spec:
    """One measurement. Every loop is bounded by a count and a deadline."""

    host: str
    port: int
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    mode: Mode = "sequential"
    connections: int = 1
    warmup_requests: int = 200  # sequential: not recorded
    warmup_s: float = 1.0  # concurrent: run, but not counted in the rate
    requests: int = 2_000  # sequential: recorded requests, at most
    duration_s: float = 15.0  # the measured window, at most
    # Generous: a slow relay should show up as latency, not as errors that void the ledger
    # reconciliation (a client that gave up cannot count a response the relay billed).
    request_timeout_s: float = 30.0
    expect: str = "usage"  # a 200 body must contain this, or it counts as an error
    max_requests: int = 1_000_000  # hard cap for concurrent runs
    # Statuses that count as answered, each with what its body must contain; unset means
    # {"200": expect}. The hot-account run accepts 402, task submission 202.
    accept: dict[str, str] | None = None

    def accepted(self) -> dict[int, bytes]:
        table = self.accept if self.accept is not None else {"200": self.expect}
        return {int(status): text.encode() for status, text in table.items()}


@dataclass
class Result:
    ok: int = 0  # 200 with the expected body, over the whole run (warm-up included)
    measured_ok: int = 0  # 200s completed inside the measured window
    errors: int = 0  # non-200, bad body, timeouts, broken connections (whole run)
    measured_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    latencies_us: list[float] = field(default_factory=list)  # measured window only
    window_s: float = 0.0
    cpu_s: float = 0.0  # this process, user + system, over the measured window
    reconnects: int = 0

    def note_error(self, what: str, measured: bool) -> None:
        self.errors += 1
        if measured:
            self.measured_errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


class BadResponse(Exception):
    pass


def build_request(spec: Spec) -> bytes:
    body = json.dumps(spec.body, separators=(",", ":")).encode()
    lines = [
        f"POST {spec.path} HTTP/1.1",
        f"host: {spec.host}:{spec.port}",
        "content-type: application/json",
        "accept: */*",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in spec.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise BadResponse(f"not an HTTP/1.1 response: {head[:40]!r}")
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if chunked:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        return status, b"".join(parts), close
    if length is not None:
        return status, await reader.readexactly(length), close
    return status, await reader.read(), True


class Connection:
    def __init__(self, spec: Spec, result: Result) -> None:
        self.spec = spec
        self.result = result
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            self.reader, self.writer = await asyncio.open_connection(
                self.spec.host, self.spec.port, limit=MAX_HEAD_BYTES
            )

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def call(self, request: bytes, accept: dict[int, bytes]) -> float:
        """One request; returns its latency in µs or raises with what went wrong."""
        if self.writer is None:
            self.result.reconnects += 1
            await self.open()
        assert self.reader is not None and self.writer is not None
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.spec.request_timeout_s):
                self.writer.write(request)
                status, body, close = await read_response(self.reader)
        except BaseException:
            await self.close()
            raise
        elapsed = (time.perf_counter_ns() - started) / 1000.0
        key = str(status)
        self.result.statuses[key] = self.result.statuses.get(key, 0) + 1
        if close:
            await self.close()
        expect = accept.get(status)
        if expect is None:
            raise BadResponse(f"HTTP {status}: {body[:200]!r}")
        if expect not in body:
            raise BadResponse(f"{status} without {expect!r}: {body[:200]!r}")
        return elapsed


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_sequential(spec: Spec) -> Result:
    result = Result()
    conn = Connection(spec, result)
    request, accept = build_request(spec), spec.accepted()
    await conn.open()
    warm_deadline = time.monotonic() + max(spec.duration_s, 5.0)
    for _ in range(spec.warmup_requests):
        if time.monotonic() > warm_deadline:
            break
        try:
            await conn.call(request, accept)
            result.ok += 1
        except Exception as exc:
            result.note_error(f"{type(exc).__name__}: {exc}", measured=False)
    cpu0, t0 = _cpu(), time.monotonic()
    deadline = t0 + spec.duration_s
    latencies = result.latencies_us
    for _ in range(spec.requests):
        if time.monotonic() > deadline:
            break
        try:
            latencies.append(await conn.call(request, accept))
            result.ok += 1
            result.measured_ok += 1
        except Exception as exc:
            result.note_error(f"{type(exc).__name__}: {exc}", measured=True)
    result.window_s = time.monotonic() - t0
    result.cpu_s = _cpu() - cpu0
    await conn.close()
    return result


async def run_concurrent(spec: Spec) -> Result:
    result = Result()
    request, accept = build_request(spec), spec.accepted()
    conns = [Connection(spec, result) for _ in range(spec.connections)]
    await asyncio.gather(*(c.open() for c in conns))
    start = time.monotonic()
    window_start = start + spec.warmup_s
    window_end = window_start + spec.duration_s
    budget = [spec.max_requests]
    latencies = result.latencies_us
    cpu_marks = [_cpu(), -1.0]

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        cpu_marks[0] = _cpu()
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        cpu_marks[1] = _cpu()

    async def worker(conn: Connection) -> None:
        while budget[0] > 0:
            now = time.monotonic()
            if now >= window_end:
                return
            budget[0] -= 1
            sent = now
            try:
                latency = await conn.call(request, accept)
            except Exception as exc:
                done = time.monotonic()
                measured = sent >= window_start and done <= window_end
                result.note_error(f"{type(exc).__name__}: {exc}", measured=measured)
                continue
            done = time.monotonic()
            result.ok += 1
            if window_start <= done <= window_end:
                result.measured_ok += 1
                latencies.append(latency)

    tasks = [asyncio.create_task(worker(c)) for c in conns]
    tasks.append(asyncio.create_task(mark_window()))
    # Workers stop starting requests at window_end; in-flight ones finish (bounded by the
    # per-request timeout) so every response the relay sent is counted somewhere.
    await asyncio.wait_for(
        asyncio.gather(*tasks), timeout=spec.warmup_s + spec.duration_s + spec.request_timeout_s + 5
    )
    result.window_s = min(time.monotonic(), window_end) - window_start
    result.cpu_s = (cpu_marks[1] if cpu_marks[1] >= 0 else _cpu()) - cpu_marks[0]
    await asyncio.gather(*(c.close() for c in conns))
    return result


async def run_burst(spec: Spec) -> Result:
    """`connections` requests at once, one per connection, all connected first: the
    hot-account run. The window is from the first send to the last answer."""
    result = Result()
    request, accept = build_request(spec), spec.accepted()
    conns = [Connection(spec, result) for _ in range(spec.connections)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies = result.latencies_us
    gate = asyncio.Event()

    async def one(conn: Connection) -> None:
        await gate.wait()
        try:
            latencies.append(await conn.call(request, accept))
            result.ok += 1
            result.measured_ok += 1
        except Exception as exc:
            result.note_error(f"{type(exc).__name__}: {exc}", measured=True)

    tasks = [asyncio.create_task(one(c)) for c in conns]
    await asyncio.sleep(0)  # every task is parked on the gate before it opens
    cpu0, t0 = _cpu(), time.monotonic()
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=spec.request_timeout_s + 5)
    result.window_s = time.monotonic() - t0
    result.cpu_s = _cpu() - cpu0
    await asyncio.gather(*(c.close() for c in conns))
    return result


async def run(spec: Spec) -> Result:
    if spec.mode == "sequential":
        return await run_sequential(spec)
    if spec.mode == "burst":
        return await run_burst(spec)
    return await run_concurrent(spec)


def _run(spec: Spec) -> Result:
    """uvloop when present, as for the upstream: the client must stay light."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(spec))
    return uvloop.run(run(spec))


def main() -> int:
    spec = Spec(**json.load(sys.stdin))
    result = _run(spec)
    json.dump(asdict(result), sys.stdout)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
