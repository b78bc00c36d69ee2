"""Everything decided before the first upstream byte: who pays, which routes, what to hold.

Planning reads only; nothing is reserved or sent here, so a refusal at this stage (bad
body, unknown model, allowlist, RPM) never touches money or an upstream.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from domain.admission import service as admission
from domain.budgets.models import BudgetRef
from domain.byok.service import ByokSecret, secrets_for_routing
from domain.clock import SYSTEM_CLOCK, Clock
from domain.crypto import SecretBox
from domain.errors import InvalidRequest
from domain.keys.auth import KeyPrincipal
from domain.pricing.cost import PriceSnapshot, estimate_chat_hold
from domain.pricing.models import ModelInfo
from domain.providers import Upstream, estimate_prompt_tokens
from domain.providers.base import NativeMode
from domain.ratelimit.service import RateDecision
from domain.relay.cache import TtlCache, deferred
from domain.routing import repository as channels_repo
from domain.surfaces.chat_body import for_provider
from schema.channels import Channel
from schema.db import SessionFactory

Billing = Literal["byok", "platform"]
T = TypeVar("T")

DEFAULT_PROVIDER_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
}


@dataclass(frozen=True)
class RelayConfig:
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    max_attempts_per_model: int = 3
    hold_ttl: timedelta = timedelta(minutes=15)
    default_max_output: int = 4096
    drain_timeout_s: float = 120.0
    upstream_timeout_s: float = 120.0
    provider_base_urls: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PROVIDER_URLS)
    plan_cache_ttl_s: float = 1.0
    clock: Clock = SYSTEM_CLOCK  # breaker cooldowns are measured on it


@dataclass(frozen=True)
class Route:
    billing: Billing
    provider: str
    upstream: Upstream
    channel: Channel | None  # None for BYOK
    # The base URL is the tenant's own (a BYOK base_url): sent through the egress policy.
    tenant_url: bool = False

    @property
    def channel_id(self) -> uuid.UUID | None:
        return self.channel.id if self.channel else None

    @property
    def capabilities(self) -> list[str]:
        """What the channel's upstream speaks beyond chat (BYOK routes: nothing declared)."""
        return list(self.channel.capabilities or ()) if self.channel is not None else []

    @property
    def breaker_open(self) -> bool:
        return self.channel is not None and self.channel.breaker_state != "closed"


@dataclass(frozen=True)
class ModelRoutes:
    """One model's platform channels in try order; fallback models get their own entry."""

    model: str
    snapshot: PriceSnapshot
    routes: list[Route]
    hold_micros: int
    max_output: int


@dataclass(frozen=True)
class Held:
    """A hold reserved together with the rate-limit hit (`Relay.plan`)."""

    hold_id: uuid.UUID
    amount_micros: int


# Upstreams that need an explicit output cap get the one the hold was sized for, so the
# upstream cannot produce more than was reserved.
NEEDS_EXPLICIT_CAP = frozenset({"anthropic", "google"})


