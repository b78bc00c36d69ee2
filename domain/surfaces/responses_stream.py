"""The relay's chat chunk stream as the Responses API's typed event stream.

The official SDK's stream helper (`client.responses.stream`) rebuilds the Response from
the events and checks their bookkeeping: every content event names an output item that was
announced with `response.output_item.added`, the item ids of `added` and `done` match, and
`response.completed` must not leave an item unfinished. Items are therefore opened and
finished one at a time, in the order their first delta arrives, and the final event repeats
every item in its finished form. Each event has a `sequence_number`, from 0.

A cut answer ends with `response.incomplete`, a broken upstream with `response.failed`,
as OpenAI ends them; only a whole answer ends with `response.completed`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from domain.providers.base import UpstreamError, Usage
from domain.providers.tokens import estimate_prompt_tokens
from domain.surfaces.chat_read import (
    ChunkReader,
    Delta,
    RefusalDelta,
    TextDelta,
    Tokens,
    ToolArgs,
    ToolCall,
    ToolStart,
    billed_tokens,
)
from domain.surfaces.responses_in import ResponsesRequest
from domain.surfaces.responses_out import (
    call_item,
    message_item,
    new_id,
    refusal_part,
    response_object,
    status_for,
    text_part,
    usage_fields,
)


@dataclass
class _Message:
    output_index: int
    item_id: str
    parts: list[dict[str, Any]] = field(default_factory=list)  # finished parts
    kind: str | None = None  # "text" | "refusal": the open part
    buffer: list[str] = field(default_factory=list)


@dataclass
class _Call:
    output_index: int
    item_id: str
    call: ToolCall
    done: bool = False


class ResponsesStream:
    """Push-style translator: `start`, then `feed` per chunk, then `finish` (or `fail`).

    Each call returns the events to send (dicts with `type` and `sequence_number`;
    `domain.surfaces.sse.event_frame` frames them)."""

    def __init__(
        self,
        request: ResponsesRequest,
        *,
        response_id: str | None = None,
        created_at: int | None = None,
    ) -> None:
        self.request = request
        self.response_id = response_id or new_id("resp")
        self.created_at = created_at if created_at is not None else int(time.time())
        self._reader = ChunkReader()
        self._sequence = 0
        self._items: list[dict[str, Any]] = []  # finished items' final form, by output index
        self._message: _Message | None = None
        self._open_call: _Call | None = None
        self._calls: dict[int, _Call] = {}  # tool call slot -> its item
        self._started = False
        self._ended = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        snapshot = self._response("in_progress", usage=None)
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self._ended:
            return []
        events = self.start()
        for delta in self._reader.feed(chunk):
            events.extend(self._render(delta))
        return events

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        """The end of a complete upstream answer; `usage` is the relay's billed usage."""
        if self._ended:
            return []
        events = self.start()
        for delta in self._reader.flush():
            events.extend(self._render(delta))
        status, details = status_for(self._reader.finish_reason)
        item_status = "incomplete" if status == "incomplete" else "completed"
        events.extend(self._close(item_status))
        self._ended = True
        tokens = billed_tokens(usage, self._reader.tokens) or Tokens(
            prompt=estimate_prompt_tokens(self.request.chat),
            completion=self._reader.output_estimate(),
            estimated=True,
        )
        final = self._response(status, usage=usage_fields(tokens), incomplete_details=details)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=final))
        return events

    def fail(self, message: str) -> list[dict[str, Any]]:
        """The upstream broke off: `response.failed` with what was produced so far."""
        if self._ended:
            return []
        events = self.start()
        self._ended = True
        output = list(self._items)
        if self._message is not None:
            output.append(self._message_final(self._message, "incomplete"))
        if self._open_call is not None:
            output.append(call_item(self._open_call.item_id, self._open_call.call, "incomplete"))
        error = {"code": "server_error", "message": message}
        failed = self._response("failed", usage=None, error=error, output=output)
        events.append(self._event("response.failed", response=failed))
        return events

    # -- helpers -----------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(
        self,
        status: str,
        *,
        usage: dict[str, Any] | None,
        incomplete_details: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        output: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            status=status,
            output=list(self._items) if output is None else output,
            usage=usage,
            incomplete_details=incomplete_details,
            error=error,
        )

    def _next_index(self) -> int:
        open_items = (self._message is not None) + (self._open_call is not None)
        return len(self._items) + open_items

    # -- items -------------------------------------------------------------------------------

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._message is not None:
            message = self._message
            events.extend(self._close_part(message))
            final = self._message_final(message, status)
            self._message = None
            self._items.append(final)
            events.append(
                self._event(
                    "response.output_item.done", output_index=message.output_index, item=final
                )
            )
        if self._open_call is not None:
            call = self._open_call
            self._open_call = None
            call.done = True
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    arguments=call.call.arguments,
                )
            )
            final = call_item(call.item_id, call.call, status)
            self._items.append(final)
            events.append(
                self._event("response.output_item.done", output_index=call.output_index, item=final)
            )
        return events

    @staticmethod
    def _message_final(message: _Message, status: str) -> dict[str, Any]:
        parts = list(message.parts)
        if message.kind is not None:
            text = "".join(message.buffer)
            parts.append(text_part(text) if message.kind == "text" else refusal_part(text))
        return message_item(message.item_id, parts, status)

    def _close_part(self, message: _Message) -> list[dict[str, Any]]:
        if message.kind is None:
            return []
        text = "".join(message.buffer)
        index = len(message.parts)
        where = {"item_id": message.item_id, "output_index": message.output_index}
        if message.kind == "text":
            part = text_part(text)
            done = self._event(
                "response.output_text.done", **where, content_index=index, text=text, logprobs=[]
            )
        else:
            part = refusal_part(text)
            done = self._event("response.refusal.done", **where, content_index=index, refusal=text)
        message.parts.append(part)
        message.kind = None
        message.buffer = []
        finished = self._event(
            "response.content_part.done", **where, content_index=index, part=part
        )
        return [done, finished]

    def _ensure_part(self, kind: str) -> tuple[list[dict[str, Any]], _Message]:
        events: list[dict[str, Any]] = []
        if self._message is None:
            events.extend(self._close())
            message = _Message(self._next_index(), new_id("msg"))
            self._message = message
            item = message_item(message.item_id, [], "in_progress")
            events.append(
                self._event(
                    "response.output_item.added", output_index=message.output_index, item=item
                )
            )
        message = self._message
        if message.kind != kind:
            events.extend(self._close_part(message))
            message.kind = kind
            part = text_part("") if kind == "text" else refusal_part("")
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=message.item_id,
                    output_index=message.output_index,
                    content_index=len(message.parts),
                    part=part,
                )
            )
        return events, message

    def _render(self, delta: Delta) -> list[dict[str, Any]]:
        if isinstance(delta, TextDelta | RefusalDelta):
            kind = "text" if isinstance(delta, TextDelta) else "refusal"
            events, message = self._ensure_part(kind)
            message.buffer.append(delta.text)
            name = "response.output_text.delta" if kind == "text" else "response.refusal.delta"
            extra: dict[str, Any] = {"logprobs": []} if kind == "text" else {}
            events.append(
                self._event(
                    name,
                    item_id=message.item_id,
                    output_index=message.output_index,
                    content_index=len(message.parts),
                    delta=delta.text,
                    **extra,
                )
            )
            return events
        if isinstance(delta, ToolStart):
            events = self._close()
            call = _Call(self._next_index(), new_id("fc"), self._reader.calls[delta.slot])
            self._calls[delta.slot] = call
            self._open_call = call
            item = call_item(call.item_id, call.call, "in_progress", arguments="")
            events.append(
                self._event("response.output_item.added", output_index=call.output_index, item=item)
            )
            return events
        if isinstance(delta, ToolArgs):
            call = self._calls[delta.slot]
            events = [
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    delta=delta.fragment,
                )
            ]
            if call.done:  # a late fragment: keep the finished item's arguments whole
                self._items[call.output_index] = call_item(
                    call.item_id, call.call, self._items[call.output_index]["status"]
                )
            return events
        return []  # reasoning: see responses_out


async def response_events(
    chunks: AsyncIterable[dict[str, Any]],
    stream: ResponsesStream,
    *,
    final_usage: Callable[[], Usage | None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Async-iterator form: chat chunks in, Responses events out; an `UpstreamError` from
    `chunks` ends with `response.failed`."""
    for event in stream.start():
        yield event
    try:
        async for chunk in chunks:
            for event in stream.feed(chunk):
                yield event
    except UpstreamError as exc:
        for event in stream.fail(exc.message):
            yield event
        return
    for event in stream.finish(final_usage() if final_usage is not None else None):
        yield event
