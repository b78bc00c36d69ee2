"""Auto-recharge: top an org up from its saved card when a settle leaves it below a
threshold, once per crossing and never twice at the same time.

The relay calls `maybe_trigger_recharge` after settling. It must stay cheap when
auto-recharge is off, so the org's (enabled, threshold) pair is cached in-process for a few
seconds (one primary-key read on a miss), and an org that just triggered is not re-asked
for a short cooldown. Neither cache is what makes the recharge happen once: that is the
workflow id `auto-recharge-{org}`, started with "fail if running", so any number of
replicas racing on one crossing start exactly one workflow, and the workflow stays open
until the org is re-armed.

The card is charged under the Stripe idempotency key of a payment id the workflow chose
deterministically, and credited through the same `fulfil` as webhook events (ledger key
`stripe:{payment_intent}`), so the synchronous result and `payment_intent.succeeded`
credit it once between them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.errors import NotFound
from domain.ledger import service as ledger
from domain.payments import repository as repo
from domain.payments.credit_events import fulfil, record_refs
from domain.payments.gateway import StripeGateway
from domain.payments.packages import CreditPackage
from schema.db import SessionFactory
from workflows.payments import AUTO_RECHARGE_WORKFLOW, RechargeInput, recharge_workflow_id

log = logging.getLogger("oxinf.payments")

DEFAULT_TASK_QUEUE = "oxinf"
ClientGetter = Callable[[], Awaitable[Client]]


@dataclass
class _Config:
    enabled: bool
    threshold_micros: int
    expires_at: float


class RechargeTrigger:
    """Per-process caches in front of the workflow start (see the module docstring)."""

    def __init__(
        self, *, config_ttl_s: float = 30.0, cooldown_s: float = 10.0, max_orgs: int = 50_000
    ) -> None:
        self.config_ttl_s = config_ttl_s
        self.cooldown_s = cooldown_s
        self.max_orgs = max_orgs
        self._config: dict[uuid.UUID, _Config] = {}
        self._fired: dict[uuid.UUID, float] = {}

    def invalidate(self, org_id: uuid.UUID) -> None:
        self._config.pop(org_id, None)
        self._fired.pop(org_id, None)

    def known_off(self, org_id: uuid.UUID) -> bool:
        """True when this process knows (fresh from its cache) the org has it turned off."""
        cached = self._config.get(org_id)
        return cached is not None and not cached.enabled and cached.expires_at > time.monotonic()

    async def _settings(self, sessions: SessionFactory, org_id: uuid.UUID) -> _Config:
        now = time.monotonic()
        cached = self._config.get(org_id)
        if cached is not None and cached.expires_at > now:
            return cached
        async with sessions() as session:
            found = await repo.recharge_trigger(session, org_id)
        enabled, threshold = (found.auto_recharge, found.threshold_micros) if found else (False, 0)
        if len(self._config) >= self.max_orgs:
            self._config.clear()  # crude, but bounded; a miss costs one indexed read
        cached = _Config(enabled, threshold, now + self.config_ttl_s)
        self._config[org_id] = cached
        return cached

    async def maybe_trigger(
        self,
        sessions: SessionFactory,
        temporal_client_getter: ClientGetter,
        org_id: uuid.UUID,
        available_micros: int,
        *,
        task_queue: str = DEFAULT_TASK_QUEUE,
    ) -> bool:
        config = await self._settings(sessions, org_id)
        if not config.enabled or available_micros >= config.threshold_micros:
            return False
        now = time.monotonic()
        last = self._fired.get(org_id)
        if last is not None and now - last < self.cooldown_s:
            return False
        if len(self._fired) >= self.max_orgs:
            self._fired.clear()
        self._fired[org_id] = now
        try:
            client = await temporal_client_getter()
            await client.start_workflow(
                AUTO_RECHARGE_WORKFLOW,
                RechargeInput(org_id=str(org_id)),
                id=recharge_workflow_id(str(org_id)),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            return False
        except Exception:  # the relay must never fail because a top-up could not start
            self._fired.pop(org_id, None)
            log.warning("auto-recharge start failed", exc_info=True, extra={"org_id": str(org_id)})
            return False
        log.info("auto-recharge started", extra={"org_id": str(org_id)})
        return True


_default_trigger = RechargeTrigger()


async def maybe_trigger_recharge(
    sessions: SessionFactory,
    temporal_client_getter: ClientGetter,
    org_id: uuid.UUID,
    available_micros: int,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    trigger: RechargeTrigger | None = None,
) -> bool:
    """Start this org's recharge if a settle left it below its threshold; True if started.

    `temporal_client_getter` is e.g. `resources.temporal.get`; pass the worker task queue
    (`settings.task_queue`) when it is not the default.
    """
    return await (trigger or _default_trigger).maybe_trigger(
        sessions, temporal_client_getter, org_id, available_micros, task_queue=task_queue
    )


async def auto_recharge_enabled(sessions: SessionFactory, org_id: uuid.UUID) -> bool:
    """Cheap (cached per process) pre-check, so callers read the balance only when it matters."""
    return (await _default_trigger._settings(sessions, org_id)).enabled


def auto_recharge_known_off(org_id: uuid.UUID) -> bool:
    """The synchronous shortcut before `auto_recharge_enabled`: no task, no await."""
    return _default_trigger.known_off(org_id)


def invalidate_recharge_cache(org_id: uuid.UUID) -> None:
    """Forget this process's cached settings for the org (called when they change)."""
    _default_trigger.invalidate(org_id)


