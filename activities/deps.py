"""What activities are given at worker start, so none of them opens its own pools."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from config.settings import Settings
from domain.pricing.cost import configure_tier_multipliers
from schema.db import SessionFactory


@dataclass(frozen=True)
class ActivityDeps:
    settings: Settings
    sessions: SessionFactory
    http: httpx.AsyncClient

    def __post_init__(self) -> None:
        # Tasks are priced in activities: the worker prices with the configured tiers too.
        configure_tier_multipliers(self.settings.tier_multipliers_bps)
