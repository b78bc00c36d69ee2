"""Monthly statements of the caller's org, split by cost center, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.auth import OrgCtx
from domain.enterprise import service as enterprise
from domain.pricing.cost import format_credits
from edge.deps import SessionDep

router = APIRouter(prefix="/enterprise/v1/invoices", tags=["enterprise: invoices"])

MONTH = Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="calendar month, UTC: YYYY-MM")


class InvoiceLineOut(BaseModel):
    cost_center: str = Field(description='the cost center\'s code, or "unassigned"')
    name: str | None = Field(description="the cost center's display name, if it has one")
    attributed: bool
    entries: int
    debit_micros: int
    debit_credits: str


class InvoiceOut(BaseModel):
    month: str
    period_start: datetime
    period_end: datetime
    currency: str = "credits"
    cost_centers: list[InvoiceLineOut]
    entries: int
    total_micros: int
    total_credits: str


CSV_HEADER = (
    "month", "cost_center", "name", "attributed", "entries", "debit_micros", "debit_credits",
)  # fmt: skip


# Registered before the JSON route: "{month}" would otherwise also match "2026-01.csv".
@router.get(
    "/{month}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    description="The same statement as CSV: one row per cost center, then a TOTAL row.",
)
async def invoice_csv(ctx: OrgCtx, session: SessionDep, month: str = MONTH) -> Response:
    invoice = await enterprise.monthly_invoice(session, ctx, month)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for line in invoice.lines:
        writer.writerow(
            (month, line.cost_center, line.name or "", str(line.attributed).lower(),
             line.entries, line.debit_micros, line.debit_credits)
        )  # fmt: skip
    writer.writerow(
        (month, "TOTAL", "", "", invoice.entries, invoice.total_micros,
         format_credits(invoice.total_micros))
    )  # fmt: skip
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="invoice-{month}.csv"'},
    )


@router.get("/{month}", description="Debits of one month, by cost center and in total.")
async def invoice_json(ctx: OrgCtx, session: SessionDep, month: str = MONTH) -> InvoiceOut:
    invoice = await enterprise.monthly_invoice(session, ctx, month)
    return InvoiceOut(
        month=invoice.month,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        cost_centers=[
            InvoiceLineOut(
                cost_center=line.cost_center,
                name=line.name,
                attributed=line.attributed,
                entries=line.entries,
                debit_micros=line.debit_micros,
                debit_credits=line.debit_credits,
            )
            for line in invoice.lines
        ],
        entries=invoice.entries,
        total_micros=invoice.total_micros,
        total_credits=format_credits(invoice.total_micros),
    )
