"""What a bring-your-own provider key looks like to its org: masked, never the secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from schema.keys import ByokKey


class ByokOut(BaseModel):
    provider: str
    label: str | None
    base_url: str | None
    key_hint: str
    enabled: bool
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, row: ByokKey) -> ByokOut:
        return cls(**{f: getattr(row, f) for f in cls.model_fields})


class ByokList(BaseModel):
    data: list[ByokOut]
