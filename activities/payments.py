"""Payment activities: apply a Stripe event, and the three steps of an auto-recharge.

Each one opens its own transaction(s) and is safe to retry: events are stamped processed
in the transaction that applies them, recharge payments are keyed by an id the workflow
chose, and Stripe calls carry idempotency keys. Domain refusals become non-retryable
failures (retrying cannot change the answer); Stripe being unreachable stays retryable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from config.settings import Settings, plan_catalog
from domain.errors import Conflict, DomainError
from domain.payments import events, recharge
from domain.payments.gateway import StripeGateway, StripeUnavailable, gateway_for
from schema.unit_of_work import unit_of_work
from workflows.payments import (
    APPLY_STRIPE_EVENT,
    CHARGE_RECHARGE,
    PREPARE_RECHARGE,
    RECHARGE_REARMED,
    ApplyEvent,
    EventOutcome,
    PaymentActivityDefs,
    RearmCheck,
    RechargePlan,
    RechargeResult,
    RechargeStep,
)


@contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except (StripeUnavailable, Conflict):
        raise  # transient: let the retry policy try again
    except DomainError as exc:
        raise ApplicationError(exc.message, type=type(exc).__name__, non_retryable=True) from exc


def stripe_gateway(settings: Settings) -> StripeGateway | None:
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
    return gateway_for(key, settings.stripe_api_base, timeout_s=settings.stripe_timeout_s)


class PaymentActivities(PaymentActivityDefs):
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=APPLY_STRIPE_EVENT)
    async def apply_stripe_event(self, params: ApplyEvent) -> EventOutcome:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                result = await events.apply_event(
                    session, params.event_id, plan_catalog(self._deps.settings)
                )
        activity.logger.info(
            "stripe event applied",
            extra={"event_id": params.event_id, "result": result.result, "detail": result.detail},
        )
        return EventOutcome(
            result=result.result,
            payment_id=str(result.payment_id) if result.payment_id else None,
            detail=result.detail,
        )

    @activity.defn(name=PREPARE_RECHARGE)
    async def prepare_recharge(self, step: RechargeStep) -> RechargePlan:
        settings = self._deps.settings
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                decision = await recharge.prepare(
                    session,
                    uuid.UUID(step.org_id),
                    uuid.UUID(step.payment_id),
                    settings.credit_packages,
                )
        return RechargePlan(
            charge=decision.charge,
            reason=decision.reason,
            poll_s=settings.recharge_rearm_poll_s,
            max_wait_s=settings.recharge_rearm_max_s,
        )

    @activity.defn(name=CHARGE_RECHARGE)
    async def charge_recharge(self, step: RechargeStep) -> RechargeResult:
        gateway = stripe_gateway(self._deps.settings)
        if gateway is None:
            raise ApplicationError(
                "Stripe is not configured", type="StripeNotConfigured", non_retryable=True
            )
        with domain_errors():
            result = await recharge.charge(self._deps.sessions, gateway, uuid.UUID(step.payment_id))
        return RechargeResult(
            status=result.status, payment_id=step.payment_id, detail=result.detail
        )

    @activity.defn(name=RECHARGE_REARMED)
    async def recharge_rearmed(self, check: RearmCheck) -> bool:
        with domain_errors():
            async with unit_of_work(self._deps.sessions) as session:
                return await recharge.rearmed(session, uuid.UUID(check.org_id))
