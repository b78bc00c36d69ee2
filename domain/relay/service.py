"""The synchronous relay: plan, reserve, dispatch with fallback, settle (DESIGN.md §5).

Order matters for money: the hold is reserved before any platform upstream is called, so a
402 means nothing was dispatched; every exit after the reserve settles or voids it (and the
sweeper expires what a crash leaves behind). A reserve or settle the database cannot take
raises its driver's error, which the edge answers 503 (`domain.outages`): a reserve that
failed dispatched nothing, a settle that failed charged nothing. A call carrying an
`X-Client-Request-ID` whose answer was already charged is refused before it reserves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx

from domain.admission import service as admission
from domain.crypto import SecretBox
from domain.errors import DomainError, ServiceUnavailable
from domain.keys.auth import KeyPrincipal
from domain.ledger.errors import ApiKeyBudgetExhausted, InsufficientCredits
from domain.providers import ChatStream, UpstreamError, adapter_for
from domain.providers.base import NativeMode
from domain.providers.embeddings import embeddings_adapter_for
from domain.ratelimit import service as ratelimit
from domain.relay import repository as relay_repo
from domain.relay.billing import (
    AlreadyCharged,
    Attempts,
    HoldTracker,
    Outcome,
    finish_failure,
    finish_success,
    hold_key,
)
from domain.relay.cache import TtlCache
from domain.relay.ceiling import CAPPED_HEADER
from domain.relay.group_commit import GroupCommit
from domain.relay.plan import (
    Held,
    ModelRoutes,
    OnDemandSession,
    Plan,
    RelayConfig,
    Route,
    build_plan,
    check_client_request_id,
)
from domain.routing import repository as channels_repo
from schema.db import SessionFactory, engine_of
from schema.direct import DirectPool

log = logging.getLogger("oxinf.relay")
T = TypeVar("T")


class UpstreamFailed(DomainError):
    code = "upstream_error"


class RequestRefused(DomainError):
    """The request is the client's to change (DESIGN.md §5): the upstream refused it (400,
    413, 422) or the caller's own BYOK setting cannot be used. Answered 400
    `invalid_request` with the upstream's `param` and `x-should-retry: false`, after one
    upstream attempt, without fallback and without counting against a breaker."""

    code = "invalid_request"


NO_RETRY = {"x-should-retry": "false"}


@dataclass(frozen=True)
class Completion:
    body: dict[str, Any]
    outcome: Outcome
    headers: dict[str, str]


@dataclass
class Opened:
    """A stream past its first chunk, with everything needed to bill it however it ends."""

    plan: Plan
    route: Route
    model: str
    model_routes: ModelRoutes | None
    stream: ChatStream
    hold: HoldTracker
    attempts: Attempts
    headers: dict[str, str]


def _headers(plan: Plan, billing: str, model: str | None = None) -> dict[str, str]:
    headers = {"X-Oxinf-Billing": billing}
    if plan.rate is not None:
        headers.update(plan.rate.headers())
    capped = plan.capped.get(model) if model is not None and plan.capped else None
    if capped is not None:
        headers[CAPPED_HEADER] = str(capped)
    return headers


class Relay:
    def __init__(
        self,
        sessions: SessionFactory,
        http: httpx.AsyncClient,
        box: SecretBox,
        cfg: RelayConfig,
        *,
        rng: random.Random | None = None,
        direct: DirectPool | None = None,
        tenant_http: httpx.AsyncClient | None = None,
    ) -> None:
        """`tenant_http` carries calls to tenant-chosen base URLs (BYOK), through the
        tenant egress policy; without it such routes are refused."""
        self.sessions = sessions
        # The hot path's statements skip SQLAlchemy: the settles (durable) run here.
        self.direct = direct or DirectPool(engine_of(sessions))
        # Rate-limit hits and reserves commit without waiting for the WAL flush (see
        # `domain.relay.repository` for why that is safe for a reserve): a hot org's account
        # row and a hot key's window row are otherwise locked through every fsync.
        self.unflushed = DirectPool(engine_of(sessions), max_size=8, durable=False)
        # Concurrent calls' settles share one statement and one WAL flush.
        self.settles = GroupCommit(partial(relay_repo.settle_and_log_many, self.direct))
        self.http = http
        self.tenant_http = tenant_http
        self.box = box
        self.cfg = cfg
        self.rng = rng or random.Random()  # noqa: S311  (load spreading, not security)
        self.cache = TtlCache(cfg.plan_cache_ttl_s)
        # Called after a platform charge settles (auto-recharge); work it returns runs in
        # the background.
        self.on_settled: Callable[[uuid.UUID], Awaitable[None] | None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- planning ------------------------------------------------------------------------

    async def plan(
        self,
        key: KeyPrincipal,
        body: Any,
        request_id: str,
        client_request_id: str | None,
        *,
        surface: admission.Surface = admission.CHAT,
        prompt_estimate: int | None = None,
        translated: bool = False,
        native: NativeMode | None = None,
    ) -> Plan:
        """`surface`, `prompt_estimate`, `translated`: see `build_plan`; `native`: the
        client's own request, which routes speaking its format get as written
        (`Plan.native`); a field only they can serve is refused here unless every route
        does (`Plan.require_native`)."""
        db = OnDemandSession(self.sessions)
        try:
            if client_request_id is not None:
                await self._refuse_if_charged(key, client_request_id)
            plan = await build_plan(
                db, self.box, self.cfg, key=key, body=body, request_id=request_id,
                client_request_id=client_request_id, rng=self.rng, cache=self.cache,
                surface=surface, prompt_estimate=prompt_estimate, translated=translated,
            )  # fmt: skip
            plan.native = native
            plan.require_native()
        except DomainError:
            # A refused plan still counts against the key's window, and a full window
            # answers 429 first, as if the limit had been checked before planning.
            if key.rpm_limit is not None:
                await ratelimit.hit_direct(self.unflushed, key.key_id, key.rpm_limit)
            raise
        finally:
            await db.close()
        if key.rpm_limit is not None:
            await self._count(plan, key.rpm_limit)
        return plan

    async def _refuse_if_charged(self, key: KeyPrincipal, client_request_id: str) -> None:
        """A retry of a call that was already answered and charged is refused before it
        reserves or dispatches anything (the unique index catches concurrent retries)."""
        check_client_request_id(client_request_id)
        charged = await relay_repo.charged_for_client_id(self.direct, key.org_id, client_request_id)
        if charged is not None:
            raise AlreadyCharged(client_request_id, charged)

    async def _count(self, plan: Plan, limit: int) -> None:
        """The rate-limit hit; for the usual call, with its reserve in the same statement."""
        amount = _early_hold(plan)
        if amount is not None:
            both = await relay_repo.hit_and_reserve(
                self.unflushed, plan.key.key_id, limit, plan.org_id, amount,
                key=hold_key(plan, 1), reference=plan.request_id, expires_in=self.cfg.hold_ttl,
            )  # fmt: skip
            if both is not None:
                plan.rate = both.rate
                plan.held = Held(both.hold_id, amount) if both.hold_id is not None else None
                return
        plan.rate = await ratelimit.hit_direct(self.unflushed, plan.key.key_id, limit)

    # --- dispatch ------------------------------------------------------------------------

    async def _usable(self, route: Route) -> bool:
        """A closed breaker always; an open one only for the single caller that wins the trial."""
        if route.channel is None or not route.breaker_open:
            return True
        async with self.sessions.begin() as session:
            claimed = await channels_repo.claim_trial(
                session, route.channel.id, self.cfg.breaker_cooldown_s, self.cfg.clock.now()
            )
        self.forget_channels()
        return claimed

    async def _failed(self, route: Route, error: UpstreamError) -> None:
        if route.channel is None or error.kind == "invalid_request":
            return
        async with self.sessions.begin() as session:
            await channels_repo.record_failure(
                session, route.channel.id, self.cfg.breaker_threshold, self.cfg.clock.now()
            )
        self.forget_channels()

    async def _dispatch(
        self,
        plan: Plan,
        hold: HoldTracker,
        attempts: Attempts,
        call: Callable[[Route, ModelRoutes | None], Awaitable[T]],
    ) -> tuple[Route, str, ModelRoutes | None, T]:
        """Try BYOK, then each model's platform channels in order, then fallback models."""
        last: UpstreamError | None = None
        for route in plan.byok_routes:
            result = await self._try(plan, route, None, attempts, call)
            if isinstance(result, UpstreamError):
                last = result
                if result.upstream_refused_request:
                    raise self._give_up(plan, result, billing="byok")
                if not result.retryable and not plan.byok_fallback:
                    break
                continue
            return route, plan.model.name, None, result
        if plan.byok_routes and not plan.byok_fallback:
            raise self._give_up(plan, last, billing="byok")

        for model_routes in plan.platform:
            tried = 0
            for route in model_routes.routes:
                if tried >= self.cfg.max_attempts_per_model:
                    break
                if not await self._usable(route):
                    continue
                await hold.ensure(
                    self.sessions, plan, self.cfg, model_routes.hold_micros, self.unflushed,
                    model_routes,
                )  # fmt: skip
                tried += 1
                result = await self._try(plan, route, model_routes, attempts, call)
                if isinstance(result, UpstreamError):
                    last = result
                    if not result.retryable:
                        raise self._give_up(plan, result, billing="platform")
                    continue
                if route.breaker_open or (route.channel and route.channel.consecutive_failures):
                    attempts.channels_to_close.add(route.channel.id)  # type: ignore[union-attr]
                return route, model_routes.model, model_routes, result
        raise self._give_up(plan, last, billing="platform")

    async def _try(
        self,
        plan: Plan,
        route: Route,
        model_routes: ModelRoutes | None,
        attempts: Attempts,
        call: Callable[[Route, ModelRoutes | None], Awaitable[T]],
    ) -> T | UpstreamError:
        model = model_routes.model if model_routes else plan.model.name
        started = time.perf_counter()
        try:
            result = await call(route, model_routes)
        except UpstreamError as err:
            attempts.add(
                route, model, outcome=err.kind, latency_ms=_ms(started), status=err.status,
                error=err.raw_excerpt or err.message, upstream_request_id=err.upstream_request_id,
                diagnostics=err.diagnostics,
            )  # fmt: skip
            await self._failed(route, err)
            log.info(
                "upstream attempt failed",
                extra={"provider": route.provider, "kind": err.kind, "status": err.status},
            )
            return err
        attempts.add(route, model, outcome="ok", latency_ms=_ms(started), status=200)
        return result

    def _give_up(self, plan: Plan, last: UpstreamError | None, *, billing: str) -> DomainError:
        headers = _headers(plan, billing)
        if last is not None and last.kind == "invalid_request":
            return RequestRefused(last.message, headers={**headers, **NO_RETRY}, param=last.param)
        if last is not None and not last.retryable:
            return UpstreamFailed(last.message, headers=headers)
        if last is None:
            message = f"no channel is available for model {plan.model.name!r}"
        else:
            message = "no upstream channel completed the request; try again shortly"
        if last is not None and last.retry_after_s:
            headers["Retry-After"] = str(last.retry_after_s)
        return ServiceUnavailable(message, headers=headers)

    async def _run(
        self,
        plan: Plan,
        hold: HoldTracker,
        attempts: Attempts,
        call: Callable[[Route, ModelRoutes | None], Awaitable[T]],
    ) -> tuple[Route, str, ModelRoutes | None, T]:
        """Dispatch, and make sure any failure path releases the hold and is logged."""
        try:
            return await self._dispatch(plan, hold, attempts, call)
        except (InsufficientCredits, ApiKeyBudgetExhausted) as exc:
            await finish_failure(
                self.sessions, plan, hold, attempts, http_status=402, error_code=exc.code,
                error_message=exc.message,
            )  # fmt: skip
            exc.headers = {**_headers(plan, "platform"), **exc.headers}
            raise
        except DomainError as exc:
            status = {"upstream_error": 502, "invalid_request": 400}.get(exc.code, 503)
            await finish_failure(
                self.sessions, plan, hold, attempts, http_status=status, error_code=exc.code,
                error_message=exc.message, billing=exc.headers.get("X-Oxinf-Billing", "platform"),  # type: ignore[arg-type]
            )  # fmt: skip
            raise
        except BaseException:
            await asyncio.shield(hold.release(self.sessions))
            raise

    # --- JSON ----------------------------------------------------------------------------

    async def complete(self, plan: Plan) -> Completion:
        hold, attempts = HoldTracker.of(plan), Attempts(plan.request_id)

        async def call(route: Route, mr: ModelRoutes | None) -> Any:
            body, model = _wire_request(plan, route, mr)
            http = self._client_for(route)
            if plan.embeddings:
                embed = embeddings_adapter_for(route.provider)
                return await embed.embeddings(http, route.upstream, body, model)
            native = plan.native_for(route)
            if native is not None:
                cap = plan.capped.get(model) if plan.capped else None
                return await native.complete(http, route.upstream, model, cap)
            return await adapter_for(route.provider).chat(http, route.upstream, body, model)

        route, model, model_routes, result = await self._run(plan, hold, attempts, call)
        snapshot = model_routes.snapshot if model_routes else plan.snapshot
        attempts.rows[-1]["upstream_request_id"] = result.upstream_request_id
        attempts.rows[-1]["diagnostics"] = result.diagnostics or None
        try:
            outcome = await finish_success(
                self.sessions, plan, route, model, snapshot, result.usage, hold, attempts,
                upstream_request_id=result.upstream_request_id,
                response_detail=result.body if plan.log_content else None,
                settle_fast=self.settles.submit,
            )  # fmt: skip
        except BaseException:
            await asyncio.shield(hold.release(self.sessions))
            raise
        if attempts.channels_to_close:
            self.forget_channels()
        if outcome.cost_micros:
            self.settled(plan.org_id)
        result.body["id"] = result.body.get("id") or plan.request_id
        return Completion(result.body, outcome, _headers(plan, route.billing, model))

    # --- streaming -----------------------------------------------------------------------

    async def open_stream(self, plan: Plan) -> Opened:
        hold, attempts = HoldTracker.of(plan), Attempts(plan.request_id)

        async def call(route: Route, mr: ModelRoutes | None) -> ChatStream:
            body, model = _wire_request(plan, route, mr)
            http = self._client_for(route)
            native = plan.native_for(route)
            if native is not None:
                cap = plan.capped.get(model) if plan.capped else None
                return await native.open_stream(http, route.upstream, model, cap)
            return await adapter_for(route.provider).stream(http, route.upstream, body, model)

        route, model, model_routes, stream = await self._run(plan, hold, attempts, call)
        return Opened(
            plan, route, model, model_routes, stream, hold, attempts,
            _headers(plan, route.billing, model),
        )  # fmt: skip

    def _client_for(self, route: Route) -> httpx.AsyncClient:
        if not route.tenant_url:
            return self.http
        if self.tenant_http is None:
            raise UpstreamError(
                "invalid_request", "tenant base URLs are not enabled here", retryable=False
            )
        return self.tenant_http

    def forget_channels(self) -> None:
        """Breaker state changed here: route the next call from fresh channel rows."""
        self.cache.invalidate(lambda k: isinstance(k, tuple) and k[0] == "channels")

    def forget_org(self, org_id: object) -> None:
        self.cache.invalidate(lambda k: isinstance(k, tuple) and k[1:2] == (org_id,))

    def settled(self, org_id: uuid.UUID) -> None:
        if self.on_settled is not None:
            work = self.on_settled(org_id)
            if work is not None:
                self.spawn(work)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run billing work that must outlive the client's connection."""

        async def runner() -> None:
            try:
                await coro
            except Exception:  # background work must never take the process down
                log.exception("background relay work failed")

        task = asyncio.get_running_loop().create_task(runner())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for in-flight stream settlements (shutdown and tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.settles.drain()
        await self.direct.close()
        await self.unflushed.close()


def _early_hold(plan: Plan) -> int | None:
    """What the first platform route will hold, when the one-statement reserve can take it
    before dispatch: no BYOK route goes first, no budget applies, the breaker is closed."""
    if plan.byok_routes or not plan.platform or plan.budgets or plan.key.budget_micros is not None:
        return None
    first = plan.platform[0]
    if not first.routes or first.routes[0].breaker_open:
        return None
    return first.hold_micros


def _wire_request(plan: Plan, route: Route, mr: ModelRoutes | None) -> tuple[dict[str, Any], str]:
    """The body to send (capped where the upstream needs it) and the model to answer as."""
    body = plan.body_for(route, mr.max_output if mr else None, mr.model if mr else None)
    return body, mr.model if mr else plan.model.name


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


__all__ = ["Completion", "Opened", "Relay", "RequestRefused", "UpstreamFailed"]