# --- the workflow's steps ------------------------------------------------------------------


class RechargeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    charge: bool
    reason: str | None = None


async def prepare(
    session: AsyncSession,
    org_id: uuid.UUID,
    payment_id: uuid.UUID,
    packages: dict[str, CreditPackage],
) -> RechargeDecision:
    """Re-check the trigger with fresh data and write the pending payment (idempotent)."""
    if await repo.get_payment(session, payment_id, org_id=org_id) is not None:
        return RechargeDecision(charge=True)  # a retry after the first attempt committed
    settings = await repo.get_billing(session, org_id)
    if settings is None or not settings.auto_recharge:
        return RechargeDecision(charge=False, reason="auto-recharge is off")
    available = (await ledger.balance(session, org_id)).available_micros
    if available >= settings.recharge_threshold_micros:
        return RechargeDecision(charge=False, reason="available is not below the threshold")
    package = packages.get(settings.recharge_package_id or "")
    if package is None:
        return RechargeDecision(charge=False, reason="the recharge package is not offered")
    if not settings.stripe_customer_id or not settings.default_payment_method:
        return RechargeDecision(charge=False, reason="no saved payment method")
    await repo.insert_payment(
        session,
        {
            "id": payment_id,
            "org_id": org_id,
            "kind": "recharge",
            "package_id": settings.recharge_package_id,
            "amount_cents": package.amount_cents,
            "currency": package.currency,
            "credits_micros": package.credits_micros,
            "status": "pending",
        },
    )
    return RechargeDecision(charge=True)


class ChargeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: str  # credited | processing | failed
    detail: str | None = None


async def charge(
    sessions: SessionFactory, gateway: StripeGateway, payment_id: uuid.UUID
) -> ChargeResult:
    async with sessions() as session:
        payment = await repo.get_payment(session, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        settings = await repo.get_billing(session, payment.org_id)
    if payment.credited:
        return ChargeResult(status="credited")
    if payment.status == "failed":
        return ChargeResult(status="failed", detail="already failed")
    if settings is None or not settings.stripe_customer_id or not settings.default_payment_method:
        async with sessions.begin() as session:
            await repo.update_payment(
                session, payment_id, {"status": "failed"}, from_statuses=("pending",)
            )
        return ChargeResult(status="failed", detail="no saved payment method")
    outcome = await gateway.create_recharge_intent(
        payment,
        customer=settings.stripe_customer_id,
        payment_method=settings.default_payment_method,
    )
    async with sessions.begin() as session:
        locked = await repo.get_payment(session, payment_id, lock=True)
        if locked is None:  # pragma: no cover - rows are never deleted
            raise NotFound(f"payment {payment_id} not found")
        locked = await record_refs(
            session, locked, payment_intent_id=outcome.id, charge_id=outcome.charge_id
        )
        if outcome.status == "succeeded":
            await fulfil(session, locked)
            return ChargeResult(status="credited")
        if outcome.status in ("failed", "canceled", "requires_payment_method", "requires_action"):
            if not locked.credited:
                await repo.update_payment(
                    session, payment_id, {"status": "failed"}, from_statuses=("pending",)
                )
            return ChargeResult(status="failed", detail=outcome.error_code or outcome.status)
    return ChargeResult(status="processing", detail=outcome.status)


async def rearmed(session: AsyncSession, org_id: uuid.UUID) -> bool:
    """True once a new crossing may fire: auto-recharge off, or available back up."""
    settings = await repo.get_billing(session, org_id)
    if settings is None or not settings.auto_recharge:
        return True
    available = (await ledger.balance(session, org_id)).available_micros
    return available >= settings.recharge_threshold_micros
