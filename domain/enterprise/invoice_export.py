"""A monthly statement as the JSON and CSV documents both the API and the console hand out,
so the two downloads are the same bytes wherever they come from."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from pydantic import BaseModel, Field

from domain.enterprise.service import Invoice
from domain.pricing.cost import format_credits


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

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        return cls(
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


CSV_HEADER = (
    "month", "cost_center", "name", "attributed", "entries", "debit_micros", "debit_credits",
)  # fmt: skip


def invoice_csv(invoice: Invoice) -> str:
    """One row per cost center, then a TOTAL row; CRLF line ends (RFC 4180)."""
    month = invoice.month
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
    return buf.getvalue()


def csv_filename(month: str) -> str:
    return f"invoice-{month}.csv"
