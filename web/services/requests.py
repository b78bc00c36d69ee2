"""Request history and the customer-safe trace, for the console.

Rows are `RequestTraceOut`, the model `/portal/v1/requests` answers with, so the page can
show nothing the API would not (no channel, no upstream error text). A request id of
another org is answered exactly like an unknown one: 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidField, NotFound
from domain.pricing import service as catalog
from domain.usage import repository as usage_repo
from domain.usage.trace import (
    REQUEST_STATUSES,
    RequestTraceOut,
    parse_request_cursor,
    request_cursor,
)
from web.services.usage import key_labels, parse_day

PAGE_SIZE = 50


@dataclass(frozen=True)
class RequestFilters:
    status: str = ""
    model: str = ""
    key: str = ""
    first: str = ""  # "YYYY-MM-DD", UTC day, included
    last: str = ""

    def query(self, **extra: str) -> str:
        values = {
            "status": self.status,
            "model": self.model,
            "key": self.key,
            "from": self.first,
            "to": self.last,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        return any((self.status, self.model, self.key, self.first, self.last))


@dataclass(frozen=True)
class RequestList:
    filters: RequestFilters
    rows: list[RequestTraceOut]
    next_cursor: str | None
    first_page: bool
    key_labels: dict[str, str]
    models: list[str] = field(default_factory=list)

    def label_of(self, key_id: uuid.UUID | None) -> str:
        if key_id is None:
            return "—"
        return self.key_labels.get(str(key_id), "deleted key")


def _key_id(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidField("key must be one of your API keys", param="key") from None


async def request_list(
    session: AsyncSession, org_id: uuid.UUID, filters: RequestFilters, cursor: str | None
) -> RequestList:
    if filters.status and filters.status not in REQUEST_STATUSES:
        raise InvalidField(f"status must be one of {', '.join(REQUEST_STATUSES)}", param="status")
    first, last = parse_day(filters.first, "from"), parse_day(filters.last, "to")
    since = datetime(first.year, first.month, first.day, tzinfo=UTC) if first else None
    until = (
        datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1) if last else None
    )
    rows = await usage_repo.list_logs(
        session,
        org_id,
        before=parse_request_cursor(cursor) if cursor else None,
        limit=PAGE_SIZE + 1,
        status=filters.status or None,
        model=filters.model or None,
        api_key_id=_key_id(filters.key),
        since=since,
        until=until,
    )
    page = rows[:PAGE_SIZE]
    next_cursor = request_cursor(page[-1]) if len(rows) > PAGE_SIZE and page else None
    return RequestList(
        filters=filters,
        rows=[RequestTraceOut.of(r) for r in page],
        next_cursor=next_cursor,
        first_page=cursor is None,
        key_labels=await key_labels(session, org_id),
        models=sorted(e.model.name for e in await catalog.list_models(session)),
    )


@dataclass(frozen=True)
class RequestDetail:
    trace: RequestTraceOut
    key_label: str


async def request_detail(
    session: AsyncSession, org_id: uuid.UUID, request_id: str
) -> RequestDetail:
    log = await usage_repo.get_log(session, org_id, request_id[:40])
    if log is None:
        raise NotFound("There is no request with this id in this organization.")
    trace = RequestTraceOut.of(log)
    labels = await key_labels(session, org_id)
    key_label = labels.get(str(trace.api_key_id), "deleted key") if trace.api_key_id else "—"
    return RequestDetail(trace, key_label)
