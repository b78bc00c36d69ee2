"""Whether a key may spend on a model, and at what price: one rule set for every surface.

The relay's chat (and the chat-like and input-token-priced surfaces that plan the same
way) and async media tasks admit a call through these checks, in this order, which is the
order a caller hears about problems:

1. `require_scope`: the key has the surface's scope (before its body is read);
2. `check_model_name`, `require_key_allows`: a name we could store, on the key's own
   allowlist (as soon as the call names its model);
3. `admit`: its department's policy, the catalogue (the model exists, is enabled and is
   of the surface's type), the model's current price, the key's org, the budget policies
   its spend counts against, and, where the surface falls back, the fallback models the
   caller may use too.

A surface adds only what is its own: its body, its routes, the hold it sizes from the
admitted prices (`domain.pricing.cost`), the reserve that checks credit and budgets
(`domain.ledger`). Admission reads only, so a refusal never touches money or an upstream.
Its reads go through a memo (the relay's per-process `TtlCache`) and a reader that opens a
session only when the memo misses (`OnDemandSession`): a warm chat call is admitted
without a query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from domain.budgets.models import BudgetRef
from domain.enterprise import governance
from domain.enterprise.governance import KeyGovernance
from domain.errors import DomainError, InvalidRequest, PermissionDenied
from domain.identity import repository as identity_repo
from domain.inputs import MODEL_NAME_MAX, text_problem
from domain.keys.auth import KeyPrincipal
from domain.pricing import repository as pricing_repo
from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import ModelInfo
from domain.relay.cache import TtlCache, deferred
from schema.identity import Org

T = TypeVar("T")
UNMEMOISED = TtlCache(0)


class ModelNotAllowed(DomainError):
    code = "model_not_allowed"


@dataclass(frozen=True)
class Surface:
    """What a kind of call asks of a key and of the catalogue."""

    scope: str  # the key scope the call needs
    model_type: str  # the catalogue type its model must have
    noun: str = "model"  # how a refusal names a model of the wrong type or none at all
    fallbacks: bool = False  # the model's fallback models may serve the call too


TASKS_SCOPE = "tasks"
CHAT = Surface(scope="llm:inference", model_type="chat", fallbacks=True)
# No fallbacks: another model's vectors live in another space, useless next to the first's.
EMBEDDINGS = Surface(scope="llm:inference", model_type="embedding", noun="embedding model")


def task_surface(task_type: str) -> Surface:
    return Surface(scope=TASKS_SCOPE, model_type=task_type, noun=f"{task_type} model")


class Reader(Protocol):
    """Runs a repository read, `fn(session, *args)`, on a session of the reader's own."""

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...


@dataclass(frozen=True)
class SessionReader:
    """A `Reader` over a session the caller already holds."""

    session: AsyncSession

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await fn(self.session, *args)


# The decision types are named tuples, not frozen dataclasses: typed and immutable alike,
# but built on every chat call, where a frozen dataclass's field-by-field __init__ measured
# about 1.5 µs more per admission.


class Candidate(NamedTuple):
    """A model that may serve the call, with the price it is charged at."""

    model: ModelInfo
    price: PriceSnapshot


class Admitted(NamedTuple):
    """A call admitted on `model` at `price`; `candidates` are the models that may serve
    it, in try order: the model asked for, then the fallbacks the caller may use."""

    model: ModelInfo
    price: PriceSnapshot
    org: Org
    rules: KeyGovernance  # the department's allowlist and logging rule, the budget policies
    candidates: tuple[Candidate, ...]

    @property
    def budgets(self) -> tuple[BudgetRef, ...]:
        return self.rules.budgets


def require_scope(key: KeyPrincipal, scope: str) -> None:
    if scope not in key.scopes:
        raise PermissionDenied(f"this key lacks the {scope} scope")


def check_model_name(name: str) -> None:
    """A name we could never have stored is refused before any lookup uses it."""
    if len(name) > MODEL_NAME_MAX:
        raise InvalidRequest(f"`model` must be at most {MODEL_NAME_MAX} characters", param="model")
    problem = text_problem(name)
    if problem:
        raise InvalidRequest(f"`model` {problem}", param="model")


def require_key_allows(key: KeyPrincipal, name: str) -> None:
    if not key.allows_model(name):
        raise ModelNotAllowed(f"this key may not use model {name!r}", param="model")


def may_use(key: KeyPrincipal, rules: KeyGovernance, name: str) -> bool:
    """Both allowlists, the key's and its department's (what `/v1/models` lists)."""
    return key.allows_model(name) and rules.allows_model(name)


async def admit(
    reader: Reader,
    surface: Surface,
    key: KeyPrincipal,
    name: str,
    *,
    now: datetime,
    memo: TtlCache | None = None,
) -> Admitted:
    """The rest of admission, after `require_scope` and `require_key_allows`; raises the
    refusal, else what the call may use. `now` picks the price version in force."""
    memo = memo or UNMEMOISED
    # Lambdas, not `deferred`, outside the loop: one call less each, on every chat call.
    rules = await memo.get(
        ("gov", key.org_id, key.key_id),
        lambda: reader.run(governance.for_key, key.org_id, key.key_id),
    )
    if not rules.allows_model(name):
        raise ModelNotAllowed(
            f"your department's policy does not allow model {name!r}", param="model"
        )
    model = await memo.get(("model", name), lambda: reader.run(pricing_repo.get_model, name))
    if model is None or not model.enabled or model.type != surface.model_type:
        raise InvalidRequest(f"unknown {surface.noun} {name!r}", param="model")
    price = await memo.get(("price", name), lambda: reader.run(pricing_repo.price_at, name, now))
    if price is None:
        raise InvalidRequest(f"model {name!r} has no price yet", param="model")
    org = await memo.get(
        ("org", key.org_id), lambda: reader.run(identity_repo.org_by_id, key.org_id)
    )
    if org is None:  # the key outlived its org: treat as unknown
        raise PermissionDenied("this key's org no longer exists")

    asked = Candidate(model, price)
    if not (surface.fallbacks and model.fallback_models):
        return Admitted(model, price, org, rules, (asked,))
    candidates = [asked]
    for fallback in model.fallback_models:
        if not may_use(key, rules, fallback):
            continue  # a fallback is still a model the caller must be allowed to use
        info = await memo.get(
            ("model", fallback), deferred(reader.run, pricing_repo.get_model, fallback)
        )
        if info is None or not info.enabled:
            continue
        fallback_price = await memo.get(
            ("price", fallback), deferred(reader.run, pricing_repo.price_at, fallback, now)
        )
        if fallback_price is not None:
            candidates.append(Candidate(info, fallback_price))
    return Admitted(model, price, org, rules, tuple(candidates))
