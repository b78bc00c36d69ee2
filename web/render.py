"""Jinja2 templates and the one function every page answers with.

`render` adds what the layout needs (viewer, navigation, CSRF token, flash message, request
id) and the headers every console page carries: a strict Content-Security-Policy (scripts and
styles only from /static, so no inline script can run even if some text slipped past
autoescaping), no framing, and no caching of pages that show account data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from config.context import current_request_id
from domain.pricing.cost import format_credits
from web.assets import AssetManifest
from web.cookies import FLASH, CookiePolicy
from web.flash import Flash, read_flash
from web.nav import href_of, nav_for

if TYPE_CHECKING:
    from web.viewer import Viewer

TEMPLATES_DIR = Path(__file__).parent / "templates"

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def credits(micros: int) -> str:
    """Exact decimal credits with thousands grouped: 1234567891 -> "1,234.567891"."""
    text = format_credits(micros)
    sign = "-" if text.startswith("-") else ""
    whole, dot, frac = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}"


def dollars(micros: int) -> str:
    """Credits in US dollars, exact (1 credit = $0.001): 1234567891 micros -> "1.234567891",
    at least cents."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 10**9)
    digits = f"{frac:09d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole:,}.{digits}"


def local_time(value: datetime | None, style: str = "datetime") -> Markup:
    """A `<time>` the browser rewrites in the viewer's time zone; UTC text until it does."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    shown = utc.strftime("%Y-%m-%d" if style == "date" else "%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}" data-local="{}">{}</time>').format(
        utc.isoformat(), style, shown
    )


@dataclass(frozen=True)
class Console:
    """What the console keeps per app: templates, asset URLs and the cookie policy."""

    templates: jinja2.Environment
    assets: AssetManifest
    cookies: CookiePolicy

    @classmethod
    def build(cls, *, env: str) -> Console:
        assets = AssetManifest(reload=env == "dev")
        templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=env == "dev",
        )
        templates.globals.update(asset=assets.url, page_href=href_of)
        templates.filters.update(credits=credits, dollars=dollars, local_time=local_time)
        return cls(templates, assets, CookiePolicy.for_env(env))


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def pepper_of(request: Request) -> str:
    pepper: str = request.app.state.resources.identity.pepper
    return pepper


def html_response(
    request: Request, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """A template rendered with the page headers; the layout's variables must be in `context`."""
    body = console_of(request).templates.get_template(name).render(context)
    return HTMLResponse(body, status, headers=PAGE_HEADERS)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    viewer: Viewer | None,
    status: int = 200,
    csrf: str | None = None,
) -> HTMLResponse:
    """A console page. `csrf` is for signed-out forms; a viewer brings their own token."""
    console = console_of(request)
    flash: Flash | None = read_flash(request, console.cookies, pepper_of(request))
    page: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "nav": nav_for(viewer.ctx) if viewer else [],
        "csrf": viewer.csrf if viewer else csrf,
        "flash": flash,
        "request_id": current_request_id(),
        "path": request.url.path,
    }
    page.update(context or {})
    response = html_response(request, name, page, status)
    if flash is not None:
        console.cookies.clear(response, FLASH)
    return response
