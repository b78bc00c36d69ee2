"""Streaming chat: forward chunks as they come and bill whatever actually happened.

The upstream is read by a pump task of its own, not by the response generator: when a
client disconnects, the server cancels the generator, and a read cancelled half-way would
lose the rest of the stream and with it the usage the upstream reports at the end. The pump
keeps going (bounded by `drain_timeout_s` once the client has left), so three endings follow
one rule, charge real upstream usage, estimated from the text only when none was reported:
- the upstream finishes: settle, then the client gets `[DONE]` (a client that saw `[DONE]`
  sees a settled ledger);
- the client goes away: the pump drains the rest, then settles;
- the upstream dies mid-stream: bill what it produced; the client gets an error event
  instead of `[DONE]`.
If the charge itself cannot be written (the database went away after the upstream answered),
the call is not charged: its hold is voided, or expired by the sweeper if the database is still
out of reach, and the client gets a `service_unavailable` error event instead of `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from domain import json_exact
from domain.errors import DomainError
from domain.outages import DependencyUnavailable, as_unavailable
from domain.providers import UpstreamError, Usage, estimate_prompt_tokens, estimate_text_tokens
from domain.relay.billing import finish_success
from domain.relay.service import Opened, Relay

log = logging.getLogger("oxinf.relay")
_DONE = object()
# The error contract's types (api.errors) for the codes a stream can end with.
_EVENT_TYPES = {
    "upstream_error": "upstream_error",
    "service_unavailable": "service_unavailable_error",
    "conflict": "invalid_request_error",
}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json_exact.dumps(payload) + b"\n\n"


def _usage_of(opened: Opened) -> Usage:
    usage = opened.stream.usage
    text_tokens = estimate_text_tokens(opened.stream.text)
    if usage is not None and (opened.stream.finished or usage.completion_tokens >= text_tokens):
        return usage
    # The upstream never told us (or told us only the prompt): count what it produced.
    prompt = usage.prompt_tokens if usage is not None else estimate_prompt_tokens(opened.plan.body)
    cached = usage.cached_tokens if usage is not None else 0
    return Usage(prompt, text_tokens, cached, estimated=True)


class _Pump:
    def __init__(self, relay: Relay, opened: Opened) -> None:
        self.relay = relay
        self.opened = opened
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.client_gone = False
        self._deadline: asyncio.Timeout | None = None
        self._reading = False

    def client_left(self) -> None:
        if self.client_gone:
            return
        self.client_gone = True
        if self._deadline is not None and self._reading:
            loop = asyncio.get_running_loop()
            self._deadline.reschedule(loop.time() + self.relay.cfg.drain_timeout_s)

    async def run(self) -> None:
        opened = self.opened
        error: UpstreamError | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline, self._reading = deadline, True
                if self.client_gone:
                    deadline.reschedule(
                        asyncio.get_running_loop().time() + self.relay.cfg.drain_timeout_s
                    )
                async for chunk in opened.stream:
                    if not self.client_gone:
                        self.queue.put_nowait(chunk)
                self._reading = False
        except UpstreamError as exc:
            error = exc
        except TimeoutError:
            log.warning(
                "stream drain timed out; billing what arrived",
                extra={"request": opened.plan.request_id},
            )
        except Exception as exc:  # a bug in an adapter must still end in a settlement
            log.exception("stream pump failed", extra={"request": opened.plan.request_id})
            error = UpstreamError("malformed", "upstream stream failed", retryable=False)
            del exc
        finally:
            await opened.stream.aclose()
        unsettled: DomainError | None = None
        try:
            unsettled = await self._settle(error)
        finally:
            # Not charged says more than how the upstream ended.
            self.queue.put_nowait(unsettled or error or _DONE)

    async def _settle(self, error: UpstreamError | None) -> DomainError | None:
        """Bill the stream; on failure, the error the client gets instead of `[DONE]`."""
        opened = self.opened
        snapshot = opened.model_routes.snapshot if opened.model_routes else opened.plan.snapshot
        detail = {"content": opened.stream.text} if opened.plan.log_content else None
        try:
            outcome = await finish_success(
                self.relay.sessions, opened.plan, opened.route, opened.model, snapshot,
                _usage_of(opened), opened.hold, opened.attempts,
                upstream_request_id=opened.stream.upstream_request_id,
                response_detail=detail,
                http_status=502 if error else 200,
                error_code="upstream_error" if error else None,
                error_message=error.message if error else None,
                client_disconnected=self.client_gone,
                settle_fast=self.relay.settles.submit,
            )  # fmt: skip
        except Exception as exc:
            # Not charged: the hold is voided now if the database answers, else the sweeper
            # expires it; the client learns the answer was not completed.
            unsettled = _unsettled(exc, opened.plan.request_id)
            await opened.hold.release(self.relay.sessions)
            return unsettled
        if outcome.cost_micros:
            self.relay.settled(opened.plan.org_id)
        return None


def _unsettled(exc: Exception, request_id: str) -> DomainError:
    if isinstance(exc, DomainError):
        log.info("stream not settled", extra={"request": request_id, "code": exc.code})
        return exc
    down = as_unavailable(exc)
    if down is not None:
        log.warning(
            "stream not settled: dependency unavailable; the sweeper expires its hold",
            extra={"request": request_id, "dependency": down.dependency},
        )
        return DependencyUnavailable(
            down.dependency, "the answer could not be recorded, so it was not charged; retry"
        )
    log.error("stream settlement failed", exc_info=exc, extra={"request": request_id})
    return DomainError("the answer could not be recorded, so it was not charged",
                       code="internal_error")  # fmt: skip


def start_pump(relay: Relay, opened: Opened) -> _Pump:
    """Start reading the upstream now, before the response exists: if the server never
    iterates the body (the client left first), the stream is still drained and billed."""
    pump = _Pump(relay, opened)
    relay.spawn(pump.run())
    return pump


async def sse_events(pump: _Pump) -> AsyncIterator[bytes]:
    opened = pump.opened
    finished = False
    try:
        while True:
            item = await pump.queue.get()
            if item is _DONE:
                finished = True
                yield b"data: [DONE]\n\n"
                return
            if isinstance(item, UpstreamError | DomainError):
                finished = True
                code = item.code if isinstance(item, DomainError) else "upstream_error"
                error = {
                    "type": _EVENT_TYPES.get(code, "api_error"),
                    "code": code,
                    "message": item.message,
                    "request_id": opened.plan.request_id,
                }
                yield _sse({"error": error})
                return
            assert isinstance(item, dict)
            if not item.get("choices") and "usage" in item:
                if opened.plan.include_usage:
                    yield _sse(item)
                continue
            yield _sse(item)
    finally:
        if not finished:
            pump.client_left()


class Translator(Protocol):
    """A surface's push-style stream translator (`domain.surfaces`): events out for the
    start, each chat chunk, the billed end, or a failure."""

    def start(self) -> list[dict[str, Any]]: ...

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]: ...

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]: ...

    def fail(self, message: str) -> list[dict[str, Any]]: ...


async def translated_events(
    pump: _Pump,
    translator: Translator,
    frame: Callable[[Mapping[str, Any]], bytes],
    *,
    done: bytes | None = None,
) -> AsyncIterator[bytes]:
    """The pump's chunks in another wire format (Messages, Responses, legacy completions).

    Every chunk is fed, the usage-only one included, and the end carries the usage the
    ledger charged (`_usage_of`), so what the client reads is what it paid for."""
    finished = False
    try:
        for event in translator.start():
            yield frame(event)
        while True:
            item = await pump.queue.get()
            if item is _DONE:
                finished = True
                for event in translator.finish(_usage_of(pump.opened)):
                    yield frame(event)
                if done is not None:
                    yield done
                return
            if isinstance(item, UpstreamError | DomainError):
                finished = True
                for event in translator.fail(item.message):
                    yield frame(event)
                return
            assert isinstance(item, dict)
            for event in translator.feed(item):
                yield frame(event)
    finally:
        if not finished:
            pump.client_left()
