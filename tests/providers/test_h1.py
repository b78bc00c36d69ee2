"""The hot path's HTTP/1.1 pool against a scripted raw server: every way a reply can be
sized, kept alive or broken, and the httpx exceptions the relay classifies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvloop
from yarl import URL

from domain.providers.h1 import H1Pool
from tests.fixtures.conditions import eventually

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LIMITS = httpx.Timeout(connect=2.0, read=2.0, write=2.0, pool=2.0)
OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    size = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(size)


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await self.script(reader, writer)
        writer.close()


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[tuple[Server, URL]]:
    server = Server(script)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, URL(f"http://127.0.0.1:{port}/v1/chat/completions?x=1")
    finally:
        listener.close()


def pool(max_connections: int = 8) -> H1Pool:
    return H1Pool(
        max_connections=max_connections, keepalive_s=15.0, ssl_context=httpx.create_ssl_context()
    )


def keep_alive(reply: bytes, record: list[bytes] | None = None) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if record is not None:
                record.append(request)
            writer.write(reply)
            await writer.drain()

    return script


async def test_keep_alive_reuses_one_connection_and_sends_a_proper_request() -> None:
    seen: list[bytes] = []
    async with serving(keep_alive(OK, seen)) as (server, url):
        h1 = pool()
        for _ in range(3):
            status, headers, body = await h1.post(
                url, b'{"a":1}', {"authorization": "Bearer k"}, LIMITS
            )
            assert (status, body) == (200, b'{"ok":true}')
            assert (b"content-type", b"application/json") in headers
        await h1.aclose()
    assert server.connections == 1
    head = seen[0].decode()
    assert head.startswith("POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    assert f"host: {url.host}:{url.port}\r\n" in head
    assert "authorization: Bearer k\r\n" in head and "accept-encoding: identity\r\n" in head
    assert head.endswith('content-length: 7\r\n\r\n{"a":1}')


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4\r\n{"ok\r\n7\r\n":true}\r\n0\r\n\r\n',
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    ],
    ids=["chunked", "interim-1xx"],
)
async def test_other_reply_shapes(reply: bytes) -> None:
    async with serving(keep_alive(reply)) as (server, url):
        h1 = pool()
        for _ in range(2):
            assert (await h1.post(url, b"{}", {}, LIMITS))[2] == b'{"ok":true}'
        await h1.aclose()
    assert server.connections == 1


async def test_a_body_read_to_the_close_and_connection_close_are_not_reused() -> None:
    async def to_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"ok":')
        await writer.drain()
        writer.write(b"true}")

    async with serving(to_close) as (server, url):
        h1 = pool()
        for _ in range(2):
            assert (await h1.post(url, b"{}", {}, LIMITS))[2] == b'{"ok":true}'
    assert server.connections == 2

    closing = OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
    async with serving(keep_alive(closing)) as (server, url):
        for _ in range(2):
            assert (await h1.post(url, b"{}", {}, LIMITS))[0] == 200
    assert server.connections == 2
    await h1.aclose()


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Say nothing more until the client hangs up."""
    await reader.read()


