"""Column constructors for the types every table repeats (so each table reads as its fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID


def pk_uuid() -> Any:
    return Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def fk_uuid(
    target: str,
    *,
    nullable: bool = False,
    index: bool = True,
    ondelete: str | None = None,
    primary_key: bool = False,
) -> Any:
    return Column(
        UUID(as_uuid=True),
        ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
        index=index and not primary_key,
        primary_key=primary_key,
    )


def bigserial_pk() -> Any:
    """Append-only tables can outgrow INTEGER ids (2^31 rows is a month at 800 req/s)."""
    return Column(BigInteger, primary_key=True, autoincrement=True)


def micros(*, nullable: bool = False, default: int | None = 0) -> Any:
    """Money: BIGINT micro-credits (1 credit = 1,000,000). Never a float."""
    return Column(
        BigInteger,
        nullable=nullable,
        server_default=None if default is None else text(str(default)),
    )


def ts(*, nullable: bool = True, now: bool = False, index: bool = False) -> Any:
    return Column(
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if now else None,
        index=index,
    )


def jsonb(*, nullable: bool = True, default: str | None = None) -> Any:
    return Column(JSONB, nullable=nullable, server_default=text(default) if default else None)


def sd(sql: str) -> dict[str, Any]:
    """Server default for a plain field, so Core inserts that omit it still get it."""
    return {"server_default": text(sql)}


__all__ = ["bigserial_pk", "datetime", "fk_uuid", "jsonb", "micros", "pk_uuid", "sd", "ts"]
