"""Domain errors carry a stable machine code; the HTTP edge alone decides the status.

Services raise these so the same rule reads the same whether it fires under the relay, a
portal call or a Temporal activity.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "invalid_request"
    status_hint: int | None = None  # when a code's usual status does not fit this error

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.param = param
        # More fields of the error object (e.g. a 402's amounts); None values are left out.
        self.extra: dict[str, Any] = {}


class InvalidRequest(DomainError):
    code = "invalid_request"


class InvalidField(InvalidRequest):
    """A well-formed body whose field breaks a rule: 400 with `param`, like schema
    validation errors (DESIGN.md §9: every invalid request is a 400)."""


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class PermissionDenied(DomainError):
    code = "permission_denied"


class Unauthenticated(DomainError):
    code = "invalid_api_key"


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
