"""Process configuration, read once from `OXINF_*` environment variables.

Dev and test runs must work with nothing configured, so missing secrets are generated once
and persisted under the data dir; production refuses to start without real ones, because a
guessable pepper or encryption key silently weakens every stored key and secret.
"""

from __future__ import annotations

import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.egress.policy import EgressPolicy
from domain.payments.packages import DEFAULT_PACKAGES, CreditPackage
from domain.plans.catalog import DEFAULT_PLANS, PlanCatalog, PlanSpec
from domain.pricing.cost import TIER_BPS

DEV_SIGNUP_GRANT_CREDITS = 1_000
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "dev", "test"}


class ConfigError(RuntimeError):
    """Raised when the process must not start with the configuration it was given."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OXINF_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = Path(".oxinf")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset means the embedded pgserver (dev only)."
    )
    db_pool_size: int = 20
    db_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="longest wait for a database connection (pool or connect) before a 503",
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of Temporal; unset means the embedded dev server."
    )
    temporal_namespace: str = "default"
    task_queue: str = "oxinf"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui_url: str | None = None
    temporal_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="longest an API call waits on Temporal (connect and retries) before a 503",
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024

    encryption_keys: SecretStr = SecretStr("")
    hmac_pepper: SecretStr = SecretStr("")

    admin_email: str | None = None
    admin_password: SecretStr | None = None
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token Prometheus sends to /metrics. Unset: /metrics is open in dev and "
            "test, and answers 404 in production."
        ),
    )

    session_ttl_hours: int = 12
    bcrypt_rounds: int = 12
    login_max_failures: int = 5
    login_lockout_max_s: int = 900
    key_cache_ttl_s: float = 5.0
    key_last_used_resolution_s: int = 60

    signup_grant_credits: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000,
        description=(
            "whole credits a new sign-up's personal org receives once, as a `bonus`, so a "
            "first call works without Stripe; unset: 1,000 in dev, 0 in test and production"
        ),
    )

    tier_allocations: dict[str, int] = Field(
        default={
            "free": 0,
            "trial": 5_000,
            "starter": 20_000,
            "professional": 60_000,
            "enterprise": 0,
        },
        description=(
            "credits per period per tier (whole credits): monthly by the allocation schedule, "
            "or per paid invoice for a subscription (the trial's is weekly); enterprise is "
            "set by contract"
        ),
    )
    tier_multipliers_bps: dict[str, int] = Field(
        default_factory=lambda: dict(TIER_BPS),
        description="price multiplier per tier in basis points (10,000 = 1.0)",
    )
    plans: dict[str, PlanSpec] = Field(
        default_factory=lambda: dict(DEFAULT_PLANS),
        description=(
            "self-serve tiers sold as Stripe subscriptions: tier -> {name, amount_cents, "
            "interval (week|month), currency, price_id (optional Stripe Price)}"
        ),
    )
    plan_portal_return_url: str | None = Field(
        default=None, description="where Stripe's customer portal sends people back to"
    )

    # --- billing: Stripe purchases, auto-recharge, allocations, retention (DESIGN.md §7) ---
    stripe_api_key: SecretStr | None = Field(
        default=None, description="unset: checkout answers 503 (Stripe is not configured)"
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_ secret(s), comma-separated while rolling one"
    )
    stripe_api_base: str | None = Field(default=None, description="e.g. a local fake Stripe")
    stripe_timeout_s: float = 20.0
    stripe_webhook_tolerance_s: int = 300
    checkout_success_url: str | None = None
    checkout_cancel_url: str | None = None
    credit_packages: dict[str, CreditPackage] = Field(
        default_factory=lambda: dict(DEFAULT_PACKAGES),
        description="package id -> {name, amount_cents, credits, currency}",
    )
    recharge_rearm_poll_s: int = Field(default=600, gt=0)
    recharge_rearm_max_s: int = Field(default=7 * 24 * 3600, gt=0)
    allocation_batch_size: int = Field(default=500, gt=0, le=5_000)
    retention_batch_size: int = Field(default=1_000, gt=0, le=10_000)

    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    max_attempts_per_model: int = 3
    chat_hold_ttl_s: int = 900
    default_max_output_tokens: int = 4096
    stream_drain_timeout_s: float = 120.0
    upstream_timeout_s: float = 120.0
    plan_cache_ttl_s: float = 1.0
    api_gc_gen0_threshold: int = Field(
        default=10_000,
        ge=0,
        description="the API's young-generation GC threshold (0: CPython's 700), config.gc_tuning",
    )
    provider_base_urls: dict[str, str] = Field(
        default_factory=dict,
        description="override upstream base URLs per provider (proxies, tests)",
    )

    task_deadline_image_s: int = 600
    task_deadline_video_s: int = 1800
    task_deadline_audio_s: int = 600
    shim_wait_s: float = 60.0

    # --- the result store: task results copied from the provider (DESIGN.md §6) ---
    blob_url: str | None = Field(
        default=None,
        description=(
            "s3://bucket[/prefix][?endpoint_url=...&region=...] (credentials from the AWS "
            "environment variables) or file:///path; unset: files under <data_dir>/blobs"
        ),
    )
    result_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    result_max_bytes_image: int = Field(default=64 * 1024 * 1024, gt=0)
    result_max_bytes_video: int = Field(default=512 * 1024 * 1024, gt=0)
    result_max_bytes_audio: int = Field(default=64 * 1024 * 1024, gt=0)
    result_fetch_timeout_s: float = Field(default=600.0, gt=0)

    tenant_egress_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "comma-separated host names (or IPs) tenants may point BYOK base URLs and "
            "callbacks at although they are private, e.g. an org's on-prem Ollama; plain "
            "http and any port are allowed for them"
        ),
    )
    tenant_egress_allow_private: bool = Field(
        default=False,
        description="tests only: tenant URLs may reach any host over plain http",
    )
    callback_connect_timeout_s: float = 5.0
    callback_read_timeout_s: float = 10.0
    callback_max_response_bytes: int = 64 * 1024

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("tier_multipliers_bps")
    @classmethod
    def _known_tiers(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(TIER_BPS))
        if unknown:
            raise ValueError(f"unknown tiers: {', '.join(unknown)}")
        if any(not 0 < bps <= 1_000_000 for bps in value.values()):
            raise ValueError("multipliers must be between 1 and 1,000,000 basis points")
        return {**TIER_BPS, **value}

    @field_validator("tenant_egress_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.database_url is None:
            problems.append("OXINF_DATABASE_URL is required in production")
        if self.temporal_address is None:
            problems.append("OXINF_TEMPORAL_ADDRESS is required in production")
        if self.hmac_pepper.get_secret_value().strip().lower() in PLACEHOLDERS:
            problems.append("OXINF_HMAC_PEPPER must be set to a random secret")
        elif len(self.hmac_pepper.get_secret_value()) < 32:
            problems.append("OXINF_HMAC_PEPPER must be at least 32 characters")
        keys = self.encryption_key_list
        if not keys:
            problems.append("OXINF_ENCRYPTION_KEYS must hold at least one Fernet key")
        for key in keys:
            try:
                Fernet(key.encode())
            except ValueError:
                problems.append("OXINF_ENCRYPTION_KEYS holds a value that is not a Fernet key")
                break
        if self.tenant_egress_allow_private:
            problems.append(
                "OXINF_TENANT_EGRESS_ALLOW_PRIVATE is for tests only; name the private hosts "
                "tenants may reach in OXINF_TENANT_EGRESS_ALLOW_HOSTS"
            )
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def encryption_key_list(self) -> list[str]:
        raw = self.encryption_keys.get_secret_value()
        return [k.strip() for k in raw.split(",") if k.strip()]

    @property
    def signup_grant_micros(self) -> int:
        credits = self.signup_grant_credits
        if credits is None:
            credits = DEV_SIGNUP_GRANT_CREDITS if self.env == "dev" else 0
        return credits * 1_000_000

    @property
    def tenant_egress(self) -> EgressPolicy:
        """Where tenant-chosen URLs (BYOK base URLs, callbacks) may lead."""
        return EgressPolicy.of(
            self.tenant_egress_allow_hosts, allow_private=self.tenant_egress_allow_private
        )

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui(self) -> str:
        return self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}"

    def with_local_secrets(self) -> Settings:
        """Fill unset secrets from `<data_dir>/secrets.json`, creating it on first use."""
        if self.env == "production":
            return self
        missing_pepper = not self.hmac_pepper.get_secret_value()
        missing_keys = not self.encryption_key_list
        if not (missing_pepper or missing_keys):
            return self
        path = self.data_dir / "secrets.json"
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text())
        changed = False
        if "hmac_pepper" not in stored:
            stored["hmac_pepper"] = secrets.token_hex(32)
            changed = True
        if "encryption_keys" not in stored:
            stored["encryption_keys"] = Fernet.generate_key().decode()
            changed = True
        if changed:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stored, indent=2))
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        update: dict[str, SecretStr] = {}
        if missing_pepper:
            update["hmac_pepper"] = SecretStr(stored["hmac_pepper"])
        if missing_keys:
            update["encryption_keys"] = SecretStr(stored["encryption_keys"])
        return self.model_copy(update=update)


def plan_catalog(settings: Settings) -> PlanCatalog:
    return PlanCatalog(
        plans=settings.plans,
        allocations=settings.tier_allocations,
        multipliers_bps=settings.tier_multipliers_bps,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().with_local_secrets()
