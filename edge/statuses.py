"""The HTTP status each error code answers with (DESIGN.md §9), for both edges: the JSON
API's error envelope and the console's error pages."""

from __future__ import annotations

from domain.errors import DomainError

STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "invalid_api_key": 401,
    "authentication_required": 401,
    "insufficient_credits": 402,
    "api_key_budget_exhausted": 402,
    "permission_denied": 403,
    "model_not_allowed": 403,
    "not_found": 404,
    "model_not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "request_too_large": 413,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
    "upstream_error": 502,
    "service_unavailable": 503,
}

TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable_error",
}


def status_of(exc: DomainError) -> int:
    return exc.status_hint or STATUS_BY_CODE.get(exc.code, 400)
