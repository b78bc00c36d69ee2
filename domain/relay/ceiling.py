"""The affordable ceiling (DESIGN.md §3): never refuse a call for a ceiling the caller did
not ask for.

A chat hold is sized for the model's whole max output when the caller sets no `max_tokens`.
If that is more than the org (its key budget, its hard budget policies) can cover, the call
is served with the output capped to what is affordable, reserved exactly, and the response
says so (`X-Oxinf-Max-Tokens-Capped`). Only when not even a minimal answer fits, or when the
caller asked for a `max_tokens` that does not fit (we never shrink what was asked for), is it
refused, and the 402 names the amounts and the largest `max_tokens` that would fit.

This runs only after a reserve was refused, so the usual call pays nothing for it.
"""

from __future__ import annotations

from typing import Any

from domain.ledger import service as ledger
from domain.ledger.errors import CreditRefusal
from domain.ledger.models import Reservation
from domain.pricing.cost import estimate_chat_hold, format_credits
from domain.relay.plan import ModelRoutes, Plan, RelayConfig
from schema.db import Executor

MIN_ANSWER_TOKENS = 16
CAPPED_HEADER = "X-Oxinf-Max-Tokens-Capped"
# A capped reserve can lose its room to a concurrent call between the read and the reserve:
# read and try again a few times, then refuse.
CAP_TRIES = 3


def asked_max_tokens(body: dict[str, Any]) -> bool:
    return bool(body.get("max_tokens") or body.get("max_completion_tokens"))


def affordable_tokens(plan: Plan, routes: ModelRoutes, room_micros: int) -> int:
    """The largest output (≤ the model's ceiling) whose hold fits `room_micros`; 0 when not
    even the prompt does. Exact: the same integer pricing the hold uses, searched."""

    def hold(tokens: int) -> int:
        return estimate_chat_hold(
            plan.prompt_estimate, tokens, routes.snapshot, plan.tier, plan.power
        )

    if hold(0) > room_micros:
        return 0
    low, high = 0, routes.max_output
    while low < high:
        mid = (low + high + 1) // 2
        if hold(mid) <= room_micros:
            low = mid
        else:
            high = mid - 1
    return low


def _refusal(refused: CreditRefusal, plan: Plan, routes: ModelRoutes, fits: int) -> CreditRefusal:
    required = refused.required_micros or 0
    available = refused.available_micros or 0
    need = (
        f"this call needs up to {format_credits(required)} credits "
        f"({routes.max_output} output tokens of {routes.model}) and "
        f"{format_credits(available)} {refused.room}"
    )
    minimal = min(MIN_ANSWER_TOKENS, routes.max_output)
    if fits >= minimal:
        advice = f"send max_tokens={fits} or less, or add credits"
    else:
        advice = f"not even a minimal answer ({minimal} tokens) fits; add credits"
    return refused.with_amounts(
        required, available, max_affordable_tokens=fits,
        message=f"{refused.summary}: {need}; {advice}",
    )  # fmt: skip


async def reserve_within(
    session: Executor,
    plan: Plan,
    cfg: RelayConfig,
    routes: ModelRoutes,
    refused: CreditRefusal,
    *,
    key: str,
    budgeted: bool,
) -> tuple[Reservation, int, int]:
    """After `refused`: reserve for the largest affordable output, as (reservation, amount,
    capped max_tokens); or raise the refusal with its amounts and what would fit."""
    for _ in range(CAP_TRIES):
        fits = affordable_tokens(plan, routes, refused.available_micros or 0)
        if asked_max_tokens(plan.body) or fits < min(MIN_ANSWER_TOKENS, routes.max_output):
            raise _refusal(refused, plan, routes, fits)
        amount = estimate_chat_hold(
            plan.prompt_estimate, fits, routes.snapshot, plan.tier, plan.power
        )
        try:
            reservation = await ledger.reserve(
                session, plan.org_id, amount, key=key, expires_in=cfg.hold_ttl,
                api_key_id=plan.key.key_id if budgeted else None,
                reference=plan.request_id, budgets=plan.budgets,
            )  # fmt: skip
        except CreditRefusal as again:  # a concurrent call took the room meanwhile
            again.required_micros = refused.required_micros
            refused = again
            continue
        return reservation, amount, fits
    raise _refusal(
        refused, plan, routes, affordable_tokens(plan, routes, refused.available_micros or 0)
    )
