"""Monthly statements: real billed chats attributed to the cost center of the key's creator."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.ledger import service as ledger
from tests.enterprise.helpers import Org, add, make_entity, make_org
from tests.fakes.provider import FakeProvider
from tests.fixtures.portal import PortalUser, create_key, signup
from tests.fixtures.relay import MICROS, add_channel, add_model, ledger_sums_hold

HELLO = {"role": "user", "content": "hello there friend"}


async def _fund(resources: Resources, org_id: uuid.UUID) -> None:
    async with resources.sessions.begin() as s:
        await s.execute(text("UPDATE orgs SET tier = 'professional' WHERE id = :o"), {"o": org_id})
        await ledger.credit(
            s, org_id, 1_000 * MICROS, kind="purchase", key=f"seed:{org_id}", actor="test"
        )


async def _chat(client: httpx.AsyncClient, key: str, max_tokens: int) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [HELLO], "max_tokens": max_tokens},
        headers={"authorization": f"Bearer {key}"},
    )
    assert resp.status_code == 200, resp.text


async def _key(client: httpx.AsyncClient, org: Org, user: PortalUser, **fields: object) -> str:
    resp = await client.post(
        "/portal/v1/api-keys", json={"name": "k", **fields}, headers=org.h(user)
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def _debits(resources: Resources, org_id: uuid.UUID, month: str) -> dict[str, int]:
    """Σ debits per key creator's cost center, straight from the ledger and request logs."""
    async with resources.sessions() as s:
        rows = await s.execute(
            text(
                "SELECT coalesce(c.code, 'unassigned'), -sum(le.amount_micros)"
                " FROM ledger_entries le"
                " LEFT JOIN request_logs r ON r.id = le.reference"
                " LEFT JOIN api_keys k ON k.id = r.api_key_id"
                " LEFT JOIN memberships m ON m.user_id = k.created_by AND m.org_id = le.org_id"
                " LEFT JOIN cost_centers c ON c.id = m.cost_center_id"
                " WHERE le.org_id = :o AND le.kind = 'debit'"
                "   AND to_char(le.created_at AT TIME ZONE 'UTC', 'YYYY-MM') = :m"
                " GROUP BY 1"
            ),
            {"o": org_id, "m": month},
        )
        return {cc: int(total) for cc, total in rows}


async def test_invoice_splits_real_debits_by_cost_center(
    client: httpx.AsyncClient, resources: Resources, fake: FakeProvider
) -> None:
    await add_model(resources, "gpt-test")
    await add_channel(resources, fake, "fake-openai", ["gpt-test"])
    org = await make_org(client)
    await _fund(resources, org.id)
    eng, sales = await signup(client), await signup(client)
    for who, code in ((eng, "eng"), (sales, "sales")):
        cc = await make_entity(client, org, "cost-centers", code)
        assert (await add(client, org.id, org.admin, who, "member", cost_center_id=cc)).is_success

    eng_key = await _key(client, org, eng)
    sales_key = await _key(client, org, sales, budget_micros=10 * MICROS)  # ledger has key id
    owner_key = await _key(client, org, org.owner)  # the owner has no cost center
    for max_tokens in (3, 8):
        await _chat(client, eng_key, max_tokens)
    await _chat(client, sales_key, 5)
    await _chat(client, owner_key, 2)

    # Noise that must not count: another org's chat, and one of ours moved to last month.
    outsider = await signup(client)
    await _fund(resources, outsider.org_id)
    await _chat(client, str((await create_key(client, outsider))["key"]), 8)
    await _chat(client, eng_key, 8)
    async with resources.sessions.begin() as s:
        await s.execute(
            text(
                "UPDATE ledger_entries SET created_at = created_at - interval '40 days'"
                " WHERE id = (SELECT max(id) FROM ledger_entries"
                "             WHERE org_id = :o AND kind = 'debit')"
            ),
            {"o": org.id},
        )
    await ledger_sums_hold(resources, org.id)

    month = datetime.now(UTC).strftime("%Y-%m")
    expected = await _debits(resources, org.id, month)
    assert set(expected) == {"eng", "sales", "unassigned"}
    assert all(v > 0 for v in expected.values())

    resp = await client.get(f"/enterprise/v1/invoices/{month}", headers=org.h(org.finance))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    got = {line["cost_center"]: line["debit_micros"] for line in body["cost_centers"]}
    assert got == expected
    lines = {line["cost_center"]: line for line in body["cost_centers"]}
    assert lines["eng"]["entries"] == 2 and lines["sales"]["entries"] == 1
    assert lines["unassigned"]["attributed"] is False and lines["eng"]["attributed"] is True
    assert body["total_micros"] == sum(expected.values())
    assert body["entries"] == 4
    for line in body["cost_centers"]:
        assert line["debit_credits"] == _credits(line["debit_micros"])
    assert body["total_credits"] == _credits(body["total_micros"])

    csv_resp = await client.get(f"/enterprise/v1/invoices/{month}.csv", headers=org.h(org.finance))
    assert csv_resp.status_code == 200
    assert csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    total = rows.pop()
    assert total["cost_center"] == "TOTAL"
    assert int(total["debit_micros"]) == body["total_micros"]
    assert total["debit_credits"] == body["total_credits"]
    assert {r["cost_center"]: int(r["debit_micros"]) for r in rows} == expected
    assert {r["cost_center"]: r["debit_credits"] for r in rows} == {
        k: v["debit_credits"] for k, v in lines.items()
    }

    # Last month holds only the moved entry; an empty month is an empty statement.
    prev = await client.get(f"/enterprise/v1/invoices/{_previous(month)}", headers=org.h(org.owner))
    assert prev.json()["entries"] in (0, 1)  # 40 days back may skip a short month
    empty = await client.get("/enterprise/v1/invoices/2001-01", headers=org.h(org.owner))
    assert empty.json()["cost_centers"] == [] and empty.json()["total_micros"] == 0
    empty_csv = await client.get("/enterprise/v1/invoices/2001-01.csv", headers=org.h(org.owner))
    assert empty_csv.text.splitlines()[1] == "2001-01,TOTAL,,,0,0,0"


def _credits(micros: int) -> str:
    whole, frac = divmod(micros, MICROS)
    digits = f"{frac:06d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def _previous(month: str) -> str:
    year, mon = map(int, month.split("-"))
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"
