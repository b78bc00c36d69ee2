"""The relay's chat chunk stream as Anthropic's Messages event stream (translation mode).

Blocks are opened and closed one at a time, in the order their first delta arrives, as
Anthropic itself does: text, thinking and each tool call get `content_block_start`,
deltas, `content_block_stop`. An upstream that interleaves the argument fragments of
parallel tool calls (no known OpenAI-compatible server does) gets its late fragments
delivered on the block they belong to, by index, which the SDKs accumulate correctly.

`message_start` must carry a real input count: Claude Code sizes its context display and
auto-compaction on it, and peers that send 0 break it. Chat upstreams report usage only at
the end, so `message_start` carries the relay's own prompt estimate (the number credits
are held for) and `message_delta` the final counts, cumulative as Anthropic sends them,
input included, which both the SDK and Claude Code take over the start's.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from domain.providers.base import UpstreamError, Usage
from domain.surfaces.anthropic_in import MessagesRequest
from domain.surfaces.anthropic_out import (
    error_type_for,
    new_message_id,
    stop_reason,
    usage_fields,
)
from domain.surfaces.chat_read import (
    ChunkReader,
    Delta,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    Tokens,
    ToolArgs,
    ToolStart,
    billed_tokens,
)


def ping_event() -> dict[str, Any]:
    """Also usable as a keep-alive while the upstream is silent."""
    return {"type": "ping"}


class MessagesStream:
    """Push-style translator: `start`, then `feed` per chunk, then `finish` (or `fail`).

    Each call returns the Anthropic events to send, in order (dicts with their `type`;
    `domain.surfaces.sse.event_frame` frames them)."""

    def __init__(
        self,
        *,
        model: str,
        input_tokens: int,
        thinking: bool = False,
        stop_sequences: Sequence[str] = (),
        message_id: str | None = None,
    ) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self._input_estimate = input_tokens
        self._thinking = thinking
        self._stop_sequences = tuple(stop_sequences)
        self._reader = ChunkReader()
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (kind, block index)
        self._tool_blocks: dict[int, int] = {}  # tool call slot -> block index
        self._has_tool_use = False
        self._started = False
        self._ended = False

    @classmethod
    def for_request(cls, request: MessagesRequest, message_id: str | None = None) -> MessagesStream:
        return cls(
            model=request.model,
            input_tokens=request.input_tokens,
            thinking=request.thinking,
            stop_sequences=request.stop_sequences,
            message_id=message_id,
        )

    def start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        usage = usage_fields(Tokens(prompt=self._input_estimate, completion=0))
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [{"type": "message_start", "message": message}, ping_event()]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self._ended:
            return []
        events = self.start()
        for delta in self._reader.feed(chunk):
            events.extend(self._render(delta))
        return events

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        """The end of a complete upstream answer. `usage` is the relay's billed usage when
        it has it (then the client sees exactly what was charged)."""
        if self._ended:
            return []
        events = self.start()
        for delta in self._reader.flush():
            events.extend(self._render(delta))
        events.extend(self._close())
        self._ended = True
        reader = self._reader
        tokens = billed_tokens(usage, reader.tokens) or Tokens(
            prompt=self._input_estimate, completion=reader.output_estimate(), estimated=True
        )
        reason, sequence = stop_reason(
            reader.finish_reason,
            has_tool_use=self._has_tool_use,
            refused=bool(reader.refusal),
            matched_stop=reader.matched_stop,
            stop_sequences=self._stop_sequences,
        )
        fields = usage_fields(tokens)
        final = {
            key: fields[key]
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        }
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": final,
            }
        )
        events.append({"type": "message_stop"})
        return events

    def fail(self, message: str, status: int = 502) -> list[dict[str, Any]]:
        """The upstream broke off: Anthropic's `error` event, and nothing after it."""
        if self._ended:
            return []
        events = self.start()
        self._ended = True
        error = {"type": error_type_for(status), "message": message}
        events.append({"type": "error", "error": error})
        return events

    # -- blocks ----------------------------------------------------------------------------

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        _, index = self._open
        self._open = None
        return [{"type": "content_block_stop", "index": index}]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        return events

    def _ensure(self, kind: str, block: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        if self._open is not None and self._open[0] == kind:
            return [], self._open[1]
        events = self._open_block(kind, block)
        assert self._open is not None
        return events, self._open[1]

    def _render(self, delta: Delta) -> list[dict[str, Any]]:
        if isinstance(delta, TextDelta | RefusalDelta):
            events, index = self._ensure("text", {"type": "text", "text": ""})
            body = {"type": "text_delta", "text": delta.text}
            events.append({"type": "content_block_delta", "index": index, "delta": body})
            return events
        if isinstance(delta, ReasoningDelta):
            if not self._thinking:
                return []  # the client did not ask to see reasoning
            block = {"type": "thinking", "thinking": "", "signature": ""}
            events, index = self._ensure("thinking", block)
            body = {"type": "thinking_delta", "thinking": delta.text}
            events.append({"type": "content_block_delta", "index": index, "delta": body})
            return events
        if isinstance(delta, ToolStart):
            self._has_tool_use = True
            tool: dict[str, Any] = {
                "type": "tool_use",
                "id": delta.id,
                "name": delta.name,
                "input": {},
            }
            events = self._open_block("tool_use", tool)
            assert self._open is not None
            self._tool_blocks[delta.slot] = self._open[1]
            return events
        assert isinstance(delta, ToolArgs)
        index = self._tool_blocks[delta.slot]
        body = {"type": "input_json_delta", "partial_json": delta.fragment}
        return [{"type": "content_block_delta", "index": index, "delta": body}]


async def messages_events(
    chunks: AsyncIterable[dict[str, Any]],
    stream: MessagesStream,
    *,
    final_usage: Callable[[], Usage | None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Async-iterator form: chat chunks in, Anthropic events out.

    An `UpstreamError` raised by `chunks` (the upstream died mid-answer) ends the stream
    with Anthropic's `error` event; `final_usage`, called once the chunks are exhausted,
    supplies the billed usage for `message_delta`."""
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
