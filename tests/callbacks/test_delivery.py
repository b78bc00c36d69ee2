"""One delivery attempt against a real receiver on loopback, recorded in the real database."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from config.runtime import Resources
from domain.callbacks import repository as callbacks_repo
from domain.callbacks import secrets
from domain.callbacks.delivery import (
    CallbackConfig,
    DeliveryResult,
    build_callback_client,
    deliver,
    encode_body,
)
from domain.egress.policy import STRICT
from tests.callbacks.conftest import LOOPBACK, FinishedTask, attempts, make_task, task_status
from tests.callbacks.receiver import Receiver, Reply, loopback_v4_reachable_as, make_cert
from tests.callbacks.receiver import receiver_accepts as verify


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = build_callback_client(LOOPBACK)
    yield client
    await client.aclose()


async def _deliver(
    resources: Resources,
    http: httpx.AsyncClient,
    task: FinishedTask,
    url: str,
    *,
    attempt: int = 1,
    config: CallbackConfig = LOOPBACK,
) -> DeliveryResult:
    return await deliver(
        http, resources.sessions, resources.secret_box, config, task.job(url), attempt
    )


async def test_a_2xx_is_delivered_signed_and_recorded(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(202, b'{"thanks": true}')]) as rx:
        job = task.job(rx.url("/hooks/oxinf?tenant=7"))
        result = await deliver(http, resources.sessions, resources.secret_box, LOOPBACK, job, 1)
    assert result == DeliveryResult(decision="delivered", outcome="delivered", http_status=202)

    [got] = rx.received
    assert got.path == "/hooks/oxinf?tenant=7"
    assert got.headers["host"] == f"127.0.0.1:{rx.port}"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == job.webhook_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.body == encode_body(job.payload)
    assert json.loads(got.body) == job.payload
    assert b" " not in got.body  # compact, sorted: the bytes are what was signed
    async with resources.sessions() as s:
        secret = await secrets.get_or_create(s, task.org_id, resources.secret_box)
    assert verify(secret, got.headers, got.body)
    assert not verify(secret, got.headers, got.body + b" ")

    [row] = await attempts(resources.sessions, task)
    assert (row.attempt, row.outcome, row.http_status, row.event) == (
        1, "delivered", 202, "task.succeeded",
    )  # fmt: skip
    assert row.webhook_id == job.webhook_id and row.url == job.url
    assert row.response_excerpt == '{"thanks": true}'
    assert row.error is None and row.latency_ms >= 0


async def test_a_5xx_is_retried_a_410_stops_and_the_task_is_untouched(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(500, b"boom"), Reply(404), Reply(410, b"gone")]) as rx:
        first = await _deliver(resources, http, task, rx.url(), attempt=1)
        second = await _deliver(resources, http, task, rx.url(), attempt=2)
        third = await _deliver(resources, http, task, rx.url(), attempt=3)
    assert (first.decision, first.outcome, first.http_status) == ("retry", "http_error", 500)
    assert (second.decision, second.http_status) == ("retry", 404)
    assert (third.decision, third.outcome, third.http_status) == ("stop", "http_error", 410)
    rows = await attempts(resources.sessions, task)
    assert [(r.attempt, r.http_status, r.response_excerpt) for r in rows] == [
        (1, 500, "boom"), (2, 404, "ok"), (3, 410, "gone"),
    ]  # fmt: skip
    assert await task_status(resources.sessions, task) == "succeeded"


async def test_an_attempt_run_twice_is_recorded_once_and_a_delivery_is_never_lost(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    """Two runs of one attempt number (a worker presumed dead that was not): one row, the
    first outcome, except that a later delivery replaces a failure, so the next attempt
    sees it delivered and does not send again."""
    with Receiver([Reply(500, b"boom"), Reply(503), Reply(200, b"ok")]) as rx:
        first = await _deliver(resources, http, task, rx.url(), attempt=1)
        again = await _deliver(resources, http, task, rx.url(), attempt=1)
        rows = await attempts(resources.sessions, task)
        assert [(r.attempt, r.http_status) for r in rows] == [(1, 500)]
        delivered = await _deliver(resources, http, task, rx.url(), attempt=1)
        after = await _deliver(resources, http, task, rx.url(), attempt=2)
    assert (first.http_status, again.http_status, delivered.decision) == (500, 503, "delivered")
    assert (after.decision, after.http_status) == ("delivered", 200)  # read, not sent
    assert len(rx.received) == 3
    rows = await attempts(resources.sessions, task)
    assert [(r.attempt, r.outcome, r.http_status) for r in rows] == [(1, "delivered", 200)]
    async with resources.sessions.begin() as s:
        again_id, wrote = await callbacks_repo.insert_attempt(
            s,
            {"task_id": task.task_id, "org_id": task.org_id, "event": "task.succeeded",
             "webhook_id": "msg_x", "attempt": 1, "url": rx.url(), "outcome": "timeout"},
        )  # fmt: skip
    assert (again_id, wrote) == (rows[0].id, False)


async def test_a_redirect_is_not_followed(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(302, b"", {"location": "/elsewhere"}), Reply(200)]) as rx:
        result = await _deliver(resources, http, task, rx.url())
    assert (result.decision, result.outcome, result.http_status) == ("retry", "redirect", 302)
    assert [r.path for r in rx.received] == ["/hook"]
    [row] = await attempts(resources.sessions, task)
    assert row.outcome == "redirect" and "/elsewhere" in (row.error or "")


async def test_a_huge_response_is_read_only_up_to_the_limit(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(200, b"A" * (2 * 1024 * 1024))]) as rx:
        result = await _deliver(resources, http, task, rx.url())
    assert result.outcome == "delivered" and result.error == "response body cut at 65536 bytes"
    [row] = await attempts(resources.sessions, task)
    assert row.response_excerpt == "A" * 1024


async def test_an_endless_body_is_cut_at_the_limit(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    small = replace(LOOPBACK, max_response_bytes=1000)
    with Receiver([Reply(200, endless=True)]) as rx:
        started = time.monotonic()
        result = await _deliver(resources, http, task, rx.url(), config=small)
        assert time.monotonic() - started < 2
    assert result.outcome == "delivered" and result.error == "response body cut at 1000 bytes"


async def test_slow_receivers_are_bounded_in_time(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(200, delay_s=3.0)]) as rx:
        started = time.monotonic()
        stalled = await _deliver(resources, http, task, rx.url(), attempt=1)
        assert time.monotonic() - started < 2.5
    assert (stalled.decision, stalled.outcome, stalled.http_status) == ("retry", "timeout", None)

    with Receiver([Reply(200, drip_s=0.2)]) as rx:
        started = time.monotonic()
        dripping = await _deliver(resources, http, task, rx.url(), attempt=2)
        # answered 200 at once: the trickling body is cut at the deadline, not retried
        assert time.monotonic() - started < 3
    assert (dripping.decision, dripping.error) == ("delivered", "response body timed out")
    rows = await attempts(resources.sessions, task)
    assert [(r.outcome, r.http_status) for r in rows] == [("timeout", None), ("delivered", 200)]
    assert rows[1].response_excerpt and set(rows[1].response_excerpt) == {"."}


async def test_nothing_is_sent_again_once_delivered(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    with Receiver([Reply(200)]) as rx:
        first = await _deliver(resources, http, task, rx.url(), attempt=1)
        again = await _deliver(resources, http, task, rx.url(), attempt=2)
    assert (
        first == again == DeliveryResult(decision="delivered", outcome="delivered", http_status=200)
    )
    assert len(rx.received) == 1
    assert len(await attempts(resources.sessions, task)) == 1


async def test_without_the_escape_hatch_loopback_is_refused_at_send_time(
    resources: Resources, http: httpx.AsyncClient, task: FinishedTask
) -> None:
    strict = replace(LOOPBACK, egress=STRICT)
    with Receiver([Reply(200)]) as rx:
        plain = await _deliver(resources, http, task, rx.url(), attempt=1, config=strict)
        literal = await _deliver(
            resources, http, task, rx.url(scheme="https"), attempt=2, config=strict
        )
        named = await _deliver(
            resources, http, task, rx.url(scheme="https", host="localhost"), attempt=3,
            config=strict,
        )  # fmt: skip
        missing = await _deliver(
            resources, http, task, "https://no-such-host.invalid/hook", attempt=4, config=strict
        )
    assert rx.received == []  # nothing ever reached the receiver
    # the URL text can never become acceptable: stop; DNS answers can change: retry
    assert (plain.decision, plain.outcome) == ("stop", "refused")
    assert (literal.decision, literal.outcome) == ("stop", "refused")
    assert (named.decision, named.outcome) == ("stop", "refused")
    assert (missing.decision, missing.outcome) == ("retry", "connect_error")
    rows = await attempts(resources.sessions, task)
    assert [r.outcome for r in rows] == ["refused", "refused", "refused", "connect_error"]
    assert "https" in (rows[0].error or "")
    assert "loopback" in (rows[1].error or "") and "local name" in (rows[2].error or "")
    assert (rows[3].error or "").startswith("dns:")
    assert all(r.http_status is None for r in rows)
    assert await task_status(resources.sessions, task) == "succeeded"


@pytest.mark.skipif(not loopback_v4_reachable_as("localhost"), reason="localhost is not 127.0.0.1")
async def test_tls_is_pinned_to_the_checked_ip_but_verified_against_the_name(
    resources: Resources, tmp_path: Path
) -> None:
    good = make_cert(tmp_path, "localhost")
    wrong = make_cert(tmp_path, "callbacks.example")
    for cert, expect in ((good, "delivered"), (wrong, "connect_error")):
        task = await make_task(resources.sessions)
        client = build_callback_client(LOOPBACK, verify=good.client_context())
        try:
            with Receiver([Reply(200)], tls=cert.server_context()) as rx:
                result = await _deliver(
                    resources, client, task, rx.url(host="localhost"), attempt=1
                )
        finally:
            await client.aclose()
        assert result.outcome == expect, result
        if expect == "delivered":
            # SNI and Host carry the name although the socket went to the resolved IP
            assert rx.received[0].headers["host"] == f"localhost:{rx.port}"
        else:
            assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
            assert rx.received == []
