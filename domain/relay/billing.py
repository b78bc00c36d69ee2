"""The relay's money and memory: holds, settlement and the request log, written together.

These run on plain Core connections (`engine.begin()`), not ORM sessions: every statement
here is Core, and the session's bookkeeping was measurable CPU on each call.

Every finished call ends in exactly one transaction that settles (or voids) its hold and
writes its log, attempts and optional content, so the ledger and the log can never
disagree about whether a request was charged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from domain.errors import Conflict, NotFound
from domain.ledger import service as ledger
from domain.ledger.errors import CreditRefusal
from domain.outages import dependency_down
from domain.pricing.cost import PriceSnapshot, chat_cost_micros
from domain.providers import Usage
from domain.relay import ceiling
from domain.relay import repository as relay_repo
from domain.relay.plan import Billing, ModelRoutes, Plan, RelayConfig, Route
from domain.routing import repository as channels_repo
from domain.usage import repository as usage_repo
from schema.db import Executor, SessionFactory, engine_of
from schema.direct import DirectPool

log = logging.getLogger("oxinf.relay")


@dataclass
class Attempts:
    """Upstream tries of one request, kept for the admin-only `request_attempts` rows."""

    request_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    channels_to_close: set[uuid.UUID] = field(default_factory=set)

    def add(
        self,
        route: Route,
        model: str,
        *,
        outcome: str,
        latency_ms: int,
        status: int | None = None,
        error: str | None = None,
        upstream_request_id: str | None = None,
        diagnostics: dict[str, str] | None = None,
    ) -> None:
        self.rows.append(
            {
                "request_id": self.request_id,
                "channel_id": route.channel_id,
                "provider": route.provider,
                "byok": route.billing == "byok",
                "model": model,
                "http_status": status,
                "outcome": outcome,
                "latency_ms": latency_ms,
                "error": error[:4000] if error else None,
                "upstream_request_id": upstream_request_id,
                "diagnostics": diagnostics or None,
            }
        )


def hold_key(plan: Plan, n: int) -> str:
    """The idempotency key of the request's n-th reservation."""
    return f"req:{plan.request_id}:hold:{n}"


@dataclass
class HoldTracker:
    """The request's one pending hold, re-reserved larger only if a fallback costs more."""

    hold_id: uuid.UUID | None = None
    amount: int = 0
    reservations: int = 0
    # Reserved by the statement that does not wait for the WAL flush: a database crash may
    # have rolled it back, and settle must then still bill the call (`restore_lost_hold`).
    unflushed: bool = False

    @classmethod
    def of(cls, plan: Plan) -> HoldTracker:
        """Starting from the hold the plan reserved with its rate-limit hit, if any."""
        if plan.held is None:
            return cls()
        return cls(plan.held.hold_id, plan.held.amount_micros, reservations=1, unflushed=True)

    async def restore_if_lost(self, session: Executor, plan: Plan) -> bool:
        """After `NotFound` for our hold: True if it was an unflushed reserve, now restored."""
        if not self.unflushed or self.hold_id is None:
            return False
        return await ledger.restore_lost_hold(
            session, self.hold_id, org_id=plan.org_id, amount=self.amount,
            key=hold_key(plan, self.reservations), reference=plan.request_id,
        )  # fmt: skip

    async def ensure(
        self,
        sessions: SessionFactory,
        plan: Plan,
        cfg: RelayConfig,
        amount: int,
        direct: DirectPool | None = None,
        routes: ModelRoutes | None = None,
    ) -> None:
        """Hold `amount` for the call; for chat (`routes` given) a refused hold is retried at
        the affordable ceiling (`domain.relay.ceiling`)."""
        if self.hold_id is not None and amount <= self.amount:
            return
        budgeted = plan.key.budget_micros is not None
        self.reservations += 1
        key = hold_key(plan, self.reservations)
        if direct is not None and self.hold_id is None and not budgeted and not plan.budgets:
            fast = await relay_repo.reserve(
                direct,
                plan.org_id,
                amount,
                key=key,
                reference=plan.request_id,
                expires_in=cfg.hold_ttl,
            )
            if fast is not None:
                self.hold_id, self.amount, self.unflushed = fast, amount, True
                return
            # Refused or the key is taken: the general path decides which (and answers a
            # replay with the original hold), under the same key.
        capped: int | None = None
        async with engine_of(sessions).begin() as session:
            if self.hold_id is not None:
                await ledger.void(session, self.hold_id)
            try:
                reservation = await ledger.reserve(
                    session,
                    plan.org_id,
                    amount,
                    key=key,
                    expires_in=cfg.hold_ttl,
                    # Only a budgeted key needs its own reservation; skipping it saves a
                    # statement.
                    api_key_id=plan.key.key_id if budgeted else None,
                    reference=plan.request_id,
                    budgets=plan.budgets,
                )
            except CreditRefusal as refused:
                if routes is None or plan.embeddings or plan.choices > 1:
                    # Nothing to cap: an embedding's hold is its input alone; several answers
                    # (`n` > 1) are not shortened behind the caller's back.
                    raise
                # The refusal wrote nothing (`domain.ledger.service`): the same key is free.
                reservation, amount, capped = await ceiling.reserve_within(
                    session, plan, cfg, routes, refused, key=key, budgeted=budgeted
                )
        self.hold_id, self.amount, self.unflushed = reservation.hold.id, amount, False
        if capped is not None and routes is not None:
            plan.capped[routes.model] = capped

    async def release(self, sessions: SessionFactory) -> None:
        """Void after an unexpected error; the sweeper would expire it anyway."""
        if self.hold_id is None:
            return
        try:
            async with engine_of(sessions).begin() as session:
                await ledger.void(session, self.hold_id)
        except Conflict:
            return  # it was settled after all (a settle that landed as the call was cut off)
        except Exception as exc:
            extra = {"hold": str(self.hold_id)}
            if dependency_down(exc) is not None:  # expected while the database is out
                log.warning("could not void hold; the sweeper will expire it", extra=extra)
            else:
                log.exception("could not void hold; the sweeper will expire it", extra=extra)


