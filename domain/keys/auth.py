"""Authenticating a platform key on every relay call, in microseconds.

One indexed lookup by HMAC on a cache miss, then a per-process cache for `ttl_s` seconds.
Revocation reaches every replica within `ttl_s`: entries are never trusted longer, and the
replica that revokes evicts at once. Expiry is checked on every call, cached or not.
`last_used_at` is written at most once per `resolution_s` per key, off the request path.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from domain.clock import SYSTEM_CLOCK, Clock
from domain.crypto import digests_equal, token_digest
from domain.errors import Unauthenticated
from domain.keys import repository as repo
from domain.keys.service import KEY_RE
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.keys")
MAX_CACHED = 20_000
INVALID = "invalid API key"  # one message for every failure: no hint which


@dataclass(frozen=True)
class KeyPrincipal:
    key_id: uuid.UUID
    org_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    model_allowlist: frozenset[str] | None
    rpm_limit: int | None
    budget_micros: int | None
    log_content: bool
    expires_at: datetime | None

    def allows_model(self, model: str) -> bool:
        return self.model_allowlist is None or model in self.model_allowlist


@dataclass
class _Entry:
    principal: KeyPrincipal | None  # None: unknown or revoked
    key_hash: bytes
    fetched: float


class KeyAuthenticator:
    def __init__(
        self,
        sessions: SessionFactory,
        pepper: str,
        *,
        ttl_s: float,
        resolution_s: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._pepper = pepper
        self._ttl = ttl_s
        self._resolution = resolution_s
        self._cache: dict[bytes, _Entry] = {}
        self._touched: dict[uuid.UUID, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def authenticate(self, presented: str | None) -> KeyPrincipal:
        if not presented or not KEY_RE.match(presented):
            raise Unauthenticated(INVALID)
        digest = token_digest(self._pepper, presented)
        now = self._clock.monotonic()
        entry = self._cache.get(digest)
        if entry is None or now - entry.fetched > self._ttl:
            entry = await self._load(digest, now)
        principal = entry.principal
        if principal is None or not digests_equal(entry.key_hash, digest):
            raise Unauthenticated(INVALID)
        if principal.expires_at is not None and principal.expires_at <= self._clock.now():
            raise Unauthenticated(INVALID)
        self._touch(principal.key_id, now)
        return principal

    def invalidate(self, key_id: uuid.UUID) -> None:
        for digest, entry in list(self._cache.items()):
            if entry.principal is not None and entry.principal.key_id == key_id:
                del self._cache[digest]

    async def _load(self, digest: bytes, now: float) -> _Entry:
        async with unit_of_work(self._sessions) as session:
            row = await repo.by_hash(session, digest)
        principal = None
        if row is not None and row.revoked_at is None:
            principal = KeyPrincipal(
                key_id=row.id,
                org_id=row.org_id,
                name=row.name,
                scopes=frozenset(row.scopes),
                model_allowlist=frozenset(row.model_allowlist)
                if row.model_allowlist is not None
                else None,
                rpm_limit=row.rpm_limit,
                budget_micros=row.budget_micros,
                log_content=row.log_content,
                expires_at=row.expires_at,
            )
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        entry = _Entry(principal, row.key_hash if row is not None else digest, now)
        self._cache[digest] = entry
        return entry

    def _touch(self, key_id: uuid.UUID, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < self._resolution:
            return
        self._touched[key_id] = now
        task = asyncio.create_task(self._write_last_used(key_id, self._clock.now()))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            async with unit_of_work(self._sessions) as session:
                await repo.touch_last_used(session, key_id, now, self._resolution)
        except Exception:  # best effort: a missed last_used must never fail a request
            log.warning("could not record last_used_at", exc_info=True)

    async def drain(self) -> None:
        """Wait for pending last_used writes (shutdown and tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
