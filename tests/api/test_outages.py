"""PostgreSQL or Temporal out of reach: 503 `service_unavailable` with `Retry-After` on every
route, never a 500; and the classifier behind it, fed real driver errors."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.middleware import EdgeMiddleware
from config.runtime import Resources, build_resources
from config.settings import Settings
from config.temporal import TemporalHandle
from domain.outages import DependencyUnavailable, dependency_down
from schema.db import create_engine
from schema.direct import DirectPool
from tests.fixtures.conditions import eventually
from tests.fixtures.processes import free_port

OXI_KEY = "oxi_" + "ab" * 32
OXS_TOKEN = "oxs_" + "cd" * 24
SESSION_SURFACES = ("/portal/", "/enterprise/", "/admin/", "/ops/")


@pytest.fixture
async def unreachable(settings: Settings) -> AsyncIterator[Resources]:
    """Resources whose PostgreSQL and Temporal both refuse connections."""
    nothing_there = f"postgresql://oxinf@127.0.0.1:{free_port()}/oxinf"
    engine = create_engine(nothing_there, pool_size=2, timeout_s=1.0)
    res = build_resources(settings.model_copy(update={"temporal_timeout_s": 1.0}), engine)
    yield res
    await res.aclose()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def test_every_route_answers_503_not_500_while_dependencies_are_down(
    unreachable: Resources,
) -> None:
    app = create_app(resources=unreachable)
    headers = {"authorization": f"Bearer {OXI_KEY}", "x-api-key": OXI_KEY}
    portal = {"authorization": f"Bearer {OXS_TOKEN}"}
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        routes = app.openapi()["paths"]
        assert len(routes) > 60
        for route, operations in routes.items():
            for method in operations:
                path = _concrete(route)
                auth = portal if path.startswith(SESSION_SURFACES) else headers
                resp = await client.request(method.upper(), path, headers=auth, json={})
                statuses[f"{method} {route}"] = resp.status_code
                assert resp.status_code != 500, (method, path, resp.text)
                assert "x-request-id" in resp.headers
                if resp.status_code == 503 and path.startswith("/v1/messages"):
                    # Anthropic's shape there: `overloaded_error` is its 503.
                    assert resp.json()["error"]["type"] == "overloaded_error", resp.text
                    assert resp.headers.get("retry-after") == "2", (method, path, resp.text)
                elif resp.status_code == 503:
                    error = resp.json()["error"]
                    assert error["code"] == "service_unavailable", resp.text
                    # (Stripe unconfigured is a 503 too, but no outage: nothing to retry.)
                    if route != "/readyz" and "not configured" not in error["message"]:
                        assert resp.headers.get("retry-after") == "2", (method, path, resp.text)

        # The routes a client lives on, with well-formed requests.
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for method, path, body in [
            ("POST", "/v1/chat/completions", chat),
            ("POST", "/v1/chat/completions", {**chat, "stream": True}),
            ("GET", "/v1/models", None),
            ("POST", "/v1/tasks", {"type": "image", "model": "m", "input": {"prompt": "x"}}),
            ("POST", "/portal/v1/auth/login", {"email": "a@example.com", "password": "x" * 12}),
            ("GET", "/portal/v1/me", None),
            ("GET", "/admin/v1/orgs", None),
        ]:
            auth = portal if path.startswith(SESSION_SURFACES) else headers
            resp = await client.request(method, path, headers=auth, json=body)
            assert resp.status_code == 503, (path, resp.text)
            assert resp.headers["retry-after"] == "2"
            assert "database" in resp.json()["error"]["message"]

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "down", "temporal": "down"}
        assert (await client.get("/healthz")).status_code == 200

    counts = Counter(statuses.values())
    # Nearly every route needs the database before anything else can fail.
    assert counts[503] >= 0.8 * len(statuses), statuses


async def test_edge_safety_net_turns_a_driver_outage_into_503() -> None:
    """An outage that escapes every handler still gets a 503 with the request id."""
    port = free_port()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncpg.connect(host="127.0.0.1", port=port, user="x", database="x")

    async def bug(scope: Scope, receive: Receive, send: Send) -> None:
        raise OSError("not a dependency")

    for inner, status in ((app, 503), (bug, 500)):
        edge = EdgeMiddleware(inner, max_body_bytes=1024)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=edge), base_url="http://t"
        ) as client:
            resp = await client.get("/anything")
        assert resp.status_code == status
        assert resp.headers["x-request-id"] == resp.json()["error"]["request_id"]
        assert ("retry-after" in resp.headers) == (status == 503)


async def _error_of(coro: object) -> BaseException:
    try:
        await coro  # type: ignore[misc]
    except BaseException as exc:
        return exc
    raise AssertionError("expected an error")


async def test_driver_errors_are_classified_by_what_they_mean(engine: AsyncEngine) -> None:
    closed = f"postgresql://oxinf@127.0.0.1:{free_port()}/oxinf"
    refused_engine = create_engine(closed, pool_size=1, timeout_s=1.0)
    try:
        # Connect refused, through SQLAlchemy and through the relay's direct pool.
        async def sa_select() -> None:
            async with refused_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        assert dependency_down(await _error_of(sa_select())) == "postgres"
        direct = DirectPool(refused_engine)
        error = await _error_of(direct.fetchrow(select(func.now()), {}))
        assert isinstance(error, ConnectionRefusedError)
        assert dependency_down(error) == "postgres"
    finally:
        await refused_engine.dispose()

    # A connection an administrator terminates in the middle of a transaction.
    async with engine.connect() as victim:
        await victim.begin()
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        error = await _error_of(victim.execute(text("SELECT 1")))
        assert dependency_down(error) == "postgres", repr(error)

    # A pool that stays exhausted past its bound, in SQLAlchemy and in the direct pool.
    url = engine.url.render_as_string(hide_password=False)
    small = create_engine(url, pool_size=1, timeout_s=0.3)
    direct = DirectPool(small, max_size=1)
    try:
        held = [await small.connect(), await small.connect()]  # pool_size + max_overflow
        error = await _error_of(small.connect())
        assert dependency_down(error) == "postgres", repr(error)
        for conn in held:
            await conn.close()

        busy = asyncio.create_task(direct.fetchrow(select(func.pg_sleep(2)), {}))
        await eventually(
            lambda: _running(engine, "pg_sleep"), within=10, what="the slow query running"
        )  # it holds the only connection
        started = asyncio.get_running_loop().time()
        error = await _error_of(direct.fetchrow(select(func.now()), {}))
        assert isinstance(error, TimeoutError)
        assert asyncio.get_running_loop().time() - started < 1.5
        assert dependency_down(error) == "postgres"
        await busy
        assert await direct.fetchrow(select(func.now()), {}) is not None  # and it recovers
    finally:
        await direct.close()
        await small.dispose()

    # A pooled connection whose dying backend spoke out of turn (its protocol then refuses
    # the next statement): seen when PostgreSQL is killed under load.
    out_of_step = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert dependency_down(out_of_step) == "postgres"

    # What is not an outage stays what it is.
    async with engine.connect() as conn:
        error = await _error_of(conn.execute(text("SELECT 1/0")))
    assert dependency_down(error) is None
    assert dependency_down(IntegrityError("INSERT", {}, Exception("duplicate"))) is None
    assert dependency_down(ValueError("bug")) is None
    assert dependency_down(OSError("raised by our own code")) is None
    assert dependency_down(await _error_of(asyncio.wait_for(asyncio.sleep(1), 0.01))) is None

    # Temporal: unavailable is an outage; not-found and friends are not.
    unavailable = RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b"")
    assert dependency_down(unavailable) == "temporal"
    assert dependency_down(RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b"")) is None


async def test_an_unreachable_temporal_is_reported_in_seconds(settings: Settings) -> None:
    nowhere = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}", "temporal_timeout_s": 1.0}
    )
    handle = TemporalHandle(nowhere)
    started = asyncio.get_running_loop().time()
    error = await _error_of(handle.get())
    assert isinstance(error, DependencyUnavailable) and error.dependency == "temporal"
    assert error.headers["Retry-After"] == "2"
    assert asyncio.get_running_loop().time() - started < 3


async def _running(engine: AsyncEngine, fragment: str) -> bool:
    """Whether another backend is executing a statement containing `fragment`."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND pid <> pg_backend_pid() AND query LIKE :q"
            ),
            {"q": f"%{fragment}%"},
        )
        return int(found.scalar_one()) > 0
