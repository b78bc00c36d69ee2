"""What platform operators change about people and orgs: tiers, disabled users, operators.

Operators cannot disable themselves or drop their own operator flag: the last operator
doing so would lock everyone out of the console, and there is no one to undo it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.enterprise import repository as org_repo
from domain.errors import Conflict, InvalidField, NotFound
from domain.identity import repository as repo
from domain.pricing.cost import POWER_BPS, TIER_BPS
from schema.identity import TIERS, Org, User


@dataclass(frozen=True)
class TierInfo:
    tier: str
    price_multiplier_bps: int  # 10,000 = list price
    monthly_allocation_credits: int


def tiers(allocations: dict[str, int]) -> list[TierInfo]:
    return [TierInfo(t, TIER_BPS[t], allocations.get(t, 0)) for t in TIERS]


def power_levels() -> dict[str, int]:
    return dict(POWER_BPS)


async def update_org(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, changes: dict[str, Any]
) -> Org:
    unknown = set(changes) - {"tier", "name"}
    if unknown:
        raise InvalidField(f"cannot change {', '.join(sorted(unknown))}")
    if "tier" in changes and changes["tier"] not in TIERS:
        raise InvalidField(f"tier must be one of {', '.join(TIERS)}", param="tier")
    if "name" in changes and not 1 <= len(str(changes["name"]).strip()) <= 200:
        raise InvalidField("name must be 1 to 200 characters", param="name")
    org = await org_repo.lock_org(session, org_id)
    if org is None:
        raise NotFound("no such org")
    before = {"tier": org.tier, "name": org.name}
    values = {k: (v.strip() if k == "name" else v) for k, v in changes.items()}
    values = {k: v for k, v in values.items() if before[k] != v}
    if not values:
        return org
    updated = await org_repo.update_org(session, org_id, values)
    await record(
        session, actor, "org.admin_updated", org_id=org_id, target_type="org",
        target_id=org_id, before=before, after={"tier": updated.tier, "name": updated.name},
    )  # fmt: skip
    return updated


async def update_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]
) -> User:
    """`disabled` signs the user out everywhere at once (sessions of disabled users stop
    resolving); their orgs and API keys stay, since keys belong to the org."""
    unknown = set(changes) - {"disabled", "is_operator"}
    if unknown:
        raise InvalidField(f"cannot change {', '.join(sorted(unknown))}")
    for name in changes:
        if not isinstance(changes[name], bool):
            raise InvalidField(f"{name} must be true or false", param=name)
    if user_id == actor.user_id and (
        changes.get("disabled") is True or changes.get("is_operator") is False
    ):
        raise Conflict("operators cannot disable themselves or drop their own operator role")
    user = await repo.lock_user(session, user_id)
    if user is None:
        raise NotFound("no such user")
    before = {"disabled": user.disabled_at is not None, "is_operator": user.is_operator}
    wanted = {k: v for k, v in changes.items() if before[k] != v}
    if not wanted:
        return user
    updated = await repo.update_user_flags(session, user_id, **wanted)
    after = {"disabled": updated.disabled_at is not None, "is_operator": updated.is_operator}
    await record(
        session, actor, "user.admin_updated", org_id=None, target_type="user",
        target_id=user_id, before=before, after=after,
    )  # fmt: skip
    return updated
