"""What a platform API key looks like to its org: never its hash, and the full key only in
`KeyCreated`, the answer to the request that made it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from schema.keys import ApiKey


class KeyOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    model_allowlist: list[str] | None
    rpm_limit: int | None
    budget_micros: int | None
    budget_spent_micros: int
    budget_reserved_micros: int
    log_content: bool
    created_by: uuid.UUID | None
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: Literal["active", "expired", "revoked"]

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        status: Literal["active", "expired", "revoked"] = "active"
        if key.revoked_at is not None:
            status = "revoked"
        elif key.expires_at is not None and key.expires_at <= datetime.now(key.expires_at.tzinfo):
            status = "expired"
        data = {f: getattr(key, f) for f in cls.model_fields if f != "status"}
        return cls(**data, status=status)


class KeyCreated(KeyOut):
    key: str = Field(description="the full key; shown only in this response")


class KeyList(BaseModel):
    data: list[KeyOut]
