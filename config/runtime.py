"""Process-wide resources (database, HTTP client, Temporal) opened once and shared.

The API lifespan, the worker and the CLI all open the same bundle so connection settings and
pool sizes are decided in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from config.settings import ConfigError, Settings
from config.temporal import TemporalHandle
from config.workflow_starter import TemporalWorkflowStarter
from domain.crypto import MemoSecretBox, SecretBox
from domain.egress.policy import EgressPolicy
from domain.identity.service import IdentityConfig
from domain.keys.auth import KeyAuthenticator
from domain.payments.recharge import AutoRecharge
from domain.pricing.cost import configure_tier_multipliers
from domain.providers.aiohttp_transport import UpstreamClient
from domain.relay.plan import DEFAULT_PROVIDER_URLS, RelayConfig
from domain.relay.service import Relay
from domain.results import CopyLimits, Results, ResultSigner
from domain.results.store import BlobStoreConfigError, open_blob_store
from schema.db import SessionFactory, create_engine, session_factory
from schema.embedded import start_embedded_postgres


def resolve_database_url(settings: Settings) -> str:
    """`OXINF_DATABASE_URL`, or the embedded pgserver outside production."""
    if settings.database_url:
        return settings.database_url
    if settings.env == "production":
        raise ConfigError("OXINF_DATABASE_URL is required in production")
    _, url = start_embedded_postgres(settings.data_dir / "pg")
    return url


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy",
                   "all_proxy")  # fmt: skip


_CLIENT_OPTIONS: dict[str, Any] = {
    "timeout": httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=10.0),
    "limits": httpx.Limits(max_connections=512, max_keepalive_connections=128),
    "follow_redirects": False,
}


def build_http_client() -> httpx.AsyncClient:
    """The upstream client: httpx's API over aiohttp's pool (see `AiohttpTransport`), or
    plain httpx when the environment names a proxy, since only httpx honours it."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return httpx.AsyncClient(**_CLIENT_OPTIONS)
    return UpstreamClient(**_CLIENT_OPTIONS)


def build_tenant_http_client(policy: EgressPolicy) -> httpx.AsyncClient:
    """The client for tenant-chosen base URLs (BYOK): every connection resolved and checked
    by the egress policy and pinned to the checked address. Never through a proxy, which
    would resolve the name again where the policy cannot see it."""
    return UpstreamClient(**_CLIENT_OPTIONS, egress=policy)


def identity_config(settings: Settings) -> IdentityConfig:
    return IdentityConfig(
        pepper=settings.hmac_pepper.get_secret_value(),
        bcrypt_rounds=settings.bcrypt_rounds,
        session_ttl=timedelta(hours=settings.session_ttl_hours),
        max_failures=settings.login_max_failures,
        lockout_max_s=settings.login_lockout_max_s,
        signup_grant_micros=settings.signup_grant_micros,
    )


def relay_config(settings: Settings) -> RelayConfig:
    return RelayConfig(
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        max_attempts_per_model=settings.max_attempts_per_model,
        hold_ttl=timedelta(seconds=settings.chat_hold_ttl_s),
        default_max_output=settings.default_max_output_tokens,
        drain_timeout_s=settings.stream_drain_timeout_s,
        upstream_timeout_s=settings.upstream_timeout_s,
        provider_base_urls={**DEFAULT_PROVIDER_URLS, **settings.provider_base_urls},
        plan_cache_ttl_s=settings.plan_cache_ttl_s,
    )


def result_store(settings: Settings) -> Results:
    """The result store, its URL signer and copy limits (`domain.results`)."""
    try:
        store = open_blob_store(settings.blob_url, settings.data_dir / "blobs")
    except BlobStoreConfigError as exc:
        raise ConfigError(str(exc)) from None
    return Results(
        store=store,
        signer=ResultSigner(settings.hmac_pepper.get_secret_value(), settings.result_url_ttl_s),
        limits=CopyLimits(
            max_bytes={
                "image": settings.result_max_bytes_image,
                "video": settings.result_max_bytes_video,
                "audio": settings.result_max_bytes_audio,
            },
            timeout_s=settings.result_fetch_timeout_s,
        ),
    )


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    http: httpx.AsyncClient
    temporal: TemporalHandle
    identity: IdentityConfig = field(init=False)
    secret_box: SecretBox = field(init=False)
    key_auth: KeyAuthenticator = field(init=False)
    relay: Relay = field(init=False)
    tenant_http: httpx.AsyncClient = field(init=False)
    results: Results = field(init=False)
    workflows: TemporalWorkflowStarter = field(init=False)
    auto_recharge: AutoRecharge = field(init=False)

    def __post_init__(self) -> None:
        configure_tier_multipliers(self.settings.tier_multipliers_bps)
        self.identity = identity_config(self.settings)
        self.secret_box = SecretBox(self.settings.encryption_key_list)
        self.key_auth = KeyAuthenticator(
            self.sessions,
            self.identity.pepper,
            ttl_s=self.settings.key_cache_ttl_s,
            resolution_s=self.settings.key_last_used_resolution_s,
        )
        # Routing opens the same channel secrets on every call: the relay's box remembers them.
        routing_box = MemoSecretBox(self.settings.encryption_key_list)
        self.tenant_http = build_tenant_http_client(self.settings.tenant_egress)
        self.results = result_store(self.settings)
        self.relay = Relay(
            self.sessions, self.http, routing_box, relay_config(self.settings),
            tenant_http=self.tenant_http,
        )  # fmt: skip
        # Starts bounded like any other Temporal call of the API: a 503 rather than a hang.
        # `temporal` and `settings` are read at each start, not here: tests swap them in place.
        self.workflows = TemporalWorkflowStarter(
            lambda: self.temporal.get(),
            task_queue=lambda: self.settings.task_queue,
            timeout_s=self.settings.temporal_timeout_s,
        )
        self.auto_recharge = AutoRecharge(self.sessions, self.workflows)
        self.relay.on_settled = self.auto_recharge.after_settle

    async def aclose(self) -> None:
        await self.relay.aclose()
        await self.key_auth.drain()
        await self.http.aclose()
        await self.tenant_http.aclose()
        await self.engine.dispose()


def build_resources(
    settings: Settings, engine: AsyncEngine, *, temporal_client: Client | None = None
) -> Resources:
    return Resources(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=build_http_client(),
        temporal=TemporalHandle(settings, temporal_client),
    )


def open_resources(settings: Settings, *, temporal_client: Client | None = None) -> Resources:
    engine = create_engine(
        resolve_database_url(settings),
        pool_size=settings.db_pool_size,
        timeout_s=settings.db_timeout_s,
    )
    return build_resources(settings, engine, temporal_client=temporal_client)
