"""The one error envelope (DESIGN.md §9): `{"error": {type, code, message, request_id}}`.

It is OpenAI-shaped so the official SDKs raise the right exception class; every error path
(validation, routing, domain rules, crashes) ends in `error_response` so clients never see
two shapes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from config.context import current_request_id
from domain.errors import DomainError
from domain.inputs import NO_NUL
from domain.outages import OUTAGE_TYPES, DependencyUnavailable, as_unavailable
from edge.statuses import TYPE_BY_STATUS, status_of

log = logging.getLogger("oxinf.api")


def envelope(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BY_STATUS.get(status, "api_error"),
        "code": code,
        "message": message,
        "request_id": current_request_id(),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return {"error": body}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(envelope(status, code, message, **extra), status, headers=headers)


def domain_error_response(exc: DomainError) -> JSONResponse:
    return error_response(
        status_of(exc), exc.code, exc.message, headers=exc.headers, param=exc.param, **exc.extra
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON", None
    msg = _friendly(first)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{where}: {msg}{more}" if where else f"{msg}{more}"), where


def _friendly(error: Any) -> str:
    """pydantic's wording, except where it would show our storage rules as a regex."""
    kind = error.get("type")
    if kind == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == NO_NUL:
        return "must not contain NUL (\\u0000) characters"
    if kind == "string_unicode":
        return "must be valid Unicode text"
    return str(error.get("msg", "invalid value"))


async def _on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = _validation_message(exc)
    return error_response(400, "invalid_request", message, param=param)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
    if code is None:
        code = "invalid_request" if status < 500 else "internal_error"
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if status == 404 and message == "Not Found":
        # OpenAI's own wording, which SDK users search for.
        message = f"Invalid URL ({request.method} {request.url.path})"
    if status == 405 and message == "Method Not Allowed":
        message = "method not allowed on this route"
    return error_response(status, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)


# --- dependency outages -------------------------------------------------------------------
# Kept apart from the handlers above: PostgreSQL or Temporal being unreachable is not the
# caller's fault nor a bug, so it answers 503 `service_unavailable` with `Retry-After`.


def outage_response(exc: DependencyUnavailable) -> JSONResponse:
    log.warning(
        "dependency unavailable; answering 503",
        extra={"dependency": exc.dependency, "error": _error_name(exc)},
    )
    return domain_error_response(exc)


def _error_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return type(cause).__name__


async def _on_possible_outage(_: Request, exc: Exception) -> JSONResponse:
    down = as_unavailable(exc)
    if down is None:
        raise exc  # not an outage: the edge's safety net answers it as the bug it is
    if down is not exc:
        down.__cause__ = exc
    return outage_response(down)


def install_outage_handlers(app: FastAPI) -> None:
    for exc_type in OUTAGE_TYPES:
        app.add_exception_handler(exc_type, _on_possible_outage)