class AlreadyCharged(Conflict):
    """A complete answer was already charged under this `X-Client-Request-ID`."""

    def __init__(self, client_request_id: str, request_id: str | None = None) -> None:
        which = f" (request {request_id})" if request_id else ""
        super().__init__(
            f"a call with X-Client-Request-ID {client_request_id!r} was already answered and "
            f"charged{which}; nothing was charged again. Send a new id for a new call",
            param="X-Client-Request-ID",
        )


@dataclass(frozen=True)
class Outcome:
    """What one finished request charged, for headers and tests."""

    billing: Billing
    cost_micros: int
    list_cost_micros: int
    uncollected_micros: int


def usage_cost(snapshot: PriceSnapshot, usage: Usage, plan: Plan) -> int:
    # Cached input is charged at the cached rate only when the price has one; otherwise it
    # is plain input (a price without a cached rate must not make cache hits free).
    cached = min(usage.cached_tokens, usage.prompt_tokens) if snapshot.cached_input_per_mtok else 0
    return chat_cost_micros(
        snapshot,
        input_tokens=usage.prompt_tokens - cached,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=cached,
        tier=plan.tier,
        power=plan.power,
    )


def _detail(plan: Plan, response: dict[str, Any] | None) -> dict[str, Any] | None:
    if not plan.log_content:
        return None
    prompt = {k: plan.body[k] for k in ("messages", "model") if k in plan.body}
    return {
        "request_id": plan.request_id,
        "org_id": plan.org_id,
        "prompt": prompt,
        "response": response,
    }


@lru_cache(maxsize=1024)
def _snapshot_json(snapshot: PriceSnapshot) -> dict[str, Any]:
    """Snapshots are frozen and shared through the plan memo: dump each once.
    (Callers must not change the dict; it goes straight into the log row.)"""
    return snapshot.model_dump(mode="json")


def _log_row(plan: Plan, snapshot: PriceSnapshot | None = None, **values: Any) -> dict[str, Any]:
    """`snapshot`: the price the call was charged at (a fallback model's own), else the plan's."""
    row: dict[str, Any] = {
        "id": plan.request_id,
        "org_id": plan.org_id,
        "api_key_id": plan.key.key_id,
        "client_request_id": plan.client_request_id,
        "model": plan.model.name,
        "stream": plan.stream,
        "latency_ms": plan.elapsed_ms(),
        "price_snapshot": _snapshot_json(snapshot or plan.snapshot),
        "created_at": plan.created_at,
    }
    row.update(values)
    return row


