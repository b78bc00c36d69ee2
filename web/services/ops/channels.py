"""The ops console's channels: each with its health over the last hour, and the form that
creates or edits one.

The secret is write-only: a form never carries the stored one back (its field is always
empty), and leaving it empty on an edit keeps the secret as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidField
from domain.ops import repository as ops_repo
from domain.routing import repository as channels_repo
from domain.routing.models import ChannelIn
from schema.channels import CHANNEL_PROVIDERS, Channel
from web.services.ops.forms import names, validated, whole_number

HEALTH_WINDOW = timedelta(hours=1)
TYPES = ("chat", "image", "video", "audio", "embedding")
PROVIDERS = CHANNEL_PROVIDERS


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    attempts: int  # upstream attempts through it in the window
    failures: int
    p50_latency_ms: int | None

    @property
    def error_rate(self) -> str:
        """Failed attempts as a percentage with one decimal, from integers ("12.5%")."""
        if not self.attempts:
            return "—"
        tenths = (self.failures * 1000 + self.attempts // 2) // self.attempts
        return f"{tenths // 10}.{tenths % 10}%"


async def channel_rows(session: AsyncSession) -> list[ChannelRow]:
    since = datetime.now(UTC) - HEALTH_WINDOW
    health = {row["id"]: row for row in await ops_repo.channel_health(session, since)}
    rows = []
    for channel in await channels_repo.list_channels(session):
        found: dict[str, Any] = health.get(channel.id, {})
        outcomes: dict[str, int] = found.get("outcomes") or {}
        attempts = int(found.get("attempts") or 0)
        p50 = found.get("p50_latency_ms")
        rows.append(ChannelRow(channel, attempts, attempts - int(outcomes.get("ok", 0)), p50))
    return rows


def form_values(channel: Channel) -> dict[str, str]:
    """An existing channel as its edit form shows it (never its secret)."""
    return {
        "name": channel.name,
        "provider": channel.provider,
        "base_url": channel.base_url or "",
        "models": ", ".join(channel.models),
        "model_mapping": "\n".join(f"{k}={v}" for k, v in channel.model_mapping.items()),
        "group": channel.group,
        "priority": str(channel.priority),
        "weight": str(channel.weight),
        "types": ",".join(channel.types),
        "responses_api": "1" if "responses_api" in channel.capabilities else "",
        "enabled": "1" if channel.enabled else "",
    }


def _mapping(text: str) -> dict[str, str]:
    """Lines of `public-name=upstream-name`."""
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        public, sep, upstream = line.partition("=")
        if not sep or not public.strip() or not upstream.strip():
            raise InvalidField(
                "write one `public-name=upstream-name` per line", param="model_mapping"
            )
        mapping[public.strip()] = upstream.strip()
    return mapping


def channel_spec(form: dict[str, str], types: list[str]) -> ChannelIn:
    """The form as the admin API's channel body (the secret stays out of it)."""
    values: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "provider": form.get("provider", ""),
        "base_url": form.get("base_url", "").strip() or None,
        "models": names(form.get("models", "")),
        "model_mapping": _mapping(form.get("model_mapping", "")),
        "group": form.get("group", "").strip() or "default",
        "priority": whole_number(form.get("priority", ""), "priority"),
        "weight": whole_number(form.get("weight", ""), "weight", 1),
        "types": types or ["chat"],
        "capabilities": ["responses_api"] if form.get("responses_api") else [],
        "enabled": bool(form.get("enabled")),
    }
    return validated(ChannelIn, values, {})
