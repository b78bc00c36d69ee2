"""CSRF tokens: derived, never stored.

A signed-in form's token is HMAC(pepper, "console-csrf:" + session token): it lives and dies
with the session, differs per session, and a page leaks nothing that opens the session (the
session's own at-rest digest is the HMAC of the bare token, so the prefix keeps the two
apart). The sign-in and sign-up forms have no session yet; their token is bound the same way
to a random pre-session cookie, so another site cannot log a victim into its own account.

The token travels as the `csrf_token` form field, or as the `X-CSRF-Token` header, which
console.js adds to every htmx request.
"""

from __future__ import annotations

from starlette.requests import Request

from domain.crypto import digests_equal, token_digest
from domain.errors import PermissionDenied

FIELD = "csrf_token"
HEADER = "x-csrf-token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfRejected(PermissionDenied):
    code = "csrf_failed"
    status_hint = 403

    def __init__(self) -> None:
        super().__init__(
            "This form was not sent from an open console page, or it has expired. "
            "Go back, reload the page and try again."
        )


def token_for(pepper: str, binding: str) -> str:
    return token_digest(pepper, f"console-csrf:{binding}").hex()


def session_token(pepper: str, session_token: str) -> str:
    return token_for(pepper, f"session:{session_token}")


def pre_session_token(pepper: str, nonce: str) -> str:
    return token_for(pepper, f"pre:{nonce}")


async def sent_token(request: Request) -> str | None:
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(FIELD)  # parsed once; FastAPI reuses it
        return value if isinstance(value, str) else None
    return None


async def require(request: Request, expected: str) -> None:
    """Raise before anything changes unless the request carries `expected`."""
    sent = await sent_token(request)
    if not sent or not digests_equal(sent.encode(), expected.encode()):
        raise CsrfRejected()
