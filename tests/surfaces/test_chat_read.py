"""Reading chat answers once for every surface: the habits of OpenAI-compatible upstreams."""

from __future__ import annotations

from domain.providers.base import Usage
from domain.surfaces.chat_read import (
    ChunkReader,
    ReasoningDelta,
    TextDelta,
    Tokens,
    ToolArgs,
    ToolStart,
    billed_tokens,
    read_completion,
    tokens_from_openai,
)
from tests.surfaces.fixtures import chunk, completion, finish_chunk, usage_chunk


def test_tokens_from_openai_usage() -> None:
    raw = usage_chunk(100, 20, cached=40, reasoning=5)["usage"]
    raw["prompt_tokens_details"]["cache_write_tokens"] = 10  # OpenRouter reports writes
    tokens = tokens_from_openai(raw)
    assert tokens == Tokens(100, 20, cached=40, cache_write=10, reasoning=5)
    assert tokens.to_openai() == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert tokens_from_openai(None) is None and tokens_from_openai({"total_tokens": 3}) is None
    assert tokens_from_openai({"prompt_tokens": -1, "completion_tokens": True}) == Tokens(0, 0)


def test_billed_usage_keeps_the_upstreams_details() -> None:
    reported = Tokens(10, 2, cached=5, cache_write=3, reasoning=1)
    assert billed_tokens(None, reported) is reported
    assert billed_tokens(Usage(90, 9, 30), None) == Tokens(90, 9, cached=30)
    assert billed_tokens(Usage(90, 9, 30, estimated=True), reported) == Tokens(
        90, 9, cached=30, cache_write=3, reasoning=1, estimated=True
    )


def test_read_completion_variants() -> None:
    parts = completion(None)
    parts["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]
    assert read_completion(parts).text == "ab"
    nameless = completion(None, tool_calls=[("", "f", "{}")])
    call = read_completion(nameless).tool_calls[0]
    assert call.id.startswith("call_") and call.name == "f"
    unreported = completion("four bytes!!")
    del unreported["usage"]
    assert read_completion(unreported).tokens == Tokens(0, 3, estimated=True)
    empty = read_completion({})
    assert (empty.text, empty.tool_calls, empty.finish_reason) == ("", [], None)


def test_chunk_reader_follows_the_stream() -> None:
    reader = ChunkReader()
    deltas = []
    for item in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "hmm"}),
        chunk({"content": "Hi"}),
        chunk(
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"x"'}}]}
        ),  # no id, no name yet
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        {
            **finish_chunk("tool_calls"),
            "usage": usage_chunk(7, 3)["usage"],
        },  # usage on the finish chunk
        chunk({"content": "ignored"})
        | {"choices": [{"index": 1, "delta": {"content": "second choice"}}]},
    ]:
        deltas.extend(reader.feed(item))
    assert deltas == [ReasoningDelta("hmm"), TextDelta("Hi")]  # the call still has no name
    flushed = reader.flush()
    assert isinstance(flushed[0], ToolStart) and flushed[0].name == ""
    assert flushed[1:] == [ToolArgs(0, '{"x"'), ToolArgs(0, ": 1}")]
    assert reader.calls[0].arguments == '{"x": 1}'
    assert reader.finish_reason == "tool_calls" and reader.tokens == Tokens(7, 3)
    assert (reader.text, reader.reasoning, reader.id, reader.created) == (
        "Hi",
        "hmm",
        "chatcmpl-AbC123xyz",
        1731000000,
    )
    assert reader.flush() == []


def test_an_id_sent_after_the_first_fragment_is_adopted_not_a_new_call() -> None:
    reader = ChunkReader()
    deltas = []
    for item in [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "call_real", "function": {"name": "f"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "call_real", "function": {"arguments": "}"}}]}),
    ]:
        deltas.extend(reader.feed(item))
    assert deltas == [ToolStart(0, "call_real", "f"), ToolArgs(0, "{"), ToolArgs(0, "}")]
    assert len(reader.calls) == 1 and reader.calls[0].arguments == "{}"
