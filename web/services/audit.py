"""The audit log page: one page of the org's events, filtered as a person asks, with the
actors' emails and each event's before/after reduced to what changed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import repository as audit_repo
from domain.errors import InvalidField
from domain.identity import repository as identity_repo
from domain.identity.service import OrgContext
from domain.pricing.cost import format_credits
from schema.audit import AuditEvent

PAGE_SIZE = 50
TARGET_TYPES = (
    "org", "user", "invite", "department", "cost_center", "budget", "api_key", "byok_key",
    "webhook_secret", "credit_account", "org_billing", "payment",
)  # fmt: skip


@dataclass(frozen=True)
class Filters:
    actor: str = ""  # an email
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    since: str = ""  # YYYY-MM-DD, UTC day
    until: str = ""  # YYYY-MM-DD, inclusive

    def query(self, **more: str) -> dict[str, str]:
        """These filters as query parameters (empty ones left out)."""
        params = {k: v for k, v in self.__dict__.items() if v}
        params.update({k: v for k, v in more.items() if v})
        return params

    @property
    def active(self) -> bool:
        return any(self.__dict__.values())


@dataclass(frozen=True)
class Change:
    key: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Event:
    row: AuditEvent
    actor: str
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class AuditView:
    events: list[Event]
    filters: Filters
    actions: list[str]
    target_types: tuple[str, ...]
    older_cursor: str | None


def _day(value: str, param: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField(f"{param} must be a date (YYYY-MM-DD)", param=param) from None


def _text(value: Any, key: str = "") -> str | None:
    if value is None:
        return None
    if key.endswith("_micros") and isinstance(value, int) and not isinstance(value, bool):
        return format_credits(value)  # exact decimal credits, as every page shows money
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _label(key: str) -> str:
    if key.endswith("_micros"):
        return key.removesuffix("_micros") + " (credits)"
    return key


def changes_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """Keys whose value differs (all keys when only one side exists), in a stable order."""
    one_sided = before is None or after is None
    before, after = before or {}, after or {}
    keys = [k for k in dict.fromkeys([*before, *after]) if not one_sided
            or before.get(k, after.get(k)) is not None]  # fmt: skip
    return [
        Change(_label(k), _text(before.get(k), k), _text(after.get(k), k))
        for k in keys
        if k not in before or k not in after or before[k] != after[k]
    ]


def _actor(row: AuditEvent, emails: dict[uuid.UUID, str]) -> str:
    if row.actor_user_id is not None:
        return emails.get(row.actor_user_id, "a removed user")
    return {"system": "0xinf (system)", "api_key": "an API key"}.get(row.actor_kind, row.actor_kind)


async def audit_view(
    session: AsyncSession, ctx: OrgContext, filters: Filters, cursor: int | None
) -> AuditView:
    ctx.require("admin")
    since, until = _day(filters.since, "since"), _day(filters.until, "until")
    actor_id: uuid.UUID | None = None
    rows: list[AuditEvent] = []
    missing_actor = False
    if filters.actor:
        user = await identity_repo.user_by_email(session, filters.actor.strip().lower())
        missing_actor = user is None
        actor_id = user.id if user else None
    if not missing_actor:
        rows = await audit_repo.list_events(
            session,
            ctx.org.id,
            before_id=cursor,
            limit=PAGE_SIZE + 1,
            action=filters.action or None,
            target_type=filters.target_type or None,
            target_id=filters.target_id.strip() or None,
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
            actor_user_id=actor_id,
        )
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    emails = await audit_repo.emails_of(
        session, {r.actor_user_id for r in page if r.actor_user_id is not None}
    )
    events = [Event(r, _actor(r, emails), changes_of(r.before, r.after)) for r in page]
    return AuditView(
        events=events,
        filters=filters,
        actions=await audit_repo.distinct_actions(session, ctx.org.id),
        target_types=TARGET_TYPES,
        older_cursor=str(page[-1].id) if more and page else None,
    )
