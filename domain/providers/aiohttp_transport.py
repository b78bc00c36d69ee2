"""An httpx transport that sends over aiohttp: the same client API at a fraction of the CPU.

Every adapter, test and error rule is written against `httpx.AsyncClient`; only the bytes on
the wire move through aiohttp's C parser and connection pool instead of httpcore, h11 and
anyio, which cost the relay about 0.7 ms of CPU per upstream call (≈ 0.2 ms here).

What httpx would do stays httpx's: building the request, redirects (never followed by the
relay), decoding `Content-Encoding`. This transport speaks to upstreams directly: with a
proxy configured in the environment, `config.runtime.build_http_client` uses plain httpx
instead, which honours it. aiohttp's failures are
mapped onto the httpx exceptions `domain.providers.errors.transport_error` classifies, so a
connect failure is still `connect`, a slow upstream still `timeout`, a hang-up `dropped`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from yarl import URL

from domain.egress.pinning import GuardedResolver, check_host, refusal_of
from domain.egress.policy import EgressPolicy
from domain.providers.h1 import H1Pool

# Most specific first: the first match decides which httpx error the caller sees.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # pool wait or TCP/TLS connect
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),  # ServerTimeoutError and plain timeouts
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # unparseable status or headers
    (aiohttp.ClientOSError, httpx.ReadError),  # reset after connecting
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _mapped(request: httpx.Request | str) -> Iterator[None]:
    """aiohttp's failures as httpx's; `request` may be just the URL (built only on error)."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        req = request if isinstance(request, httpx.Request) else httpx.Request("POST", request)
        refused = refusal_of(exc)
        if refused is not None:
            raise refused from None
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(f"{type(exc).__name__}: {exc}", request=req) from exc
        raise  # pragma: no cover - the last entry catches every ClientError


class _ResponseBody(httpx.AsyncByteStream):
    """The response body as aiohttp receives it; closing mid-body drops the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # fully read: the connection goes back to the pool
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one lazily created `aiohttp.ClientSession`."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        """`egress`: send only where the tenant egress policy allows (BYOK base URLs)."""
        self._egress = egress
        self._limit = limits.max_connections or 0
        self._keepalive_s = limits.keepalive_expiry
        # httpx's own default context (certifi's CA bundle), so both transports trust alike.
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session belongs to the loop it was made in (tests may run several loops).
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_s if self._keepalive_s is not None else 15.0,
                ssl=self._ssl,
                # Tenant URLs: every new connection resolves through the policy, uncached.
                resolver=GuardedResolver(self._egress) if self._egress else None,
                use_dns_cache=self._egress is None,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps cookies, if anyone does
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,  # proxied deployments use plain httpx (see the docstring)
            )
            # aiohttp resends an idempotent request once when a reused connection turns out
            # closed; httpcore does not, and callers (media polls) own their retry policy.
            # No public switch exists; the provider tests fail loudly if this one goes away.
            self._session._retry_connection = False
            self._loop = loop
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        t = request.extensions.get("timeout") or {}
        connect, read, pool = t.get("connect"), t.get("read"), t.get("pool")
        key = (connect, read, pool)
        found = self._timeouts.get(key)
        if found is None:
            # aiohttp's `connect` covers waiting for a pooled connection and connecting.
            waiting = None if connect is None or pool is None else connect + pool
            found = aiohttp.ClientTimeout(
                total=None, connect=waiting, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._egress is not None:
            check_host(request.url, self._egress)  # IP-like hosts bypass the resolver
        body = await request.aread()  # bounded bodies only: JSON, or media parts we built
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() != b"transfer-encoding"  # the body is whole now: aiohttp sizes it
        ]
        with _mapped(request):
            response = await self._client().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=self._timeout(request),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseBody(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class UpstreamClient(httpx.AsyncClient):
    """httpx's client over `AiohttpTransport` (streams, media calls), plus `json`, the
    leaner keep-alive pool (`domain.providers.h1`) that whole JSON POSTs take directly
    (see `domain.providers.transport.post_json`)."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
        egress: EgressPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        self.fast = AiohttpTransport(limits=limits, ssl_context=ssl_context, egress=egress)
        self.json = H1Pool(
            max_connections=limits.max_connections or 512,
            keepalive_s=limits.keepalive_expiry if limits.keepalive_expiry is not None else 15.0,
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_idle=limits.max_keepalive_connections,
            egress=egress,
        )
        super().__init__(limits=limits, transport=self.fast, **kwargs)

    async def aclose(self) -> None:
        await self.json.aclose()
        await super().aclose()
