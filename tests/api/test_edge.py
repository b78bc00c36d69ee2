"""The error envelope and request ids hold on every path, including ones no router expects."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from api.app import create_app
from config.runtime import Resources


class Echo(BaseModel):
    name: str
    count: int


@pytest.fixture
def edge_app(resources: Resources) -> FastAPI:
    app = create_app(resources=resources)

    @app.post("/_test/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail sk-abcdefghijklmnop")

    return app


@pytest.fixture
async def edge(edge_app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=edge_app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def assert_envelope(resp: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"type", "code", "message", "request_id"}
    assert err["code"] == code
    assert err["request_id"] == resp.headers["x-request-id"]
    return dict(err)


async def test_unknown_route_is_404_envelope(edge: httpx.AsyncClient) -> None:
    assert_envelope(await edge.get("/no/such/thing"), 404, "not_found")


async def test_wrong_method_is_405_envelope(edge: httpx.AsyncClient) -> None:
    assert_envelope(await edge.delete("/_test/echo"), 405, "method_not_allowed")


async def test_malformed_json_is_400_envelope(edge: httpx.AsyncClient) -> None:
    resp = await edge.post(
        "/_test/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    err = assert_envelope(resp, 400, "invalid_request")
    assert "JSON" in err["message"]


async def test_schema_violation_names_the_field(edge: httpx.AsyncClient) -> None:
    resp = await edge.post("/_test/echo", json={"name": "x", "count": "many"})
    err = assert_envelope(resp, 400, "invalid_request")
    assert err["message"].startswith("count:")


async def test_declared_oversized_body_is_413(
    edge: httpx.AsyncClient, resources: Resources
) -> None:
    big = b"x" * (resources.settings.max_body_bytes + 1)
    resp = await edge.post("/_test/echo", content=big, headers={"content-type": "application/json"})
    assert_envelope(resp, 413, "request_too_large")


async def test_streamed_oversized_body_is_413(
    edge: httpx.AsyncClient, resources: Resources
) -> None:
    chunk = b"x" * 65536
    count = resources.settings.max_body_bytes // len(chunk) + 2

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(count):
            yield chunk

    resp = await edge.post(
        "/_test/echo", content=body(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in resp.request.headers
    assert_envelope(resp, 413, "request_too_large")


async def test_unhandled_exception_is_sanitized_500(
    edge: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="oxinf.api"):
        resp = await edge.get("/_test/boom")
    assert_envelope(resp, 500, "internal_error")
    assert "secret internal detail" not in resp.text
    assert "Traceback" not in resp.text and "RuntimeError" not in resp.text
    assert any(r.exc_info for r in caplog.records), "the trace must reach the log"


async def test_request_ids_are_present_and_unique(edge: httpx.AsyncClient) -> None:
    ids = set()
    for path in ("/healthz", "/healthz", "/missing", "/_test/boom"):
        resp = await edge.get(path)
        rid = resp.headers["x-request-id"]
        assert rid.startswith("req_") and len(rid) == 28
        ids.add(rid)
    assert len(ids) == 4


async def test_openapi_docs_are_served(edge: httpx.AsyncClient) -> None:
    assert (await edge.get("/openapi.json")).json()["info"]["title"] == "0xinf"
    assert (await edge.get("/docs")).status_code == 200
