"""One callback attempt: re-check the target, sign, send to the checked address, record.

The URL was checked at submit time, but DNS answers and our own rules change over days of
retries, so every send re-validates the URL and re-resolves the host. The request then goes
to the IP we checked (pinned; no second lookup a rebinding DNS server could answer
differently), with the original name in the `Host` header and as TLS SNI, and the
certificate verified against that name.

A receiver is untrusted: redirects are not followed (a 3xx is a failed attempt), time is
bounded from DNS to the last byte, and at most `max_response_bytes` of the answer are read,
undecoded (`Accept-Encoding: identity`), so a compressed bomb cannot inflate in memory.

Nothing here touches the task: a callback that never lands leaves the task's status as is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from domain.callbacks import repository as repo
from domain.callbacks import secrets
from domain.callbacks.signing import sign
from domain.crypto import SecretBox
from domain.egress.policy import (
    STRICT,
    EgressPolicy,
    ResolutionFailed,
    Target,
    UnsafeAddress,
    check_url,
    resolve_checked,
)
from domain.errors import InvalidField
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

log = logging.getLogger("oxinf.callbacks")
PARAM = "callback_url"
EXCERPT_CHARS = 1024
ERROR_CHARS = 500
USER_AGENT = "0xinf-webhooks/1.0"

Decision = Literal["delivered", "retry", "stop"]
Outcome = Literal["delivered", "http_error", "refused", "timeout", "connect_error", "redirect"]


class CallbackJob(Protocol):
    """Everything one delivery sends, fixed when it starts so every attempt sends the same
    (the delivery workflow's `CallbackJob` is one)."""

    @property
    def task_id(self) -> uuid.UUID: ...
    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def event(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def webhook_id(self) -> str: ...


@dataclass(frozen=True)
class DeliveryResult:
    """What one attempt came to, and whether the workflow should try again."""

    decision: Decision
    outcome: Outcome
    http_status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class CallbackConfig:
    egress: EgressPolicy = STRICT  # where tenant URLs may lead (`domain.egress.policy`)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_response_bytes: int = 64 * 1024
    max_addresses: int = 3  # addresses tried when a connection is refused (dual-stack hosts)

    @property
    def send_deadline_s(self) -> float:
        """Connect plus read: the whole exchange, not each socket operation, is bounded."""
        return self.connect_timeout_s + self.read_timeout_s


def build_callback_client(
    config: CallbackConfig, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client for untrusted receivers, separate from the upstream-provider client.

    No keep-alive: the pool is keyed by the pinned IP, so a kept connection could carry a
    request for another host name over a TLS session verified for the first. No proxies
    from the environment: a proxy would resolve the name itself and undo the pinning.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.connect_timeout_s,
        ),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        follow_redirects=False,
        trust_env=False,
        verify=verify,
    )


def encode_body(payload: dict[str, Any]) -> bytes:
    """Compact and key-sorted, so the same payload always signs to the same bytes."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@dataclass
class _Outcome:
    result: DeliveryResult
    excerpt: str | None = None


def _result(
    decision: Decision,
    outcome: Outcome,
    *,
    status: int | None = None,
    error: str | None = None,
    excerpt: str | None = None,
) -> _Outcome:
    return _Outcome(
        DeliveryResult(
            decision=decision, outcome=outcome, http_status=status, error=_clip(error, ERROR_CHARS)
        ),
        excerpt,
    )


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text.replace("\x00", "")[:limit]  # PostgreSQL text cannot hold NUL


async def deliver(
    http: httpx.AsyncClient,
    sessions: SessionFactory,
    box: SecretBox,
    config: CallbackConfig,
    job: CallbackJob,
    attempt: int,
) -> DeliveryResult:
    """Make attempt number `attempt` and record it; safe to call again for the same job.

    Once an attempt has been recorded as delivered, later calls report that and send
    nothing, so a duplicated attempt cannot deliver twice. Its reads and its record are
    units of work of their own: no transaction stays open while the receiver answers.
    """
    async with unit_of_work(sessions) as session:
        done, status = await repo.delivered_status(session, job.org_id, job.task_id, job.event)
    if done:
        return DeliveryResult(decision="delivered", outcome="delivered", http_status=status)
    async with unit_of_work(sessions) as session:
        secret = await secrets.get_or_create(session, job.org_id, box)
    started = time.monotonic()
    outcome = await _attempt(http, config, job, secret)
    latency_ms = int((time.monotonic() - started) * 1000)
    result = outcome.result
    async with unit_of_work(sessions) as session:
        _, recorded = await repo.insert_attempt(
            session,
            {
                "task_id": job.task_id,
                "org_id": job.org_id,
                "event": job.event,
                "webhook_id": job.webhook_id,
                "attempt": attempt,
                "url": job.url[:2000],
                "http_status": result.http_status,
                "outcome": result.outcome,
                "error": result.error,
                "latency_ms": latency_ms,
                "response_excerpt": outcome.excerpt,
            },
        )
    if not recorded:
        log.warning(
            "callback attempt ran twice; the first record stands",
            extra={"task_id": str(job.task_id), "event": job.event, "attempt": attempt},
        )
    return result


async def _attempt(
    http: httpx.AsyncClient, config: CallbackConfig, job: CallbackJob, secret: str
) -> _Outcome:
    try:
        target = check_url(job.url, param=PARAM, policy=config.egress)
    except InvalidField as exc:
        # The URL text itself is now unacceptable; it is fixed for this job, so retrying
        # could never succeed.
        return _result("stop", "refused", error=exc.message)
    if target.literal_ip is not None:
        addresses = [target.literal_ip]
    else:
        try:
            addresses = await resolve_checked(
                target.host,
                target.port,
                param=PARAM,
                policy=config.egress,
                timeout_s=config.connect_timeout_s,
            )
        except UnsafeAddress as exc:
            # DNS can change (a misconfigured record gets fixed), and a refused attempt
            # sends nothing, so the schedule carries on; a rebinding attacker only ever
            # earns more refusals.
            return _result("retry", "refused", error=exc.message)
        except ResolutionFailed as exc:
            return _result("retry", "connect_error", error=f"dns: {exc}")
    body = encode_body(job.payload)
    timestamp = int(time.time())
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "accept-encoding": "identity",
        "user-agent": USER_AGENT,
        "webhook-id": job.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, job.webhook_id, timestamp, body),
    }
    return await _send(http, config, target, addresses[: config.max_addresses], headers, body)


async def _send(
    http: httpx.AsyncClient,
    config: CallbackConfig,
    target: Target,
    addresses: list[str],
    headers: dict[str, str],
    body: bytes,
) -> _Outcome:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.send_deadline_s
    extensions = {}
    if target.scheme == "https" and target.literal_ip is None:
        extensions["sni_hostname"] = target.host
    failure = _result("retry", "connect_error", error="no address to connect to")
    for ip in addresses:
        request = http.build_request(
            "POST",
            httpx.URL(target.url).copy_with(host=ip),
            content=body,
            headers=headers,
            extensions=extensions,
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await http.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = _result("retry", "connect_error", error=f"{ip}: {_describe(exc)}")
            continue  # refused or unreachable: the host's next address may answer
        except (TimeoutError, httpx.TimeoutException) as exc:
            return _result("retry", "timeout", error=f"{ip}: {_describe(exc)}")
        except httpx.HTTPError as exc:
            return _result("retry", "connect_error", error=f"{ip}: {_describe(exc)}")
        try:
            raw, note = await _read_bounded(response, config.max_response_bytes, deadline)
        finally:
            await response.aclose()
        return _classify(response, raw, note)
    return failure


async def _read_bounded(
    response: httpx.Response, limit: int, deadline: float
) -> tuple[bytes, str | None]:
    """At most `limit` raw bytes before the deadline.

    The status line has already arrived and decides the attempt, so a body that stalls or
    never ends is cut short rather than turning an answered request into a retry.
    """
    buf = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_raw():
                buf.extend(chunk)
                if len(buf) >= limit:
                    return bytes(buf[:limit]), f"response body cut at {limit} bytes"
    except (TimeoutError, httpx.TimeoutException):
        return bytes(buf), "response body timed out"
    except httpx.HTTPError as exc:
        return bytes(buf), f"response body: {_describe(exc)}"
    return bytes(buf), None


def _classify(response: httpx.Response, raw: bytes, note: str | None) -> _Outcome:
    status = response.status_code
    excerpt = _clip(raw[:EXCERPT_CHARS].decode("utf-8", errors="replace"), EXCERPT_CHARS)
    if 200 <= status < 300:
        return _result("delivered", "delivered", status=status, error=note, excerpt=excerpt)
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return _result(
            "retry", "redirect", status=status, excerpt=excerpt,
            error=f"redirects are not followed (location: {location[:200]})",
        )  # fmt: skip
    decision: Decision = "stop" if status == 410 else "retry"  # 410 Gone: wants no more
    error = note or f"HTTP {status}"
    return _result(decision, "http_error", status=status, error=error, excerpt=excerpt)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
