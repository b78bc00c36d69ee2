"""The tiers an org can be on, with what each one changes: price and monthly credits."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Operator
from domain.identity import admin
from edge.deps import ResourcesDep

router = APIRouter(prefix="/admin/v1/tiers", tags=["admin: tiers"])


class TierOut(BaseModel):
    tier: str
    price_multiplier_bps: int = Field(description="10000 = list price; 8000 = 20% off")
    monthly_allocation_credits: int


class TierList(BaseModel):
    data: list[TierOut]
    power_level_multiplier_bps: dict[str, int]


@router.get(
    "",
    description=(
        "Set an org's tier with PATCH /admin/v1/orgs/{org_id}. Allocations come from "
        "OXINF_TIER_ALLOCATIONS; an enterprise contract may override its own."
    ),
)
async def list_tiers(_: Operator, resources: ResourcesDep) -> TierList:
    return TierList(
        data=[
            TierOut.model_validate(t, from_attributes=True)
            for t in admin.tiers(resources.settings.tier_allocations)
        ],
        power_level_multiplier_bps=admin.power_levels(),
    )
