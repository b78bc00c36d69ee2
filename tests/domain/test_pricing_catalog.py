"""The model catalog and its price versions, against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from config.runtime import Resources
from domain.errors import Conflict, InvalidRequest, NotFound
from domain.pricing import service as pricing
from domain.pricing.cost import PriceSnapshot, chat_cost_micros
from domain.pricing.models import ModelPatch, NewModel, NewPrice
from schema.base import table_of
from schema.pricing import ModelPrice

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_models_are_unique_and_fallbacks_must_exist(resources: Resources) -> None:
    async with resources.sessions.begin() as s:
        base = await pricing.create_model(
            s, NewModel(name="llama-3.1-70b", type="chat", provider="meta")
        )
        assert base.fallback_models == [] and base.enabled
        top = await pricing.create_model(
            s,
            NewModel(
                name="gpt-4-turbo",
                type="chat",
                fallback_models=["llama-3.1-70b"],
                max_output_tokens=4_096,
            ),
        )
        assert top.fallback_models == ["llama-3.1-70b"]
        with pytest.raises(Conflict):
            await pricing.create_model(s, NewModel(name="gpt-4-turbo", type="chat"))
        for fallbacks in (["nope"], ["loop"], ["llama-3.1-70b", "llama-3.1-70b"]):
            with pytest.raises(InvalidRequest):
                await pricing.create_model(
                    s, NewModel(name="loop", type="chat", fallback_models=fallbacks)
                )
        with pytest.raises(InvalidRequest):
            await pricing.create_model(s, NewModel(name="   ", type="chat"))
    with pytest.raises(ValidationError):
        NewModel(name="x", type="hologram")


async def test_update_and_delete_models(resources: Resources) -> None:
    async with resources.sessions.begin() as s:
        await pricing.create_model(s, NewModel(name="a", type="chat"))
        await pricing.create_model(s, NewModel(name="b", type="chat", fallback_models=["a"]))
        changed = await pricing.update_model(
            s, "a", ModelPatch(enabled=False, description="retired")
        )
        assert (changed.enabled, changed.description, changed.channel_group) == (
            False,
            "retired",
            "default",
        )
        assert await pricing.update_model(s, "a", ModelPatch()) == changed
        with pytest.raises(InvalidRequest):
            await pricing.update_model(s, "a", ModelPatch(fallback_models=["missing"]))
        with pytest.raises(ValidationError):  # a NOT NULL column: null never gets this far
            ModelPatch(enabled=None)
        with pytest.raises(InvalidRequest):  # and the service still refuses it if it did
            await pricing.update_model(
                s, "a", ModelPatch.model_construct(_fields_set={"enabled"}, enabled=None)
            )
        with pytest.raises(NotFound):
            await pricing.update_model(s, "zzz", ModelPatch(enabled=True))
        with pytest.raises(Conflict):  # "b" falls back to it
            await pricing.delete_model(s, "a")
        await pricing.update_model(s, "b", ModelPatch(fallback_models=[]))
        await pricing.delete_model(s, "a")
        with pytest.raises(NotFound):
            await pricing.get_model(s, "a")
        with pytest.raises(NotFound):
            await pricing.delete_model(s, "a")


async def test_price_versions_are_selected_by_time(resources: Resources) -> None:
    async with resources.sessions.begin() as s:
        await pricing.create_model(s, NewModel(name="gpt-4-turbo", type="chat"))
        v1 = await pricing.set_price(
            s,
            "gpt-4-turbo",
            NewPrice(input_per_mtok=10_000, output_per_mtok=30_000, effective_from=T0),
        )
        v2 = await pricing.set_price(
            s,
            "gpt-4-turbo",
            NewPrice(input_per_mtok=5_000, output_per_mtok=15_000, effective_from=T0 + 10 * DAY),
        )
        with pytest.raises(Conflict):  # two versions cannot start at the same instant
            await pricing.set_price(s, "gpt-4-turbo", NewPrice(effective_from=T0))
        with pytest.raises(InvalidRequest):
            await pricing.set_price(s, "gpt-4-turbo", NewPrice(effective_from=datetime(2025, 1, 1)))

        assert v1.model == "gpt-4-turbo" and v1.effective_from == T0
        with pytest.raises(NotFound):  # before the first version there is no price
            await pricing.price_at(s, "gpt-4-turbo", T0 - timedelta(microseconds=1))
        assert await pricing.price_at(s, "gpt-4-turbo", T0) == v1
        assert await pricing.price_at(s, "gpt-4-turbo", T0 + 10 * DAY - timedelta(seconds=1)) == v1
        assert await pricing.price_at(s, "gpt-4-turbo", T0 + 10 * DAY) == v2
        assert await pricing.price_at(s, "gpt-4-turbo", T0 + 1_000 * DAY) == v2
        with pytest.raises(NotFound):
            await pricing.price_at(s, "unknown", T0)

        # a request started under v1 keeps being charged v1, from its stored snapshot
        stored = v1.model_dump_json()
        snapshot = PriceSnapshot.model_validate_json(stored)
        cost = chat_cost_micros(
            snapshot, input_tokens=1_000, output_tokens=500, tier="professional", power="balanced"
        )
        assert cost == 25_000_000
        prices = table_of(ModelPrice)
        count = await s.scalar(select(func.count()).select_from(prices))
        assert count == 2  # versions are added, never overwritten


async def test_set_price_defaults_to_now_and_media_needs_a_unit(resources: Resources) -> None:
    async with resources.sessions.begin() as s:
        await pricing.create_model(s, NewModel(name="dall-e-3", type="image"))
        with pytest.raises(InvalidRequest):
            await pricing.set_price(s, "dall-e-3", NewPrice(unit_price_micros=40_000))
        now = await s.scalar(select(func.now()))
        snap = await pricing.set_price(
            s, "dall-e-3", NewPrice(unit="image", unit_price_micros=40_000)
        )
        assert snap.effective_from == now and snap.model_type == "image"
        with pytest.raises(NotFound):
            await pricing.set_price(s, "nope", NewPrice())
    with pytest.raises(ValidationError):
        NewPrice(input_per_mtok=-1)


async def test_list_models_shows_the_current_price(resources: Resources) -> None:
    now = datetime.now(UTC)
    async with resources.sessions.begin() as s:
        await pricing.create_model(s, NewModel(name="m-live", type="chat"))
        await pricing.create_model(s, NewModel(name="m-off", type="chat", enabled=False))
        await pricing.create_model(s, NewModel(name="m-unpriced", type="chat"))
        old = await pricing.set_price(
            s, "m-live", NewPrice(input_per_mtok=1, effective_from=now - DAY)
        )
        await pricing.set_price(s, "m-live", NewPrice(input_per_mtok=2, effective_from=now + DAY))
        await pricing.set_price(s, "m-off", NewPrice(input_per_mtok=3, effective_from=now - DAY))

    async with resources.sessions() as s:
        enabled = await pricing.list_models(s)
        everything = await pricing.list_models(s, enabled_only=False)
        tomorrow = await pricing.list_models(s, at=now + 2 * DAY)
    assert [c.model.name for c in enabled] == ["m-live", "m-unpriced"]
    assert enabled[0].price == old
    assert enabled[1].price is None
    assert [c.model.name for c in everything] == ["m-live", "m-off", "m-unpriced"]
    assert everything[1].price is not None and everything[1].price.input_per_mtok == 3
    assert tomorrow[0].price is not None and tomorrow[0].price.input_per_mtok == 2
