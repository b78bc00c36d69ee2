"""Streams cut short: by an API process killed mid-call, or by clients that hang up. Only
settled calls are charged, each once, whoever retries."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.chaos.conftest import Stack
from tests.fakes.provider import Fault
from tests.fixtures.processes import wait_for

HELLO = {"role": "user", "content": "hello there friend"}
LONG_ANSWER_COST = 3 * 150 + 40 * 600  # the fake's "long" models answer 40 words


def _body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [HELLO], **extra}


async def _stream_to_first_chunk(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    model: str,
    client_id: str,
    first_chunk: asyncio.Event,
    hang_up: bool,
) -> str:
    """Open a stream and read its first chunk; then hang up, or read on until the server
    dies. The server's request id."""
    headers = {**auth, "x-client-request-id": client_id}
    async with client.stream(
        "POST", "/v1/chat/completions", json=_body(model, stream=True), headers=headers
    ) as resp:
        assert resp.status_code == 200, await resp.aread()
        request_id = resp.headers["x-request-id"]
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                first_chunk.set()
                if hang_up:
                    return request_id
        return request_id


async def _stream_whole(
    client: httpx.AsyncClient, auth: dict[str, str], model: str, client_id: str
) -> list[str]:
    resp = await client.post(
        "/v1/chat/completions",
        json=_body(model, stream=True),
        headers={**auth, "x-client-request-id": client_id},
    )
    assert resp.status_code == 200, resp.text
    return [ln[6:] for ln in resp.text.splitlines() if ln.startswith("data: ")]


@pytest.mark.timeout_sensitive
async def test_api_killed_with_streams_in_flight(chaos: Stack) -> None:
    model = await chaos.chat_model("chaos-long")
    tenant = await chaos.tenant(credits=1_000)
    start_balance, _ = await chaos.check_ledger(tenant.org_id)
    api = chaos.api
    answered = [f"answered-{i}" for i in range(5)]
    in_flight = [f"in-flight-{i}" for i in range(20)]

    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        for client_id in answered:  # answered and charged before the crash
            resp = await client.post(
                "/v1/chat/completions",
                json=_body(model),
                headers={**tenant.auth, "x-client-request-id": client_id},
            )
            assert resp.status_code == 200, resp.text

        # 20 streams the upstream keeps going for seconds, each past its first chunk.
        chaos.fake.add_fault(
            Fault(kind="slow_stream", delay_s=0.25, path="/v1/chat/completions", times=None)
        )
        firsts = [asyncio.Event() for _ in in_flight]
        streams = [
            asyncio.create_task(
                _stream_to_first_chunk(client, tenant.auth, model, cid, first, hang_up=False)
            )
            for cid, first in zip(in_flight, firsts, strict=True)
        ]
        await wait_for(
            lambda: all(f.is_set() for f in firsts), timeout=30, what="20 streams under way"
        )
        await asyncio.to_thread(api.kill)
        cut = await asyncio.gather(*streams, return_exceptions=True)
        assert all(isinstance(r, httpx.TransportError) for r in cut), cut
    chaos.fake.reset()  # the upstream answers at full speed again

    api.start()
    await api.wait_ready()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        # Each client retries with its own request id: the answered ones are refused, not
        # charged again; the cut ones get their answer now, and pay for it once.
        for client_id in answered:
            resp = await client.post(
                "/v1/chat/completions",
                json=_body(model),
                headers={**tenant.auth, "x-client-request-id": client_id},
            )
            assert resp.status_code == 409, resp.text
            assert resp.json()["error"]["param"] == "X-Client-Request-ID"
        retried = await asyncio.gather(
            *(_stream_whole(client, tenant.auth, model, cid) for cid in in_flight)
        )
        assert all(events[-1] == "[DONE]" for events in retried)

    left_pending = await chaos.resolve_expired_holds(tenant.org_id)
    balance, held = await chaos.check_ledger(tenant.org_id)
    charged = await chaos.check_charges_match_logs(tenant.org_id)
    per_client = await chaos.rows(
        "SELECT client_request_id AS id, count(*) AS n, sum(cost_micros) AS cost"
        " FROM request_logs WHERE org_id = :o AND cost_micros > 0 GROUP BY client_request_id",
        o=tenant.org_id,
    )
    print(
        f"\nAPI SIGKILLed with {len(in_flight)} streams in flight: {left_pending} holds left "
        f"pending, all resolved by the sweeper; {len(per_client)} client ids charged once each"
    )
    assert left_pending == len(in_flight)
    assert held == 0
    assert {r["id"] for r in per_client} == set(answered) | set(in_flight)
    assert all(r["n"] == 1 and r["cost"] == LONG_ANSWER_COST for r in per_client), per_client
    assert start_balance - balance == charged == 25 * LONG_ANSWER_COST


@pytest.mark.timeout_sensitive
async def test_streams_dropped_after_first_chunk_are_billed_once(chaos: Stack) -> None:
    model = await chaos.chat_model("chaos-long")
    tenant = await chaos.tenant(credits=1_000)
    start_balance, _ = await chaos.check_ledger(tenant.org_id)
    chaos.fake.add_fault(
        Fault(kind="slow_stream", delay_s=0.02, path="/v1/chat/completions", times=None)
    )
    async with httpx.AsyncClient(base_url=chaos.api.base_url, timeout=30) as client:
        firsts = [asyncio.Event() for _ in range(10)]
        request_ids = await asyncio.gather(
            *(
                _stream_to_first_chunk(client, tenant.auth, model, f"drop-{i}", first, True)
                for i, first in enumerate(firsts)
            )
        )

    async def all_billed() -> bool:
        n = await chaos.scalar(
            "SELECT count(*) FROM request_logs WHERE org_id = :o", o=tenant.org_id
        )
        return int(n) == 10

    await wait_for(all_billed, timeout=60, what="dropped streams drained and billed")
    logs = await chaos.rows(
        "SELECT id, status, completion_tokens, estimated, client_disconnected, cost_micros"
        " FROM request_logs WHERE org_id = :o",
        o=tenant.org_id,
    )
    assert {log["id"] for log in logs} == set(request_ids)
    for log in logs:
        assert (log["status"], log["completion_tokens"], log["estimated"]) == (
            "succeeded",
            40,
            False,
        ), log
        assert log["client_disconnected"] is True and log["cost_micros"] == LONG_ANSWER_COST
    assert await chaos.pending_holds(tenant.org_id) == 0
    balance, _ = await chaos.check_ledger(tenant.org_id)
    assert start_balance - balance == await chaos.check_charges_match_logs(tenant.org_id)
    assert start_balance - balance == 10 * LONG_ANSWER_COST
    print(f"\n10 streams dropped after the first chunk: {len(logs)} billed once each")
