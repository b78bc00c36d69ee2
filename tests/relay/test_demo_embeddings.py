"""`make dev` seeds `demo-embedding` on the built-in demo provider: deterministic vectors,
no network, billed per input token like every embeddings call."""

from __future__ import annotations

import base64
import struct

import httpx
from sqlalchemy import text

from config.runtime import Resources
from domain.demo import seed_demo
from tests.fixtures.portal import PASSWORD


async def test_the_demo_embedding_model_answers_deterministic_vectors_and_bills(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    async with resources.sessions.begin() as s:
        seed = await seed_demo(
            s, resources.identity, resources.secret_box,
            admin_email="demo-embed@example.com", admin_password=PASSWORD, issue_key=True,
        )  # fmt: skip
    assert seed.api_key is not None
    auth = {"authorization": f"Bearer {seed.api_key}"}
    body = {"model": "demo-embedding", "input": ["hello world", "bye"], "encoding_format": "float"}

    first = await client.post("/v1/embeddings", json=body, headers=auth)
    assert first.status_code == 200, first.text
    again = await client.post("/v1/embeddings", json=body, headers=auth)
    data = first.json()["data"]
    assert data == again.json()["data"]
    assert [len(d["embedding"]) for d in data] == [16, 16]
    assert data[0]["embedding"] != data[1]["embedding"]
    assert first.json()["usage"]["prompt_tokens"] > 0

    packed = await client.post(
        "/v1/embeddings",
        json={**body, "encoding_format": "base64", "dimensions": 16},
        headers=auth,
    )
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert list(struct.unpack("<16f", raw)) == data[0]["embedding"]

    # A chat model is not an embedding model, and the reverse.
    wrong = await client.post(
        "/v1/embeddings", json={"model": "demo-chat", "input": "x"}, headers=auth
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "model"
    nul = await client.post(
        "/v1/embeddings", json={"model": "demo\u0000embedding", "input": "x"}, headers=auth
    )
    assert nul.status_code == 400 and nul.json()["error"]["param"] == "model"

    async with resources.sessions() as s:
        debits = (
            await s.execute(
                text(
                    "SELECT count(*) FROM ledger_entries"
                    " WHERE org_id = :o AND kind = 'debit' AND amount_micros < 0"
                ),
                {"o": seed.org_id},
            )
        ).scalar_one()
    assert debits == 3
