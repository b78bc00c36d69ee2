"""One-shot messages shown on the next page ("You are signed out."), kept in a signed cookie.

Signed so that nothing but this server can put words on a console page: a cookie set by a
neighbouring host, or by hand, is dropped rather than displayed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from domain.crypto import digests_equal, token_digest
from web.cookies import FLASH, CookiePolicy

Level = Literal["info", "success", "warning", "error"]
LEVELS: tuple[Level, ...] = ("info", "success", "warning", "error")
MAX_TEXT = 300


@dataclass(frozen=True)
class Flash:
    level: Level
    text: str


def _signature(pepper: str, payload: str) -> str:
    return token_digest(pepper, f"console-flash:{payload}").hex()[:32]


def set_flash(
    response: Response, cookies: CookiePolicy, pepper: str, text: str, level: Level = "info"
) -> None:
    raw = json.dumps([level, text[:MAX_TEXT]], separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    cookies.set(response, FLASH, f"{payload}.{_signature(pepper, payload)}", max_age=120)


def read_flash(request: Request, cookies: CookiePolicy, pepper: str) -> Flash | None:
    value = cookies.read(request, FLASH)
    if not value:
        return None
    payload, _, signature = value.partition(".")
    if not digests_equal(signature.encode(), _signature(pepper, payload).encode()):
        return None
    try:
        level, text = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):  # not base64, not JSON, or not a [level, text] pair
        return None
    if level not in LEVELS or not isinstance(text, str):
        return None
    return Flash(level, text)
