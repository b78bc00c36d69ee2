"""Signing in through an org's identity provider: find the org by email domain, send the
browser to the provider, and finish when it comes back with a code.

A sign-in's state is single use: finishing claims it before anything else, and the claim
is kept even when the finish then fails (see `finish`), so neither a replayed callback nor a
replayed code gets a second try. Users are provisioned just in time: created without a
password, added to the org with its default role; a member keeps the role they have.

Linking an existing account that was not yet a member trusts the provider's word for the
address (its domain is DNS-verified by the org), so it also drops that account's password
and live sessions: a password set by whoever signed up first, without proof of the address,
must not outlive the proof. Platform operators keep theirs (the bootstrap's break-glass).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor, record
from domain.crypto import token_digest
from domain.errors import InvalidField, NotFound, PermissionDenied
from domain.identity import repository as identity_repo
from domain.identity.service import IssuedSession, issue_session, normalize_email
from domain.sso import provider
from domain.sso import repository as repo
from domain.sso.domains import email_domain
from domain.sso.provider import ProviderRefused
from domain.sso.runtime import SsoRuntime
from schema.identity import User
from schema.unit_of_work import keep_writes_on_error

LOGIN_TTL = timedelta(minutes=10)
PURGE_AFTER = timedelta(days=1)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class StartedSignIn:
    authorization_url: str
    state: str  # for a browser-bound check at the callback (the console keeps it in a cookie)
    org_id: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    session: IssuedSession
    user_id: uuid.UUID
    email: str
    org_id: uuid.UUID
    role: str
    user_created: bool
    joined_org: bool
    return_to: str | None


async def start(
    session: AsyncSession,
    rt: SsoRuntime,
    *,
    email: str,
    callback_uri: str,
    redirect_uri: str | None = None,
    return_to: str | None = None,
) -> StartedSignIn:
    """The provider's authorization URL for this address's org (authorization code flow
    with PKCE S256, `state` and `nonce`). `callback_uri` is ours; a client may name its own
    `redirect_uri` (registered at the provider), which then has to bring the code back."""
    email = normalize_email(email)
    domain = email_domain(email)
    route = await repo.route_for_domain(session, domain) if domain else None
    if route is None or not route.config.enabled:
        raise NotFound(
            f"no organization signs in {domain or 'this domain'} addresses with single "
            "sign-on; sign in with your password",
            param="email",
        )
    target = _checked_redirect(redirect_uri, callback_uri) if redirect_uri else callback_uri
    meta = await provider.discover(rt.http, route.config.issuer, rt.egress)
    challenge = provider.new_challenge()
    now = datetime.now(UTC)
    expires_at = now + LOGIN_TTL
    await repo.purge_logins(session, now - PURGE_AFTER)
    await repo.insert_login(
        session,
        state_hash=token_digest(rt.identity.pepper, challenge.state),
        org_id=route.org.id,
        nonce=challenge.nonce,
        code_verifier=challenge.code_verifier,
        redirect_uri=target,
        return_to=return_to,
        expires_at=expires_at,
    )
    url = provider.authorization_url(meta, route.config.client_id, target, challenge, email)
    return StartedSignIn(url, challenge.state, route.org.id, expires_at)


async def finish(
    session: AsyncSession,
    rt: SsoRuntime,
    *,
    state: str,
    code: str | None,
    provider_error: str | None = None,
    provider_error_description: str | None = None,
    ip: str | None = None,
) -> SignedIn:
    """Claim the state, exchange the code, verify the ID token, provision, issue a session.

    The unit of work keeps its writes even when this raises: the state is spent either way
    (a replayed state or code is refused), and nothing else is written before every check
    has passed.
    """
    now = datetime.now(UTC)
    login = await repo.claim_login(session, token_digest(rt.identity.pepper, state), now)
    keep_writes_on_error(session)
    if login is None:
        raise InvalidField(
            "state is unknown, expired or already used: start the sign-in again", param="state"
        )
    if provider_error:
        detail = f": {provider_error_description[:300]}" if provider_error_description else ""
        raise ProviderRefused(
            f"the identity provider refused the sign-in ({provider_error[:100]}){detail}"
        )
    if not code:
        raise InvalidField("code is required", param="code")
    config = await repo.config_of(session, login.org_id)
    if config is None or not config.enabled:
        raise ProviderRefused("single sign-on is no longer enabled for this organization")
    client = provider.Client(config.client_id, rt.box.decrypt(config.client_secret_ciphertext))
    meta = await provider.discover(rt.http, config.issuer, rt.egress)
    tokens = await provider.exchange_code(
        rt.http, meta, client,
        code=code, redirect_uri=login.redirect_uri, code_verifier=login.code_verifier,
        egress=rt.egress,
    )  # fmt: skip
    keys = await provider.fetch_keys(rt.http, meta, rt.egress)
    access_token = tokens.get("access_token")
    claims = provider.verify_id_token(
        tokens["id_token"], keys, meta,
        client_id=config.client_id, nonce=login.nonce,
        access_token=access_token if isinstance(access_token, str) else None,
    )  # fmt: skip
    email = _verified_email(claims)
    domain = email_domain(email)
    verified = {d.domain for d in await repo.domains_of(session, login.org_id) if d.verified_at}
    if domain not in verified:
        raise PermissionDenied(
            f"{email} is not in an email domain this organization has verified for single sign-on"
        )
    return await _provision(
        session, rt, login.org_id, config.default_role, email, ip, login.return_to
    )


def _verified_email(claims: dict[str, object]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise ProviderRefused(
            "the identity provider sent no email address: let this client read the `email` scope"
        )
    if claims.get("email_verified") in (False, "false"):
        raise ProviderRefused(f"the identity provider has not verified {email[:320]}")
    try:
        return normalize_email(email)
    except InvalidField:
        raise ProviderRefused("the identity provider sent an invalid email address") from None


async def _provision(
    session: AsyncSession,
    rt: SsoRuntime,
    org_id: uuid.UUID,
    default_role: str,
    email: str,
    ip: str | None,
    return_to: str | None,
) -> SignedIn:
    user, created = await _user_for(session, email)
    if user.disabled_at is not None:
        raise ProviderRefused("this account is disabled")
    actor = Actor("user", user.id, ip)
    if created:
        await record(
            session, actor, "user.created", org_id=org_id, target_type="user",
            target_id=user.id, after={"email": email, "via": "sso"},
        )  # fmt: skip
    joined = await repo.add_membership(session, user.id, org_id, default_role)
    if joined:
        if not created and not user.is_operator:
            now = datetime.now(UTC)
            await identity_repo.revoke_user_sessions(session, user.id, now)
            await identity_repo.clear_password(session, user.id)
        await record(
            session, actor, "member.added", org_id=org_id, target_type="user",
            target_id=user.id,
            after={"email": email, "role": default_role, "via": "sso", "linked": not created},
        )  # fmt: skip
    membership = await identity_repo.membership(session, user.id, org_id)
    assert membership is not None
    await record(
        session, actor, "sso.signed_in", org_id=org_id, target_type="user",
        target_id=user.id, after={"email": email},
    )  # fmt: skip
    issued = await issue_session(session, rt.identity, user.id, ip)
    return SignedIn(issued, user.id, email, org_id, membership.role, created, joined, return_to)


async def _user_for(session: AsyncSession, email: str) -> tuple[User, bool]:
    user = await identity_repo.user_by_email(session, email)
    if user is not None:
        return user, False
    user_id = await identity_repo.insert_user(session, email, None)
    created = user_id is not None
    # None: a concurrent first sign-in created it a moment ago; theirs is the one.
    found = await identity_repo.user_by_email(session, email)
    assert found is not None
    return found, created


def _checked_redirect(uri: str, ours: str) -> str:
    """A client's own redirect URI: ours, an https URL, or a native app's loopback listener
    (RFC 8252 §7.3). The provider still insists on an exact registered match."""
    uri = uri.strip()
    bad = InvalidField(
        "redirect_uri must be an https URL or a loopback http URL (http://127.0.0.1:PORT/...)",
        param="redirect_uri",
    )
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise bad from None
    if parts.fragment or parts.username or parts.password or not parts.hostname:
        raise bad
    same_origin = urlsplit(ours)[:2] == parts[:2]
    if parts.scheme == "https" or same_origin:
        return uri
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return uri
    raise bad
