"""Stripe event fulfilment and auto-recharge, as durable workflows (DESIGN.md §7).

`stripe-event-{event id}`: one per verified webhook event. Its activity applies the event
and stamps it processed in one transaction. An event about a payment that is not credited
yet (a refund that overtook its checkout) comes back "deferred"; the workflow then waits on
a durable timer and tries again, so out-of-order deliveries resolve themselves without
holding a database connection or a worker slot.

`auto-recharge-{org}`: at most one per org at a time (the start uses the id as a lock).
It charges the saved card once, then stays open until the org is re-armed (available back
at or above the threshold, or auto-recharge switched off). While it is open, further
triggers are no-ops, which is what makes a recharge fire once per threshold crossing even
when the card is declined.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

APPLY_STRIPE_EVENT = "payments.apply_stripe_event"
PREPARE_RECHARGE = "payments.prepare_recharge"
CHARGE_RECHARGE = "payments.charge_recharge"
RECHARGE_REARMED = "payments.recharge_rearmed"

STRIPE_EVENT_WORKFLOW = "StripeEvent"
AUTO_RECHARGE_WORKFLOW = "AutoRecharge"
NON_RETRYABLE = [
    "PaymentMismatch",
    "LedgerKeyMismatch",
    "NotFound",
    "InvalidRequest",
    "InvalidField",
]


def stripe_event_workflow_id(event_id: str) -> str:
    return f"stripe-event-{event_id}"


def recharge_workflow_id(org_id: str) -> str:
    return f"auto-recharge-{org_id}"


# --- stripe events -------------------------------------------------------------------------


class StripeEventInput(BaseModel):
    event_id: str
    first_retry_s: int = Field(default=30, gt=0)
    max_retry_s: int = Field(default=3600, gt=0)
    max_wait_s: int = Field(default=3 * 24 * 3600, gt=0)


class ApplyEvent(BaseModel):
    event_id: str


class EventOutcome(BaseModel):
    result: str
    payment_id: str | None = None
    detail: str | None = None


class StripeEventReport(BaseModel):
    outcome: EventOutcome
    attempts: int


@workflow.defn(name=STRIPE_EVENT_WORKFLOW)
class StripeEventWorkflow:
    @workflow.run
    async def run(self, params: StripeEventInput) -> StripeEventReport:
        delay = params.first_retry_s
        waited = 0
        attempts = 0
        while True:
            attempts += 1
            outcome = await workflow.execute_activity_method(
                PaymentActivityDefs.apply_stripe_event,
                ApplyEvent(event_id=params.event_id),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=5),
                    non_retryable_error_types=NON_RETRYABLE,
                ),
            )
            if outcome.result != "deferred":
                return StripeEventReport(outcome=outcome, attempts=attempts)
            if waited >= params.max_wait_s:
                # Left unprocessed: a redelivery (or an operator) may start it again.
                raise ApplicationError(
                    f"event still deferred after {waited}s: {outcome.detail}",
                    type="EventDeferredTooLong",
                    non_retryable=True,
                )
            await workflow.sleep(timedelta(seconds=delay))
            waited += delay
            delay = min(delay * 2, params.max_retry_s)


# --- auto-recharge -------------------------------------------------------------------------


class RechargeInput(BaseModel):
    org_id: str
    # Set when continuing as new after the charge, so the charge never runs twice.
    charged_payment_id: str | None = None
    status: str | None = None
    waited_s: int = 0
    poll_s: int = 600
    max_wait_s: int = 7 * 24 * 3600


class RechargeStep(BaseModel):
    org_id: str
    payment_id: str


class RechargePlan(BaseModel):
    charge: bool
    reason: str | None = None
    poll_s: int = 600
    max_wait_s: int = 7 * 24 * 3600


class RechargeResult(BaseModel):
    status: str  # credited | processing | failed
    payment_id: str
    detail: str | None = None


class RearmCheck(BaseModel):
    org_id: str


class RechargeReport(BaseModel):
    status: str  # skipped | credited | processing | failed
    payment_id: str | None = None
    detail: str | None = None
    rearmed_after_s: int = 0


MAX_POLLS_PER_RUN = 200


class PaymentActivityDefs(Protocol):
    """Implemented by `activities.payments.PaymentActivities` (see `workflows.media`)."""

    @activity.defn(name=APPLY_STRIPE_EVENT)
    async def apply_stripe_event(self, params: ApplyEvent) -> EventOutcome: ...

    @activity.defn(name=PREPARE_RECHARGE)
    async def prepare_recharge(self, step: RechargeStep) -> RechargePlan: ...

    @activity.defn(name=CHARGE_RECHARGE)
    async def charge_recharge(self, step: RechargeStep) -> RechargeResult: ...

    @activity.defn(name=RECHARGE_REARMED)
    async def recharge_rearmed(self, check: RearmCheck) -> bool: ...


@workflow.defn(name=AUTO_RECHARGE_WORKFLOW)
class AutoRechargeWorkflow:
    @workflow.run
    async def run(self, params: RechargeInput) -> RechargeReport:
        payment_id = params.charged_payment_id
        status = params.status or ""
        detail: str | None = None
        poll_s, max_wait_s = params.poll_s, params.max_wait_s
        if payment_id is None:
            payment_id = str(workflow.uuid4())
            step = RechargeStep(org_id=params.org_id, payment_id=payment_id)
            plan = await workflow.execute_activity_method(
                PaymentActivityDefs.prepare_recharge,
                step,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(non_retryable_error_types=NON_RETRYABLE),
            )
            if not plan.charge:
                return RechargeReport(status="skipped", detail=plan.reason)
            poll_s, max_wait_s = plan.poll_s, plan.max_wait_s
            result = await workflow.execute_activity_method(
                PaymentActivityDefs.charge_recharge,
                step,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(hours=6),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=2),
                    non_retryable_error_types=NON_RETRYABLE,
                ),
            )
            status, detail = result.status, result.detail

        waited, polls = params.waited_s, 0
        while waited < max_wait_s:
            rearmed = await workflow.execute_activity_method(
                PaymentActivityDefs.recharge_rearmed,
                RearmCheck(org_id=params.org_id),
                start_to_close_timeout=timedelta(seconds=30),
            )
            if rearmed:
                break
            if polls >= MAX_POLLS_PER_RUN:
                workflow.continue_as_new(
                    RechargeInput(
                        org_id=params.org_id,
                        charged_payment_id=payment_id,
                        status=status,
                        waited_s=waited,
                        poll_s=poll_s,
                        max_wait_s=max_wait_s,
                    )
                )
            await workflow.sleep(timedelta(seconds=poll_s))
            waited += poll_s
            polls += 1
        return RechargeReport(
            status=status, payment_id=payment_id, detail=detail, rearmed_after_s=waited
        )
