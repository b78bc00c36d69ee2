"""The API keys page's data and forms: platform keys, provider keys (BYOK) and the org's
fallback switch, read through the same services and response models as `/portal/v1`.

Forms arrive as text; `read_key_form` turns them into the service's arguments and collects
every problem per field at once, so a person fixes the whole form in one go instead of
meeting the rules one 400 at a time. The services check the same rules again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from domain.byok import service as byok
from domain.errors import DomainError
from domain.identity.service import OrgContext
from domain.keys import service as keys
from domain.pricing.cost import format_credits, parse_credits
from domain.setup.snippets import snippets
from edge.portal.byok import ByokOut
from edge.portal.catalog import callable_models
from edge.portal.keys import KeyCreated, KeyOut
from web.errors import sentence

PLACEHOLDER_MODEL = "your-model"
MAX_ALLOWLIST = 500
SCOPE_LABELS = {
    "llm:inference": ("Inference", "chat, completions, embeddings"),
    "llm:models": ("List models", "GET /v1/models"),
    "tasks": ("Tasks", "images, audio and video jobs"),
}
EXPIRY_CHOICES = (
    ("30d", "30 days"),
    ("60d", "60 days"),
    ("90d", "90 days (default)"),
    ("1y", "1 year"),
    ("never", "Never"),
)


@dataclass(frozen=True)
class ProviderChoice:
    key: str
    label: str
    models: str
    shape: str
    needs_url: bool = False


PROVIDERS = (
    ProviderChoice("openrouter", "OpenRouter", "recommended, all models", "sk-or-v1-…"),
    ProviderChoice("openai", "OpenAI", "GPT, DALL·E, Whisper", "sk-…"),
    ProviderChoice("anthropic", "Anthropic", "Claude models", "sk-ant-…"),
    ProviderChoice("google", "Google", "Gemini models", "AIza…"),
    ProviderChoice("ollama", "Ollama", "Your own server", "(often none)", needs_url=True),
    ProviderChoice(
        "openai_compatible", "OpenAI-compatible", "Any OpenAI-style server", "…", needs_url=True
    ),
)
PROVIDER_NAMES = {p.key: p.label for p in PROVIDERS}


class FormInvalid(Exception):
    """A form with problems: `errors` by field name, `values` to show the form again."""

    def __init__(self, errors: dict[str, str], values: Any) -> None:
        super().__init__(errors)
        self.errors = errors
        self.values = values


@dataclass(frozen=True)
class KeysView:
    keys: list[KeyOut]
    providers: list[ByokOut]
    byok_fallback: bool
    can_admin: bool  # provider keys and the fallback switch are for owners and admins

    @property
    def active_keys(self) -> int:
        return sum(k.status == "active" for k in self.keys)


@dataclass(frozen=True)
class Created:
    key: KeyCreated
    snippets: dict[str, str]
    model: str


@dataclass
class KeyFormValues:
    """What the generate and edit forms show: defaults, or what was sent last time."""

    name: str = ""
    expires_in: str = "90d"
    scopes: list[str] = field(default_factory=lambda: list(keys.SCOPES))
    model_allowlist: str = ""
    rpm_limit: str = ""
    budget: str = ""
    log_content: bool = False

    @classmethod
    def of(cls, key: KeyOut) -> KeyFormValues:
        return cls(
            name=key.name,
            scopes=list(key.scopes),
            model_allowlist="\n".join(key.model_allowlist or []),
            rpm_limit=str(key.rpm_limit) if key.rpm_limit is not None else "",
            budget=_credits_text(key.budget_micros),
            log_content=key.log_content,
        )


def _credits_text(micros: int | None) -> str:
    return format_credits(micros) if micros is not None else ""


async def keys_view(session: AsyncSession, ctx: OrgContext) -> KeysView:
    platform = [KeyOut.of(k) for k in await keys.list_keys(session, ctx)]
    providers = [ByokOut.of(r) for r in await byok.list_keys(session, ctx)]
    return KeysView(platform, providers, ctx.org.byok_fallback, ctx.at_least("admin"))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def read_key_form(form: FormData, *, creating: bool) -> tuple[dict[str, Any], KeyFormValues]:
    """The service's keyword arguments from a generate or edit form, or `FormInvalid`."""
    values = KeyFormValues(
        name=_text(form, "name"),
        expires_in=_text(form, "expires_in") or "90d",
        scopes=[s for s in form.getlist("scopes") if isinstance(s, str)],
        model_allowlist=_text(form, "model_allowlist"),
        rpm_limit=_text(form, "rpm_limit"),
        budget=_text(form, "budget"),
        log_content=_text(form, "log_content") in ("on", "true", "1"),
    )
    errors: dict[str, str] = {}
    if not 1 <= len(values.name) <= 100:
        errors["name"] = "Give the key a name of 1 to 100 characters, like “Production app”."
    if creating and values.expires_in not in keys.EXPIRY_DAYS:
        errors["expires_in"] = "Choose one of the listed expirations."
    if not values.scopes or set(values.scopes) - set(keys.SCOPES):
        errors["scopes"] = "Choose at least one permission."
    allow = [m for m in values.model_allowlist.replace(",", "\n").split() if m]
    if len(allow) > MAX_ALLOWLIST or any(len(m) > 200 for m in allow):
        errors["model_allowlist"] = f"List at most {MAX_ALLOWLIST} model names."
    rpm: int | None = None
    if values.rpm_limit:
        try:
            rpm = int(values.rpm_limit)
        except ValueError:
            rpm = 0
        if not 1 <= rpm <= 1_000_000:
            errors["rpm_limit"] = "Enter a whole number from 1 to 1,000,000, or leave it empty."
    budget: int | None = None
    if values.budget:
        try:
            budget = parse_credits(values.budget)
        except DomainError:
            budget = -1
        if budget < 0:
            errors["budget"] = (
                "Enter credits like 25 or 12.5 (6 decimals at most), or leave it empty."
            )
    if errors:
        raise FormInvalid(errors, values)
    args: dict[str, Any] = {
        "name": values.name,
        "scopes": values.scopes,
        "model_allowlist": allow or None,
        "rpm_limit": rpm,
        "budget_micros": budget,
        "log_content": values.log_content,
    }
    if creating:
        args["expires_in"] = values.expires_in
    return args, values


FIELD_OF_PARAM = {"budget_micros": "budget", "api_key": "api_key"}


def field_errors(exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    """A service's refusal as a message under the field it names (else for the whole form)."""
    name = FIELD_OF_PARAM.get(exc.param or "", exc.param or "")
    return {name if name in fields else "form": sentence(exc.message)}


async def create_key(
    session: AsyncSession, ctx: OrgContext, pepper: str, base_url: str, args: dict[str, Any]
) -> Created:
    row, full = await keys.create_key(session, ctx, pepper, **args)
    entries = await callable_models(session)
    allowed = [
        e.model.name
        for e in entries
        if e.model.type == "chat"
        and (not row.model_allowlist or e.model.name in row.model_allowlist)
    ]
    model = allowed[0] if allowed else PLACEHOLDER_MODEL
    created = KeyCreated(**KeyOut.of(row).model_dump(), key=full)
    return Created(created, snippets(f"{base_url}/v1", model, api_key=full), model)