@dataclass
class Plan:
    request_id: str
    key: KeyPrincipal
    org_id: uuid.UUID
    tier: str
    power: str
    byok_fallback: bool
    model: ModelInfo
    snapshot: PriceSnapshot
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    client_request_id: str | None
    prompt_estimate: int
    byok_routes: list[Route]
    platform: list[ModelRoutes]
    rate: RateDecision | None = None
    held: Held | None = None
    # From the key creator's department and the budget policies reaching the key.
    log_content: bool = False
    budgets: tuple[BudgetRef, ...] = ()
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    max_output: int = 0
    # The body is a translation (Messages, Responses, completions), not the client's own
    # chat body: it gets `chat_body.for_provider`'s last touch per route.
    translated: bool = False
    embeddings: bool = False  # the call goes to the upstream's `/embeddings`, not chat
    choices: int = 1  # `n`: the hold covers this many answers, each up to the ceiling
    # A request in the client's own wire format (Anthropic Messages, Responses): routes whose
    # upstream speaks it get it natively (`native_for`), every other route gets `body`, its
    # chat translation.
    native: NativeMode | None = None
    # Models whose output was capped to what the org can afford (`domain.relay.ceiling`):
    # model -> the max_tokens sent upstream and named in the response header.
    capped: dict[str, int] = field(default_factory=dict)

    def native_for(self, route: Route) -> NativeMode | None:
        """The native request when this route's upstream speaks it, else None (translate)."""
        native = self.native
        if native is not None and native.serves(route.provider, route.capabilities):
            return native
        return None

    def require_native(self) -> None:
        """A field only native routes serve (`NativeMode.only_native`) is refused with a 400
        naming it unless every route the call could take, fallback models' included, is
        native: a translated route could not honour it."""
        native = self.native
        param = native.only_native if native is not None else None
        if param is None:
            return
        routes = [*self.byok_routes, *(r for mr in self.platform for r in mr.routes)]
        if any(self.native_for(route) is None for route in routes):
            raise InvalidRequest(
                f"`{param}` needs an upstream that keeps state, and not every channel "
                f"serving {self.model.name!r} speaks this API natively (0xinf keeps no state "
                "of its own); send the full input (store=false) instead",
                param=param,
            )

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def body_for(
        self, route: Route, max_output: int | None = None, model: str | None = None
    ) -> dict[str, Any]:
        body = self._capped(route, max_output, model)
        if self.translated:
            return for_provider(body, route.provider)
        return body

    def _capped(self, route: Route, max_output: int | None, model: str | None) -> dict[str, Any]:
        capped = self.capped.get(model) if model is not None and self.capped else None
        if capped is not None:
            return {**self.body, "max_tokens": capped}
        if route.provider not in NEEDS_EXPLICIT_CAP:
            return self.body
        if self.body.get("max_tokens") or self.body.get("max_completion_tokens"):
            return self.body
        return {**self.body, "max_tokens": max_output or self.max_output}


def validate_chat_body(body: Any) -> dict[str, Any]:
    """Just enough to route and bill; everything else is the upstream's to judge."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required", param="model")
    admission.check_model_name(model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}] needs a `role`", param="messages")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidRequest(f"`{name}` must be a positive integer", param=name)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    choices = body.get("n")
    if choices is not None and (
        not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= MAX_CHOICES
    ):
        raise InvalidRequest(f"`n` must be an integer from 1 to {MAX_CHOICES}", param="n")
    return body


def choices_of(body: dict[str, Any]) -> int:
    """How many answers the call asks for (`n`, checked by `validate_chat_body`): each may use
    the whole output ceiling, so the hold covers that many."""
    choices = body.get("n")
    return choices if isinstance(choices, int) and not isinstance(choices, bool) else 1


CLIENT_REQUEST_ID_MAX = 200  # request_logs.client_request_id


def check_client_request_id(value: str | None) -> None:
    if value is not None and len(value) > CLIENT_REQUEST_ID_MAX:
        raise InvalidRequest(
            f"X-Client-Request-ID must be at most {CLIENT_REQUEST_ID_MAX} characters",
            param="X-Client-Request-ID",
        )


MAX_CHOICES = 128  # OpenAI's own bound on `n`


def max_output_tokens(body: dict[str, Any], model: ModelInfo, cfg: RelayConfig) -> int:
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    cap = model.max_output_tokens or cfg.default_max_output
    return min(int(asked), cap) if asked else cap


def order_channels(channels: list[Channel], rng: random.Random) -> list[Channel]:
    """Highest priority first; weighted-random order within a priority (A-Res sampling)."""

    def sort_key(c: Channel) -> tuple[int, float]:
        return (-c.priority, -(rng.random() ** (1.0 / c.weight)))

    return sorted(channels, key=sort_key)


def platform_upstream(channel: Channel, model: str, box: SecretBox, cfg: RelayConfig) -> Upstream:
    secret = box.decrypt(channel.secret_ciphertext) if channel.secret_ciphertext else None
    base = channel.base_url or cfg.provider_base_urls.get(channel.provider)
    return Upstream(
        provider=channel.provider,
        base_url=base,
        api_key=secret,
        model=channel.model_mapping.get(model, model),
        timeout_s=cfg.upstream_timeout_s,
    )


def _byok_routes(secrets: dict[str, ByokSecret], model: ModelInfo, cfg: RelayConfig) -> list[Route]:
    """OpenRouter serves every model; otherwise the key for the model's own provider."""
    chosen: ByokSecret | None = secrets.get("openrouter")
    if chosen is None and model.provider is not None:
        chosen = secrets.get(model.provider)
    if chosen is None:
        return []
    upstream = Upstream(
        provider=chosen.provider,
        base_url=chosen.base_url or cfg.provider_base_urls.get(chosen.provider),
        api_key=chosen.api_key or None,
        model=model.name,
        timeout_s=cfg.upstream_timeout_s,
    )
    return [Route("byok", chosen.provider, upstream, None, tenant_url=bool(chosen.base_url))]


