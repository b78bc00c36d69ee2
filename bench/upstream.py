"""A near-zero-latency OpenAI-compatible upstream for `make bench`, run as its own process.

Hand-written on `asyncio.start_server` with every response built once at import: the bench
measures what the relay adds on top of an upstream, so the upstream must cost almost nothing
and never be the bottleneck. Any web framework would spend more per request than the thing
being measured. It speaks just enough HTTP/1.1 (keep-alive, Content-Length request bodies)
for httpx and the bench's own load generator.

Run: `python -m bench.upstream [--port N]`; prints `READY <port>` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from typing import Any

PROMPT_TOKENS = 12
COMPLETION_TOKENS = 20
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
IDLE_TIMEOUT_S = 300.0

_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_ID = "chatcmpl-bench"
_CREATED = 1_700_000_000
_MODEL = "bench-upstream"
_USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}
_REPLY_PARTS = ["Hello", " from the bench upstream;", " this reply stands in for a model."]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"content-type: " + content_type + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"x-request-id: upstream-bench\r\n"
        b"\r\n"
    )
    return head + body


def _completion() -> bytes:
    body = {
        "id": _ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": _MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(_REPLY_PARTS)},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
    return _response("200 OK", b"application/json", _dumps(body))


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": _MODEL,
        "choices": choices,
        **extra,
    }


def _stream() -> bytes:
    """One SSE event per HTTP chunk, as real providers send them, all in a single write."""
    events = [_chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])]
    events += [
        _chunk([{"index": 0, "delta": {"content": part}, "finish_reason": None}])
        for part in _REPLY_PARTS
    ]
    events.append(_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(_chunk([], usage=_USAGE))
    payloads = [b"data: " + _dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n"
        b"x-request-id: upstream-bench\r\n"
        b"\r\n"
    )
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in payloads)
    return head + chunks + b"0\r\n\r\n"


COMPLETION = _completion()
STREAM = _stream()
NOT_FOUND = _response(
    "404 Not Found",
    b"application/json",
    _dumps({"error": {"type": "invalid_request_error", "message": "no such route"}}),
)
BAD_REQUEST = _response(
    "400 Bad Request",
    b"application/json",
    _dumps({"error": {"type": "invalid_request_error", "message": "bad request"}}),
)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return 0


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            if length is None or length > MAX_BODY_BYTES:
                writer.write(BAD_REQUEST)
                await writer.drain()
                return
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"POST /v1/chat/completions "):
                writer.write(STREAM if _STREAM_RE.search(body) else COMPLETION)
            else:
                writer.write(NOT_FOUND)
            await writer.drain()
            if b"\r\nconnection: close" in head.lower():
                return
    except (
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ConnectionError,
        TimeoutError,
    ):
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        _serve, host, port, limit=MAX_HEAD_BYTES, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    async with server:
        await stop.wait()


def _run(coro: Any) -> None:
    """uvloop when present (it ships with uvicorn[standard]): the upstream must stay cheap."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _run(_main(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
