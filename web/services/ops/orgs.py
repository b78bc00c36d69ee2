"""The ops console's orgs and users: a search, and one org seen whole by an operator.

An operator looks at an org they usually do not belong to, so everything here is read by
the org id in the URL, never through the viewer's own org context.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import repository as audit_repo
from domain.enterprise import repository as enterprise_repo
from domain.errors import InvalidField, InvalidRequest, NotFound
from domain.identity import repository as identity_repo
from domain.identity.repository import OrgMembership
from domain.keys import service as keys
from domain.ledger import service as ledger
from domain.ledger.models import Balance, Entry
from domain.pricing.cost import parse_credits
from domain.usage import repository as usage_repo
from schema.audit import AuditEvent
from schema.identity import Org, User
from schema.keys import ApiKey
from schema.requests import RequestLog

SEARCH_LIMIT = 25
RECENT = 20


@dataclass(frozen=True)
class UserHit:
    user: User
    orgs: list[OrgMembership]


@dataclass(frozen=True)
class SearchResult:
    query: str
    orgs: list[Org]
    users: list[UserHit]


@dataclass(frozen=True)
class OrgView:
    org: Org
    balance: Balance
    keys: list[ApiKey]
    members: list[enterprise_repo.Member]
    requests: list[RequestLog]
    entries: list[Entry]
    audit: list[AuditEvent]
    people: dict[uuid.UUID, str]  # the email of each person named by an entry or event

    def actor_name(self, label: str) -> str:
        """A ledger entry's actor (`operator:<user id>`, `system` ...) as a person reads it."""
        kind, _, user_id = label.partition(":")
        found = _uuid(user_id)
        email = self.people.get(found) if found else None
        return f"{email} ({kind})" if email else label


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _people(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    found = [await identity_repo.user_by_id(session, user_id) for user_id in sorted(ids)]
    return {user.id: user.email for user in found if user is not None}


async def search(session: AsyncSession, query: str) -> SearchResult:
    """Orgs by name and users by email (each with the orgs they belong to); the newest
    orgs when the query is empty."""
    query = query.strip()
    orgs = await identity_repo.list_orgs(
        session, search=query or None, limit=SEARCH_LIMIT, offset=0
    )
    users: list[UserHit] = []
    if query:
        found = await identity_repo.list_users(session, search=query, limit=SEARCH_LIMIT, offset=0)
        users = [UserHit(u, await identity_repo.memberships_of(session, u.id)) for u, _ in found]
    return SearchResult(query, orgs, users)


async def org_view(session: AsyncSession, org_id: uuid.UUID) -> OrgView:
    org = await identity_repo.org_by_id(session, org_id)
    if org is None:
        raise NotFound("no such organization")
    requests = await usage_repo.list_logs(
        session, org_id, before=None, limit=RECENT, status=None, model=None
    )
    entries = (await ledger.list_entries(session, org_id, limit=RECENT)).entries
    audit = await audit_repo.list_events(session, org_id, before_id=None, limit=RECENT)
    named = {_uuid(e.actor.partition(":")[2]) for e in entries}
    named |= {a.actor_user_id for a in audit}
    return OrgView(
        org=org,
        balance=await ledger.balance(session, org_id),
        keys=await keys.list_org_keys_for_operator(session, org_id),
        members=await enterprise_repo.list_members(session, org_id),
        requests=requests,
        entries=entries,
        audit=audit,
        people=await _people(session, {i for i in named if i is not None}),
    )


def grant_amount(text: str, kind: str) -> int:
    """Credits typed by a person, as exact micros: "12.5" is 12,500,000, never a float.
    Bonuses add credits; adjustments may take them away but are never zero."""
    try:
        micros = parse_credits(text)
    except InvalidRequest as exc:
        raise InvalidField(exc.message, param="amount") from None
    if micros == 0:
        raise InvalidField("the amount cannot be zero", param="amount")
    if kind == "bonus" and micros < 0:
        raise InvalidField("a bonus adds credits; use an adjustment to remove some", param="amount")
    return micros
