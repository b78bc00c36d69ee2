"""Auto-recharge: top an org up from its saved card when a settle leaves it below a
threshold, once per crossing and never twice at the same time.

The relay calls `AutoRecharge.after_settle` after settling. It must stay cheap when
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
from collections.abc import Awaitable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import NotFound
from domain.ledger import service as ledger
from domain.payments import repository as repo
from domain.payments.credit_events import fulfil, record_refs
from domain.payments.gateway import StripeGateway
from domain.payments.packages import CreditPackage
from domain.ports import WorkflowStarter
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.payments")


@dataclass
class _Config:
    enabled: bool
    threshold_micros: int
    expires_at: float


class AutoRecharge:
    """One per process (the API's resources own it; see the module docstring for its caches).

    `forget` must be called when an org's settings change, so this process stops serving
    the old ones from its cache; other replicas see the change within `config_ttl_s`."""

    def __init__(
        self,
        sessions: SessionFactory,
        workflows: WorkflowStarter,
        *,
        config_ttl_s: float = 30.0,
        cooldown_s: float = 10.0,
        max_orgs: int = 50_000,
    ) -> None:
        self._sessions = sessions
        self._workflows = workflows
        self.config_ttl_s = config_ttl_s
        self.cooldown_s = cooldown_s
        self.max_orgs = max_orgs
        self._config: dict[uuid.UUID, _Config] = {}
        self._fired: dict[uuid.UUID, float] = {}

    def forget(self, org_id: uuid.UUID) -> None:
        self._config.pop(org_id, None)
        self._fired.pop(org_id, None)

    def known_off(self, org_id: uuid.UUID) -> bool:
        """True when this process knows (fresh from its cache) the org has it turned off."""
        cached = self._config.get(org_id)
        return cached is not None and not cached.enabled and cached.expires_at > time.monotonic()

    def after_settle(self, org_id: uuid.UUID) -> Awaitable[None] | None:
        """The relay's `on_settled`: nothing to do (and no task to start) for an org known
        to have it off; otherwise the work to run once the answer is out."""
        return None if self.known_off(org_id) else self._after_settle(org_id)

    async def _after_settle(self, org_id: uuid.UUID) -> None:
        """Only orgs that turned it on pay for the balance read."""
        if not (await self._settings(org_id)).enabled:
            return
        async with unit_of_work(self._sessions) as session:
            available = (await ledger.balance(session, org_id)).available_micros
        await self.maybe_trigger(org_id, available)

    async def _settings(self, org_id: uuid.UUID) -> _Config:
        now = time.monotonic()
        cached = self._config.get(org_id)
        if cached is not None and cached.expires_at > now:
            return cached
        async with unit_of_work(self._sessions) as session:
            found = await repo.recharge_trigger(session, org_id)
        enabled, threshold = (found.auto_recharge, found.threshold_micros) if found else (False, 0)
        if len(self._config) >= self.max_orgs:
            self._config.clear()  # crude, but bounded; a miss costs one indexed read
        cached = _Config(enabled, threshold, now + self.config_ttl_s)
        self._config[org_id] = cached
        return cached

    async def maybe_trigger(self, org_id: uuid.UUID, available_micros: int) -> bool:
        """Start this org's recharge if a settle left it below its threshold; True if started."""
        config = await self._settings(org_id)
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
            started = await self._workflows.start_recharge(org_id)
        except Exception:  # the relay must never fail because a top-up could not start
            self._fired.pop(org_id, None)
            log.warning("auto-recharge start failed", exc_info=True, extra={"org_id": str(org_id)})
            return False
        if started:
            log.info("auto-recharge started", extra={"org_id": str(org_id)})
        return started


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
    """Charge the saved card for a prepared payment. Three units of work, not one: no
    transaction stays open across the Stripe call, and what it answered is recorded in
    its own (a retried activity finds it there)."""
    async with unit_of_work(sessions) as session:
        payment = await repo.get_payment(session, payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        settings = await repo.get_billing(session, payment.org_id)
    if payment.credited:
        return ChargeResult(status="credited")
    if payment.status == "failed":
        return ChargeResult(status="failed", detail="already failed")
    if settings is None or not settings.stripe_customer_id or not settings.default_payment_method:
        async with unit_of_work(sessions) as session:
            await repo.update_payment(
                session, payment_id, {"status": "failed"}, from_statuses=("pending",)
            )
        return ChargeResult(status="failed", detail="no saved payment method")
    outcome = await gateway.create_recharge_intent(
        payment,
        customer=settings.stripe_customer_id,
        payment_method=settings.default_payment_method,
    )
    async with unit_of_work(sessions) as session:
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
