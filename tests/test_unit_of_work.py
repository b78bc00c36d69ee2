"""One unit of work per request (schema/unit_of_work.py, edge.deps.SessionDep).

Through a test app on the real database: a handler that raises after writing leaves
nothing, one that returns commits exactly once, a commit that fails is an error answer (the
commit runs before the response is sent), and post-commit hooks run only after a commit.
Then the rule itself: no `commit(` and no session opened under api/, web/ or domain/ except
where schema/unit_of_work.py's docstring says why.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.errors import install_error_handlers
from config.runtime import Resources
from domain.errors import InvalidRequest
from edge.deps import SessionDep
from schema.unit_of_work import (
    after_commit,
    keep_writes_on_error,
    rollback_only,
    unit_of_work,
)

ROOT = Path(__file__).resolve().parents[1]
PROBE = "uow_probe"


@pytest.fixture
async def probe(engine: AsyncEngine) -> AsyncIterator[str]:
    """A scratch table (outside the schema, so truncation leaves it alone) whose unique
    key is checked only at COMMIT: two equal ids make the commit itself fail."""
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {PROBE}"))
        await conn.execute(
            text(
                f"CREATE TABLE {PROBE} (id text, CONSTRAINT {PROBE}_id UNIQUE (id)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield PROBE
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {PROBE}"))


async def _insert(session: AsyncSession, row_id: str) -> None:
    await session.execute(text(f"INSERT INTO {PROBE} (id) VALUES (:id)"), {"id": row_id})


async def _stored(engine: AsyncEngine, row_id: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(f"SELECT count(*) FROM {PROBE} WHERE id = :id"), {"id": row_id}
        )
        return int(found.scalar_one())


class Commits:
    """Counts COMMITs the engine's connections send while it is installed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.count = 0

    def _on_commit(self, _conn: Any) -> None:
        self.count += 1

    def __enter__(self) -> Commits:
        event.listen(self.engine, "commit", self._on_commit)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "commit", self._on_commit)


