"""The console home: the org's credits and the first-run checklist, from real data.

The checklist is what a newcomer does to get a first answer: create a key, copy the
snippet, make a call, see it in usage. "Key created" is any key the org ever made; the other
three are done once the org has a logged request, since a call is what the snippet is for
and a logged call is what usage shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing_cycles.periods import next_month_start
from domain.identity.service import OrgContext
from domain.keys import repository as keys_repo
from domain.ledger import service as ledger
from domain.ledger.models import Balance
from domain.plans import service as plans
from domain.plans.catalog import PlanCatalog
from domain.plans.service import NextAllocation
from domain.pricing import service as pricing
from domain.setup.snippets import snippets
from domain.usage import repository as usage_repo
from web.nav import href_of
from web.services.plan import signup_grant_of

PLACEHOLDER_MODEL = "your-model"


@dataclass(frozen=True)
class Step:
    title: str
    detail: str
    done: bool
    href: str | None  # None while the page that does it is not built


@dataclass(frozen=True)
class HomeView:
    balance: Balance
    tier: str
    next_allocation: NextAllocation | None  # the plan page's (`GET /portal/v1/plan`'s)
    next_reset: datetime  # when the monthly schedule runs next
    steps: list[Step]
    openai_base_url: str
    example_model: str | None
    snippets: dict[str, str]
    signup_grant_micros: int  # the one-time sign-up grant this org received (0: none)

    @property
    def steps_done(self) -> int:
        return sum(s.done for s in self.steps)

    @property
    def finished(self) -> bool:
        return self.steps_done == len(self.steps)


async def _example_model(session: AsyncSession) -> str | None:
    """A model a newcomer can call now: enabled and priced, chat preferred."""
    priced = [e for e in await pricing.list_models(session, enabled_only=True) if e.price]
    chat = [e.model.name for e in priced if e.model.type == "chat"]
    return chat[0] if chat else (priced[0].model.name if priced else None)


def checklist(has_key: bool, has_call: bool) -> list[Step]:
    return [
        Step(
            "Create an API key",
            "Keys are shown once, so store yours in a secret manager or an environment "
            "variable (OXINF_API_KEY).",
            has_key,
            href_of("keys"),
        ),
        Step(
            "Copy the snippet",
            "It reads the key from OXINF_API_KEY and points the OpenAI SDK at this server.",
            has_call,
            "#snippet",
        ),
        Step(
            "Make a call",
            "Run the snippet. Any OpenAI-compatible client works with the base URL below.",
            has_call,
            href_of("quickstart"),
        ),
        Step(
            "See it in usage",
            "Every call is logged with its tokens, cost in credits and latency.",
            has_call,
            href_of("usage"),
        ),
    ]


async def home_view(
    session: AsyncSession, ctx: OrgContext, *, base_url: str, catalog: PlanCatalog
) -> HomeView:
    balance = await ledger.balance(session, ctx.org.id)
    has_key = await keys_repo.org_has_keys(session, ctx.org.id)
    has_call = await usage_repo.org_has_requests(session, ctx.org.id)
    model = await _example_model(session)
    openai_base = f"{base_url}/v1"
    return HomeView(
        balance=balance,
        tier=ctx.org.tier,
        next_allocation=(
            await plans.current_plan(session, catalog, ctx, now=datetime.now(UTC))
        ).next_allocation,
        next_reset=next_month_start(datetime.now(UTC)),
        steps=checklist(has_key, has_call),
        openai_base_url=openai_base,
        example_model=model,
        snippets=snippets(openai_base, model or PLACEHOLDER_MODEL),
        signup_grant_micros=await signup_grant_of(session, ctx),
    )
