"""The ops console's catalog: every model (enabled or not) with all its price versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.pricing import repository as pricing_repo
from domain.pricing import service as catalog
from domain.pricing.cost import PriceSnapshot
from domain.pricing.models import ModelInfo, NewModel, NewPrice
from web.services.ops.forms import credits_micros, names, utc_instant, validated, whole_number


@dataclass(frozen=True)
class ModelRow:
    model: ModelInfo
    price: PriceSnapshot | None  # the version in force now
    versions: list[PriceSnapshot]  # newest first, scheduled ones included

    def scheduled(self, version: PriceSnapshot) -> bool:
        return version.effective_from > datetime.now(UTC)


async def models(session: AsyncSession) -> list[ModelRow]:
    by_model: dict[str, list[PriceSnapshot]] = {}
    for version in await pricing_repo.price_versions(session):
        by_model.setdefault(version.model, []).append(version)
    return [
        ModelRow(entry.model, entry.price, by_model.get(entry.model.name, []))
        for entry in await catalog.list_models(session, enabled_only=False)
    ]


def new_price(form: dict[str, str]) -> NewPrice:
    values: dict[str, Any] = {
        "input_per_mtok": whole_number(form.get("input_per_mtok", ""), "input_per_mtok"),
        "output_per_mtok": whole_number(form.get("output_per_mtok", ""), "output_per_mtok"),
        "cached_input_per_mtok": whole_number(
            form.get("cached_input_per_mtok", ""), "cached_input_per_mtok"
        ),
        "unit": form.get("unit", "").strip() or None,
        "unit_price_micros": credits_micros(form.get("unit_price", ""), "unit_price"),
        "effective_from": utc_instant(form.get("effective_from", ""), "effective_from"),
    }
    return validated(NewPrice, values, {"unit_price_micros": "unit_price"})


def new_model(form: dict[str, str]) -> NewModel:
    values: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "type": form.get("type", "chat"),
        "provider": form.get("provider", "").strip() or None,
        "description": form.get("description", "").strip() or None,
        "channel_group": form.get("channel_group", "").strip() or "default",
        "fallback_models": names(form.get("fallback_models", "")),
        "max_output_tokens": whole_number(
            form.get("max_output_tokens", ""), "max_output_tokens", None
        ),
        "context_window": whole_number(form.get("context_window", ""), "context_window", None),
    }
    return validated(NewModel, values, {})