async def test_failures_are_the_httpx_exceptions_the_relay_classifies() -> None:
    hung: list[bytes] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(await read_request(reader))
        await until_closed(reader)

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"partial')
        await writer.drain()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"this is not http\r\n\r\n")
        await writer.drain()
        await until_closed(reader)

    quick = httpx.Timeout(connect=1.0, read=0.2, write=1.0, pool=0.2)
    h1 = pool(max_connections=1)
    async with serving(hang) as (server, url):
        with pytest.raises(httpx.ReadTimeout):
            await h1.post(url, b"{}", {}, quick)
        # The timed-out connection was dropped, so the pool's one slot is free again.
        with pytest.raises(httpx.ReadTimeout):
            await h1.post(url, b"{}", {}, quick)
        assert server.connections == 2
        # With the only connection busy, the next caller waits for it, then gives up.
        busy = asyncio.create_task(h1.post(url, b"{}", {}, LIMITS))

        async def busy_sent() -> bool:
            return len(hung) == 3

        await eventually(busy_sent, within=5, what="the busy request at the server")
        with pytest.raises(httpx.PoolTimeout):
            await h1.post(url, b"{}", {}, quick)
        busy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await busy
    for script in (half, garbage):
        async with serving(script) as (_, url):
            with pytest.raises(httpx.RemoteProtocolError):
                await h1.post(url, b"{}", {}, LIMITS)
    refused = URL(str(url))  # the last server is gone: nothing listens there now
    with pytest.raises(httpx.ConnectError):
        await h1.post(refused, b"{}", {}, LIMITS)
    with pytest.raises(httpx.UnsupportedProtocol):
        await h1.post(URL("ftp://example.com/x"), b"{}", {}, LIMITS)
    await h1.aclose()


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    seen: list[bytes] = []
    async with serving(keep_alive(OK, seen)) as (server, url):
        h1 = pool()
        for bad in ({"x-key": "a\r\nx-injected: 1"}, {"x-a\nb": "v"}):
            with pytest.raises(httpx.LocalProtocolError):
                await h1.post(url, b"{}", bad, LIMITS)
        await h1.aclose()
    assert seen == [] and server.connections == 0


def test_the_pool_runs_on_uvloop_as_the_api_does() -> None:
    """uvicorn serves the API on uvloop, whose transports are not asyncio's classes."""

    async def main() -> tuple[int, int]:
        async with serving(keep_alive(OK)) as (server, url):
            h1 = pool()
            statuses = [(await h1.post(url, b"{}", {}, LIMITS))[0] for _ in range(3)]
            await h1.aclose()
            return sum(statuses), server.connections

    assert uvloop.run(main()) == (600, 1)


def gated_keep_alive(gate: asyncio.Event, seen: list[bytes]) -> Script:
    """Answers each request once `gate` is open."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            await gate.wait()
            writer.write(OK)
            await writer.drain()

    return script


async def test_a_waiting_caller_gets_the_connection_as_soon_as_it_is_parked() -> None:
    """Three callers, one connection: the first holds it until the server answers; the two
    waiting then get it in turn, well inside the pool timeout, on that same connection."""
    limits = httpx.Timeout(connect=1.0, read=2.0, write=1.0, pool=1.0)
    gate, seen = asyncio.Event(), list[bytes]()
    async with serving(gated_keep_alive(gate, seen)) as (server, url):
        h1 = pool(max_connections=1)
        calls = [asyncio.create_task(h1.post(url, b"{}", {}, limits)) for _ in range(3)]

        async def first_at_server() -> bool:
            return len(seen) == 1

        await eventually(first_at_server, within=5, what="the first request at the server")
        assert not any(c.done() for c in calls)  # the other two wait for the connection
        started = asyncio.get_running_loop().time()
        gate.set()
        replies = await asyncio.gather(*calls)
        took = asyncio.get_running_loop().time() - started
        await h1.aclose()
    assert [r[0] for r in replies] == [200, 200, 200] and len(seen) == 3
    assert server.connections == 1 and took < 0.9  # one after another, no pool timeout


async def test_idle_connections_of_one_origin_make_room_for_another() -> None:
    async with serving(keep_alive(OK)) as (first, a), serving(keep_alive(OK)) as (second, b):
        h1 = pool(max_connections=2)
        quick = httpx.Timeout(connect=1.0, read=1.0, write=1.0, pool=0.3)
        await asyncio.gather(h1.post(a, b"{}", {}, quick), h1.post(a, b"{}", {}, quick))
        assert first.connections == 2  # both parked now: the pool is full of origin A
        for _ in range(2):
            assert (await h1.post(b, b"{}", {}, quick))[0] == 200
        assert (await h1.post(a, b"{}", {}, quick))[0] == 200
        await h1.aclose()
    assert second.connections == 1
