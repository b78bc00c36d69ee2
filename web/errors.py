"""Error pages for people, the JSON envelope for programs, chosen by path.

The API's handlers (`api/errors.py`) answer every error with the envelope. The console
wraps them instead of changing them: under `/`, `/console` and `/help` an error becomes a
page that says what happened and shows the request id; every other path is handed to the
API's own handler untouched. Page routes also use `PageRoute`, which turns an unexpected
exception into the 500 page (the edge middleware would otherwise answer it with JSON).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from config.context import current_request_id
from domain.errors import DomainError
from edge.deps import abandon_unit_of_work
from edge.statuses import status_of
from web.render import html_response
from web.viewer import SignInRequired

log = logging.getLogger("oxinf.web")

CONSOLE_PREFIXES = ("/console", "/help")
SIGN_IN_PATH = "/console/sign-in"
HANDLED = (DomainError, StarletteHTTPException, RequestValidationError, SignInRequired)

TITLES = {
    400: "That request did not work",
    403: "You cannot open this page",
    404: "Page not found",
    405: "Not available this way",
    409: "That clashes with something that exists",
    413: "That was too large",
    422: "That request did not work",
    429: "Slow down a little",
    500: "Something went wrong on our side",
    502: "An upstream service failed",
    503: "Temporarily unavailable",
}
TITLES_BY_CODE = {"csrf_failed": "This form could not be accepted"}
MESSAGES = {
    404: "There is no page at this address. Check the link, or start again from the console.",
    405: "This address exists, but not for this kind of request.",
    500: "The error is logged. If it keeps happening, send the request id below to support.",
}

Handler = Callable[[Request, Any], Any]  # what Starlette stores: sync or async


async def _delegate(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    response: Response = await result if inspect.isawaitable(result) else result
    return response


def is_console_path(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in CONSOLE_PREFIXES)


def sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def error_page(
    request: Request,
    status: int,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
) -> Response:
    context: dict[str, Any] = {
        "request": request,
        "viewer": None,
        "nav": [],
        "csrf": None,
        "flash": None,
        "path": request.url.path,
        "status": status,
        "title": title or TITLES.get(status, "Something went wrong"),
        "message": message or MESSAGES.get(status, ""),
        "request_id": current_request_id(),
    }
    response = html_response(request, "errors/error.html", context, status)
    response.headers.update(headers or {})
    return response


def sign_in_redirect(request: Request, next_path: str) -> Response:
    target = f"{SIGN_IN_PATH}?{urlencode({'next': next_path})}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


class PageRoute(APIRoute):
    """A page route whose unexpected failures render the 500 page (and are logged)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except HANDLED:
                raise
            except Exception:
                log.exception("console page failed", extra={"path": request.url.path})
                abandon_unit_of_work(request)  # answered here, so nothing of it is kept
                return error_page(request, 500)

        return guarded


def install_page_errors(app: FastAPI) -> None:
    """Wrap the API's handlers; call after `api.errors.install_error_handlers`."""
    api_domain: Handler = app.exception_handlers[DomainError]
    api_http: Handler = app.exception_handlers[StarletteHTTPException]
    api_validation: Handler = app.exception_handlers[RequestValidationError]

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        if not is_console_path(request.url.path):
            return await _delegate(api_domain, request, exc)
        status = status_of(exc)
        if status == 401:
            return sign_in_redirect(request, request.url.path)
        title = TITLES_BY_CODE.get(exc.code)
        return error_page(request, status, sentence(exc.message), exc.headers, title=title)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not is_console_path(request.url.path):
            return await _delegate(api_http, request, exc)
        return error_page(request, exc.status_code, headers=dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> Response:
        if not is_console_path(request.url.path):
            return await _delegate(api_validation, request, exc)
        return error_page(request, 400, "Some fields of the form were missing or not valid.")

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(request, exc.next_path)

    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(SignInRequired, on_sign_in)
