"""Sign-up, login sessions, throttling and org membership: the rules of who may act where."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, Actor, record
from domain.crypto import random_hex, token_digest
from domain.errors import Conflict, DomainError, InvalidField, NotFound, PermissionDenied
from domain.identity import repository as repo
from domain.identity.passwords import check_policy, hash_password, verify_password
from domain.ledger import manual as manual_credits
from domain.ledger import service as ledger
from domain.pricing.cost import format_credits
from domain.sso.required import SsoRequirement
from domain.sso.required import password_refusal as sso_password_refusal
from schema.identity import Org, User
from schema.unit_of_work import keep_writes_on_error

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
SESSION_PREFIX = "oxs_"
ROLE_RANK = {"member": 0, "finance": 1, "admin": 2, "owner": 3}


class InvalidCredentials(DomainError):
    code = "authentication_required"


class LoginThrottled(DomainError):
    code = "rate_limit_exceeded"


class SsoRequired(InvalidCredentials):
    """The address's org requires single sign-on: no password signs it in. A kind of
    invalid credentials, so every sign-in form shows its message as it shows theirs."""

    code = "sso_required"
    status_hint = 403

    def __init__(self, requirement: SsoRequirement) -> None:
        super().__init__(requirement.message)
        self.requirement = requirement


@dataclass(frozen=True)
class IdentityConfig:
    pepper: str
    bcrypt_rounds: int
    session_ttl: timedelta
    max_failures: int
    lockout_max_s: int
    # Credited once to each new sign-up's personal org (`OXINF_SIGNUP_GRANT_CREDITS`).
    signup_grant_micros: int = 0


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class OrgContext:
    """The caller acting inside one org, with the role their membership grants there."""

    user: User
    org: Org
    role: str
    actor: Actor

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: str) -> None:
        if not self.at_least(role):
            raise PermissionDenied(f"this action needs the {role} role in this org")


def normalize_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidField("email is not a valid address", param="email")
    return email.lower()


async def create_org(
    session: AsyncSession,
    name: str,
    owner_id: uuid.UUID,
    *,
    personal: bool = False,
    tier: str = "free",
) -> uuid.UUID:
    org_id = await repo.insert_org(session, name=name, personal=personal, tier=tier)
    await repo.insert_membership(session, owner_id, org_id, "owner")
    await ledger.ensure_account(session, org_id)
    return org_id


async def create_user(
    session: AsyncSession,
    cfg: IdentityConfig,
    email: str,
    password: str,
    *,
    is_operator: bool = False,
    actor: Actor | None = None,
) -> User:
    """A user with a personal org they own. Email is unique case-insensitively."""
    email = normalize_email(email)
    check_policy(password, email)
    hashed = await hash_password(password, cfg.bcrypt_rounds)
    user_id = await repo.insert_user(session, email, hashed, is_operator=is_operator)
    if user_id is None:
        raise Conflict("an account with this email already exists", param="email")
    org_id = await create_org(session, "Personal", user_id, personal=True)
    if cfg.signup_grant_micros > 0:
        await grant_signup_credits(session, org_id, cfg.signup_grant_micros)
    await record(
        session,
        actor or Actor("user", user_id),
        "user.created",
        org_id=org_id,
        target_type="user",
        target_id=user_id,
        after={"email": email, "is_operator": is_operator},
    )
    user = await repo.user_by_id(session, user_id)
    assert user is not None
    return user


def signup_grant_key(org_id: uuid.UUID) -> str:
    return f"signup:{org_id}:grant"


async def grant_signup_credits(
    session: AsyncSession, org_id: uuid.UUID, amount_micros: int
) -> None:
    """The sign-up bonus that lets a newcomer's first call succeed without Stripe: once per
    org whatever retries, since its idempotency key is the org's."""
    await manual_credits.grant(
        session, SYSTEM, org_id, amount_micros, kind="bonus", key=signup_grant_key(org_id),
        reason=f"sign-up grant: {format_credits(amount_micros)} credits for a first call",
    )  # fmt: skip


