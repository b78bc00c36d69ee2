"""One unit of work: one session, one transaction, committed once at the end or not at all.

Every request handler, page and activity attempt runs inside exactly one (`edge.deps`
opens it for routes and pages, activities open theirs with `unit_of_work(sessions)`), and
everything below it (services, repositories) writes through the session it is handed and
never commits, rolls back or opens a session of its own. The unit of work commits when its
body ends normally and rolls back when it raises, so an error half-way leaves nothing
behind.

What must happen only once the writes are durable (start a workflow for a task whose
credits were just reserved, start a Stripe event's workflow after recording the event,
drop a process cache of rows just changed) is registered with `after_commit(session, fn)`:
it runs after the commit, outside the transaction, and never after a rollback. A hook that
fails raises out of the unit of work after the commit: its caller decides what that means
(the task route refunds the task it could not start, in a unit of work of its own, and
answers 503; see `api.relay.tasks`).

Two ways to end differently, each for a reason the caller states where it uses it:
`keep_writes_on_error(session)` commits even though the body then raises (a failed login's
count must outlive the 401 it causes), and `rollback_only(session)` rolls back even though
the body then ends normally (a form re-rendered after a refused sign-up, a page that
answers its own 500).

Multi-step processes whose steps are separated by calls to the outside world (sending a
task upstream, charging a card, delivering a callback) cannot be one transaction: each step
must be durable before the next call leaves. They run one unit of work per step, opened
with `unit_of_work(sessions)` where the step is, and say so in their docstrings.

The exception: the relay's hot path (`domain.relay.service`, `domain.relay.billing`,
`domain.relay.repository` with `schema.direct` and `domain.relay.group_commit`, and the
plan's memo loads in `domain.relay.plan`, on a session opened only on a miss). A chat
call's billing is two statements, the rate-limit hit with the reserve, and the settle with
its ledger entry, request log and attempt, each its own transaction on a small direct
asyncpg pool and the settles of concurrent calls committed together as one statement and
one WAL flush. A session per call would cost the ORM's bookkeeping and a pooled
connection's reset on every call, and one transaction spanning the upstream call would hold
a connection (and the reserve's row locks) for the seconds the upstream takes, which is
what the reserve-then-settle design exists to avoid (see README "Performance" for the
figures). So those modules own their statements and their commits; nothing else does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from schema.db import SessionFactory

log = logging.getLogger("oxinf.db")

Hook = Callable[[], Awaitable[None] | None]
_KEY = "oxinf.unit_of_work"


@dataclass
class _State:
    hooks: list[Hook] = field(default_factory=list)
    keep_on_error: bool = False
    rollback_only: bool = False


def _state(session: AsyncSession) -> _State:
    state = session.info.get(_KEY)
    if not isinstance(state, _State):
        raise RuntimeError("this session was not opened by unit_of_work()")
    return state


def after_commit(session: AsyncSession, hook: Hook) -> None:
    """Run `hook` once the unit of work `session` belongs to has committed (in the order
    registered); never if it rolls back."""
    _state(session).hooks.append(hook)


def keep_writes_on_error(session: AsyncSession) -> None:
    """Commit what was written so far even if the body goes on to raise (the error is the
    outcome of the work, not a failure of it)."""
    _state(session).keep_on_error = True


def rollback_only(session: AsyncSession) -> None:
    """Roll back at the end even if the body ends normally."""
    _state(session).rollback_only = True


@asynccontextmanager
async def unit_of_work(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose work commits when the block ends normally and rolls back if it
    raises; post-commit hooks run after the session is closed (its connection back in the
    pool), and the first hook failure is raised once every hook has run."""
    state = _State()
    async with sessions() as session:
        session.info[_KEY] = state
        try:
            yield session
        except BaseException:
            if state.keep_on_error and not state.rollback_only:
                await session.commit()
            else:
                await _rollback(session)
            raise
        if state.rollback_only:
            await session.rollback()
            return
        await session.commit()
    await _run_hooks(state.hooks)


async def _rollback(session: AsyncSession) -> None:
    """A rollback that fails (the connection died with the error being raised) must not
    hide that error; closing the session discards the connection either way."""
    try:
        await session.rollback()
    except Exception:
        log.debug("rollback failed", exc_info=True)


async def _run_hooks(hooks: list[Hook]) -> None:
    failure: BaseException | None = None
    for hook in hooks:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            if failure is None:
                failure = exc
            else:
                log.warning("post-commit hook failed", exc_info=exc)
    if failure is not None:
        raise failure
