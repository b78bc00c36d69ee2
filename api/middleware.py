"""One pure-ASGI middleware for what every request needs: an id, a body limit, a safety net.

Pure ASGI (not BaseHTTPMiddleware) because it wraps the relay's hot path and must not buffer
streamed responses. Unhandled exceptions are caught here rather than by Starlette's
ServerErrorMiddleware so the sanitized 500 still carries `X-Request-ID`; an exception that
says PostgreSQL or Temporal is unreachable is answered 503 with `Retry-After` instead
(`domain.outages`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import envelope
from api.metrics_registry import HTTP
from config.context import current_request_id, new_request_id, set_request_id
from domain.outages import as_unavailable

log = logging.getLogger("oxinf.api")
access_log = logging.getLogger("oxinf.access")


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        set_request_id(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        header_value = request_id.encode()
        started = time.perf_counter()
        status_holder = [0]
        response_started = False
        rejected = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return  # the 413 already went out; whatever the app says after is moot
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", header_value))
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._send_error(send, 413, "request_too_large", self._too_large_message())
            return

        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            # Frameworks turn exceptions raised while reading the body into their own 400, so
            # an oversized chunked body is answered here and the app is told the client left.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not response_started:
                        await self._send_error(
                            send, 413, "request_too_large", self._too_large_message()
                        )
                        status_holder[0] = 413
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            if rejected:
                return
            down = as_unavailable(exc)
            if down is not None:
                # PostgreSQL or Temporal is out of reach: not a bug, so no traceback, and an
                # answer clients retry (a stream that already started has ended on its own).
                log.warning(
                    "dependency unavailable; answering 503",
                    extra={"path": scope.get("path"), "dependency": down.dependency,
                           "error": type(exc).__name__},
                )  # fmt: skip
                if not response_started:
                    await self._send_error(send, 503, down.code, down.message, headers=down.headers)
                    status_holder[0] = 503
                return
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                await self._send_error(
                    send, 500, "internal_error", "internal error; quote the request id to support"
                )
                status_holder[0] = 500
        finally:
            route = scope.get("route")
            HTTP.observe(
                scope.get("method", ""),
                getattr(route, "path", None) or "unmatched",
                status_holder[0],
                time.perf_counter() - started,
            )
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status_holder[0],
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )

    def _too_large_message(self) -> str:
        return f"request body exceeds {self.max_body_bytes} bytes"

    async def _send_error(
        self,
        send: Send,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(envelope(status, code, message)).encode()
        rid = (current_request_id() or "").encode()
        raw_headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid),
        ]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if status == 413:
            raw_headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