async def finish_success(
    sessions: SessionFactory,
    plan: Plan,
    route: Route,
    model: str,
    snapshot: PriceSnapshot,
    usage: Usage,
    hold: HoldTracker,
    attempts: Attempts,
    *,
    upstream_request_id: str | None,
    response_detail: dict[str, Any] | None,
    http_status: int = 200,
    error_code: str | None = None,
    error_message: str | None = None,
    client_disconnected: bool = False,
    settle_fast: Callable[[relay_repo.SettleItem], Awaitable[bool]] | None = None,
) -> Outcome:
    """`settle_fast` runs the usual settle as one statement, batched with other calls'
    (`Relay.settles`); anything else, or anything it leaves undone, takes the ledger."""
    list_cost = usage_cost(snapshot, usage, plan)
    detail = _detail(plan, response_detail)
    log = _log_row(
        plan,
        model=model,
        upstream_request_id=upstream_request_id,
        channel_id=route.channel_id,
        status="succeeded" if error_code is None else "partial",
        http_status=http_status,
        error_code=error_code,
        error_message=error_message,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        list_cost_micros=list_cost,
        billing=route.billing,
        estimated=usage.estimated,
        client_disconnected=client_disconnected,
        hold_id=hold.hold_id,
        snapshot=snapshot,
    )
    common = (
        settle_fast is not None
        and route.billing == "platform"
        and hold.hold_id is not None
        and detail is None
        and len(attempts.rows) == 1
        and not attempts.channels_to_close
    )
    try:
        if common and settle_fast is not None and hold.hold_id is not None:
            log_row = {**log, "cost_micros": list_cost, "uncollected_micros": 0}
            if await settle_fast(
                relay_repo.SettleItem(hold.hold_id, list_cost, log_row, attempts.rows[0])
            ):
                return Outcome(route.billing, list_cost, list_cost, 0)
        return await _settle_and_log(sessions, plan, route, hold, attempts, log, detail, list_cost)
    except Exception as exc:
        if plan.client_request_id is not None and relay_repo.is_duplicate_charge(exc):
            # A concurrent call under the same client request id was charged first: this
            # one's settle rolled back whole, and its hold is released by the caller.
            raise AlreadyCharged(plan.client_request_id) from None
        raise


async def _settle_and_log(
    sessions: SessionFactory,
    plan: Plan,
    route: Route,
    hold: HoldTracker,
    attempts: Attempts,
    log: dict[str, Any],
    detail: dict[str, Any] | None,
    list_cost: int,
) -> Outcome:
    """The general path: every case the one-statement settle does not take."""
    cost = uncollected = 0
    async with engine_of(sessions).begin() as session:
        if route.billing == "platform" and hold.hold_id is not None:
            try:
                settled = await ledger.settle(session, hold.hold_id, list_cost)
            except NotFound:
                if not await hold.restore_if_lost(session, plan):
                    raise
                settled = await ledger.settle(session, hold.hold_id, list_cost)
            cost, uncollected = settled.charged_micros, settled.uncollected_micros
        elif hold.hold_id is not None:  # BYOK answered after a platform hold was taken
            await _void(session, hold)
        for channel_id in attempts.channels_to_close:
            await channels_repo.record_success(session, channel_id)
        await usage_repo.insert_log(
            session,
            {**log, "cost_micros": cost, "uncollected_micros": uncollected},
            attempts.rows,
            detail,
        )
    return Outcome(route.billing, cost, list_cost, uncollected)


async def finish_failure(
    sessions: SessionFactory,
    plan: Plan,
    hold: HoldTracker,
    attempts: Attempts,
    *,
    http_status: int,
    error_code: str,
    error_message: str,
    billing: Billing = "platform",
) -> None:
    async with engine_of(sessions).begin() as session:
        await _void(session, hold)
        await usage_repo.insert_log(
            session,
            _log_row(
                plan,
                status="failed",
                http_status=http_status,
                error_code=error_code,
                error_message=error_message[:1000],
                billing=billing,
                hold_id=hold.hold_id,
            ),
            attempts.rows,
            None,
        )


async def _void(session: Executor, hold: HoldTracker) -> None:
    """Release the hold; an unflushed one a database crash rolled back has nothing to release."""
    if hold.hold_id is None:
        return
    try:
        await ledger.void(session, hold.hold_id)
    except NotFound:
        if not hold.unflushed:
            raise
