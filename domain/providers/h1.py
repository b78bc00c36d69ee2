"""Whole JSON POSTs over keep-alive HTTP/1.1, for the relay's hot path.

Written by hand on asyncio's protocols and httptools' response parser (the C parser
uvicorn uses) because aiohttp's client spends about 250 us of CPU on each small request
and this spends about 30 us, measured against the bench upstream: a fifth of the relay's
whole per-call CPU. It does only what `post_json` needs: one request at a time per
connection, no redirects, no cookies, no proxies (proxied deployments use plain httpx),
no compression (it asks for `identity`), a body sized by Content-Length, chunked or read
to the close. Its failures are the httpx exceptions `domain.providers.errors` classifies,
as the aiohttp transport's are:
- a refused or failed connect (TLS included) is `ConnectError`, a slow one `ConnectTimeout`;
- no free connection within the pool timeout is `PoolTimeout`;
- no byte for `read` seconds is `ReadTimeout`;
- a hang-up or an unparseable reply is `RemoteProtocolError`.
Like the aiohttp transport (and httpcore), a request on a kept-alive connection the server
has just closed is not resent: the caller owns its retry policy.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque
from typing import cast

import httptools
import httpx
from yarl import URL

from domain.egress.pinning import check_host, pinned_addresses
from domain.egress.policy import EgressPolicy

Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]
_OURS = frozenset(("host", "content-length", "transfer-encoding", "connection", "accept-encoding"))
_UNSAFE = re.compile(r"[\r\n\0]")


class _Connection(asyncio.Protocol):
    """One socket and its parser; `exchange` runs one request on it."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reusable = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Reply] | None = None
        self._timer: asyncio.Timeout | None = None
        self._read_s: float | None = None
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._to_close = False  # a reply sized by the connection closing

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods.)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None and self._read_s is not None:
            self._timer.reschedule(asyncio.get_running_loop().time() + self._read_s)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"unparseable upstream reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._to_close and exc is None:
            self._done()  # the body ran to the close, as its headers said it would
            return
        reason = f": {exc}" if exc else ""
        if isinstance(exc, OSError) and not self._headers:
            waiter.set_exception(httpx.ReadError(f"connection reset{reason}"))
        else:
            waiter.set_exception(httpx.RemoteProtocolError(f"server disconnected{reason}"))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim reply (nothing asks for one): wait for the real
            self._headers = []
            return
        names = {name.lower() for name, _ in self._headers}
        self._to_close = (
            b"content-length" not in names
            and b"transfer-encoding" not in names
            and status not in (204, 304)
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            return
        self._done()

    # -- requests ----------------------------------------------------------------------------

    def _done(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self.reusable = bool(self.parser.should_keep_alive()) and not self._to_close
        waiter.set_result((self.parser.get_status_code(), self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    async def exchange(self, request: bytes, read_s: float | None) -> Reply:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.reusable = False
        self._headers, self._body, self._to_close = [], [], False
        self._waiter = loop.create_future()
        self._read_s = read_s
        self.transport.write(request)
        try:
            async with asyncio.timeout(read_s) as t:
                self._timer = t
                return await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("no reply from the upstream in time") from None
        finally:
            self._timer = self._waiter = None

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class H1Pool:
    """Keep-alive connections per origin: at most `max_connections` open in all, of which at
    most `max_idle` parked. A caller waiting for room takes the first connection parked for
    its origin, or the slot of one that closes, or of the longest-idle one (any origin)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_s: float,
        ssl_context: ssl.SSLContext,
        max_idle: int | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        """`egress`: connect only where the tenant egress policy allows, to the address it
        checked (`domain.egress.pinning`)."""
        self._egress = egress
        self._max = max_connections
        self._max_idle = max_idle if max_idle is not None else max_connections
        self._keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open = 0
        self._freed: asyncio.Condition | None = None
        self._waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _for_this_loop(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._freed is None or self._loop is not loop:
            # Connections belong to the loop that made them (tests may run several loops).
            self._idle, self._open, self._waiting, self._loop = {}, 0, 0, loop
            self._freed = asyncio.Condition()
        return self._freed

    async def post(
        self, url: URL, body: bytes, headers: dict[str, str], limits: httpx.Timeout
    ) -> Reply:
        """(status, raw headers, body) of one POST; see the module docstring for failures."""
        origin = _origin(url)
        if self._egress is not None:
            check_host(str(url), self._egress)
        request = self._head(origin, url, headers, len(body)) + body
        conn = await self._checkout(origin, limits)
        try:
            reply = await conn.exchange(request, limits.read)
        except BaseException:
            conn.close()
            await self._release(conn)
            raise
        await self._release(conn)
        return reply

    def _head(
        self, origin: tuple[str, str, int], url: URL, headers: dict[str, str], size: int
    ) -> bytes:
        scheme, host, port = origin
        lines = [
            f"POST {url.raw_path_qs or '/'} HTTP/1.1",
            f"host: {_host_header(scheme, host, port)}",
        ]
        for name, value in headers.items():
            if name.lower() in _OURS:
                continue
            if _UNSAFE.search(name) or _UNSAFE.search(value):
                raise httpx.LocalProtocolError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        lines += ["accept-encoding: identity", f"content-length: {size}", "", ""]
        try:
            return "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise httpx.LocalProtocolError("a header value is not latin-1 text") from None

    async def _checkout(self, origin: tuple[str, str, int], limits: httpx.Timeout) -> _Connection:
        freed = self._for_this_loop()
        conn = self._idle_for(origin)
        if conn is not None:
            return conn
        if not self._room():
            self._waiting += 1
            try:
                async with asyncio.timeout(limits.pool), freed:
                    while True:  # woken by every release: an idle connection or a free slot
                        conn = self._idle_for(origin)
                        if conn is not None:
                            return conn
                        if self._room():
                            break
                        await freed.wait()
            except TimeoutError:
                raise httpx.PoolTimeout("no free upstream connection in time") from None
            finally:
                self._waiting -= 1
        self._open += 1
        try:
            return await self._connect(origin, limits.connect)
        except BaseException:
            self._open -= 1
            await self._notify()
            raise

    def _idle_for(self, origin: tuple[str, str, int]) -> _Connection | None:
        """The origin's most recently parked live connection; dead or stale ones are closed."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if self._usable(conn, now):
                return conn
            conn.close()
            self._open -= 1
        return None

    def _usable(self, conn: _Connection, now: float) -> bool:
        alive = conn.transport is not None and not conn.transport.is_closing()
        return alive and now - conn.idle_since < self._keepalive_s

    def _room(self) -> bool:
        """A slot for a new connection, closing the longest-idle one (any origin) if full."""
        if self._open < self._max:
            return True
        oldest: deque[_Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is None:
            return False
        oldest.popleft().close()
        self._open -= 1
        return True

    async def _connect(self, origin: tuple[str, str, int], connect_s: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(connect_s):
                # Tenant URLs connect to the address the policy checked, never re-resolved;
                # the name still goes to TLS (SNI and certificate) and the Host header.
                targets = [host]
                if self._egress is not None:
                    targets = await pinned_addresses(host, port, self._egress)
                failure: Exception | None = None
                for target in targets:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(origin), target, port, ssl=tls,
                            server_hostname=host if tls else None,
                        )  # fmt: skip
                        return conn
                    except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS
                        failure = exc
                assert failure is not None
                raise httpx.ConnectError(f"{type(failure).__name__}: {failure}") from None
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None

    async def _release(self, conn: _Connection) -> None:
        parked = sum(len(idle) for idle in self._idle.values())
        if (
            conn.reusable
            and conn.transport is not None
            and not conn.transport.is_closing()
            and parked < self._max_idle
        ):
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.origin, deque()).append(conn)
        else:
            conn.close()
            self._open -= 1
        await self._notify()

    async def _notify(self) -> None:
        """Wake every waiter (each wants its own origin); nobody waiting: skip the lock."""
        freed = self._freed
        if freed is not None and self._waiting:
            async with freed:
                freed.notify_all()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle, self._open = {}, 0


def _origin(url: URL) -> tuple[str, str, int]:
    scheme = url.scheme
    if scheme not in ("http", "https") or not url.host:
        raise httpx.UnsupportedProtocol(f"cannot send to {scheme or 'a relative'} URL")
    port = url.port or (443 if scheme == "https" else 80)
    return scheme, url.raw_host or url.host, port


def _host_header(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"
