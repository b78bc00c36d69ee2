"""`/console/invoices`: monthly statements by cost center (owners, admins and finance), with
the same CSV and JSON documents as `/enterprise/v1/invoices` (`domain.enterprise
.invoice_export`), so every figure is the ledger's debits as the API reports them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from domain.enterprise import service as enterprise
from domain.enterprise.invoice_export import InvoiceOut, csv_filename, invoice_csv
from edge.deps import SessionDep
from web.errors import PageRoute
from web.render import PAGE_HEADERS, render
from web.viewer import Viewer, page_viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PATH = "/console/invoices"
MONTHS_SHOWN = 12
InvoicesViewer = Annotated[Viewer, Depends(page_viewer("invoices"))]
Month = Annotated[str, Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]


def recent_months(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def _download(body: str, media_type: str, filename: str) -> Response:
    headers = {**PAGE_HEADERS, "content-disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


@router.get(PATH)
async def invoices_page(request: Request, viewer: InvoicesViewer, session: SessionDep) -> Response:
    """The months since the org began, newest first, at most a year of them (older ones
    open by address: /console/invoices/YYYY-MM)."""
    began = viewer.ctx.org.created_at or datetime.now(UTC)
    first = f"{began.astimezone(UTC):%Y-%m}"
    months = [m for m in recent_months(datetime.now(UTC), MONTHS_SHOWN) if m >= first]
    statements = [await enterprise.monthly_invoice(session, viewer.ctx, m) for m in months]
    return render(request, "pages/invoices.html", {"statements": statements}, viewer=viewer)


# The downloads are registered before the statement page, whose "{month}" would match them.
@router.get(PATH + "/{month}.csv")
async def invoice_csv_download(
    month: Month, viewer: InvoicesViewer, session: SessionDep
) -> Response:
    invoice = await enterprise.monthly_invoice(session, viewer.ctx, month)
    return _download(invoice_csv(invoice), "text/csv; charset=utf-8", csv_filename(month))


@router.get(PATH + "/{month}.json")
async def invoice_json_download(
    month: Month, viewer: InvoicesViewer, session: SessionDep
) -> Response:
    invoice = await enterprise.monthly_invoice(session, viewer.ctx, month)
    body = InvoiceOut.of(invoice).model_dump_json(indent=2)
    return _download(body, "application/json", f"invoice-{month}.json")


@router.get(PATH + "/{month}")
async def statement_page(
    request: Request, month: Month, viewer: InvoicesViewer, session: SessionDep
) -> Response:
    invoice = await enterprise.monthly_invoice(session, viewer.ctx, month)
    return render(request, "pages/invoice.html", {"invoice": invoice}, viewer=viewer)
