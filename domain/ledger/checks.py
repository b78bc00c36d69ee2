"""The ledger's argument rules, shared by its entries and holds."""

from __future__ import annotations

from domain.errors import InvalidRequest

MAX_KEY_LENGTH = 200
MAX_REFERENCE_LENGTH = 120
MAX_PAGE = 200
SYSTEM_ACTOR = "system"
DERIVED_KEY_PREFIX = "hold:"  # settle entries use `hold:{id}:settle`; callers may not


def require_key(key: str, *, entry: bool) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"idempotency key must be 1-{MAX_KEY_LENGTH} characters", param="idempotency_key"
        )
    if entry and key.startswith(DERIVED_KEY_PREFIX):
        raise InvalidRequest(
            f"idempotency keys starting with {DERIVED_KEY_PREFIX!r} are reserved",
            param="idempotency_key",
        )


def require_reference(reference: str | None) -> None:
    if reference is not None and len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidRequest(
            f"reference must be at most {MAX_REFERENCE_LENGTH} characters", param="reference"
        )


def require_actor(actor: str) -> None:
    if not actor or not actor.strip() or len(actor) > 120:
        raise InvalidRequest("an actor (1-120 characters) is required", param="actor")


def clean_reason(reason: str | None, *, required: bool) -> str | None:
    cleaned = reason.strip() if reason else None
    if required and not cleaned:
        raise InvalidRequest("a reason is required for this change", param="reason")
    return cleaned or None