class OnDemandSession:
    """A session opened only if a memo misses: with a warm memo most plans read nothing,
    and opening and closing an AsyncSession costs CPU even when it runs no query."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._session is None:
            self._session = self._sessions()
        return await fn(self._session, *args)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def build_plan(
    db: OnDemandSession,
    box: SecretBox,
    cfg: RelayConfig,
    *,
    key: KeyPrincipal,
    body: dict[str, Any],
    surface: admission.Surface = admission.CHAT,
    request_id: str,
    client_request_id: str | None,
    rng: random.Random,
    cache: TtlCache | None = None,
    prompt_estimate: int | None = None,
    translated: bool = False,
) -> Plan:
    """Admit the call (`domain.admission`), then route and size the hold of every model
    admitted to serve it. Chat bodies (client-written or translated) are validated here;
    an input-only surface (embeddings) validates its own body and gives `prompt_estimate`,
    and holds no output."""
    admission.require_scope(key, surface.scope)
    chat = surface.model_type == "chat"
    if chat:
        body = validate_chat_body(body)
    else:
        admission.check_model_name(body["model"])
    choices = choices_of(body) if chat else 1
    check_client_request_id(client_request_id)
    name: str = body["model"]
    admission.require_key_allows(key, name)
    memo = cache or TtlCache(0)
    admitted = await admission.admit(db, surface, key, name, now=datetime.now(UTC), memo=memo)
    model, org = admitted.model, admitted.org

    if prompt_estimate is None:
        prompt_estimate = estimate_prompt_tokens(body)
    secrets = await memo.get(("byok", org.id), lambda: db.run(secrets_for_routing, org.id, box))
    byok = _byok_routes(secrets, model, cfg)
    platform: list[ModelRoutes] = []
    for candidate in admitted.candidates:
        info, price = candidate.model, candidate.price
        channels = order_channels(
            await memo.get(
                ("channels", info.name, surface.model_type, info.channel_group),
                deferred(
                    db.run, channels_repo.serving, info.name, surface.model_type, info.channel_group
                ),
            ),
            rng,
        )
        routes = [
            Route("platform", c.provider, platform_upstream(c, info.name, box, cfg), c)
            for c in channels
        ]
        cap = max_output_tokens(body, info, cfg) if chat else 0
        output = cap * choices
        hold = estimate_chat_hold(prompt_estimate, output, price, org.tier, org.power_level)
        platform.append(ModelRoutes(info.name, price, routes, hold, cap))

    options = body.get("stream_options")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return Plan(
        request_id=request_id,
        key=key,
        org_id=org.id,
        tier=org.tier,
        power=org.power_level,
        byok_fallback=org.byok_fallback,
        model=model,
        snapshot=admitted.price,
        body=body,
        stream=bool(body.get("stream")),
        include_usage=include_usage,
        client_request_id=client_request_id,
        prompt_estimate=prompt_estimate,
        byok_routes=byok,
        platform=platform,
        max_output=max_output_tokens(body, model, cfg) if chat else 0,
        log_content=admitted.rules.logs_content(key.log_content),
        budgets=admitted.budgets,
        translated=translated,
        embeddings=surface.model_type == "embedding",
        choices=choices,
    )