async def request_scoped_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The same unit of work under FastAPI's default (request) scope, which exits only after
    the response has gone out: shown below to be the wrong one."""
    resources: Resources = request.app.state.resources
    async with unit_of_work(resources.sessions) as session:
        yield session


LateSessionDep = Annotated[AsyncSession, Depends(request_scoped_session)]


def probe_app(resources: Resources, engine: AsyncEngine, seen: list[str]) -> FastAPI:
    app = FastAPI()
    app.state.resources = resources
    install_error_handlers(app)

    def remember(what: str) -> Callable[[], Any]:
        async def hook() -> None:
            # Runs after the commit, on another connection: the write must be visible.
            seen.append(f"{what}:{await _stored(engine, what)}")

        return hook

    @app.post("/write/{row_id}")
    async def write(row_id: str, session: SessionDep) -> dict[str, str]:
        await _insert(session, row_id)
        after_commit(session, remember(row_id))
        return {"id": row_id}

    @app.post("/write-then-raise/{row_id}")
    async def write_then_raise(row_id: str, session: SessionDep) -> None:
        await _insert(session, row_id)
        after_commit(session, remember(row_id))
        raise InvalidRequest("refused after writing")

    @app.post("/write-then-crash/{row_id}")
    async def write_then_crash(row_id: str, session: SessionDep) -> None:
        await _insert(session, row_id)
        raise RuntimeError("a bug after writing")

    @app.post("/commit-fails/{row_id}")
    async def commit_fails(row_id: str, session: SessionDep) -> dict[str, str]:
        await _insert(session, row_id)
        await _insert(session, row_id)  # legal until COMMIT checks the deferred key
        return {"id": row_id}

    @app.post("/late/commit-fails/{row_id}")
    async def late_commit_fails(row_id: str, session: LateSessionDep) -> dict[str, str]:
        await _insert(session, row_id)
        await _insert(session, row_id)
        return {"id": row_id}

    @app.post("/shared/{row_id}")
    async def shared(
        row_id: str, session: SessionDep, again: Annotated[AsyncSession, Depends(same_session)]
    ) -> dict[str, bool]:
        await _insert(session, row_id)
        return {"same": session is again}

    return app


async def same_session(session: SessionDep) -> AsyncSession:
    """A dependency of its own (as auth dependencies are) that also takes the session."""
    return session


@pytest.fixture
async def api(
    resources: Resources, engine: AsyncEngine, probe: str
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    seen: list[str] = []
    app = probe_app(resources, engine, seen)
    # A crash answers 500 through Starlette's safety net instead of raising into the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client, seen


async def test_a_handler_that_returns_commits_once_then_runs_its_hooks(
    api: tuple[httpx.AsyncClient, list[str]], engine: AsyncEngine
) -> None:
    client, seen = api
    row = f"ok-{uuid.uuid4()}"
    with Commits(engine) as commits:
        resp = await client.post(f"/write/{row}")
    assert resp.status_code == 200, resp.text
    assert commits.count == 1
    assert await _stored(engine, row) == 1
    assert seen == [f"{row}:1"]  # the hook saw the committed row


@pytest.mark.parametrize(
    ("route", "status"), [("write-then-raise", 400), ("write-then-crash", 500)]
)
async def test_a_handler_that_raises_after_writing_leaves_nothing(
    api: tuple[httpx.AsyncClient, list[str]], engine: AsyncEngine, route: str, status: int
) -> None:
    client, seen = api
    row = f"raise-{uuid.uuid4()}"
    with Commits(engine) as commits:
        resp = await client.post(f"/{route}/{row}")
    assert resp.status_code == status, resp.text
    assert commits.count == 0
    assert await _stored(engine, row) == 0
    assert seen == []  # no post-commit hook after a rollback


async def test_a_commit_that_fails_is_an_error_answer_not_a_lost_write(
    api: tuple[httpx.AsyncClient, list[str]], engine: AsyncEngine
) -> None:
    """SessionDep commits before the response is sent: the client learns the write failed."""
    client, _ = api
    row = f"dup-{uuid.uuid4()}"
    resp = await client.post(f"/commit-fails/{row}")
    assert resp.status_code == 500
    assert await _stored(engine, row) == 0


async def test_a_request_scoped_dependency_would_answer_200_for_a_lost_write(
    api: tuple[httpx.AsyncClient, list[str]], engine: AsyncEngine
) -> None:
    """Why SessionDep is function-scoped: FastAPI exits a request-scoped dependency after
    the response has gone out, so the same failing commit reaches the client as a 200."""
    client, _ = api
    row = f"late-{uuid.uuid4()}"
    resp = await client.post(f"/late/commit-fails/{row}")
    assert resp.status_code == 200
    assert await _stored(engine, row) == 0


async def test_every_dependency_of_a_request_shares_its_session(
    api: tuple[httpx.AsyncClient, list[str]], engine: AsyncEngine
) -> None:
    client, _ = api
    with Commits(engine) as commits:
        resp = await client.post(f"/shared/{uuid.uuid4()}")
    assert resp.json() == {"same": True}
    assert commits.count == 1


# --- the context manager itself, as activities and processes use it ----------------------


async def test_hooks_run_after_the_commit_and_never_after_a_rollback(
    resources: Resources, engine: AsyncEngine, probe: str
) -> None:
    order: list[str] = []
    committed, rolled_back = f"c-{uuid.uuid4()}", f"r-{uuid.uuid4()}"

    async def visible(row: str) -> None:
        order.append(f"hook {row}: {await _stored(engine, row)}")

    async with unit_of_work(resources.sessions) as session:
        await _insert(session, committed)
        after_commit(session, lambda: visible(committed))
        order.append("body done")
    with pytest.raises(InvalidRequest):
        async with unit_of_work(resources.sessions) as session:
            await _insert(session, rolled_back)
            after_commit(session, lambda: visible(rolled_back))
            raise InvalidRequest("no")
    assert order == ["body done", f"hook {committed}: 1"]
    assert await _stored(engine, rolled_back) == 0


async def test_a_failing_hook_raises_after_the_commit_and_the_others_still_run(
    resources: Resources, engine: AsyncEngine, probe: str
) -> None:
    row = f"h-{uuid.uuid4()}"
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("start failed")

    with pytest.raises(RuntimeError, match="start failed"):
        async with unit_of_work(resources.sessions) as session:
            await _insert(session, row)
            after_commit(session, fail)
            after_commit(session, lambda: ran.append("second"))
    assert await _stored(engine, row) == 1  # committed before the hook failed
    assert ran == ["second"]


async def test_keep_writes_on_error_and_rollback_only(
    resources: Resources, engine: AsyncEngine, probe: str
) -> None:
    kept, dropped = f"k-{uuid.uuid4()}", f"d-{uuid.uuid4()}"
    with pytest.raises(InvalidRequest):
        async with unit_of_work(resources.sessions) as session:
            await _insert(session, kept)
            keep_writes_on_error(session)  # e.g. a failed login's count
            raise InvalidRequest("wrong password")
    async with unit_of_work(resources.sessions) as session:
        await _insert(session, dropped)
        rollback_only(session)  # e.g. a refused form shown again
    assert await _stored(engine, kept) == 1
    assert await _stored(engine, dropped) == 0


async def test_hooks_need_a_unit_of_work(resources: Resources) -> None:
    async with resources.sessions() as session:
        with pytest.raises(RuntimeError, match="unit_of_work"):
            after_commit(session, lambda: None)


# --- the rule: nobody else commits or opens a session ------------------------------------

# Where `unit_of_work(` may appear under api/, web/ and domain/, and why (each says so in
# its docstring too). Everything else takes the session it is handed.
OPENS_UNITS_OF_WORK = {
    # Steps separated by calls to the outside world, each durable before the next call.
    "domain/tasks/dispatch.py": "each submit attempt is recorded before it leaves",
    "domain/tasks/orphans.py": "orphan jobs are recorded around upstream cancels",
    "domain/callbacks/delivery.py": "an attempt is recorded after its send",
    "domain/results/copy.py": "each result is recorded once its copy is in the store",
    "domain/payments/service.py": "the pending payment exists before Stripe is called",
    "domain/payments/recharge.py": "the charge is recorded after Stripe answers; the "
    "per-process AutoRecharge reads after a settle, outside any request",
    # Per-process components working off the request path.
    "domain/keys/auth.py": "the key cache's loads and its last-used writes",
    "domain/identity/bootstrap.py": "the operator account at process start",
    "domain/rotation.py": "secret rotation commits batch by batch",
    # Edges that must commit before going on.
    "api/relay/tasks.py": "the refund of a task whose workflow could not start",
    "api/relay/media.py": "shims commit (and start) the task before waiting for it",
    "api/metrics.py": "the gauges' shared snapshot, read for no one request",
}
# The relay's hot path: its own statements and commits on the direct pool (see the
# unit-of-work module's docstring).
RELAY_HOT_PATH = {
    "domain/relay/service.py",
    "domain/relay/billing.py",
    "domain/relay/repository.py",
    "domain/relay/group_commit.py",
    "domain/relay/plan.py",
}
OPENS = re.compile(r"(?<![\w.])unit_of_work\(")
FORBIDDEN = re.compile(r"\.commit\(|\.rollback\(|sessions\(\)|\.begin\(\)|async_sessionmaker\(")


def _sources() -> list[Path]:
    return sorted(p for d in ("api", "web", "domain") for p in (ROOT / d).rglob("*.py"))


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of code, without comments and docstring-only lines (a docstring may name the
    calls it explains)."""
    out = []
    in_doc = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""')
        if in_doc or stripped.startswith('"""'):
            if quotes == 1:
                in_doc = not in_doc
            continue
        out.append((number, line.split("#", 1)[0]))
    return out


def test_nothing_under_the_edges_or_domain_commits_or_opens_a_session() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{number}: {code.strip()}"
        for path in _sources()
        if str(path.relative_to(ROOT)) not in RELAY_HOT_PATH
        for number, code in _code_lines(path)
        if FORBIDDEN.search(code)
    ]
    assert offences == [], "use the unit of work you are handed:\n" + "\n".join(offences)


def test_units_of_work_are_opened_only_where_listed() -> None:
    opened = {
        str(path.relative_to(ROOT))
        for path in _sources()
        for _, code in _code_lines(path)
        if OPENS.search(code)
    }
    assert opened == set(OPENS_UNITS_OF_WORK)
