"""`/docs` (Swagger UI) and `/redoc`, served with their assets from the `fastapi-offline`
wheel, never a CDN, so the docs work on a machine without a network; and the OpenAPI
document's security schemes, so Swagger UI's "Authorize" button fills in the right
credential for each route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"

API_KEY = "ApiKey"
ANTHROPIC_KEY = "AnthropicApiKey"
PORTAL_TOKEN = "PortalToken"  # noqa: S105  (a scheme name, not a secret)
SECURITY_SCHEMES: dict[str, Any] = {
    API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "A platform API key (`oxi_…`), for the `/v1` relay routes.",
    },
    ANTHROPIC_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same platform API key, as the `anthropic` SDK sends it.",
    },
    PORTAL_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "A portal session token from `POST /portal/v1/auth/login`.",
    },
}
_PUBLIC = ("/portal/v1/auth/signup", "/portal/v1/auth/login", "/v1/files/")
_PORTAL_PREFIXES = ("/portal/v1/", "/enterprise/v1/", "/admin/v1/", "/ops/v1/")


def security_for(path: str) -> list[dict[str, list[str]]] | None:
    """Which credential a route takes (None: none, or its own such as a signed URL)."""
    if path.startswith(_PUBLIC):
        return None
    if path.startswith("/v1/messages"):
        return [{ANTHROPIC_KEY: []}, {API_KEY: []}]
    if path.startswith("/v1/"):
        return [{API_KEY: []}]
    if path.startswith(_PORTAL_PREFIXES):
        return [{PORTAL_TOKEN: []}]
    return None


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            security = security_for(path)
            if security is None:
                continue
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation.setdefault("security", security)
        app.openapi_schema = schema
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    """Call on an app built with `docs_url=None, redoc_url=None`."""
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            # The default validator badge calls a public host on every page load.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