async def ensure_operator(
    session: AsyncSession, cfg: IdentityConfig, email: str, password: str
) -> tuple[User, bool]:
    """Idempotent admin bootstrap: creates the operator once, never resets a password."""
    existing = await repo.user_by_email(session, normalize_email(email))
    if existing is not None:
        if not existing.is_operator:
            await repo.set_operator(session, existing.id, True)
            await record(
                session, Actor("system"), "user.operator_granted",
                org_id=None, target_type="user", target_id=existing.id,
            )  # fmt: skip
        return existing, False
    user = await create_user(session, cfg, email, password, is_operator=True, actor=Actor("system"))
    return user, True


def _lock_until(cfg: IdentityConfig, now: datetime) -> Callable[[int], datetime]:
    def until(failures: int) -> datetime:
        over = failures - cfg.max_failures
        return now + timedelta(seconds=min(cfg.lockout_max_s, 2 ** min(over, 20)))

    return until


async def login(
    session: AsyncSession, cfg: IdentityConfig, email: str, password: str, ip: str | None
) -> IssuedSession:
    """Throttled per email and per IP with exponential lock-out after repeated failures."""
    now = datetime.now(UTC)
    email_key = email.strip().lower()
    subjects = [f"email:{email_key}"] + ([f"ip:{ip}"] if ip else [])
    locked = [t.locked_until for t in await repo.throttles(session, subjects) if t.locked_until]
    locked_until = max(locked, default=None)
    if locked_until is not None and locked_until > now:
        retry = max(1, int((locked_until - now).total_seconds()) + 1)
        raise LoginThrottled(
            "too many failed logins; try again later", headers={"Retry-After": str(retry)}
        )
    user = await repo.user_by_email(session, email_key)
    # Operators keep their password whatever their domain requires: the break-glass account.
    if user is None or not user.is_operator:
        refusal = await sso_password_refusal(session, email_key)
        if refusal is not None:
            raise SsoRequired(refusal)
    ok = await verify_password(password, user.password_hash if user else None, cfg.bcrypt_rounds)
    if not ok or user is None or user.disabled_at is not None:
        for subject in subjects:
            await repo.record_failure(
                session, subject, now, cfg.max_failures, _lock_until(cfg, now)
            )
        # The failure count must survive the error this call is about to raise.
        keep_writes_on_error(session)
        raise InvalidCredentials("email or password is wrong")
    await repo.clear_failures(session, subjects)
    return await issue_session(session, cfg, user.id, ip)


async def issue_session(
    session: AsyncSession, cfg: IdentityConfig, user_id: uuid.UUID, ip: str | None
) -> IssuedSession:
    """A new session for a user already proven to be who they say (a login, a fresh sign-up);
    only the token's HMAC is stored."""
    token = SESSION_PREFIX + random_hex(32)
    expires_at = datetime.now(UTC) + cfg.session_ttl
    await repo.insert_session(session, token_digest(cfg.pepper, token), user_id, expires_at, ip)
    return IssuedSession(token=token, expires_at=expires_at)


async def logout(session: AsyncSession, cfg: IdentityConfig, token: str) -> None:
    await repo.revoke_session(session, token_digest(cfg.pepper, token), datetime.now(UTC))


async def authenticate_session(session: AsyncSession, cfg: IdentityConfig, token: str) -> User:
    if not token.startswith(SESSION_PREFIX):
        raise InvalidCredentials("a valid session token is required")
    found = await repo.live_session_user(
        session, token_digest(cfg.pepper, token), datetime.now(UTC)
    )
    if found is None:
        raise InvalidCredentials("session is invalid or expired; log in again")
    return found[1]


async def org_context(
    session: AsyncSession, user: User, org_id: uuid.UUID | None, ip: str | None
) -> OrgContext:
    """The caller's org: the one they named, else their personal org (first membership)."""
    actor = Actor("operator" if user.is_operator else "user", user.id, ip)
    if org_id is None:
        memberships = await repo.memberships_of(session, user.id)
        if not memberships:
            raise PermissionDenied("you belong to no org")
        first = memberships[0]
        return OrgContext(user, first.org, first.role, actor)
    found = await repo.membership(session, user.id, org_id)
    if found is None:
        # Same answer whether the org exists or not: no probing other tenants' ids.
        raise NotFound("no such org")
    return OrgContext(user, found.org, found.role, actor)


async def memberships(session: AsyncSession, user_id: uuid.UUID) -> list[repo.OrgMembership]:
    return await repo.memberships_of(session, user_id)
