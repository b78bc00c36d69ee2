"""Monthly statements of the caller's org, split by cost center, as JSON or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Path
from fastapi.responses import Response

from api.auth import OrgCtx
from domain.enterprise import service as enterprise
from domain.enterprise.invoice_export import InvoiceOut, csv_filename
from domain.enterprise.invoice_export import invoice_csv as csv_document
from edge.deps import SessionDep

router = APIRouter(prefix="/enterprise/v1/invoices", tags=["enterprise: invoices"])

MONTH = Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="calendar month, UTC: YYYY-MM")


# Registered before the JSON route: "{month}" would otherwise also match "2026-01.csv".
@router.get(
    "/{month}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    description="The same statement as CSV: one row per cost center, then a TOTAL row.",
)
async def invoice_csv(ctx: OrgCtx, session: SessionDep, month: str = MONTH) -> Response:
    invoice = await enterprise.monthly_invoice(session, ctx, month)
    return Response(
        csv_document(invoice),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{csv_filename(month)}"'},
    )


@router.get("/{month}", description="Debits of one month, by cost center and in total.")
async def invoice_json(ctx: OrgCtx, session: SessionDep, month: str = MONTH) -> InvoiceOut:
    return InvoiceOut.of(await enterprise.monthly_invoice(session, ctx, month))
