"""What console form handlers share: go back to a page with a message, run an action that
may be refused, and read the optional ids and amounts forms send as text.

A refused action (a `DomainError`) rolls its unit of work back and returns to the page with
the reason in the flash message, so a mistake in a form never leaves a half-made change and
never needs the browser's back button.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from domain.errors import DomainError, InvalidField
from domain.pricing.cost import parse_credits
from schema.unit_of_work import rollback_only
from web.errors import sentence
from web.flash import Level, set_flash
from web.render import console_of, pepper_of


def back(request: Request, to: str, text: str | None = None, level: Level = "success") -> Response:
    response = RedirectResponse(to, status_code=303)
    if text:
        set_flash(response, console_of(request).cookies, pepper_of(request), text, level)
    return response


def refused(request: Request, session: AsyncSession, to: str, exc: DomainError) -> Response:
    rollback_only(session)
    return back(request, to, sentence(exc.message), "error")


async def attempt(
    request: Request, session: AsyncSession, to: str, done: str, action: Awaitable[Any]
) -> Response:
    """Run `action`; back to `to` with `done`, or with the reason it was refused."""
    try:
        await action
    except DomainError as exc:
        return refused(request, session, to, exc)
    return back(request, to, done)


def optional_id(value: str | None, param: str) -> uuid.UUID | None:
    """A select's value: "" means none."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidField(f"{param} is not a valid id", param=param) from None


def credits_to_micros(value: str, param: str) -> int:
    """Exact decimal credits typed by a person ("1,250.5") to micro-credits."""
    try:
        return parse_credits(value.replace(",", "").replace("_", ""))
    except DomainError:
        raise InvalidField(
            f"{param} must be a number of credits with at most 6 decimals", param=param
        ) from None


def percentages(value: str, param: str) -> list[int]:
    """ "50, 80, 100" to [50, 80, 100]; the service checks the range."""
    parts = [p.strip().rstrip("%") for p in value.replace(";", ",").split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise InvalidField(f"{param} must be whole percentages separated by commas", param=param)
    return [int(p) for p in parts]
